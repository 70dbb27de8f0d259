"""A tiny container image built from Debian's static busybox, as a ``docker save`` tarball.

No image registry is reachable in tests or in the local demo, so the
container runner (:mod:`supervisor.container`) is exercised with an image
this module writes from scratch: one layer holding ``/bin/busybox`` (the
``busybox-static`` package's binary, which needs no shared libraries), a
symlink per applet, ``/etc/passwd`` and ``/etc/group`` with ``root``, and an
empty ``/tmp``. The archive has the classic ``docker save`` layout that
``udocker load`` and ``docker load`` read::

    manifest.json              [{Config, RepoTags, Layers}]
    repositories               {repo: {tag: layer id}}
    <config sha256>.json       the image config (Env PATH, Cmd /bin/sh, rootfs diff_ids)
    <layer id>/VERSION         "1.0"
    <layer id>/json            the v1 layer metadata
    <layer id>/layer.tar       the file system

The output is deterministic (fixed mtimes and owners, sorted members): the
same busybox binary always gives the same bytes, hence the same sha256.
"""
from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import platform
import struct
import tarfile
import tempfile
from pathlib import Path
from typing import Any, Optional, Sequence

__all__ = ["APPLETS", "DEFAULT_TAG", "BUSYBOX", "build_busybox_image", "docker_arch"]

DEFAULT_TAG = "supervisor/busybox:latest"
BUSYBOX = Path("/bin/busybox")
"""Where Debian's ``busybox-static`` installs the binary."""

APPLETS: tuple[str, ...] = (
    "sh", "ls", "cat", "echo", "sleep", "cp", "mkdir", "wc", "tr", "sha256sum", "env",
    "id", "touch", "test", "[", "printf", "head", "tail", "sort", "uniq", "grep", "sed",
    "awk", "date", "basename", "dirname", "rm", "mv", "find", "true", "false", "kill",
    "ps", "seq", "dd", "od", "xargs", "tee", "cut", "stat", "pwd", "chmod", "ln",
    "readlink", "md5sum", "expr", "uname", "hostname", "whoami",
)
"""Commands linked to busybox in ``/bin`` (``/usr/bin/env`` too, for shebangs)."""

_MTIME = 0  # every member's mtime: 1970-01-01, so the bytes never change
_CREATED = "1970-01-01T00:00:00Z"
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_PASSWD = b"root:x:0:0:root:/root:/bin/sh\n"
_GROUP = b"root:x:0:\n"
_ARCHES = {
    "x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
    "armv7l": "arm", "armv6l": "arm", "i386": "386", "i686": "386",
    "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64",
}
_PT_INTERP = 3


def docker_arch(machine: Optional[str] = None) -> str:
    """The Docker/OCI architecture name of ``machine`` (default: this host's)."""
    machine = machine or platform.machine()
    return _ARCHES.get(machine.lower(), machine.lower())


def _split_tag(tag: str) -> tuple[str, str]:
    """``repo[:tag]`` -> (repo, tag); a colon before the last ``/`` is a registry port."""
    repo, sep, version = tag.rpartition(":")
    if not sep or "/" in version:
        return tag, "latest"
    if not repo or not version:
        raise ValueError(f"invalid image tag {tag!r}")
    return repo, version


def _is_dynamic_elf(data: bytes) -> bool:
    """True when ``data`` is an ELF executable with a PT_INTERP (needs ld.so and libc)."""
    if data[:4] != b"\x7fELF" or len(data) < 64:
        return False
    is64 = data[4] == 2
    endian = "<" if data[5] == 1 else ">"
    if is64:
        phoff, = struct.unpack_from(endian + "Q", data, 0x20)
        phentsize, phnum = struct.unpack_from(endian + "HH", data, 0x36)
    else:
        phoff, = struct.unpack_from(endian + "I", data, 0x1C)
        phentsize, phnum = struct.unpack_from(endian + "HH", data, 0x2A)
    for index in range(phnum):
        offset = phoff + index * phentsize
        if offset + 4 > len(data):
            break
        p_type, = struct.unpack_from(endian + "I", data, offset)
        if p_type == _PT_INTERP:
            return True
    return False


def _info(name: str, kind: bytes, mode: int, size: int = 0, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.linkname = link
    info.mtime = _MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def _tar_bytes(members: list[tuple[tarfile.TarInfo, Optional[bytes]]]) -> bytes:
    """An uncompressed tar of ``members`` (sorted by name), as bytes."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for info, data in sorted(members, key=lambda item: item[0].name):
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def _layer(busybox: bytes) -> bytes:
    """The image's only layer: busybox, its applets, /etc, /tmp."""
    members: list[tuple[tarfile.TarInfo, Optional[bytes]]] = []
    for directory, mode in (("bin", 0o755), ("etc", 0o755), ("tmp", 0o1777), ("root", 0o700),
                            ("usr", 0o755), ("usr/bin", 0o755), ("dev", 0o755),
                            ("proc", 0o555), ("sys", 0o555)):
        members.append((_info(directory, tarfile.DIRTYPE, mode), None))
    members.append((_info("bin/busybox", tarfile.REGTYPE, 0o755, len(busybox)), busybox))
    for applet in APPLETS:
        members.append((_info(f"bin/{applet}", tarfile.SYMTYPE, 0o777, link="busybox"), None))
    members.append((_info("usr/bin/env", tarfile.SYMTYPE, 0o777, link="../../bin/busybox"),
                    None))
    for name, data in (("etc/passwd", _PASSWD), ("etc/group", _GROUP)):
        members.append((_info(name, tarfile.REGTYPE, 0o644, len(data)), data))
    return _tar_bytes(members)


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _image_archive(layer: bytes, repo: str, tag: str, arch: str) -> bytes:
    """The ``docker save`` tarball around ``layer``."""
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    run_config = {"Env": [f"PATH={_PATH}"], "Cmd": ["/bin/sh"], "WorkingDir": "/"}
    config = {
        "architecture": arch,
        "os": "linux",
        "created": _CREATED,
        "config": run_config,
        "container_config": run_config,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": _CREATED, "created_by": "supervisor.local.image"}],
    }
    config_bytes = _json_bytes(config)
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    layer_id = hashlib.sha256(f"{diff_id}\n{config_name}".encode("ascii")).hexdigest()
    layer_json = {"id": layer_id, "created": _CREATED, "architecture": arch, "os": "linux",
                  "config": run_config, "container_config": run_config}
    manifest = [{"Config": config_name, "RepoTags": [f"{repo}:{tag}"],
                 "Layers": [f"{layer_id}/layer.tar"]}]
    files: dict[str, bytes] = {
        "manifest.json": _json_bytes(manifest),
        "repositories": _json_bytes({repo: {tag: layer_id}}),
        config_name: config_bytes,
        f"{layer_id}/VERSION": b"1.0",
        f"{layer_id}/json": _json_bytes(layer_json),
        f"{layer_id}/layer.tar": layer,
    }
    members: list[tuple[tarfile.TarInfo, Optional[bytes]]] = [
        (_info(layer_id, tarfile.DIRTYPE, 0o755), None)]
    for name, data in files.items():
        members.append((_info(name, tarfile.REGTYPE, 0o644, len(data)), data))
    return _tar_bytes(members)


def build_busybox_image(dest: Path, *, tag: str = DEFAULT_TAG,
                        busybox: Path = BUSYBOX) -> Path:
    """Write a one-layer busybox image as a ``docker save`` tarball; return its path.

    ``dest`` is the tarball to write, or an existing directory to write
    ``busybox-image.tar`` into. The file is replaced atomically (a temporary
    name, then a rename). ``tag`` names the image inside the archive
    (``repo[:tag]``, default tag ``latest``). Raises ``FileNotFoundError``
    when ``busybox`` is missing and ``ValueError`` when it is dynamically
    linked (the image has no libc): both say to install ``busybox-static``.
    """
    repo, version = _split_tag(tag)
    try:
        binary = busybox.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(
            errno.ENOENT,
            f"{busybox} not found: install Debian's busybox-static "
            "(apt-get install busybox-static)", str(busybox)) from None
    if _is_dynamic_elf(binary):
        raise ValueError(f"{busybox} is dynamically linked and cannot run in an image without "
                         "libc: install busybox-static (apt-get install busybox-static)")
    archive = _image_archive(_layer(binary), repo, version, docker_arch())
    target = dest / "busybox-image.tar" if dest.is_dir() else dest
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(archive)
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, target)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    return target


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m supervisor.local.image DEST``: build the busybox image archive at DEST."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m supervisor.local.image",
                                     description="Build a tiny busybox image archive "
                                                 "(docker save format) for local containers.")
    parser.add_argument("dest", type=Path)
    parser.add_argument("--tag", default="supervisor/busybox:latest")
    args = parser.parse_args(argv)
    try:
        build_busybox_image(args.dest, tag=args.tag)
    except (OSError, ValueError) as exc:
        parser.exit(1, f"supervisor: {exc}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
