"""The CLI finds its region, profile and endpoint where the AWS CLI and SDKs look.

Precedence, as the AWS CLI's: ``--region``, then ``AWS_REGION``, then
``AWS_DEFAULT_REGION``, then the ``region`` of the profile (``--profile``,
else ``AWS_PROFILE``) in the shared config file (``AWS_CONFIG_FILE``, default
``~/.aws/config``). Everything here runs ``deploy --dry-run``, which calls no
AWS API: the endpoint is a closed port, so a call would fail.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from supervisor.cli import main

FDL = """\
functions:
  aws:
  - lambda:
      name: conventions
      init_script: script.sh
      iam: {role: "arn:aws:iam::123456789012:role/conventions"}
      container: {image: busybox, run_on_host: true}
      input: [{storage_provider: s3, path: conventions/in}]
      output: [{storage_provider: s3, path: conventions/out}]
"""
EMPTY_ZIP = b"PK\x05\x06" + b"\0" * 18
AWS_NAMES = ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
             "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_ENDPOINT_URL")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A function definition and stand-in artefacts; an AWS environment with nothing set
    but fake keys, a config file of our own and an endpoint no call could reach."""
    for name in AWS_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    (tmp_path / "aws-config").write_text(
        "[default]\nregion = sa-east-1\n\n[profile eu]\nregion = eu-central-1\n")
    (tmp_path / "fn.yaml").write_text(FDL)
    (tmp_path / "script.sh").write_text("echo hi\n")
    for name in ("layer.zip", "batch.pyz"):
        (tmp_path / name).write_bytes(EMPTY_ZIP)
    return tmp_path


def dry_run(workdir: Path, capsys: pytest.CaptureFixture[str], *extra: str
            ) -> tuple[int, str, str]:
    code = main(["deploy", "-f", str(workdir / "fn.yaml"), "--dry-run",
                 "--layer-zip", str(workdir / "layer.zip"), "--pyz", str(workdir / "batch.pyz"),
                 *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def planned_region(workdir: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    code, out, err = dry_run(workdir, capsys, *extra)
    assert code == 0, err
    first = out.splitlines()[0]
    assert first.startswith("conventions: dry run in "), first
    return first.split(" dry run in ")[1].split(",")[0]


@pytest.mark.parametrize("environ, options, region", [
    ({"AWS_REGION": "eu-west-1"}, (), "eu-west-1"),
    ({"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "us-east-2"}, (), "eu-west-1"),
    ({"AWS_REGION": "eu-west-1"}, ("--profile", "eu"), "eu-west-1"),
    ({"AWS_DEFAULT_REGION": "us-east-2"}, (), "us-east-2"),
    ({"AWS_DEFAULT_REGION": "us-east-2"}, ("--profile", "eu"), "us-east-2"),
    ({"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "us-east-2"},
     ("--region", "ap-south-1"), "ap-south-1"),
    ({}, (), "sa-east-1"),  # the [default] profile's
    ({}, ("--profile", "eu"), "eu-central-1"),
    ({"AWS_PROFILE": "eu"}, (), "eu-central-1"),
])
def test_the_region_is_found_where_the_aws_cli_finds_it(
        workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        environ: dict[str, str], options: tuple[str, ...], region: str) -> None:
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert planned_region(workdir, capsys, *options) == region


def test_no_region_anywhere_says_every_place_one_can_be_set(
        workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "aws-config").write_text("")
    code, out, err = dry_run(workdir, capsys)
    assert (code, out) == (1, "")
    assert err.count("\n") == 1 and err.startswith("supervisor: no AWS region configured: ")
    for place in ("--region", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE",
                  "~/.aws/config"):
        assert place in err, place


def test_an_unknown_profile_says_where_profiles_are_read_from(
        workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = dry_run(workdir, capsys, "--profile", "nope")
    assert (code, out) == (1, "")
    assert err.count("\n") == 1
    assert err.startswith("supervisor: AWS profile 'nope' not found"), err
    assert "AWS_CONFIG_FILE" in err and "~/.aws/config" in err


def test_no_credentials_says_what_to_set() -> None:
    from botocore.exceptions import NoCredentialsError

    from supervisor.cli.errors import reason

    text = reason(NoCredentialsError())
    for place in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "--profile", "AWS_PROFILE"):
        assert place in text, place
