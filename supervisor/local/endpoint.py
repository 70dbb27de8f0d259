"""The embedded AWS endpoint: a moto server on a free loopback port."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Endpoint", "start_endpoint", "FAKE_CREDENTIALS"]

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


@dataclass
class Endpoint:
    """A running moto server; ``env`` points boto3 (and subprocesses) at it."""

    url: str
    server: Any

    @property
    def env(self) -> dict[str, str]:
        """The environment variables that make boto3 talk to this endpoint."""
        return dict(FAKE_CREDENTIALS, AWS_ENDPOINT_URL=self.url)

    def stop(self) -> None:
        """Shut the server down; what it held goes with it.

        moto keeps its state per process, not per server: without the reset a
        later endpoint in the same process would start with this one's
        buckets, functions and queues.
        """
        import requests

        try:
            requests.post(f"{self.url}/moto-api/reset", timeout=10)
        finally:
            self.server.stop()

    def __enter__(self) -> "Endpoint":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _leave_s3_notifications_to_the_event_source() -> None:
    """Stop moto from running Lambda functions itself when an object is created.

    moto answers an S3 upload under a bucket notification by invoking the
    function in Docker, which does not exist here: each upload would cost a
    failed Docker probe and leave an "error running docker" entry in the
    function's log group. In local mode S3 notifications are delivered by
    :mod:`supervisor.local.event_source`, and functions run on the local
    Lambda executor; SQS, SNS and EventBridge notifications are untouched.
    """
    from moto.s3 import notifications

    def no_lambda_invoke(account_id: str, event_body: Any, fn_arn: str,
                         region_name: str) -> None:
        return None

    notifications._invoke_awslambda = no_lambda_invoke


def start_endpoint() -> Endpoint:
    """Start moto's server on 127.0.0.1 (free port), Batch without Docker."""
    import logging

    import requests
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log per request
    _leave_s3_notifications_to_the_event_source()

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    try:
        answer = requests.post(f"{url}/moto-api/config",
                               json={"batch": {"use_docker": False}}, timeout=10)
        answer.raise_for_status()
    except BaseException:
        server.stop()
        raise
    return Endpoint(url=url, server=server)
