"""The test helpers themselves: a loopback docker-registry fed by skopeo, and no-ptrace runs."""
from __future__ import annotations

import errno
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from support.noptrace import NOPTRACE_ARGV, noptrace_argv
from support.registry import MANIFEST_ACCEPT, Registry, count_requests, missing_tools

from supervisor.local.image import (
    BUSYBOX,
    build_busybox_image,
    build_glibc_image,
    build_layered_image,
)

pytestmark = pytest.mark.integration

needs_busybox = pytest.mark.skipif(
    not BUSYBOX.is_file(), reason="/bin/busybox missing: apt-get install busybox-static")
needs_registry_tools = pytest.mark.skipif(
    bool(missing_tools()), reason=f"needs {', '.join(missing_tools())}: apt-get install them")
LIBSECCOMP_MISSING = not any(Path(d, "libseccomp.so.2").exists()
                             for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
                                       "/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib"))
needs_libseccomp = pytest.mark.skipif(
    LIBSECCOMP_MISSING, reason="libseccomp.so.2 missing: apt-get install libseccomp2")
PROOT = Path("/usr/bin/proot")

ACCESS_LOG = """\
time="2026-12-01T19:38:53Z" level=info msg="response completed" http.request.method=GET \
http.request.uri="/v2/bb/blobs/sha256:aa" http.response.status=200
127.0.0.1 - - [01/Dec/2026:19:38:53 +0000] "GET /v2/bb/blobs/sha256:aa HTTP/1.1" 200 9 "" "x"
127.0.0.1 - - [01/Dec/2026:19:38:53 +0000] "HEAD /v2/bb/blobs/sha256:aa HTTP/1.1" 200 9 "" "x"
127.0.0.1 - - [01/Dec/2026:19:38:53 +0000] "GET /v2/bb/blobs/sha256:bb HTTP/1.1" 404 9 "" "x"
127.0.0.1 - - [01/Dec/2026:19:38:53 +0000] "GET /v2/bb/blobs/uploads/u1 HTTP/1.1" 204 0 "" "x"
127.0.0.1 - - [01/Dec/2026:19:38:53 +0000] "GET /v2/bbx/blobs/sha256:aa HTTP/1.1" 200 9 "" "x"
127.0.0.1 - - [01/Dec/2026:19:38:53 +0000] "GET /v2/a/bb/blobs/sha256:aa HTTP/1.1" 200 9 "" "x"
127.0.0.1 - - [01/Dec/2026:19:38:53 +0000] "HEAD /v2/bb/manifests/v1 HTTP/1.1" 200 9 "" "x"
127.0.0.1 - - [01/Dec/2026:19:38:53 +0000] "GET /v2/bb/manifests/sha256:cc HTTP/1.1" 200 9 "" "x"
127.0.0.1 - - [01/Dec/2026:19:38:53 +0000] "PUT /v2/bb/manifests/v1 HTTP/1.1" 201 0 "" "x"
"""


def test_count_requests_reads_the_combined_access_lines_only() -> None:
    assert count_requests(ACCESS_LOG, "blob", "bb") == 2  # GETs, a 404 too; no uploads
    assert count_requests(ACCESS_LOG, "manifest", "bb") == 2  # HEAD and GET, not PUT
    assert count_requests(ACCESS_LOG, "blob", "a/bb") == 1
    with pytest.raises(ValueError, match="kind"):
        count_requests(ACCESS_LOG, "layer", "bb")


# --- the registry -------------------------------------------------------------------------


def fetch_manifest(registry: Registry, name: str, reference: str) -> dict[str, Any]:
    response = requests.get(f"{registry.url}/v2/{name}/manifests/{reference}",
                            headers={"Accept": MANIFEST_ACCEPT}, timeout=5)
    response.raise_for_status()
    value: dict[str, Any] = response.json()
    return value


@needs_busybox
def test_push_busybox_returns_the_digest_the_registry_serves(registry: Registry,
                                                            tmp_path: Path) -> None:
    image = build_busybox_image(tmp_path / "bb.tar")
    digest = registry.push(image, "support/busybox", "v1")
    assert digest.startswith("sha256:") and len(digest) == 71
    assert registry.manifest_digest("support/busybox", "v1") == digest
    manifest = fetch_manifest(registry, "support/busybox", digest)
    assert manifest["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert len(manifest["layers"]) == 1


@needs_busybox
def test_blob_and_manifest_fetches_are_counted_per_repository(registry: Registry,
                                                             tmp_path: Path) -> None:
    image = build_busybox_image(tmp_path / "bb.tar", tag="support/counted:v1")
    registry.push(image, "support/counted", "v1")
    registry.reset_counts()
    assert registry.requests("blob", "support/counted") == 0
    assert registry.requests("manifest", "support/counted") == 0

    manifest = fetch_manifest(registry, "support/counted", "v1")
    layer = manifest["layers"][0]["digest"]
    blob = requests.get(f"{registry.url}/v2/support/counted/blobs/{layer}", timeout=10)
    assert blob.status_code == 200 and len(blob.content) == manifest["layers"][0]["size"]
    requests.head(f"{registry.url}/v2/support/counted/blobs/{layer}", timeout=5)

    assert registry.requests("blob", "support/counted") == 1  # the HEAD is no download
    assert registry.requests("manifest", "support/counted") == 1
    assert registry.requests("blob", "support/busybox") == 0
    registry.reset_counts()
    assert registry.requests("blob", "support/counted") == 0


def test_push_glibc_image(registry: Registry, tmp_path: Path) -> None:
    image = build_glibc_image(tmp_path / "glibc.tar", files={"/etc/marker": b"glibc\n"})
    digest = registry.push(image, "support/glibc", "latest")
    assert registry.manifest_digest("support/glibc", "latest") == digest
    config = fetch_manifest(registry, "support/glibc", digest)["config"]["digest"]
    body = requests.get(f"{registry.url}/v2/support/glibc/blobs/{config}", timeout=5).json()
    assert body["config"]["Env"] == ["PATH=/usr/local/bin:/usr/bin:/bin"]


@needs_busybox
def test_push_layered_image_keeps_every_layer(registry: Registry, tmp_path: Path) -> None:
    image = build_layered_image(tmp_path / "layers.tar", layer_bytes=[300_000, 200_000])
    digest = registry.push(image, "support/layered", "v1")
    layers = fetch_manifest(registry, "support/layered", digest)["layers"]
    assert len(layers) == 3
    assert layers[1]["size"] > 300_000 and layers[2]["size"] > 200_000  # random: no gain


@needs_registry_tools
@needs_busybox
def test_stop_takes_the_registry_down_and_start_brings_it_back_with_its_images(
        tmp_path: Path) -> None:
    with Registry(tmp_path / "reg") as registry:
        digest = registry.push(build_busybox_image(tmp_path / "bb.tar"), "support/bb", "v1")
        port = registry.port
        registry.stop()
        assert not registry.running
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{registry.url}/v2/", timeout=2)
        started = time.monotonic()
        registry.start()
        assert time.monotonic() - started < 5
        assert registry.port == port and registry.running
        assert registry.manifest_digest("support/bb", "v1") == digest
        assert registry.log_path.read_text().count("listening on") == 2
    assert not registry.running


@needs_registry_tools
def test_a_registry_that_cannot_bind_says_why(tmp_path: Path) -> None:
    with Registry(tmp_path / "first") as first:
        second = Registry(tmp_path / "second", port=first.port, start_timeout=5)
        with pytest.raises(RuntimeError, match="address already in use"):
            second.start()
        assert not second.running


@needs_registry_tools
def test_a_picked_port_taken_before_the_first_start_is_replaced(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "reg")
    taken = registry.port
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()
        with registry:
            assert registry.port != taken and registry.running
            assert requests.get(f"{registry.url}/v2/", timeout=5).status_code == 200


# --- no ptrace ----------------------------------------------------------------------------


def run_noptrace(*command: str, timeout: float = 10) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(noptrace_argv(command), capture_output=True, text=True,
                          timeout=timeout, check=False)


def test_noptrace_argv_prefix_runs_this_python_on_the_launcher() -> None:
    assert NOPTRACE_ARGV[0] == sys.executable
    assert Path(NOPTRACE_ARGV[1]).name == "noptrace.py" and Path(NOPTRACE_ARGV[1]).is_file()
    assert noptrace_argv(["a", "b"]) == [*NOPTRACE_ARGV, "a", "b"]


@needs_libseccomp
def test_noptrace_runs_the_command_in_seccomp_filter_mode() -> None:
    proc = run_noptrace("cat", "/proc/self/status")
    assert proc.returncode == 0, proc.stderr
    assert "Seccomp:\t2\n" in proc.stdout
    assert "NoNewPrivs:\t1\n" in proc.stdout


@needs_libseccomp
def test_noptrace_makes_ptrace_traceme_fail_with_eperm() -> None:
    code = ("import ctypes, os\n"
            "libc = ctypes.CDLL(None, use_errno=True)\n"
            "result = libc.ptrace(0, 0, None, None)\n"
            "print(result, ctypes.get_errno())\n")
    proc = run_noptrace(sys.executable, "-c", code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["-1", str(errno.EPERM)]


@needs_libseccomp
@pytest.mark.skipif(not PROOT.is_file(), reason="/usr/bin/proot missing: apt-get install proot")
def test_proot_fails_at_once_under_noptrace() -> None:
    started = time.monotonic()
    proc = run_noptrace(str(PROOT), "-r", "/", "/bin/true", timeout=20)
    assert time.monotonic() - started < 5
    assert proc.returncode != 0
    assert "ptrace(TRACEME): Operation not permitted" in proc.stderr


@needs_libseccomp
def test_noptrace_reports_a_missing_command() -> None:
    proc = run_noptrace("/no/such/command")
    assert proc.returncode == 127 and "cannot run /no/such/command" in proc.stderr
