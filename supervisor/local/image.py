"""Small container images written from scratch, as ``docker save`` tarballs.

No image registry is reachable in tests or in the local demo, so the
container runner (:mod:`supervisor.container`) is exercised with images this
module writes itself:

- :func:`build_busybox_image`: one layer holding ``/bin/busybox`` (the
  ``busybox-static`` package's binary, which needs no shared libraries), a
  symlink per applet, ``/etc/passwd`` and ``/etc/group`` with ``root``, and an
  empty ``/tmp``.
- :func:`build_glibc_image`: one layer made of the host's own dynamically
  linked ``dash`` (as ``/bin/sh``) and coreutils, each with the shared
  libraries the host's loader resolves for it, stored at the paths the loader
  reports, and the loader itself (``/lib64/ld-linux-x86-64.so.2`` on x86-64).
  It is what an execution mode that runs the image's own loader needs; a
  static busybox would run unconfined there.
- :func:`build_layered_image`: the busybox layer plus one layer per requested
  size, each holding ``/data/layer-N.bin`` of incompressible bytes derived
  from a seed (a pull benchmark's multi-layer image).

Every builder takes ``files``-style extras as ``{"/path/in/image": bytes}``
(regular files, mode 0644, parent directories added). The archive has the
classic ``docker save`` layout that ``udocker load``, ``docker load`` and
``skopeo copy docker-archive:...`` read::

    manifest.json              [{Config, RepoTags, Layers}]
    repositories               {repo: {tag: top layer id}}
    <config sha256>.json       the image config (Env PATH, Cmd /bin/sh, rootfs diff_ids)
    <layer id>/VERSION         "1.0"
    <layer id>/json            the v1 layer metadata (``parent``: the layer below)
    <layer id>/layer.tar       the file system

The output is deterministic (fixed mtimes and owners, sorted members): the
same host files always give the same bytes, hence the same sha256.
"""
from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import platform
import posixpath
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import IO, Any, Callable, Mapping, Optional, Sequence

from ..container.probe import elf_interpreter, is_static_elf

__all__ = [
    "APPLETS", "BUSYBOX", "DASH", "DEFAULT_TAG", "GLIBC_COMMANDS", "GLIBC_TAG", "LAYERED_TAG",
    "build_busybox_image", "build_glibc_image", "build_layered_image", "docker_arch",
    "elf_interpreter", "is_static_elf", "parse_ld_list", "shared_libraries",
]

DEFAULT_TAG = "supervisor/busybox:latest"
GLIBC_TAG = "supervisor/glibc:latest"
LAYERED_TAG = "supervisor/layered:latest"
BUSYBOX = Path("/bin/busybox")
"""Where Debian's ``busybox-static`` installs the binary."""
DASH = Path("/bin/dash")
"""The host shell the glibc image runs as ``/bin/sh``."""

APPLETS: tuple[str, ...] = (
    "sh", "ls", "cat", "echo", "sleep", "cp", "mkdir", "wc", "tr", "sha256sum", "env",
    "id", "touch", "test", "[", "printf", "head", "tail", "sort", "uniq", "grep", "sed",
    "awk", "date", "basename", "dirname", "rm", "mv", "find", "true", "false", "kill",
    "ps", "seq", "dd", "od", "xargs", "tee", "cut", "stat", "pwd", "chmod", "ln",
    "readlink", "md5sum", "expr", "uname", "hostname", "whoami",
)
"""Commands linked to busybox in ``/bin`` (``/usr/bin/env`` too, for shebangs)."""

GLIBC_COMMANDS: tuple[str, ...] = (
    "cat", "ls", "echo", "env", "sleep", "wc", "head", "tail", "tr", "sha256sum", "mkdir",
    "cp", "rm", "mv", "test", "true", "false", "printf", "id", "uname", "readlink", "stat",
    "sort", "touch", "basename", "dirname", "pwd", "seq",
)
"""Host commands (coreutils) copied into the glibc image's ``/bin``."""

Files = Mapping[str, bytes]
_Member = tuple[tarfile.TarInfo, Optional[bytes]]

_MTIME = 0  # every member's mtime: 1970-01-01, so the bytes never change
_CREATED = "1970-01-01T00:00:00Z"
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_GLIBC_PATH = "/usr/local/bin:/usr/bin:/bin"
_PASSWD = b"root:x:0:0:root:/root:/bin/sh\n"
_GROUP = b"root:x:0:\n"
_NSSWITCH = b"passwd: files\ngroup: files\nhosts: files dns\n"
_BASE_DIRS: tuple[tuple[str, int], ...] = (
    ("bin", 0o755), ("etc", 0o755), ("tmp", 0o1777), ("root", 0o700), ("usr", 0o755),
    ("usr/bin", 0o755), ("dev", 0o755), ("proc", 0o555), ("sys", 0o555))
_ARCHES = {
    "x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
    "armv7l": "arm", "armv6l": "arm", "i386": "386", "i686": "386",
    "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64",
}
_LD_LIST_TIMEOUT = 30.0


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


# --- ELF inspection (pure) ----------------------------------------------------------------


def parse_ld_list(text: str) -> list[str]:
    """The absolute paths in ``ld.so --list`` (or ``ldd``) output, in order.

    ``libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)`` gives the path
    after ``=>``; ``/lib64/ld-linux-x86-64.so.2 (0x...)`` gives the loader;
    the vDSO (no path) is skipped. Raises ``ValueError`` for a library the
    loader did not find.
    """
    paths: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("statically linked", "not a dynamic executable")):
            continue
        name, arrow, where = line.partition("=>")
        target = (where if arrow else name).strip()
        if target.startswith("not found"):
            raise ValueError(f"shared library {name.strip()} not found")
        target = target.split(" (0x", 1)[0].strip()
        if target.startswith("/") and target not in paths:
            paths.append(target)
    return paths


def shared_libraries(binary: Path) -> list[str]:
    """Absolute paths of every shared object ``binary`` loads, its loader included.

    Asks the binary's own interpreter (``<PT_INTERP> --list BINARY``, what
    ``ldd`` does) with a clean environment, so ``LD_LIBRARY_PATH`` cannot
    redirect it. A static binary needs none: ``[]``. Raises ``ValueError``
    when the loader fails or a library is missing.
    """
    interpreter = elf_interpreter(binary)
    if interpreter is None:
        return []
    try:
        proc = subprocess.run([interpreter, "--list", str(binary)], capture_output=True,
                              text=True, env={"LC_ALL": "C"}, timeout=_LD_LIST_TIMEOUT,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ValueError(f"cannot list the libraries of {binary}: {exc}") from exc
    if proc.returncode != 0:
        raise ValueError(f"cannot list the libraries of {binary}: "
                         f"{(proc.stderr or proc.stdout).strip()}")
    paths = parse_ld_list(proc.stdout)
    if interpreter not in paths:
        paths.append(interpreter)
    return paths


# --- tar members --------------------------------------------------------------------------


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


def _dir(name: str, mode: int = 0o755) -> _Member:
    return _info(name, tarfile.DIRTYPE, mode), None


def _file(name: str, data: bytes, mode: int = 0o644) -> _Member:
    return _info(name, tarfile.REGTYPE, mode, len(data)), data


def _symlink(name: str, target: str) -> _Member:
    return _info(name, tarfile.SYMTYPE, 0o777, link=target), None


def _member_name(path: str) -> str:
    """``/etc/x`` -> ``etc/x``; refuses names that leave the image's root."""
    name = posixpath.normpath("/" + path).lstrip("/")
    if not name or "\0" in name or path.split("/").count(".."):
        raise ValueError(f"invalid path in image: {path!r}")
    return name


def _extras(files: Optional[Files]) -> list[_Member]:
    """Extra files; one whose content starts with ``#!`` is executable (a script)."""
    return [_file(_member_name(path), bytes(data), 0o755 if bytes(data).startswith(b"#!")
                  else 0o644) for path, data in (files or {}).items()]


def _tree(members: Sequence[_Member]) -> list[_Member]:
    """``members`` with a later entry replacing an earlier one of the same name, plus a
    directory entry (0755) for every parent that has none."""
    by_name: dict[str, _Member] = {}
    for member in members:
        by_name[member[0].name] = member
    for name in list(by_name):
        parent = posixpath.dirname(name)
        while parent and parent not in by_name:
            by_name[parent] = _dir(parent)
            parent = posixpath.dirname(parent)
    return list(by_name.values())


def _write_tar(handle: IO[bytes], members: Sequence[_Member]) -> None:
    """An uncompressed tar of ``members`` (sorted by name) written to ``handle``."""
    with tarfile.open(fileobj=handle, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for info, data in sorted(members, key=lambda item: item[0].name):
            tar.addfile(info, io.BytesIO(data) if data is not None else None)


def _tar_bytes(members: Sequence[_Member]) -> bytes:
    buffer = io.BytesIO()
    _write_tar(buffer, members)
    return buffer.getvalue()


def _base_members() -> list[_Member]:
    """The directories and ``/etc`` files every image here has."""
    members = [_dir(name, mode) for name, mode in _BASE_DIRS]
    members += [_file("etc/passwd", _PASSWD), _file("etc/group", _GROUP)]
    return members


# --- layers -------------------------------------------------------------------------------


def _read_busybox(busybox: Path) -> bytes:
    try:
        binary = busybox.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(
            errno.ENOENT,
            f"{busybox} not found: install Debian's busybox-static "
            "(apt-get install busybox-static)", str(busybox)) from None
    if elf_interpreter(binary) is not None:
        raise ValueError(f"{busybox} is dynamically linked and cannot run in an image without "
                         "libc: install busybox-static (apt-get install busybox-static)")
    return binary


def _busybox_layer(busybox: bytes, files: Optional[Files] = None) -> bytes:
    """busybox, its applets, /etc, /tmp, and ``files``."""
    members = _base_members()
    members.append(_file("bin/busybox", busybox, 0o755))
    members += [_symlink(f"bin/{applet}", "busybox") for applet in APPLETS]
    members.append(_symlink("usr/bin/env", "../../bin/busybox"))
    return _tar_bytes(_tree(members + _extras(files)))


def _host_file(path: str) -> tuple[bytes, int]:
    """The bytes behind ``path`` (symlinks followed) and a normalised mode."""
    real = Path(os.path.realpath(path))
    return real.read_bytes(), 0o755 if real.stat().st_mode & 0o111 else 0o644


def _glibc_layer(shell: Path, commands: Sequence[str], files: Optional[Files]) -> bytes:
    """``shell`` as /bin/sh and /bin/dash, ``commands`` in /bin, their libraries, and files."""
    try:
        dash = shell.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, f"{shell} not found: install Debian's dash",
                                str(shell)) from None
    if elf_interpreter(dash) is None:
        raise ValueError(f"{shell} is not a dynamically linked ELF executable")
    members = _base_members()
    members += [_file("bin/sh", dash, 0o755), _file("bin/dash", dash, 0o755),
                _file("etc/nsswitch.conf", _NSSWITCH)]
    libraries = shared_libraries(shell)
    for command in commands:
        found = shutil.which(command, path=_GLIBC_PATH)
        if found is None:
            raise FileNotFoundError(errno.ENOENT, f"{command} not found in {_GLIBC_PATH}: "
                                    "install Debian's coreutils", command)
        data, mode = _host_file(found)
        members.append(_file(f"bin/{command}", data, mode))
        members.append(_symlink(f"usr/bin/{command}", f"../../bin/{command}"))
        libraries += [path for path in shared_libraries(Path(found)) if path not in libraries]
    for path in libraries:
        data, mode = _host_file(path)
        members.append(_file(_member_name(path), data, mode))
    return _tar_bytes(_tree(members + _extras(files)))


def _data_layer(number: int, size: int, seed: int) -> bytes:
    """``/data/layer-<number>.bin``: ``size`` incompressible bytes fixed by seed and number."""
    if size < 0:
        raise ValueError(f"layer size must be >= 0, not {size}")
    data = hashlib.shake_256(f"supervisor-layer:{seed}:{number}".encode("ascii")).digest(size)
    return _tar_bytes(_tree([_file(f"data/layer-{number}.bin", data)]))


# --- the docker save archive --------------------------------------------------------------


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _write_archive(handle: IO[bytes], layers: Sequence[bytes], repo: str, tag: str, arch: str,
                   path: str = _PATH) -> None:
    """The ``docker save`` tarball of ``layers`` (bottom first), written to ``handle``."""
    diff_ids = ["sha256:" + hashlib.sha256(layer).hexdigest() for layer in layers]
    run_config = {"Env": [f"PATH={path}"], "Cmd": ["/bin/sh"], "WorkingDir": "/"}
    config = {
        "architecture": arch,
        "os": "linux",
        "created": _CREATED,
        "config": run_config,
        "container_config": run_config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": _CREATED, "created_by": "supervisor.local.image"}
                    for _ in layers],
    }
    config_bytes = _json_bytes(config)
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    members: list[_Member] = [_file(config_name, config_bytes)]
    layer_ids: list[str] = []
    parent = ""
    for index, (diff_id, layer) in enumerate(zip(diff_ids, layers)):
        top = index == len(layers) - 1
        parts = ([parent] if parent else []) + [diff_id] + ([config_name] if top else [])
        layer_id = hashlib.sha256("\n".join(parts).encode("ascii")).hexdigest()
        layer_json: dict[str, Any] = {"id": layer_id, "created": _CREATED,
                                      "architecture": arch, "os": "linux"}
        if parent:
            layer_json["parent"] = parent
        if top:
            layer_json.update(config=run_config, container_config=run_config)
        members += [_dir(layer_id), _file(f"{layer_id}/VERSION", b"1.0"),
                    _file(f"{layer_id}/json", _json_bytes(layer_json)),
                    _file(f"{layer_id}/layer.tar", layer)]
        layer_ids.append(layer_id)
        parent = layer_id
    manifest = [{"Config": config_name, "RepoTags": [f"{repo}:{tag}"],
                 "Layers": [f"{layer_id}/layer.tar" for layer_id in layer_ids]}]
    members += [_file("manifest.json", _json_bytes(manifest)),
                _file("repositories", _json_bytes({repo: {tag: layer_ids[-1]}}))]
    _write_tar(handle, members)


def _write_atomically(dest: Path, default_name: str, write: Callable[[IO[bytes]], None]) -> Path:
    """Write ``dest`` (or ``dest/default_name`` when ``dest`` is a directory) through a
    temporary name and a rename; return the path written."""
    target = dest / default_name if dest.is_dir() else dest
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, target)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    return target


def _save(dest: Path, default_name: str, layers: Sequence[bytes], tag: str,
          path: str = _PATH) -> Path:
    repo, version = _split_tag(tag)
    arch = docker_arch()
    return _write_atomically(
        dest, default_name, lambda handle: _write_archive(handle, layers, repo, version, arch,
                                                          path))


# --- the builders -------------------------------------------------------------------------


def build_busybox_image(dest: Path, *, tag: str = DEFAULT_TAG, busybox: Path = BUSYBOX,
                        files: Optional[Files] = None) -> Path:
    """Write a one-layer busybox image as a ``docker save`` tarball; return its path.

    ``dest`` is the tarball to write, or an existing directory to write
    ``busybox-image.tar`` into. The file is replaced atomically (a temporary
    name, then a rename). ``tag`` names the image inside the archive
    (``repo[:tag]``, default tag ``latest``). ``files`` adds regular files
    (``{"/etc/marker": b"..."}``, mode 0644; they replace a built-in file of
    the same name). Raises ``FileNotFoundError`` when ``busybox`` is missing
    and ``ValueError`` when it is dynamically linked (the image has no libc):
    both say to install ``busybox-static``.
    """
    _split_tag(tag)
    layer = _busybox_layer(_read_busybox(busybox), files)
    return _save(dest, "busybox-image.tar", [layer], tag)


def build_glibc_image(dest: Path, *, tag: str = GLIBC_TAG, files: Optional[Files] = None,
                      shell: Path = DASH, commands: Sequence[str] = GLIBC_COMMANDS) -> Path:
    """Write a one-layer image of the host's dynamically linked binaries; return its path.

    ``shell`` (the host's ``dash``) is ``/bin/sh`` and ``/bin/dash``; each of
    ``commands`` (found in ``/usr/local/bin:/usr/bin:/bin``) is a regular file
    in ``/bin`` with a ``/usr/bin`` symlink. Every shared library the host's
    loader resolves for them is stored, symlinks followed, at the path the
    loader reports (``/lib/x86_64-linux-gnu/libc.so.6``), and the loader at
    its ``PT_INTERP`` path (``/lib64/ld-linux-x86-64.so.2``). Also
    ``/etc/passwd``, ``/etc/group``, ``/etc/nsswitch.conf``, ``/tmp`` (1777)
    and ``files``; ``PATH=/usr/local/bin:/usr/bin:/bin``. No Python. ``dest``
    as for :func:`build_busybox_image` (default name ``glibc-image.tar``).
    Raises ``FileNotFoundError`` for a missing command and ``ValueError``
    when ``shell`` is not dynamically linked or a library cannot be resolved.
    """
    _split_tag(tag)
    layer = _glibc_layer(shell, commands, files)
    return _save(dest, "glibc-image.tar", [layer], tag, _GLIBC_PATH)


def build_layered_image(dest: Path, *, tag: str = LAYERED_TAG, layer_bytes: Sequence[int],
                        seed: int = 0, busybox: Path = BUSYBOX) -> Path:
    """Write the busybox image plus one layer per entry of ``layer_bytes``; return its path.

    Layer N (1-based, above the busybox layer) holds ``/data/layer-N.bin``:
    ``layer_bytes[N-1]`` pseudo-random bytes (SHAKE-256 of ``seed`` and N:
    incompressible, the same for the same arguments, different per layer).
    ``dest`` as for :func:`build_busybox_image` (default name
    ``layered-image.tar``); the same errors, and ``ValueError`` for a
    negative size.
    """
    _split_tag(tag)
    layers = [_busybox_layer(_read_busybox(busybox))]
    layers += [_data_layer(number, size, seed) for number, size in enumerate(layer_bytes, 1)]
    return _save(dest, "layered-image.tar", layers, tag)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m supervisor.local.image DEST``: build an image archive at DEST."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m supervisor.local.image",
        description="Build a small image archive (docker save format) for local containers: "
                    "busybox (static), glibc (the host's dash and coreutils with their "
                    "libraries) or layered (busybox plus random-data layers).")
    parser.add_argument("dest", type=Path, help="the tarball to write, or a directory")
    parser.add_argument("--kind", choices=("busybox", "glibc", "layered"), default="busybox")
    parser.add_argument("--tag", help="repo[:tag] inside the archive (default: "
                        f"{DEFAULT_TAG}, {GLIBC_TAG} or {LAYERED_TAG})")
    parser.add_argument("--layer-bytes", type=int, nargs="+", default=[1 << 20],
                        metavar="N", help="layered: the size of each data layer")
    parser.add_argument("--seed", type=int, default=0, help="layered: the data's seed")
    args = parser.parse_args(argv)
    try:
        if args.kind == "glibc":
            build_glibc_image(args.dest, tag=args.tag or GLIBC_TAG)
        elif args.kind == "layered":
            build_layered_image(args.dest, tag=args.tag or LAYERED_TAG,
                                layer_bytes=args.layer_bytes, seed=args.seed)
        else:
            build_busybox_image(args.dest, tag=args.tag or DEFAULT_TAG)
    except (OSError, ValueError) as exc:
        parser.exit(1, f"supervisor: {exc}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
