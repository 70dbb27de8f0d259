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

from supervisor.config import ContainerConfig
from supervisor.container.launch import LaunchTemplate, RecordingError, parse_recording
from supervisor.container.prepare import Ready, container_name, image_digest, prepare
from supervisor.container.reference import ImageRef, is_loopback, parse_reference
from supervisor.container.registry import registry_base_url
from supervisor.container.run import container_base_env, run_in_container, script_variables
from supervisor.container.spec import (
    LAMBDA_UDOCKER_DIR,
    ContainerSettings,
    ContainerSpec,
    default_udocker_dir,
    spec_for,
)
from supervisor.container.udocker import SENTINEL, patchelf_wrapper_text, proot_wrapper_text
from supervisor.errors import ConfigError, ImageError
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
                     bucket="in", key="a b=c.txt", event_json=json.dumps({"Records": [RECORD]}),
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


# --- references, wrappers, templates, specs (pure) ----------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("alpine", ImageRef("registry-1.docker.io", "library/alpine", "latest")),
    ("alpine:3.19", ImageRef("registry-1.docker.io", "library/alpine", "3.19")),
    ("grycap/mrbayes", ImageRef("registry-1.docker.io", "grycap/mrbayes", "latest")),
    ("docker.io/grycap/mrbayes:1", ImageRef("registry-1.docker.io", "grycap/mrbayes", "1")),
    ("127.0.0.1:5000/tools/ffmpeg", ImageRef("127.0.0.1:5000", "tools/ffmpeg", "latest")),
    ("localhost/a:b", ImageRef("localhost", "a", "b")),
    ("quay.io/org/img@sha256:" + "a" * 64,
     ImageRef("quay.io", "org/img", None, "sha256:" + "a" * 64)),
    ("ghcr.io/o/i:v1@sha256:" + "b" * 64, ImageRef("ghcr.io", "o/i", "v1", "sha256:" + "b" * 64)),
])
def test_image_references_parse_as_docker_reads_them(text: str, expected: ImageRef) -> None:
    ref = parse_reference(text)
    assert ref == expected
    assert ref.reference == (expected.digest or expected.tag)


@pytest.mark.parametrize("text", ["", " alpine", "Alpine", "a:b:c", "img@sha256:abc",
                                  "img:", "host:99999999/x", "a//b", "img@md5:" + "a" * 32])
def test_a_bad_image_reference_is_one_line_naming_it(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_reference(text)
    assert "\n" not in str(info.value) and "Docker image reference" in str(info.value)


def test_plain_http_only_for_loopback_or_when_asked() -> None:
    assert registry_base_url(parse_reference("127.0.0.1:5000/a")) == "http://127.0.0.1:5000"
    assert registry_base_url(parse_reference("localhost:5000/a")) == "http://localhost:5000"
    assert registry_base_url(parse_reference("[::1]:5000/a")) == "http://[::1]:5000"
    assert registry_base_url(parse_reference("alpine")) == "https://registry-1.docker.io"
    assert registry_base_url(parse_reference("reg.example:5000/a")) == "https://reg.example:5000"
    assert registry_base_url(parse_reference("reg.example:5000/a"),
                             insecure=True) == "http://reg.example:5000"
    assert is_loopback("127.3.4.5") and not is_loopback("10.0.0.1")


def run_wrapper(tmp_path: Path, text: str, args: list[str]) -> list[str]:
    wrapper = tmp_path / "wrapper"
    wrapper.write_text(text)
    wrapper.chmod(0o755)
    out = subprocess.run([str(wrapper), *args], capture_output=True, text=True, check=True)
    return out.stdout.split("\n")[:-1]


def fake_program(tmp_path: Path) -> Path:
    fake = tmp_path / "fake program"
    fake.write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n')
    fake.chmod(0o755)
    return fake


def test_proot_wrapper_drops_the_kernel_option_only_before_the_rootfs(tmp_path: Path) -> None:
    args = ["--kill-on-exit", "-b", "/dev:/dev", "-0", "-k", "6.1.0", "-k6.2",
            "--kernel-release=1", "-r", "/root fs", "-w", "/w", "/bin/sh", "-k", "a b", ""]
    assert run_wrapper(tmp_path, proot_wrapper_text(fake_program(tmp_path)), args) == [
        "--kill-on-exit", "-b", "/dev:/dev", "-0", "-r", "/root fs", "-w", "/w",
        "/bin/sh", "-k", "a b", ""]


def test_patchelf_wrapper_drops_q(tmp_path: Path) -> None:
    assert run_wrapper(tmp_path, patchelf_wrapper_text(fake_program(tmp_path)),
                       ["-q", "--print-interpreter", "/bin/x y"]) == [
        "--print-interpreter", "/bin/x y"]


def test_proot_wrapper_records_instead_of_running_when_marked(tmp_path: Path) -> None:
    fake = fake_program(tmp_path)
    udocker_tmp = tmp_path / "utmp"
    udocker_tmp.mkdir()
    (udocker_tmp / "udocker-1-abc-passwd").write_text("root:x:0:0::/:/bin/sh\n")
    out = tmp_path / "rec"
    wrapper = tmp_path / "wrapper"
    wrapper.write_text(proot_wrapper_text(fake))
    wrapper.chmod(0o755)
    done = subprocess.run([str(wrapper), "-k", "6.1", "-r", "/r", "-w", "/w", "/bin/sh",
                           f"{SENTINEL}{out}"], capture_output=True, text=True,
                          env={"PROOT_TMP_DIR": str(udocker_tmp), "KEEP": "a b"})
    assert done.returncode == 0 and done.stdout == ""  # the program never ran
    template = parse_recording("proot", out.with_name("rec.argv").read_bytes(),
                               out.with_name("rec.env").read_bytes(),
                               sentinel=f"{SENTINEL}{out}", workdir="/w")
    assert template.argv == (str(fake), "-r", "/r", "-w", "/w") and template.shell == "/bin/sh"
    assert template.env["KEEP"] == "a b"
    assert (out.with_name("rec.kept") / "udocker-1-abc-passwd").is_file()


def test_launch_template_fills_in_command_cwd_and_variables() -> None:
    proot = LaunchTemplate(engine="proot", argv=("/p", "-b", "/tmp/u-passwd:/etc/passwd",
                                                 "-r", "/R", "-w", "/runs"),
                           shell="/bin/sh", workdir="/runs", env={"PATH": "/img", "A": "1"})
    argv, env = proot.command("/runs/j/script.sh", cwd="/runs/j", variables={"A": "2", "B": ""})
    assert argv == ["/p", "-b", "/tmp/u-passwd:/etc/passwd", "-r", "/R", "-w", "/runs/j",
                    "/bin/sh", "/runs/j/script.sh"]
    assert env == {"PATH": "/img", "A": "2", "B": ""}
    kept = proot.with_files({"/tmp/u-passwd": "/kept/passwd"})
    assert "/kept/passwd:/etc/passwd" in kept.argv
    assert LaunchTemplate.from_json(kept.to_json()) == kept

    fake = LaunchTemplate(engine="fakechroot", shell="/R/bin/sh", workdir="/runs",
                          argv=("/usr/bin/env", "-i", "PATH=/img", "X=a=b", "/R/lib64/ld.so"))
    argv, env = fake.command("/runs/j/s.sh", cwd="/runs/j", variables={"K": "v w\n"})
    assert argv == ["/usr/bin/env", "-i", "PATH=/img", "X=a=b", "K=v w\n", "/R/lib64/ld.so",
                    "/R/bin/sh", "/runs/j/s.sh"]
    assert env == {}


@pytest.mark.parametrize("engine, argv", [
    ("proot", [b"/p", b"-r", b"/R", b"/bin/sh", b"MARK"]),  # no -w
    ("proot", [b"/p", b"-w", b"/runs", b"/bin/true", b"MARK"]),  # not /bin/sh
    ("fakechroot", [b"/usr/bin/env", b"A=1", b"/bin/sh", b"MARK"]),  # no -i
    ("proot", [b"/p", b"-w", b"/runs", b"/bin/sh", b"OTHER"]),  # not the marker
])
def test_a_recording_of_an_unexpected_shape_is_refused(engine: str, argv: list[bytes]) -> None:
    with pytest.raises(RecordingError):
        parse_recording(engine, b"\0".join(argv) + b"\0", b"", sentinel="MARK", workdir="/runs")


def test_script_variables_leave_the_image_its_path() -> None:
    assert script_variables({"PATH": DEFAULT_PATH, "B": "1", "A": "2"}) == {"A": "2", "B": "1"}
    assert script_variables({"PATH": "/opt/x/bin:/bin"}) == {"PATH": "/opt/x/bin:/bin"}


def test_settings_and_specs_come_from_the_config_and_the_environment(tmp_path: Path) -> None:
    assert default_udocker_dir({"AWS_LAMBDA_FUNCTION_NAME": "f"}) == LAMBDA_UDOCKER_DIR
    assert default_udocker_dir({"XDG_CACHE_HOME": "/c", "HOME": "/h"}) == Path(
        "/c/supervisor/udocker")
    assert default_udocker_dir({"HOME": "/h"}) == Path("/h/.cache/supervisor/udocker")
    settings = ContainerSettings.from_environ({
        "AWS_LAMBDA_FUNCTION_NAME": "f", "SUPERVISOR_CONTAINER_EXECMODE": "F1",
        "UDOCKER_TARBALL": "/opt/udocker/tools.tar.gz", "SUPERVISOR_PROOT": "/x/proot"})
    assert (settings.execmode, settings.udocker_dir, settings.tools_tarball, settings.proot) == (
        "F1", Path("/tmp/udocker"), Path("/opt/udocker/tools.tar.gz"), Path("/x/proot"))
    with pytest.raises(ConfigError, match="SUPERVISOR_CONTAINER_EXECMODE='R9'"):
        ContainerSettings.from_environ({"SUPERVISOR_CONTAINER_EXECMODE": "R9"})

    assert spec_for(ContainerConfig(), settings, on_lambda=True) is None  # no image: the host
    pulled = spec_for(ContainerConfig(image="alpine:3.19"), settings, on_lambda=True)
    assert pulled is not None and pulled.reference == parse_reference("alpine:3.19")
    assert pulled.execmode == "F1"  # the deployment's mode
    assert spec_for(ContainerConfig(image="alpine", run_on_host=True), settings,
                    on_lambda=True) is None
    explicit = spec_for(ContainerConfig(image="alpine", execmode="P1"), settings, on_lambda=True)
    assert explicit is not None and explicit.execmode == "P1"  # the function's mode wins
    archive = spec_for(ContainerConfig(image="alpine", image_file=str(tmp_path / "i.tar")),
                       settings, on_lambda=True)
    assert archive is not None and archive.image_file == tmp_path / "i.tar"
    shipped = spec_for(ContainerConfig(image_file="s3://b/images/x.tar"), settings,
                       on_lambda=True)
    assert shipped is not None and shipped.archive_uri == "s3://b/images/x.tar"
    with pytest.raises(ValueError, match="exactly one"):
        ContainerSpec(image="x", settings=settings)


def test_container_base_env_keeps_only_aws_variables() -> None:
    assert container_base_env(HOST_ENV) == {
        "AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "AKIA-SUPERVISOR",
        "AWS_SECRET_ACCESS_KEY": "supervisor-secret"}


def test_prepare_without_proot_is_a_clear_error(tmp_path: Path) -> None:
    settings = ContainerSettings(udocker_dir=tmp_path / "ud", proot=tmp_path / "no-proot")
    spec = ContainerSpec(image="i.tar", settings=settings, image_file=tmp_path / "i.tar")
    with pytest.raises(ImageError, match="apt-get install proot"):
        prepare(spec)


def test_fakechroot_without_its_library_is_a_clear_error(tmp_path: Path) -> None:
    settings = ContainerSettings(udocker_dir=tmp_path / "ud", fakechroot_so=None)
    spec = ContainerSpec(image="i.tar", settings=settings, image_file=tmp_path / "i.tar",
                         execmode="F1")
    with pytest.raises(ImageError, match="libfakechroot"):
        prepare(spec)


# --- real containers ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Prepared:
    spec: ContainerSpec
    ready: Ready
    seconds: float


def archive_spec(image: Path, udocker_dir: Path, **settings: Any) -> ContainerSpec:
    return ContainerSpec(image=str(image), image_file=image,
                         settings=ContainerSettings(udocker_dir=udocker_dir, **settings))


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prepared]:
    if not (PROOT.is_file() and BUSYBOX.is_file() and HAVE_UDOCKER):
        pytest.skip("needs /usr/bin/proot, /bin/busybox and udocker")
    base = tmp_path_factory.mktemp("container")
    image = build_busybox_image(base / "busybox.tar")
    spec = archive_spec(image, base / "udocker")
    started = time.monotonic()
    ready = prepare(spec, host_env=HOST_ENV)
    yield Prepared(spec, ready, time.monotonic() - started)


def make_work(spec: ContainerSpec) -> WorkDirs:
    spec.runs_dir.mkdir(parents=True, exist_ok=True)
    return WorkDirs.create(spec.runs_dir)


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
def test_prepare_again_runs_no_udocker_and_a_new_process_reads_the_marker(
        prepared: Prepared) -> None:
    key = image_digest(prepared.spec.image_file or Path())[:32]
    marker = prepared.spec.state_dir / f"{key}.P1.json"
    before = marker.stat().st_mtime_ns
    # udocker cannot even start: any load/create/setup/run would fail loudly.
    broken = dataclasses.replace(prepared.spec, settings=dataclasses.replace(
        prepared.spec.settings, udocker_command=("/nonexistent/udocker",)))
    assert prepare(broken) == prepared.ready
    from supervisor.container import prepare as prepare_mod

    prepare_mod._ready_cache.clear()  # as a new process on the same sandbox would be
    assert prepare(broken) == prepared.ready
    assert marker.stat().st_mtime_ns == before
    assert json.loads(marker.read_text())["execmode"] == "P1"
    assert prepared.ready.name == container_name(key)
    print(f"first prepare: {prepared.seconds:.2f} s")


@_container_test
def test_script_runs_in_the_image_with_its_env_input_and_outputs(
        prepared: Prepared, tmp_path: Path) -> None:
    work = make_work(prepared.spec)
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
    assert json.loads((work.output_dir / "event.json").read_text()) == {"Records": [RECORD]}
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
    result = run_script(prepared, make_work(prepared.spec), "echo failing; exit 4\n")
    assert (result.exit_code, result.timed_out, result.succeeded) == (4, False, False)
    assert "failing" in result.output_tail


@_container_test
def test_container_cannot_see_host_files_outside_its_binds(
        prepared: Prepared, tmp_path: Path) -> None:
    token = uuid.uuid4().hex
    host_tmp_secret = Path("/tmp") / f"{token}-secret"
    home_secret = Path.home() / f"{token}-secret"
    sibling = prepared.spec.udocker_dir / f"{token}-sibling"  # beside the runs dir
    secrets = [host_tmp_secret, home_secret, sibling]
    if Path("/dev/shm").is_dir():
        secrets.append(Path("/dev/shm") / f"{token}-secret")
    work = make_work(prepared.spec)
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
    work = make_work(prepared.spec)
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
    spec = dataclasses.replace(prepared.spec, image_file=other, image=str(other))
    ready = prepare(spec)
    assert ready.name != prepared.ready.name
    assert ready.name == container_name(image_digest(other))
    work = make_work(spec)
    assert run_script(Prepared(spec, ready, 0.0), work, "exit 0\n").succeeded
    assert prepare(prepared.spec) == prepared.ready  # the first container is untouched


@_container_test
def test_a_broken_archive_is_a_one_line_image_error(prepared: Prepared, tmp_path: Path) -> None:
    broken = tmp_path / "broken.tar"
    broken.write_bytes(b"not a tar archive\n" * 100)
    spec = dataclasses.replace(prepared.spec, image_file=broken, image=str(broken))
    with pytest.raises(ImageError) as info:
        prepare(spec)
    message = str(info.value)
    assert "udocker load failed" in message and str(broken) in message
    assert "\n" not in message


@_container_test
def test_concurrent_prepares_build_once_and_a_half_done_prepare_is_finished(
        tmp_path: Path) -> None:
    import concurrent.futures

    from supervisor.container import prepare as prepare_mod

    image = build_busybox_image(tmp_path / "race.tar", tag="supervisor/race:latest")
    spec = archive_spec(image, tmp_path / "udocker")

    def containers() -> list[Path]:
        return [p for p in (spec.udocker_dir / "containers").iterdir() if not p.is_symlink()]

    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        readies = list(pool.map(lambda _: prepare(spec), range(3)))
    assert len({r.name for r in readies}) == 1 and len(containers()) == 1
    first = containers()[0]

    # As if killed after "create", before the marker: the container exists, the marker not.
    (spec.state_dir / f"{image_digest(image)[:32]}.P1.json").unlink()
    prepare_mod._ready_cache.clear()
    again = prepare(spec)
    assert again.name == readies[0].name
    assert containers() == [first]  # finished, not duplicated
    work = make_work(spec)
    assert run_script(Prepared(spec, again, 0.0), work, "exit 0\n").succeeded
    shutil.rmtree(spec.udocker_dir, ignore_errors=True)


@_container_test
def test_an_udocker_dir_that_cannot_be_made_is_a_one_line_image_error(
        prepared: Prepared, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    spec = archive_spec(prepared.spec.image_file or Path(), blocker / "udocker")
    with pytest.raises(ImageError) as info:
        prepare(spec)
    assert "cannot create the udocker dir" in str(info.value) and "\n" not in str(info.value)
