"""A Lambda context object for local invocations, with a real deadline."""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Callable

__all__ = ["LocalContext"]


@dataclass
class LocalContext:
    """What the Lambda runtime passes as ``context``, for invocations made here."""

    function_name: str
    timeout: float  # seconds
    memory_limit_in_mb: int = 512
    region: str = "us-east-1"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    clock: Callable[[], float] = time.monotonic
    started: float = -1.0

    def __post_init__(self) -> None:
        if self.started < 0:
            self.started = self.clock()

    @property
    def function_version(self) -> str:
        """Always ``$LATEST`` locally."""
        return "$LATEST"

    @property
    def invoked_function_arn(self) -> str:
        """The function's ARN in the local account."""
        return f"arn:aws:lambda:{self.region}:123456789012:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        """``/aws/lambda/<function>`` as on AWS."""
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        """A log stream name in Lambda's format."""
        return f"{time.strftime('%Y/%m/%d')}/[$LATEST]{self.aws_request_id.replace('-', '')}"

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the invocation's deadline (never negative)."""
        left = self.timeout - (self.clock() - self.started)
        return max(0, int(left * 1000))
