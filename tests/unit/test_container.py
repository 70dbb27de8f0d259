"""Scripts in a real container: udocker + Debian's proot (P1) on a busybox image built here.

The pure parts (the image archive, the proot wrapper, the ``udocker run``
command line) run everywhere; the ``container`` tests need ``/usr/bin/proot``,
``/bin/busybox`` (busybox-static) and udocker, and share one prepared
container per module.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import tarfile
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest
from conftest import process_gone

from supervisor.container import (
    DEFAULT_EXECMODE,
    LAMBDA_UDOCKER_DIR,
    ContainerSpec,
    container_argv,
    container_base_env,
    container_name,
    default_udocker_dir,
    image_digest,
    prepare,
    proot_wrapper_text,
    run_in_container,
    spec_from_environ,
)
from supervisor.errors import ScriptError
from supervisor.local.image import APPLETS, build_busybox_image
from supervisor.runner import DEFAULT_PATH, RunResult, build_env, write_script
from supervisor.watchdog import Deadline
from supervisor.workdir import WorkDirs

PROOT = Path("/usr/bin/proot")
BUSYBOX = Path("/bin/busybox")

try:
    import udocker  # noqa: F401

    HAVE_UDOCKER = True
except ImportError:  # pragma: no cover - the test extra installs it
    HAVE_UDOCKER = False

needs_busybox = pytest.mark.skipif(
    not BUSYBOX.is_file(), reason="/bin/busybox missing: apt-get install busybox-static")
container = [
    pytest.mark.container,
    pytest.mark.skipif(not PROOT.is_file(), reason="/usr/bin/proot missing: apt-get install proot"),
    needs_busybox,
    pytest.mark.skipif(not HAVE_UDOCKER, reason="udocker missing: pip install udocker"),
]

HOST_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/root",
    "LD_LIBRARY_PATH": "/var/lang/lib",
    "LEAKY_HOST_VAR": "host-only",
    "AWS_REGION": "eu-west-1",
    "AWS_ACCESS_KEY_ID": "AKIA-SUPERVISOR",
    "AWS_SECRET_ACCESS_KEY": "supervisor-secret",
    "FUNCTION_CONFIG": "c2VjcmV0",
}
RECORD = {"eventName": "ObjectCreated:Put",
          "s3": {"bucket": {"name": "in"}, "object": {"key": "a b=c.txt"}}}


def script_env(work: WorkDirs, input_file: Path, **variables: str) -> dict[str, str]:
    return build_env(base_env=container_base_env(HOST_ENV), input_file=input_file, work=work,
                     bucket="in", key="a b=c.txt", record_json=json.dumps(RECORD),
                     event_time="2024-05-01T12:00:00.000Z", request_id="req-1",
                     execution_service="lambda", variables=variables)


# --- the image archive --------------------------------------------------------------------


def tar_members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {member.name: member for member in tar.getmembers()}


def tar_read(data: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        handle = tar.extractfile(name)
        assert handle is not None
        return handle.read()


@needs_busybox
def test_busybox_image_is_a_deterministic_docker_save_archive(tmp_path: Path) -> None:
    first = build_busybox_image(tmp_path / "a.tar", tag="demo/bb:v1")
    second = build_busybox_image(tmp_path / "b.tar", tag="demo/bb:v1")
    data = first.read_bytes()
    assert data == second.read_bytes()

    members = tar_members(data)
    manifest = json.loads(tar_read(data, "manifest.json"))
    assert manifest[0]["RepoTags"] == ["demo/bb:v1"]
    config = json.loads(tar_read(data, manifest[0]["Config"]))
    layer_name = manifest[0]["Layers"][0]
    layer = tar_read(data, layer_name)
    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(layer).hexdigest()]
    assert manifest[0]["Config"] == hashlib.sha256(
        tar_read(data, manifest[0]["Config"])).hexdigest() + ".json"
    assert config["config"]["Cmd"] == ["/bin/sh"]
    assert any(env.startswith("PATH=") for env in config["config"]["Env"])
    assert config["os"] == "linux" and config["architecture"] in ("amd64", "arm64", "arm", "386",
                                                                   "ppc64le", "s390x", "riscv64")
    layer_id = layer_name.split("/")[0]
    assert json.loads(tar_read(data, "repositories")) == {"demo/bb": {"v1": layer_id}}
    assert tar_read(data, f"{layer_id}/VERSION") == b"1.0"
    assert all(member.mtime == 0 for member in members.values())

    files = tar_members(layer)
    assert tar_read(layer, "bin/busybox") == BUSYBOX.read_bytes()
    assert files["bin/busybox"].mode & stat.S_IXUSR
    for applet in ("sh", "[", "sha256sum", "awk", "tee") + APPLETS:
        assert files[f"bin/{applet}"].issym() and files[f"bin/{applet}"].linkname == "busybox"
    assert b"root:x:0:0:" in tar_read(layer, "etc/passwd")
    assert files["tmp"].isdir() and files["tmp"].mode == 0o1777
    assert list(files) == sorted(files)


def test_busybox_image_without_busybox_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="apt-get install busybox-static"):
        build_busybox_image(tmp_path / "x.tar", busybox=tmp_path / "no-busybox")
    assert not (tmp_path / "x.tar").exists()


def test_busybox_image_rejects_a_dynamically_linked_busybox(tmp_path: Path) -> None:
    dynamic = Path(os.path.realpath("/bin/true"))  # Debian's coreutils: needs libc
    with pytest.raises(ValueError, match="busybox-static"):
        build_busybox_image(tmp_path / "x.tar", busybox=dynamic)


# --- the proot wrapper and the command line (pure) ----------------------------------------


def test_proot_wrapper_drops_the_kernel_option_only_before_the_rootfs(tmp_path: Path) -> None:
    fake = tmp_path / "fake proot"
    fake.write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n')
    fake.chmod(0o755)
    wrapper = tmp_path / "wrapper"
    wrapper.write_text(proot_wrapper_text(fake))
    wrapper.chmod(0o755)
    args = ["--kill-on-exit", "-b", "/dev:/dev", "-0", "-k", "6.1.0", "-k6.2",
            "--kernel-release=1", "-r", "/root fs", "-w", "/w", "/bin/sh", "-k", "a b", ""]
    out = subprocess.run([str(wrapper), *args], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:-1] == [
        "--kill-on-exit", "-b", "/dev:/dev", "-0", "-r", "/root fs", "-w", "/w",
        "/bin/sh", "-k", "a b", ""]


def make_work(tmp_path: Path) -> WorkDirs:
    return WorkDirs.create(tmp_path)


def test_container_argv_binds_the_work_dir_and_passes_the_env_as_options(tmp_path: Path) -> None:
    work = make_work(tmp_path)
    spec = ContainerSpec(image_file=tmp_path / "img.tar", udocker_dir=tmp_path / "ud",
                         udocker_command=("udocker",))
    env = {"EVENT": '{"a": "b=c"}', "PATH": DEFAULT_PATH, "MULTI": "line1\nline2", "A": ""}
    argv = container_argv("c1", script_path=work.script_path, work=work, env=env, spec=spec,
                          host_binds=["/dev", "/proc"], tmp_dir=tmp_path / "t")
    root = str(work.root)
    assert argv[:4] == ["udocker", "--allow-root", "--quiet", "run"]
    assert argv[-3:] == ["c1", "/bin/sh", str(work.script_path)]
    options = argv[4:-3]
    assert {"--nobanner", "--nosysdirs", "--entrypoint=", "--volume=/dev", "--volume=/proc",
            f"--volume={root}:{root}", f"--volume={tmp_path / 't'}:/tmp",
            f"--workdir={root}"} <= set(options)
    assert [o for o in options if o.startswith("--env=")] == [
        "--env=A=", '--env=EVENT={"a": "b=c"}', "--env=MULTI=line1\nline2"]
    assert not any(o in options for o in ("--hostenv", "--bindhome", "--hostauth"))

    user_path = container_argv("c1", script_path=work.script_path, work=work,
                               env={"PATH": "/opt/x/bin:/bin"}, spec=spec)
    assert "--env=PATH=/opt/x/bin:/bin" in user_path


@pytest.mark.parametrize("env, binds", [
    ({"1BAD": "x"}, ()),
    ({"HAS SPACE": "x"}, ()),
    ({}, ("relative/dir",)),
    ({}, ("/with:colon",)),
])
def test_container_argv_rejects_what_udocker_would_mangle(
        tmp_path: Path, env: dict[str, str], binds: tuple[str, ...]) -> None:
    work = make_work(tmp_path)
    spec = ContainerSpec(image_file=tmp_path / "img.tar", udocker_dir=tmp_path / "ud")
    with pytest.raises(ValueError):
        container_argv("c1", script_path=work.script_path, work=work, env=env, spec=spec,
                       host_binds=binds)


def test_spec_defaults_and_the_environment_edge(tmp_path: Path) -> None:
    assert ContainerSpec(image_file=tmp_path / "i.tar").execmode == DEFAULT_EXECMODE == "P1"
    with pytest.raises(ValueError, match="execmode"):
        ContainerSpec(image_file=tmp_path / "i.tar", execmode="X9")
    assert default_udocker_dir({"AWS_LAMBDA_FUNCTION_NAME": "f"}) == LAMBDA_UDOCKER_DIR
    assert default_udocker_dir({"XDG_CACHE_HOME": "/c", "HOME": "/h"}) == Path(
        "/c/supervisor/udocker")
    assert default_udocker_dir({"HOME": "/h"}) == Path("/h/.cache/supervisor/udocker")
    spec = spec_from_environ(tmp_path / "i.tar", {
        "AWS_LAMBDA_FUNCTION_NAME": "f", "SUPERVISOR_CONTAINER_EXECMODE": "F1",
        "UDOCKER_TARBALL": "/opt/udocker/tools.tar.gz"})
    assert (spec.execmode, spec.udocker_dir, spec.tools_tarball) == (
        "F1", Path("/tmp/udocker"), Path("/opt/udocker/tools.tar.gz"))


def test_container_base_env_keeps_only_aws_variables() -> None:
    assert container_base_env(HOST_ENV) == {
        "AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "AKIA-SUPERVISOR",
        "AWS_SECRET_ACCESS_KEY": "supervisor-secret"}


def test_prepare_without_proot_is_a_clear_error(tmp_path: Path) -> None:
    spec = ContainerSpec(image_file=tmp_path / "i.tar", udocker_dir=tmp_path / "ud",
                         proot=tmp_path / "no-proot")
    with pytest.raises(ScriptError, match="apt-get install proot"):
        prepare(spec)


# --- real containers ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Prepared:
    spec: ContainerSpec
    name: str
    seconds: float


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prepared]:
    if not (PROOT.is_file() and BUSYBOX.is_file() and HAVE_UDOCKER):
        pytest.skip("needs /usr/bin/proot, /bin/busybox and udocker")
    base = tmp_path_factory.mktemp("container")
    image = build_busybox_image(base / "busybox.tar")
    spec = ContainerSpec(image_file=image, udocker_dir=base / "udocker")
    started = time.monotonic()
    name = prepare(spec, host_env=HOST_ENV)
    yield Prepared(spec, name, time.monotonic() - started)


def run_script(prepared: Prepared, work: WorkDirs, text: str, *, seconds: float = 30,
               **variables: str) -> RunResult:
    input_file = work.input_dir / "a b=c.txt"
    input_file.write_text("input content\n")
    script = write_script(text, work)
    return run_in_container(prepared.spec, script_path=script, work=work,
                            env=script_env(work, input_file, **variables),
                            deadline=Deadline.after(seconds), log_path=work.log_path,
                            host_env=HOST_ENV, grace=1.0)


def _container_test(func: Any) -> Any:
    for mark in container:
        func = mark(func)
    return func


@_container_test
def test_prepare_again_is_a_no_op_that_runs_no_udocker(prepared: Prepared) -> None:
    marker = prepared.spec.state_dir / f"{image_digest(prepared.spec.image_file)}.json"
    before = marker.stat().st_mtime_ns
    # udocker cannot even start: any load/create/setup would fail loudly.
    broken = dataclasses.replace(prepared.spec, udocker_command=("/nonexistent/udocker",))
    assert prepare(broken) == prepared.name
    assert marker.stat().st_mtime_ns == before
    assert json.loads(marker.read_text())["execmode"] == "P1"
    assert prepared.name == container_name(image_digest(prepared.spec.image_file))
    print(f"first prepare: {prepared.seconds:.2f} s")


@_container_test
def test_script_runs_in_the_image_with_its_env_input_and_outputs(
        prepared: Prepared, tmp_path: Path) -> None:
    work = make_work(tmp_path)
    started = time.monotonic()
    result = run_script(prepared, work, r"""
        out="$TMP_OUTPUT_DIR/view.txt"
        { cat /etc/os-release 2>/dev/null || echo busybox; } > "$out"
        echo "pwd=$(pwd)" >> "$out"
        echo "root=$(ls / | tr '\n' ' ')" >> "$out"
        echo "service=$EXECUTION_SERVICE" >> "$out"
        echo "input=$(cat "$INPUT_FILE_PATH")" >> "$out"
        echo "user_var=$USER_VAR" >> "$out"
        printf '%s' "$EVENT" > "$TMP_OUTPUT_DIR/event.json"
        env > "$TMP_OUTPUT_DIR/env.txt"
        mkdir -p "$TMP_OUTPUT_DIR/sub" && echo nested > "$TMP_OUTPUT_DIR/sub/n.txt"
        echo done
    """, USER_VAR='x=1 "quoted" $not_expanded')
    seconds = time.monotonic() - started
    assert result.exit_code == 0 and result.succeeded, result.output_tail
    assert result.output_tail.strip().endswith("done")
    view = (work.output_dir / "view.txt").read_text().splitlines()
    assert view[0] == "busybox"  # not the host's Debian /etc/os-release
    assert f"pwd={work.root}" in view
    root_listing = next(line for line in view if line.startswith("root="))[5:].split()
    assert "bin" in root_listing and "home" not in root_listing and "var" not in root_listing
    assert "service=lambda" in view
    assert "input=input content" in view
    assert 'user_var=x=1 "quoted" $not_expanded' in view
    assert json.loads((work.output_dir / "event.json").read_text()) == RECORD
    assert (work.output_dir / "sub" / "n.txt").read_text() == "nested\n"
    env = dict(line.split("=", 1) for line in
               (work.output_dir / "env.txt").read_text().splitlines() if "=" in line)
    assert env["INPUT_FILE_PATH"] == str(work.input_dir / "a b=c.txt")
    assert env["TMP_OUTPUT_DIR"] == str(work.output_dir)
    assert env["AWS_REGION"] == "eu-west-1"
    assert env["PATH"] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    for leaked in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "FUNCTION_CONFIG",
                   "LEAKY_HOST_VAR", "LD_LIBRARY_PATH", "UDOCKER_DIR", "PYTHONPATH"):
        assert leaked not in env
    print(f"first prepare {prepared.seconds:.2f} s, run {seconds:.2f} s")


@_container_test
def test_script_exit_code_comes_through(prepared: Prepared, tmp_path: Path) -> None:
    result = run_script(prepared, make_work(tmp_path), "echo failing; exit 4\n")
    assert (result.exit_code, result.timed_out, result.succeeded) == (4, False, False)
    assert "failing" in result.output_tail


@_container_test
def test_container_cannot_see_host_files_outside_its_binds(
        prepared: Prepared, tmp_path: Path) -> None:
    token = uuid.uuid4().hex
    host_tmp_secret = Path("/tmp") / f"{token}-secret"
    home_secret = Path.home() / f"{token}-secret"
    sibling = tmp_path / f"{token}-sibling"  # next to the work dir, not inside it
    secrets = [host_tmp_secret, home_secret, sibling]
    if Path("/dev/shm").is_dir():
        secrets.append(Path("/dev/shm") / f"{token}-secret")
    (tmp_path / "w").mkdir()
    work = make_work(tmp_path / "w")
    try:
        for path in secrets:
            path.write_text(f"SECRET-{token}\n")
        result = run_script(prepared, work, f"""
            for f in {' '.join(map(str, secrets))}; do
                if [ -e "$f" ]; then echo "visible $f"; cat "$f"; else echo "hidden $f"; fi
            done > "$TMP_OUTPUT_DIR/seen.txt"
            ls -a /tmp "$HOME" /root /sys >> "$TMP_OUTPUT_DIR/seen.txt" 2>&1
            echo scratch > /tmp/{token}-scratch
        """)
        assert result.succeeded, result.output_tail
        seen = (work.output_dir / "seen.txt").read_text()
        assert f"SECRET-{token}" not in seen and "visible" not in seen
        assert seen.count("hidden") == len(secrets)
        assert not (Path("/tmp") / f"{token}-scratch").exists()  # the container's /tmp is its own
    finally:
        for path in secrets:
            path.unlink(missing_ok=True)


@_container_test
def test_deadline_kills_the_container_and_everything_in_it(
        prepared: Prepared, tmp_path: Path) -> None:
    work = make_work(tmp_path)
    result = run_script(prepared, work, """
        sleep 60 &
        echo $! > "$TMP_OUTPUT_DIR/child.pid"
        echo $$ > "$TMP_OUTPUT_DIR/shell.pid"
        trap '' TERM
        sleep 60
    """, seconds=1.5)
    assert result.timed_out and not result.succeeded
    assert result.duration < 10
    for name in ("child.pid", "shell.pid"):
        pid = int((work.output_dir / name).read_text())
        assert process_gone(pid), f"{name} {pid} survived the deadline"


@_container_test
def test_changed_archive_gets_its_own_container(prepared: Prepared, tmp_path: Path) -> None:
    other = build_busybox_image(tmp_path / "other.tar", tag="supervisor/other:v2")
    spec = dataclasses.replace(prepared.spec, image_file=other)
    name = prepare(spec)
    assert name != prepared.name and name == container_name(image_digest(other))
    work = make_work(tmp_path)
    assert run_script(Prepared(spec, name, 0.0), work, "exit 0\n").succeeded
    # the first container is untouched
    assert prepare(dataclasses.replace(prepared.spec,
                                       udocker_command=("/nonexistent",))) == prepared.name


@_container_test
def test_a_broken_archive_is_a_one_line_script_error(prepared: Prepared, tmp_path: Path) -> None:
    broken = tmp_path / "broken.tar"
    broken.write_bytes(b"not a tar archive\n" * 100)
    spec = dataclasses.replace(prepared.spec, image_file=broken)
    with pytest.raises(ScriptError) as info:
        prepare(spec)
    message = str(info.value)
    assert "udocker load failed" in message and str(broken) in message
    assert "\n" not in message


@_container_test
def test_concurrent_prepares_load_once_and_a_half_done_prepare_is_redone(
        prepared: Prepared, tmp_path: Path) -> None:
    import concurrent.futures

    image = build_busybox_image(tmp_path / "race.tar", tag="supervisor/race:latest")
    spec = ContainerSpec(image_file=image, udocker_dir=tmp_path / "udocker")

    def containers() -> list[Path]:
        return [p for p in (spec.udocker_dir / "containers").iterdir() if not p.is_symlink()]

    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        names = list(pool.map(lambda _: prepare(spec), range(3)))
    assert len(set(names)) == 1 and len(containers()) == 1
    first = containers()[0]

    # As if killed after "create", before the marker: the image and container exist.
    (spec.state_dir / f"{image_digest(image)}.json").unlink()
    assert prepare(spec) == names[0]
    assert len(containers()) == 1 and containers()[0] != first  # re-created, not duplicated
    work = make_work(tmp_path)
    assert run_script(Prepared(spec, names[0], 0.0), work, "exit 0\n").succeeded
    shutil.rmtree(spec.udocker_dir, ignore_errors=True)
