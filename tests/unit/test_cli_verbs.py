"""The everyday verbs SCAR users have, offline: ``init``, and what ``get`` and ``ls`` decide
before any call."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from supervisor.cli import build_parser, main
from supervisor.cli.errors import CliError
from supervisor.cli.files import Location
from supervisor.cli.get import plan_downloads
from supervisor.config import from_fdl


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_init_writes_a_definition_and_a_script_and_says_what_to_run(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capsys, "init", "hello", "-d", str(tmp_path / "work"))
    assert code == 0, err
    fdl, script = tmp_path / "work" / "hello.yaml", tmp_path / "work" / "hello.sh"
    assert out.splitlines() == [
        f"wrote {fdl} and {script}", "next:",
        f"  supervisor local -f {fdl} --put FILE    # run it on this machine",
        f"  supervisor deploy -f {fdl} --dry-run    # what deploy would make on AWS"]
    [config] = from_fdl(fdl)
    assert (config.name, config.execution_mode, config.memory, config.timeout) == (
        "hello", "lambda", 512, 60)
    assert [(p.bucket, p.path) for p in config.input] == [("hello", "hello/input")]
    assert [(p.bucket, p.path) for p in config.output] == [("hello", "hello/output")]
    assert config.container.image == "" and str(config.iam_role).endswith(":role/hello-lambda")
    assert os.access(script, os.X_OK)
    assert subprocess.run(["sh", "-n", str(script)]).returncode == 0


def test_init_with_an_image_runs_the_script_in_it(capsys: pytest.CaptureFixture[str],
                                                  tmp_path: Path) -> None:
    assert run(capsys, "init", "grey", "-d", str(tmp_path), "--image", "alpine:3.19")[0] == 0
    [config] = from_fdl(tmp_path / "grey.yaml")
    assert config.container.image == "alpine:3.19"


def test_init_keeps_existing_files_and_checks_the_name(capsys: pytest.CaptureFixture[str],
                                                       tmp_path: Path) -> None:
    (tmp_path / "hello.sh").write_text("mine\n")
    code, out, err = run(capsys, "init", "hello", "-d", str(tmp_path))
    assert (code, out) == (1, "")
    assert err == (f"supervisor: {tmp_path / 'hello.sh'} already exists: pass --force to "
                   "replace\n")
    assert (tmp_path / "hello.sh").read_text() == "mine\n"
    assert run(capsys, "init", "hello", "-d", str(tmp_path), "--force")[0] == 0
    assert (tmp_path / "hello.sh").read_text().startswith("#!/bin/sh")
    for bad in ("Hello", "a", "my_function", "ends-", "two--hyphens"):
        code, _, err = run(capsys, "init", bad, "-d", str(tmp_path))
        assert code == 1 and err.count("\n") == 1 and "cannot name a function" in err, bad


def test_ls_takes_no_bucket_and_get_needs_one() -> None:
    parser = build_parser()
    assert parser.parse_args(["ls"]).bucket is None
    args = parser.parse_args(["get", "-b", "bkt/out"])
    assert (args.bucket, args.path) == ("bkt/out", Path("."))
    with pytest.raises(SystemExit):
        parser.parse_args(["get"])


def test_downloads_keep_the_path_below_the_folder(tmp_path: Path) -> None:
    location = Location.parse("bkt/output")
    downloads = plan_downloads([("output/a.txt", 1), ("output/", 0), ("output/x/b.txt", 2)],
                               location, tmp_path)
    assert [(d.key, d.path, d.size) for d in downloads] == [
        ("output/a.txt", tmp_path / "a.txt", 1), ("output/x/b.txt", tmp_path / "x" / "b.txt", 2)]
    [one] = plan_downloads([("output", 3)], Location.parse("bkt/output"), tmp_path)
    assert one.path == tmp_path / "output"  # the path named one object
    with pytest.raises(CliError, match="output/../up.txt, output/a//b would not be a file"):
        plan_downloads([("output/../up.txt", 1), ("output/a//b", 1)], location, tmp_path)
