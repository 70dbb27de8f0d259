"""The project as a user gets it: a wheel installed into a fresh venv, run in an empty folder.

The wheel is built from a copy of the sources (pip's own build, in isolation); the venv
is made without pip and reaches the dependencies already installed in this one through a
``.pth`` file naming a folder of links to them (everything but this project itself), so
the install is offline and takes seconds. The per-user cache is a temporary folder whose
wheelhouse is the checkout's ``dist/.wheels`` (only a first build ever downloads).
Every command runs in an empty temporary folder with no ``dist/`` anywhere near it,
and no line it prints may name the source tree or show a traceback.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

import pytest
from conftest import WHEELHOUSE

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
# What pip needs to build the wheel: the sources and the files setup.cfg reads.
SOURCES = ("setup.cfg", "pyproject.toml", "README.md", "supervisor")

FDL = """\
functions:
  aws:
  - lambda:
      name: shout
      init_script: shout.sh
      iam: {role: "arn:aws:iam::123456789012:role/shout-role"}
      container: {image: busybox, run_on_host: true}
      input: [{storage_provider: s3, path: shout/in}]
      output: [{storage_provider: s3, path: shout/out}]
"""
SCRIPT = """\
set -eu
tr a-z A-Z < "$INPUT_FILE_PATH" > "$TMP_OUTPUT_DIR/$(basename "$INPUT_FILE_PATH")"
echo "shouted on $EXECUTION_SERVICE"
"""


@dataclass(frozen=True)
class Installed:
    """The venv the wheel is installed in, and the environment its commands run with."""

    venv: Path
    env: Mapping[str, str]
    cache: Path

    @property
    def supervisor(self) -> str:
        return str(self.venv / "bin" / "supervisor")


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str
    seconds: float


def run(installed: Installed, cwd: Path, *argv: str, timeout: float = 300) -> Ran:
    started = time.monotonic()
    proc = subprocess.run([installed.supervisor, *argv], cwd=cwd, env=dict(installed.env),
                          capture_output=True, text=True, timeout=timeout)
    ran = Ran(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)
    for line in (ran.out + ran.err).splitlines():
        assert str(ROOT) not in line, f"names the source tree: {line}"
        assert "Traceback" not in line, ran.err
    return ran


def dependency_links(dest: Path) -> Path:
    """A folder of links to every package installed here except this project."""
    site = Path(sysconfig.get_paths()["purelib"])
    dest.mkdir()
    for entry in site.iterdir():
        name = entry.name.lower()
        if name.startswith(("__editable__", "supervisor", "_distutils_hack", "distutils-")) \
                or name.endswith(".pth") or name == "__pycache__":
            continue
        (dest / entry.name).symlink_to(entry)
    return dest


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    base = tmp_path_factory.mktemp("installed")
    src = base / "src"
    src.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, src / name)
    wheels = base / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--disable-pip-version-check", "--wheel-dir", str(wheels), str(src)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = wheels.glob("supervisor_runtime-*.whl")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    purelib = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True).stdout.strip()
    deps = dependency_links(base / "deps")
    Path(purelib, "test-dependencies.pth").write_text(f"{deps}\n")
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                    "--no-deps", "--no-index", "--disable-pip-version-check", str(wheel)],
                   check=True, timeout=300)
    cache = base / "cache"
    (cache / "supervisor").mkdir(parents=True)
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    (cache / "supervisor" / "wheels").symlink_to(WHEELHOUSE)
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(base / "home"),
           "XDG_CACHE_HOME": str(cache), "LANG": "C.UTF-8",
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_REGION": "eu-west-1"}
    yield Installed(venv=venv, env=env, cache=cache / "supervisor")


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """An empty folder of the user's, with a function definition, its script and a file."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "fn.yaml").write_text(FDL)
    (work / "shout.sh").write_text(SCRIPT)
    (work / "data.txt").write_text("hello from a pip install\n")
    return work


def test_the_package_is_installed_from_the_wheel_not_the_checkout(
        installed: Installed, tmp_path: Path) -> None:
    proc = subprocess.run([str(installed.venv / "bin" / "python"), "-c",
                           "import supervisor; print(supervisor.__file__)"], cwd=tmp_path,
                          env=dict(installed.env), capture_output=True, text=True, check=True)
    assert proc.stdout.startswith(str(installed.venv)), proc.stdout


def test_build_writes_the_artefacts_where_it_is_told(installed: Installed,
                                                     workdir: Path) -> None:
    ran = run(installed, workdir, "build", "--help")
    assert ran.code == 0 and "--out" in ran.out and "examples:" in ran.out
    ran = run(installed, workdir, "build", "-o", "artefacts", "--no-udocker")
    assert ran.code == 0, ran.err
    names = sorted(p.name for p in (workdir / "artefacts").iterdir())
    assert names == [".supervisor-build.json", ".supervisor-build.lock", "supervisor-batch.pyz",
                     "supervisor-layer.zip"]
    assert "artefacts/supervisor-layer.zip" in ran.out
    again = run(installed, workdir, "build", "-o", "artefacts", "--no-udocker")
    assert again.code == 0 and "up to date" in again.err


def test_deploy_dry_run_builds_its_artefacts_into_the_user_cache(
        installed: Installed, workdir: Path) -> None:
    ran = run(installed, workdir, "deploy", "-f", "fn.yaml", "--dry-run")
    assert ran.code == 0, ran.err
    assert ran.out.startswith("shout: dry run in eu-west-1"), ran.out
    assert "lambda-layer" in ran.out
    (cached,) = [p for p in installed.cache.iterdir() if p.name != "wheels"]
    assert cached.name.startswith("0.1.0-")
    assert (cached / "supervisor-layer.zip").is_file()
    assert not (workdir / "dist").exists()
    again = run(installed, workdir, "deploy", "-f", "fn.yaml", "--dry-run")
    assert again.code == 0 and again.out == ran.out
    assert "building" not in again.err


def test_local_runs_a_host_script_from_the_installed_package(
        installed: Installed, workdir: Path) -> None:
    ran = run(installed, workdir, "local", "-f", "fn.yaml", "--put", "data.txt")
    assert ran.code == 0, ran.err
    assert "completed" in ran.out
    outputs = list((workdir / ".supervisor-local").glob("sessions/*/outputs/**/data.txt"))
    assert [p.read_text() for p in outputs] == ["HELLO FROM A PIP INSTALL\n"]
    assert not (workdir / "dist").exists()


def test_a_missing_artefact_given_by_option_is_one_line(installed: Installed,
                                                        workdir: Path) -> None:
    ran = run(installed, workdir, "deploy", "-f", "fn.yaml", "--dry-run",
              "--layer-zip", "nope.zip")
    assert ran.code == 1 and ran.err.count("\n") == 1, ran.err
    assert "nope.zip" in ran.err
    assert os.sep + "build.sh" not in ran.err


def test_init_local_status_logs_and_a_failing_script_from_the_installed_package(
        installed: Installed, tmp_path: Path) -> None:
    """Zero to a function that ran, as a pip user: init, local, status, logs; then a
    script that fails and one that does not parse, each showing what the shell said."""
    work = tmp_path / "fresh"
    work.mkdir()
    assert run(installed, work, "init", "hello").code == 0
    (work / "notes.txt").write_text("one two\nthree\n")
    ran = run(installed, work, "local", "-f", "hello.yaml", "--put", "notes.txt")
    assert ran.code == 0, ran.err
    assert "hello input/notes.txt | counting notes.txt on lambda" in ran.err  # streamed
    status = run(installed, work, "status", "-n", "hello", "--local")
    assert status.code == 0 and "succeeded  " in status.out, status.out + status.err
    logs = run(installed, work, "logs", "-n", "hello", "--local")
    assert logs.code == 0 and "script  wrote notes.txt.count" in logs.out, logs.out

    (work / "hello.sh").write_text('echo "cannot read $INPUT_FILE_PATH: no such table" >&2\n'
                                   "exit 3\n")
    failed = run(installed, work, "local", "-f", "hello.yaml", "--put", "notes.txt")
    assert failed.code == 1
    assert "script exited with code 3" in failed.out
    assert failed.out.rstrip().splitlines()[-1].endswith(": no such table")  # its stderr

    (work / "hello.sh").write_text("while true; do\n  echo x\n")
    broken = run(installed, work, "local", "-f", "hello.yaml", "--put", "notes.txt")
    assert broken.code == 1
    [line] = [x for x in broken.err.splitlines() if x.startswith("supervisor: ")]
    assert "hello.sh does not parse as a shell script: hello.sh: 3: " in line


def test_deploy_put_get_ls_and_rm_on_moto_from_the_installed_package(
        installed: Installed, tmp_path: Path, aws_env: dict[str, str]) -> None:
    import boto3

    work = tmp_path / "deploying"
    work.mkdir()
    assert run(installed, work, "init", "hello-aws").code == 0
    boto3.client("iam").create_role(
        RoleName="hello-aws-lambda", AssumeRolePolicyDocument='{"Version": "2012-10-17", '
        '"Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, '
        '"Action": "sts:AssumeRole"}]}')
    on_moto = Installed(installed.venv, {**installed.env, **aws_env, "AWS_REGION": "us-east-1"},
                        installed.cache)
    deployed = run(on_moto, work, "deploy", "-f", "hello-aws.yaml")
    assert deployed.code == 0, deployed.err
    listed = run(on_moto, work, "ls")
    assert listed.code == 0 and "hello-aws" in listed.out, listed.out + listed.err
    (work / "notes.txt").write_text("some notes\n")
    assert run(on_moto, work, "put", "-b", "hello-aws/input", "notes.txt").code == 0
    got = run(on_moto, work, "get", "-b", "hello-aws/input", "-p", "back")
    assert got.code == 0, got.err
    assert (work / "back" / "notes.txt").read_text() == "some notes\n"
    removed = run(on_moto, work, "rm", "-f", "hello-aws.yaml")
    assert removed.code == 0, removed.err
    assert "hello-aws" not in run(on_moto, work, "ls").out
