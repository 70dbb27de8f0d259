"""The AWS Batch side, ``supervisor-batch``: what the job runs and how it ends.

- :mod:`.entry` — ``main``: read the input, run each record, the exit code (the contract)
- :mod:`.inputs` — the hand-off document, or SCAR's ``EVENT``/stdin + ``FUNCTION_CONFIG`` + ``SCRIPT``
- :mod:`.settings` — what the job's environment says about how to run
- :mod:`.exit_codes` — the exit-code table and the one-line reason
"""
