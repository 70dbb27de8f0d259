"""An in-Lambda supervisor runtime with AWS Batch delegation.

A Lambda handler (``supervisor.handler.lambda_handler``) triggered by S3
uploads downloads the object, runs the user's shell script on it and uploads
what the script wrote; long jobs are handed to AWS Batch, where
``supervisor-batch`` does the same stage-in, run and stage-out.

The package root imports nothing heavy, so the handler's cold start pays only
for what an invocation uses.
"""

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "aws",
    "batch_entry",
    "config",
    "container",
    "cli",
    "delegate",
    "errors",
    "events",
    "handler",
    "handoff",
    "packaging",
    "pipeline",
    "plan",
    "process",
    "provision",
    "result",
    "runner",
    "storage",
    "watchdog",
    "workflow",
    "workdir",
]
