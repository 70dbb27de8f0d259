"""Run history: what each Lambda run of a ``lambda-batch`` function cost, and where the
next record should run.

::

    bands.py     size bands, duration buckets, and their words (pure)
    model.py     the stored form: counters per band, outcome and bucket (pure)
    prediction.py  history in, decision and reason out (pure)
    store.py     the DynamoDB items: read one, add runs to one, list a function's
    runtime.py   one invocation: read once, decide per record, write once

Nothing here is imported unless ``history.table`` is configured.
"""
from __future__ import annotations

from .model import History, HistoryKey, Observation, Outcome, history_id
from .prediction import Decision, predict
from .runtime import RunHistory
from .store import HistoryStore

__all__ = ["History", "HistoryKey", "Observation", "Outcome", "history_id", "Decision",
           "predict", "RunHistory", "HistoryStore"]
