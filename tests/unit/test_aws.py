"""ClientFactory: one client per process and provider, shared by every invocation."""
from __future__ import annotations

import boto3.session
import pytest

from supervisor.aws import ClientFactory
from supervisor.config import S3Provider
from supervisor.errors import ConfigError


def factory() -> ClientFactory:
    session = boto3.session.Session(aws_access_key_id="k", aws_secret_access_key="s",
                                    region_name="eu-west-1")
    return ClientFactory(session=session, endpoint_url="http://127.0.0.1:9")


def test_invocations_share_the_process_clients() -> None:
    root = factory()
    first = root.with_providers({})
    second = root.with_providers({"minio": S3Provider(id="minio", region="us-east-1")})
    assert first.s3() is second.s3() is root.s3()
    assert first.client("batch") is root.client("batch")
    assert root.s3().meta.endpoint_url == "http://127.0.0.1:9"


def test_a_named_provider_client_is_reused_while_its_settings_stay_the_same() -> None:
    root = factory()
    minio = S3Provider(id="minio", region="us-east-1", endpoint="http://minio:9000",
                       access_key="a", secret_key="b")
    one = root.with_providers({"minio": minio}).s3("s3.minio")
    two = root.with_providers({"minio": minio}).s3("s3.minio")
    assert one is two and one.meta.endpoint_url == "http://minio:9000"
    moved = S3Provider(id="minio", region="us-east-1", endpoint="http://elsewhere:9000")
    three = root.with_providers({"minio": moved}).s3("s3.minio")
    assert three is not one and three.meta.endpoint_url == "http://elsewhere:9000"


def test_an_undefined_provider_is_a_config_error_naming_the_defined_ones() -> None:
    with pytest.raises(ConfigError, match="'s3.nope' is not defined; defined: s3, s3.minio"):
        factory().with_providers({"minio": S3Provider(id="minio")}).s3("s3.nope")


def test_batch_calls_are_retried_by_the_hand_off_not_by_botocore() -> None:
    root = factory()
    assert root.client("batch").meta.config.retries["total_max_attempts"] == 1
    assert root.s3().meta.config.retries["total_max_attempts"] == 6


def test_a_synchronous_invoke_is_sent_once_and_may_wait_out_a_900_s_function() -> None:
    invoker = factory().invoker()
    assert invoker.meta.config.retries["total_max_attempts"] == 1
    assert invoker.meta.config.read_timeout > 900
    assert factory().client("lambda").meta.config.retries["total_max_attempts"] == 6
