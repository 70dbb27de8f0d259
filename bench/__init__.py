"""Benchmarks: this project against faas-supervisor 1.5.8 and a hand-written boto3 floor.

Run with ``./build.sh bench`` (see ``docs/BENCHMARKS.md``); ``python -m bench.run --help``.
"""
