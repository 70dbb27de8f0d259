"""The deployable artefacts of ``supervisor build``, used the way Lambda and Batch use them.

All three are built once per session into a temp dir, from a snapshot of ``supervisor/``
(the wheels come from the ``dist/.wheels`` wheelhouse, so only a first build ever
downloads). The layer is
unzipped and served from a subprocess whose ``sys.path`` is the layer, the standard
library and a boto3 (the managed runtime); the zipapp is run from a read-only directory
by a bare ``python3 -I``, as a Batch job runs it. Both talk HTTP to the moto server.
The udocker layer is unzipped with its modes, as Lambda unpacks it into ``/opt``: udocker
is imported from its ``python/`` alone, its patchelf and proot run in an empty
environment; it is built once more from a small udockertools tarball made here.
"""
from __future__ import annotations

import base64
import dataclasses
import glob
import hashlib
import importlib.util
import io
import json
import os
import platform
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import pytest
from conftest import WHEELHOUSE, Built, put, run_builder

from supervisor.cli import main
from supervisor.errors import BuildError
from supervisor.handoff import Handoff, now_iso, write_handoff
from supervisor.packaging.artefacts import build_udocker_layer
from supervisor.packaging.build import Options, engines_for, udocker_inputs
from supervisor.packaging.checks import check_layer_size, check_layers_total
from supervisor.packaging.debian import debian_engines
from supervisor.packaging.elf import read_elf
from supervisor.packaging.engines import (
    EngineFile,
    Engines,
    bundle_libraries,
    engine_manifest,
)
from supervisor.packaging.pins import read_pins
from supervisor.packaging.tarball import pick_tarball_files
from supervisor.s3event import event_of

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

# What the managed runtime has besides the standard library: boto3 and its dependencies.
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six",
                    "urllib3")


def python_versions(minors: Sequence[int]) -> list[str]:
    """Interpreters ``python3.N`` that run here, one per minor version, oldest first."""
    found = []
    for minor in minors:
        candidates = [shutil.which(f"python3.{minor}") or ""]
        candidates += sorted(glob.glob(os.path.expanduser(
            f"~/.pyenv/versions/3.{minor}.*/bin/python3.{minor}")))
        for exe in candidates:
            if exe and _runs(exe, minor):
                found.append(exe)
                break
    return found


def _runs(exe: str, minor: int) -> bool:
    try:
        proc = subprocess.run([exe, "-I", "-S", "-c", "import sys; print(sys.version_info[1])"],
                              capture_output=True, text=True, timeout=30)
    except OSError:
        return False
    return proc.returncode == 0 and proc.stdout.strip() == str(minor)


def base_python() -> str:
    """The plain ``python3`` this venv was made from (no site-packages of ours)."""
    return str(getattr(sys, "_base_executable", "") or shutil.which("python3") or sys.executable)


def version_id(exe: str) -> str:
    return Path(exe).name


# The layer serves the managed runtimes 3.11-3.13: each one found here is tried.
LAYER_PYTHONS = python_versions([11, 12, 13]) or [sys.executable]
# The zipapp runs on any python3 >= 3.9: the oldest found, and the plain python3.
OLDEST_PYTHON = (python_versions([9, 10, 11]) or [base_python()])[0]













def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for o in listing.get("Contents", []))


# --------------------------------------------------------------------------- the build

def udocker_layer_of(built: Built) -> Path:
    return built.out / "udocker-layer.zip"


def test_build_reports_the_sizes_and_records_its_inputs(built: Built) -> None:
    assert "zipped (limit 50.0 MB)" in built.stdout and "unzipped (limit 250.0 MB)" in built.stdout
    assert str(built.pyz) in built.stdout
    lines = {line.split(":")[0]: line for line in built.stdout.splitlines()}
    for layer in (built.layer, udocker_layer_of(built)):
        assert "zipped (limit 50.0 MB)" in lines[str(layer)]
    total = lines["supervisor-layer.zip + udocker-layer.zip"]
    assert total.endswith("unzipped (limit 250.0 MB for a function and all its layers)")
    stamp = json.loads((built.out / ".supervisor-build.json").read_text())
    assert stamp["outputs"]["supervisor-layer.zip"]["sha256"] == sha256(built.layer)
    assert stamp["outputs"]["udocker-layer.zip"]["sha256"] == sha256(udocker_layer_of(built))
    assert stamp["outputs"]["supervisor-batch.pyz"]["sha256"] == sha256(built.pyz)
    assert stamp["units"]["core"]["options"] == {"with_boto3": False}
    assert stamp["units"]["udocker"]["options"]["udocker_engines"] == "debian"


def test_second_build_of_unchanged_inputs_is_a_quick_skip(built: Built, package: Path) -> None:
    artefacts = (built.layer, udocker_layer_of(built), built.pyz)
    before = {p.name: p.stat().st_mtime_ns for p in artefacts}
    started = time.monotonic()
    proc = run_builder(package, built.out)
    assert proc.returncode == 0, proc.stderr
    assert "up to date" in proc.stderr
    assert time.monotonic() - started < 5
    assert {p.name: p.stat().st_mtime_ns for p in artefacts} == before


def test_building_twice_gives_byte_identical_artefacts(
        built: Built, package: Path, tmp_path: Path) -> None:
    proc = run_builder(package, tmp_path, "--force")
    assert proc.returncode == 0, proc.stderr
    assert sha256(tmp_path / "supervisor-layer.zip") == sha256(built.layer)
    assert sha256(tmp_path / "udocker-layer.zip") == sha256(udocker_layer_of(built))
    assert sha256(tmp_path / "supervisor-batch.pyz") == sha256(built.pyz)


def test_zip_entries_are_sorted_dated_1980_with_fixed_modes(built: Built) -> None:
    for path in (built.layer, built.pyz):
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
        names = [i.filename for i in infos]
        assert names == sorted(names)
        assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
        modes = {i.filename: i.external_attr >> 16 for i in infos}
        assert {m for n, m in modes.items() if n.endswith("/")} <= {stat.S_IFDIR | 0o755}
        assert {m for n, m in modes.items() if not n.endswith("/")} == {stat.S_IFREG | 0o644}
        assert not [n for n in names if n.endswith((".so", ".pyc")) or "__pycache__" in n]


def test_layer_holds_the_supervisor_powertools_and_pure_yaml_but_not_boto3(
        built: Built) -> None:
    with zipfile.ZipFile(built.layer) as zf:
        names = zf.namelist()
    assert all(n.startswith("python/") for n in names)
    tops = {n.split("/")[1] for n in names if n.count("/") >= 2}
    assert {"supervisor", "aws_lambda_powertools", "yaml"} <= tops
    assert not tops & {"boto3", "botocore", "s3transfer", "urllib3", "_yaml"}
    assert "python/supervisor/handler.py" in names
    assert not [n for n in names if n.startswith("python/supervisor/local/")]
    # only what the supervisor imports of powertools
    assert "python/aws_lambda_powertools/utilities/idempotency/persistence/dynamodb.py" in names
    assert not [n for n in names if "/event_handler/" in n or "/utilities/parser/" in n]


def test_pyz_has_the_shebang_a_main_and_only_the_botocore_data_it_needs(
        built: Built) -> None:
    assert built.pyz.read_bytes().startswith(b"#!/usr/bin/env python3\n")
    assert built.pyz.stat().st_mode & 0o111
    with zipfile.ZipFile(built.pyz) as zf:
        names = zf.namelist()
        main = zf.read("__main__.py").decode()
    assert "@BUILD_ID@" not in main
    services = {n.split("/")[2] for n in names
                if n.startswith("botocore/data/") and n.count("/") >= 3}
    assert services == {"s3", "batch", "dynamodb", "sts", "secretsmanager", "ssm"}
    assert "botocore/cacert.pem" in names and "yaml/__init__.py" in names
    assert "aws_lambda_powertools/__init__.py" not in names


def test_size_check_fails_clearly_with_both_sizes() -> None:
    mib = 1024 * 1024
    line = check_layer_size(2 * mib, 9 * mib)
    assert line == "2.0 MB zipped (limit 50.0 MB), 9.0 MB unzipped (limit 250.0 MB)"
    with pytest.raises(BuildError) as zipped:
        check_layer_size(2 * mib, 9 * mib, max_zip=mib)
    assert "2.0 MB zipped (limit 1.0 MB)" in str(zipped.value)
    assert "9.0 MB unzipped" in str(zipped.value)
    assert "the zip is over the 1.0 MB" in str(zipped.value)
    with pytest.raises(BuildError) as unzipped:
        check_layer_size(2 * mib, 9 * mib, max_unzipped=8 * mib)
    assert "unzipped it is over the 8.0 MB" in str(unzipped.value)
    assert str(unzipped.value).startswith("supervisor-layer.zip is too big")
    with pytest.raises(BuildError, match=r"^udocker-layer.zip is too big"):
        check_layer_size(60 * mib, 9 * mib, name="udocker-layer.zip")
    assert check_layers_total(200 * mib) == (
        "supervisor-layer.zip + udocker-layer.zip: 200.0 MB unzipped "
        "(limit 250.0 MB for a function and all its layers)")
    with pytest.raises(BuildError, match="the layers are too big together"):
        check_layers_total(251 * mib)


def test_unpinned_requirement_is_refused(tmp_path: Path) -> None:
    reqs = tmp_path / "reqs.txt"
    reqs.write_text("# comment\nPyYAML==6.0.3\nboto3>=1.28\n")
    with pytest.raises(BuildError, match=r"reqs.txt:3: 'boto3>=1.28' is not pinned"):
        read_pins(reqs)


# --------------------------------------------------------------------------- the layer

LAYER_INVOKE = r"""
import json, sys
layer, runtime, answer = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path[:] = [layer] + sys.path + [runtime]  # as Lambda: /opt/python, then /var/runtime
import aws_lambda_powertools, boto3, yaml
import supervisor.handler
for module in (aws_lambda_powertools, yaml, supervisor.handler):
    assert module.__file__.startswith(layer + "/"), module.__file__
assert boto3.__file__.startswith(runtime + "/"), boto3.__file__
assert not yaml.__with_libyaml__

class Context:
    function_name = "fn-layer"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:fn-layer"
    aws_request_id = "req-layer-0001"
    log_group_name = "/aws/lambda/fn-layer"
    log_stream_name = "2026/01/01/[$LATEST]0001"

    def get_remaining_time_in_millis(self):
        return 60000

event = json.load(sys.stdin)
response = supervisor.handler.lambda_handler(event, Context())

# powertools' idempotency, used as supervisor.delegate uses it, on a real table
from aws_lambda_powertools.utilities.idempotency import (DynamoDBPersistenceLayer,
    IdempotencyConfig, idempotent_function)
calls = []
def submit(item):
    calls.append(item)
    return {"job_id": "job-%d" % len(calls)}
store = DynamoDBPersistenceLayer(table_name=event["table"],
                                 boto3_client=boto3.client("dynamodb"))
settings = IdempotencyConfig(event_key_jmespath="identity", raise_on_no_idempotency_key=True)
once = idempotent_function(submit, data_keyword_argument="item", persistence_store=store,
                           config=settings, key_prefix="supervisor:fn-layer")
first = once(item={"identity": "bucket/key/v1"})
again = once(item={"identity": "bucket/key/v1"})
with open(answer, "w") as out:
    json.dump({"response": response, "idempotent": [first, again, len(calls)]}, out)
"""

UPPER_SCRIPT = """\
set -eu
tr a-z A-Z < "$INPUT_FILE_PATH" > "$TMP_OUTPUT_DIR/upper.txt"
echo "served $STORAGE_OBJECT_KEY on $EXECUTION_SERVICE"
"""


@pytest.fixture(scope="module")
def unzipped_layer(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("opt")
    with zipfile.ZipFile(built.layer) as zf:
        zf.extractall(dest)
    return dest / "python"


@pytest.fixture(scope="module")
def runtime_boto3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding only boto3 and its dependencies: the runtime's /var/runtime."""
    runtime = tmp_path_factory.mktemp("var-runtime")
    for name in RUNTIME_PACKAGES:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin, name
        source = Path(spec.origin)
        source = source.parent if source.name == "__init__.py" else source
        (runtime / source.name).symlink_to(source)
    return runtime


@pytest.mark.parametrize("python", LAYER_PYTHONS, ids=version_id)
def test_unzipped_layer_serves_an_s3_event_on_a_bare_runtime(
        python: str, unzipped_layer: Path, runtime_boto3: Path, s3: Any, bucket: str,
        aws_env: dict[str, str], tmp_path: Path) -> None:
    import boto3

    table = f"idem-{bucket}"
    boto3.client("dynamodb", endpoint_url=aws_env["AWS_ENDPOINT_URL"],
                 region_name="us-east-1").create_table(
        TableName=table, KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST")
    script = tmp_path / "script.sh"
    script.write_text(UPPER_SCRIPT)
    config = textwrap.dedent(f"""\
        name: fn-layer
        execution_mode: lambda
        init_script: {script}
        container: {{image: busybox, run_on_host: true}}
        input: [{{storage_provider: s3, path: {bucket}/input}}]
        output: [{{storage_provider: s3, path: {bucket}/output}}]
        """)
    event = event_of(put(s3, bucket, "input/hello layer.txt", b"hello layer\n"))
    event["table"] = table  # for the idempotency part; the handler ignores it
    work = tmp_path / "work"
    work.mkdir()
    answer = tmp_path / "answer.json"
    env = dict(aws_env, PATH=os.environ.get("PATH", "/usr/bin:/bin"),
               SUPERVISOR_WORK_DIR=str(work), LANG="C.UTF-8",
               FUNCTION_CONFIG=base64.b64encode(config.encode()).decode())
    proc = subprocess.run([python, "-I", "-S", "-B", "-c", LAYER_INVOKE, str(unzipped_layer),
                           str(runtime_boto3), str(answer)], input=json.dumps(event),
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)

    assert proc.returncode == 0, proc.stderr
    result = json.loads(answer.read_text())
    response = result["response"]
    body = json.loads(response["body"])
    assert response["statusCode"] == 200, body
    record = body["records"][0]
    assert record["status"] == "completed" and record["exit_code"] == 0
    assert "served input/hello layer.txt on lambda" in record["output_tail"]
    assert keys(s3, bucket, "output/") == ["output/upper.txt"]
    upper = s3.get_object(Bucket=bucket, Key="output/upper.txt")["Body"].read()
    assert upper == b"HELLO LAYER\n"
    assert response["headers"]["amz-lambda-request-id"] == "req-layer-0001"
    first, again, calls = result["idempotent"]
    assert first == again == {"job_id": "job-1"} and calls == 1
    assert '"Completed"' in proc.stdout  # powertools' metrics (EMF) on stdout


# --------------------------------------------------------------------------- the udocker layer

CLEAN_ENV = ["env", "-i", "PATH=/usr/bin:/bin"]  # nothing of ours: as a fresh sandbox
ENGINE_FILES = ("udocker/bin/patchelf", "udocker/bin/proot", "udocker/lib/libfakechroot.so")


def unzip_with_modes(archive: Path, dest: Path) -> Path:
    """Unpack ``archive`` into ``dest`` keeping each file's mode, as Lambda does in /opt."""
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            zf.extract(info, dest)
            if not info.is_dir():
                (dest / info.filename).chmod((info.external_attr >> 16) & 0o777)
    return dest


@pytest.fixture(scope="module")
def opt(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The udocker layer unpacked as Lambda unpacks it: the directory standing for /opt."""
    return unzip_with_modes(udocker_layer_of(built), tmp_path_factory.mktemp("opt-udocker"))


def test_udocker_layer_holds_udocker_and_the_engines_where_the_supervisor_looks(
        built: Built) -> None:
    from supervisor.container import spec

    with zipfile.ZipFile(udocker_layer_of(built)) as zf:
        infos = zf.infolist()
        manifest = zf.read("udocker/MANIFEST.txt").decode()
    names = [i.filename for i in infos]
    assert names == sorted(names) and {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {n.split("/")[0] for n in names} == {"python", "udocker"}
    assert {n.split("/")[1] for n in names if n.startswith("python/") and n.count("/") >= 2} \
        == {"udocker", "udocker-1.3.17.dist-info"}
    assert "python/udocker/maincmd.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    # exactly where supervisor/container/spec.py looks first (Lambda unpacks into /opt)
    layer_root = spec._LAYER_ROOT.relative_to("/opt").as_posix()
    assert {str(p[0].relative_to("/opt")) for p in (
        spec._PATCHELF_PLACES, spec._PROOT_PLACES, spec._FAKECHROOT_PLACES)} \
        == set(ENGINE_FILES)
    assert layer_root == "udocker" and set(ENGINE_FILES) <= set(names)
    # patchelf's and proot's libraries beyond glibc's, beside them
    assert {"udocker/lib/libstdc++.so.6", "udocker/lib/libgcc_s.so.1",
            "udocker/lib/libtalloc.so.2"} <= set(names)
    assert not [n for n in names if n.startswith("udocker/lib/") and n.split("/")[-1]
                in ("libc.so.6", "libm.so.6", "ld-linux-x86-64.so.2")]
    modes = {i.filename: i.external_attr >> 16 for i in infos}
    assert {m for n, m in modes.items() if n.endswith("/")} == {stat.S_IFDIR | 0o755}
    assert {n for n, m in modes.items() if m == stat.S_IFREG | 0o755} == {
        "udocker/bin/patchelf", "udocker/bin/proot"}
    assert {m for n, m in modes.items() if not n.endswith("/")
            and not n.startswith("udocker/bin/")} == {stat.S_IFREG | 0o644}
    assert "from Debian packages" in manifest
    assert "bin/patchelf\t/usr/bin/patchelf (Debian patchelf " in manifest
    assert "RUNPATH $ORIGIN/../lib" in manifest
    assert "udocker/doc/patchelf.copyright" in names


@pytest.mark.parametrize("python", LAYER_PYTHONS, ids=version_id)
def test_udocker_imports_from_a_bare_sys_path_of_the_unzipped_python_dir(
        python: str, opt: Path) -> None:
    site = opt / "python"
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import udocker.maincmd; "
            "import udocker.engine.fakechroot, udocker.engine.proot; "
            "print(udocker.__version__, udocker.maincmd.__file__)")
    proc = subprocess.run([python, "-I", "-c", code, str(site)], capture_output=True,
                          text=True, timeout=60, cwd=opt)
    assert proc.returncode == 0, proc.stderr
    version, path = proc.stdout.split()
    assert version == "1.3.17" and path == str(site / "udocker" / "maincmd.py")


def test_patchelf_and_proot_of_the_unzipped_layer_run_in_a_clean_environment(
        opt: Path) -> None:
    patchelf = opt / "udocker" / "bin" / "patchelf"
    assert patchelf.stat().st_mode & 0o111
    version = subprocess.run([*CLEAN_ENV, str(patchelf), "--version"], capture_output=True,
                             text=True, timeout=30)
    assert version.returncode == 0 and version.stdout.startswith("patchelf "), version.stderr
    # what udocker's Fakechroot mode asks it: the loader of a binary
    loader = subprocess.run([*CLEAN_ENV, str(patchelf), "--print-interpreter", "/bin/sh"],
                            capture_output=True, text=True, timeout=30)
    assert loader.returncode == 0 and loader.stdout.strip().startswith("/lib"), loader.stderr
    # the C++ runtime it was linked with comes from the layer, found through its RUNPATH
    assert read_elf(patchelf.read_bytes(), "patchelf").runpath == "$ORIGIN/../lib"
    traced = subprocess.run([*CLEAN_ENV, "LD_TRACE_LOADED_OBJECTS=1", str(patchelf)],
                            capture_output=True, text=True, timeout=30)
    mapped = dict(line.strip().split(" => ", 1) for line in traced.stdout.splitlines()
                  if " => " in line)
    for soname in ("libstdc++.so.6", "libgcc_s.so.1"):
        path = Path(mapped[soname].rsplit(" (", 1)[0])
        assert path.resolve() == (opt / "udocker" / "lib" / soname).resolve()
    proot = subprocess.run([*CLEAN_ENV, str(opt / "udocker" / "bin" / "proot"), "--version"],
                           capture_output=True, text=True, timeout=30)
    assert proot.returncode == 0 and "proot" in proot.stdout.lower(), proot.stderr


def _add(tf: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 0
    tf.addfile(info, io.BytesIO(data))


@pytest.fixture(scope="module")
def englib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small udockertools tarball laid out as udocker-englib-1.2.11.tar.gz is
    (udocker_dir/{bin,lib,doc}/…). This machine's Debian patchelf and proot stand in for
    udocker's static builds; the patchelf marked ``old kernels`` stands for proot-x86_64
    (kernels < 4.8), so a wrong choice shows; each libfakechroot has its own bytes."""
    if platform.machine() != "x86_64":
        pytest.skip("udockertools' files are the x86_64 ones")
    fakechroot = Path("/usr/lib/x86_64-linux-gnu/fakechroot/libfakechroot.so").read_bytes()
    path = tmp_path_factory.mktemp("englib") / "udocker-englib-1.2.11.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        _add(tf, "udocker_dir/lib/VERSION", b"1.2.11\n")
        _add(tf, "udocker_dir/bin/patchelf-x86_64", Path("/usr/bin/patchelf").read_bytes(),
             0o755)
        _add(tf, "udocker_dir/bin/proot-x86_64-4_8_0", Path("/usr/bin/proot").read_bytes(),
             0o755)
        _add(tf, "udocker_dir/bin/proot-x86_64", Path("/usr/bin/patchelf").read_bytes(), 0o755)
        for distro in ("Fedora-30", "Fedora-29", "Fedora-9", "CentOS-7", "Alpine-3.13",
                       "Ubuntu-20"):
            _add(tf, f"udocker_dir/lib/libfakechroot-{distro}-x86_64.so",
                 fakechroot + f"\0{distro}".encode())
        _add(tf, "udocker_dir/doc/COPYING.patchelf", b"patchelf's licence\n")
    return path


def test_udocker_layer_from_a_udockertools_tarball(
        built: Built, package: Path, englib: Path, tmp_path: Path) -> None:
    """The builder's own steps, in this process (the other two artefacts are as above)."""
    debian = Options(out=tmp_path, wheelhouse=WHEELHOUSE, package=package)
    options = dataclasses.replace(debian, udocker_tarball=englib)
    engines = engines_for(options, log=lambda _: None)
    assert engines is not None
    assert engines.source.startswith("udockertools 1.2.11 (sha256 ")
    layers = []
    for attempt in ("first", "again"):
        stage = tmp_path / f"stage-{attempt}"
        stage.mkdir()
        layers.append(tmp_path / f"udocker-layer-{attempt}.zip")
        build_udocker_layer(stage, layers[-1], options.wheelhouse, engines, verify=True,
                            log=lambda _: None)
    assert sha256(layers[0]) == sha256(layers[1])
    # another engine source is another build, not an up-to-date skip
    from_debian = engines_for(debian, log=lambda _: None)
    assert from_debian is not None
    assert udocker_inputs(options, engines) != udocker_inputs(debian, from_debian)

    opt = unzip_with_modes(layers[0], tmp_path / "opt")
    engine_dir = opt / "udocker"
    assert (engine_dir / "lib" / "libfakechroot.so").read_bytes().endswith(b"\0Fedora-30")
    assert (engine_dir / "doc" / "COPYING.patchelf").read_text() == "patchelf's licence\n"
    manifest = (engine_dir / "MANIFEST.txt").read_text()
    assert "bin/proot\tudockertools 1.2.11: udocker_dir/bin/proot-x86_64-4_8_0" in manifest
    proot = subprocess.run([*CLEAN_ENV, str(engine_dir / "bin" / "proot"), "--version"],
                           capture_output=True, text=True, timeout=30)
    assert proot.returncode == 0 and "proot" in proot.stdout.lower(), proot.stdout
    patchelf = subprocess.run([*CLEAN_ENV, str(engine_dir / "bin" / "patchelf"), "--version"],
                              capture_output=True, text=True, timeout=30)
    assert patchelf.returncode == 0 and patchelf.stdout.startswith("patchelf "), patchelf.stderr
    with zipfile.ZipFile(udocker_layer_of(built)) as debian, \
            zipfile.ZipFile(layers[0]) as tarball:
        python = sorted(n for n in debian.namelist() if n.startswith("python/"))
        assert python == sorted(n for n in tarball.namelist() if n.startswith("python/"))
        assert all(debian.read(n) == tarball.read(n) for n in python if not n.endswith("/"))


def test_udocker_fakechroot_picks_the_tarballs_libfakechroot(
        englib: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    options = Options(out=tmp_path, wheelhouse=WHEELHOUSE, udocker_tarball=englib,
                      udocker_fakechroot="CentOS-7")
    engines = engines_for(options, log=lambda _: None)
    assert engines is not None
    chosen = next(f for f in engines.files if f.name == "lib/libfakechroot.so")
    assert chosen.data.endswith(b"\0CentOS-7")
    assert chosen.origin == ("udockertools 1.2.11: "
                             "udocker_dir/lib/libfakechroot-CentOS-7-x86_64.so")
    assert main(["build", "-o", str(tmp_path), "--udocker-fakechroot", "CentOS-7"]) == 1
    assert capsys.readouterr().err == ("supervisor: --udocker-fakechroot needs "
                                       "--udocker-tarball\n")


def test_tarball_files_are_chosen_as_udocker_chooses_them() -> None:
    names = ["bin/patchelf-x86_64", "bin/proot-x86_64", "bin/proot-x86_64-4_8_0",
             "lib/libfakechroot-Fedora-9-x86_64.so", "lib/libfakechroot-Fedora-30-x86_64.so",
             "lib/libfakechroot-CentOS-7-x86_64.so", "lib/libfakechroot-Alpine-3.13-x86_64.so",
             "lib/VERSION"]
    assert pick_tarball_files(names) == {
        "bin/patchelf": "bin/patchelf-x86_64", "bin/proot": "bin/proot-x86_64-4_8_0",
        "lib/libfakechroot.so": "lib/libfakechroot-Fedora-30-x86_64.so"}
    old = [n for n in names if "4_8_0" not in n and "Fedora" not in n]
    assert pick_tarball_files(old)["bin/proot"] == "bin/proot-x86_64"
    assert pick_tarball_files(old)["lib/libfakechroot.so"] \
        == "lib/libfakechroot-CentOS-7-x86_64.so"
    assert pick_tarball_files(names, "Alpine-3.13")["lib/libfakechroot.so"] \
        == "lib/libfakechroot-Alpine-3.13-x86_64.so"
    with pytest.raises(BuildError, match=r"no lib/libfakechroot-Debian-12-x86_64.so; "
                       r"it has: Alpine-3.13, CentOS-7, Fedora-30, Fedora-9"):
        pick_tarball_files(names, "Debian-12")
    musl_only = ["bin/patchelf-x86_64", "bin/proot-x86_64",
                 "lib/libfakechroot-Alpine-3.13-x86_64.so"]
    with pytest.raises(BuildError, match="no libfakechroot for a glibc distribution"):
        pick_tarball_files(musl_only)
    with pytest.raises(BuildError, match="has none of bin/patchelf-x86_64"):
        pick_tarball_files(names[1:])


def test_a_statically_linked_engine_is_shipped_as_it_is() -> None:
    """udockertools' engines are static: nothing is bundled, no RUNPATH is set."""
    busybox = Path("/bin/busybox")
    elf = read_elf(busybox.read_bytes(), "busybox") if busybox.is_file() else None
    if elf is None or elf.dynamic:
        pytest.skip("needs a statically linked /bin/busybox (busybox-static)")
    static = EngineFile("bin/proot", busybox.read_bytes(), "udockertools: proot")
    assert bundle_libraries([static]) == [static]
    engines = Engines(files=(static,), source="udockertools 1.2.11", patchelf=b"")
    assert f"bin/proot\tudockertools: proot; {elf.machine}, statically linked\n" \
        in engine_manifest(engines).decode()


def test_missing_engines_say_what_to_install() -> None:
    with pytest.raises(BuildError) as missing:
        debian_engines(machine="riscv64")  # no such multiarch directory here
    message = str(missing.value)
    assert "/usr/lib/riscv64-linux-gnu/fakechroot/libfakechroot.so" in message
    assert "apt-get install fakechroot" in message and "--udocker-tarball" in message


# --------------------------------------------------------------------------- the zipapp

_RO_MOUNT = 'mount --bind -o ro "$0" "$0" && exec "$@"'


def readonly_mounts() -> bool:
    """Whether a private mount namespace with a read-only bind mount can be made here."""
    if not shutil.which("unshare"):
        return False
    with tempfile.TemporaryDirectory() as tmp:
        probe = subprocess.run(["unshare", "-m", "sh", "-c", _RO_MOUNT, tmp, "sh", "-c",
                                'touch "$0/probe"', tmp], capture_output=True, timeout=30)
        return probe.returncode != 0 and not os.path.exists(os.path.join(tmp, "probe"))


@dataclass
class Host:
    """A job host's read-only directory holding the pyz.

    With a read-only bind mount (a private mount namespace) when one can be made, as
    on a host that mounts it read-only; else the directory is mode 0555, which binds
    everyone but root. Either way nothing may appear beside the pyz.
    """

    pyz: Path
    base: Path
    mount: bool

    def fresh_dir(self, prefix: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=self.base))

    def listing(self) -> list[str]:
        return sorted(str(p.relative_to(self.pyz.parent)) for p in self.pyz.parent.rglob("*"))

    def argv(self, python: str, flags: Sequence[str], *args: str) -> list[str]:
        argv = [python, *flags, str(self.pyz), *args]
        if self.mount:
            return ["unshare", "-m", "sh", "-c", _RO_MOUNT, str(self.pyz.parent), *argv]
        return argv

    def run(self, python: str, flags: Sequence[str], env: Mapping[str, str],
            *args: str) -> "subprocess.CompletedProcess[str]":
        return subprocess.run(self.argv(python, flags, *args), env=dict(env),
                              cwd=self.fresh_dir("cwd-"), stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def host(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    base = tmp_path_factory.mktemp("batch-host")
    ro = base / "opt-supervisor"
    ro.mkdir()
    pyz = ro / "supervisor-batch.pyz"
    shutil.copyfile(built.pyz, pyz)
    pyz.chmod(0o444)
    ro.chmod(0o555)
    try:
        yield Host(pyz=pyz, base=base, mount=readonly_mounts())
    finally:
        ro.chmod(0o755)


def job_env(aws_env: Mapping[str, str], home: Path, **extra: str) -> dict[str, str]:
    return dict(aws_env, PATH=os.environ.get("PATH", "/usr/bin:/bin"), HOME=str(home),
                LANG="C.UTF-8", AWS_BATCH_JOB_ID="job-pyz-1", **extra)


def stage_handoff(s3: Any, bucket: str, script: str) -> str:
    record = put(s3, bucket, "input/data.txt", b"hello batch\n")
    config = {"name": "fn-pyz", "execution_mode": "batch", "container": {"image": "busybox"},
              "input": [{"storage_provider": "s3", "path": f"{bucket}/input"}],
              "output": [{"storage_provider": "s3", "path": f"{bucket}/output"}],
              "batch": {"compute_resources": {"subnets": ["subnet-1"],
                                              "security_group_ids": ["sg-1"]}}}
    handoff = Handoff(record=record, function_config=config, script=script,
                      request_id="req-from-lambda", function_name="fn-pyz",
                      created_at=now_iso(), reason="execution_mode is batch")
    return write_handoff(s3, handoff, bucket, "supervisor-handoff/fn-pyz/req/doc.json")


WORDS_SCRIPT = """\
set -eu
mkdir -p "$TMP_OUTPUT_DIR/out"
wc -w < "$INPUT_FILE_PATH" | tr -d ' ' > "$TMP_OUTPUT_DIR/out/words.txt"
echo "svc=$EXECUTION_SERVICE rid=$REQUEST_ID" > "$TMP_OUTPUT_DIR/out/env.txt"
echo "counted $(basename "$INPUT_FILE_PATH")"
"""


def test_pyz_from_a_readonly_dir_stages_in_runs_and_stages_out(
        host: Host, s3: Any, bucket: str, aws_env: dict[str, str]) -> None:
    uri = stage_handoff(s3, bucket, WORDS_SCRIPT)
    home = host.fresh_dir("home-")
    before = host.listing()
    # -S as well: not even the interpreter's own site-packages are needed
    proc = host.run(OLDEST_PYTHON, ["-I", "-S"],
                    job_env(aws_env, home, SUPERVISOR_HANDOFF=uri))

    assert proc.returncode == 0, proc.stderr
    assert keys(s3, bucket, "output/") == ["output/out/env.txt", "output/out/words.txt"]
    words = s3.get_object(Bucket=bucket, Key="output/out/words.txt")["Body"].read()
    assert words.strip() == b"2"
    env_line = s3.get_object(Bucket=bucket, Key="output/out/env.txt")["Body"].read().decode()
    assert env_line.strip() == "svc=batch rid=req-from-lambda"
    summary = json.loads(proc.stdout)
    assert summary["exit_code"] == 0 and summary["records"][0]["status"] == "completed"
    assert host.listing() == before  # nothing written beside the pyz
    unpacked = list((home / ".cache" / "supervisor-batch").iterdir())
    assert len(unpacked) == 1 and (unpacked[0] / "botocore" / "cacert.pem").is_file()


def test_pyz_exit_code_is_the_scripts_and_nothing_is_uploaded(
        host: Host, s3: Any, bucket: str, aws_env: dict[str, str]) -> None:
    script = 'mkdir -p "$TMP_OUTPUT_DIR/out"; echo partial > "$TMP_OUTPUT_DIR/out/a.txt"\nexit 5\n'
    uri = stage_handoff(s3, bucket, script)
    proc = host.run(base_python(), ["-I"],
                    job_env(aws_env, host.fresh_dir("home-"), SUPERVISOR_HANDOFF=uri))

    assert proc.returncode == 5, proc.stderr
    assert keys(s3, bucket, "output/") == []
    assert proc.stderr.splitlines()[-1] == (f"supervisor-batch: s3://{bucket}/input/data.txt: "
                                            "script exited with code 5")


def test_concurrent_first_starts_share_one_unpacked_copy_in_the_temp_dir(
        host: Host, aws_env: dict[str, str]) -> None:
    """HOME is read-only (a job user's home often is): the user's private temp dir is used."""
    tmpdir = host.fresh_dir("tmp-")
    env = job_env(aws_env, host.pyz.parent, TMPDIR=str(tmpdir))
    argv = host.argv(base_python(), ["-I"], "--version")
    procs = [subprocess.Popen(argv, env=env, cwd=tmpdir, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = [p.communicate(timeout=120) for p in procs]

    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    assert all(out.startswith("supervisor-batch ") for out, _ in outputs)
    if not host.mount and os.geteuid() == 0:
        pytest.skip("root writes through mode 0555 and no read-only mount can be made")
    root = tmpdir / f"supervisor-batch-{os.getuid()}"
    assert stat.S_IMODE(root.stat().st_mode) == 0o700 and root.stat().st_uid == os.getuid()
    entries = sorted(p.name for p in root.iterdir())
    assert len(entries) == 1 and not entries[0].startswith("."), entries  # no leftovers


# --------------------------------------------------------------------------- the image route

ENTRYPOINT = ROOT / "layers" / "image-entrypoint.sh"

FAKE_RIC = """\
import json, os, sys
json.dump({"argv": sys.argv[1:], "path0": sys.path[0], "cwd_on_path": "" in sys.path,
           "pythonpath": os.environ.get("PYTHONPATH")}, sys.stdout)
"""


def test_image_entrypoint_dispatches_batch_lambda_and_commands(
        built: Built, tmp_path: Path) -> None:
    home = tmp_path / "opt-supervisor"
    home.mkdir()
    shutil.copyfile(built.pyz, home / "supervisor-batch.pyz")
    site = tmp_path / "opt-python"
    (site / "awslambdaric").mkdir(parents=True)
    (site / "awslambdaric" / "__init__.py").write_text("")
    (site / "awslambdaric" / "__main__.py").write_text(FAKE_RIC)  # stands for the real client
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
           "SUPERVISOR_HOME": str(home), "SUPERVISOR_SITE": str(site),
           "SUPERVISOR_PYTHON": base_python(), "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001"}

    def entry(*args: str) -> "subprocess.CompletedProcess[str]":
        return subprocess.run(["/bin/sh", str(ENTRYPOINT), *args], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)

    batch = entry("supervisor-batch", "--version")
    assert batch.returncode == 0 and batch.stdout.startswith("supervisor-batch "), batch.stderr
    served = entry("supervisor.handler.lambda_handler")
    assert served.returncode == 0, served.stderr
    assert json.loads(served.stdout) == {"argv": ["supervisor.handler.lambda_handler"],
                                         "path0": str(site), "cwd_on_path": False,
                                         "pythonpath": None}
    command = entry("echo", "a.b")
    assert command.returncode == 0 and command.stdout == "a.b\n"
    assert entry().returncode == 64

