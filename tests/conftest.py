"""Shared fixtures: one moto server per test session, reached over HTTP."""
from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

EVENTS_DIR = Path(__file__).parent / "events"

FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


def load_event(name: str) -> dict[str, Any]:
    """A sample event from ``tests/events/<name>.json``."""
    return json.loads((EVENTS_DIR / f"{name}.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """Start one moto server on a free loopback port; yield its URL."""
    from supervisor.local.endpoint import start_endpoint

    endpoint = start_endpoint()
    yield endpoint.url
    endpoint.stop()


@pytest.fixture
def aws_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point boto3 in this process at the moto server with fake credentials.

    Returns the environment a subprocess needs to reach the same server.
    """
    env = dict(FAKE_AWS_ENV, AWS_ENDPOINT_URL=moto_endpoint)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    return env


@pytest.fixture
def s3(aws_env: dict[str, str]) -> Any:
    """A boto3 S3 client on the moto server."""
    import boto3

    return boto3.client("s3", endpoint_url=aws_env["AWS_ENDPOINT_URL"], region_name="us-east-1")


@pytest.fixture
def bucket(s3: Any) -> str:
    """A fresh, empty bucket for one test."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name
