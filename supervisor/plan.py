"""Where a record runs: in this Lambda, or handed to Batch at once (pure)."""
from __future__ import annotations

from typing import Optional

__all__ = ["delegate_reason"]


def delegate_reason(mode: str, *, object_size: int, free_bytes: int,
                    budget: Optional[float], threshold: float) -> Optional[str]:
    """Why a record should go to Batch without running here, or None to run it here.

    ``budget`` is the time left for stage-in and the script (the Lambda's
    remaining time minus the threshold), None when there is no deadline.
    """
    if mode == "batch":
        return "execution_mode is batch"
    if mode != "lambda-batch":
        return None
    if object_size > free_bytes:
        return (f"the object ({object_size} bytes) is larger than the free space of the "
                f"work dir ({free_bytes} bytes)")
    if budget is not None and budget < threshold:
        return (f"the remaining time budget ({budget:.1f} s) is below the threshold "
                f"({threshold:.1f} s)")
    return None
