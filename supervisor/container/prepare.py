"""Make a spec's container ready to run: image, container, execution mode, launch template.

Once per sandbox (and per image and mode): the image is had (pulled from its
registry, or loaded from its archive), a container is created from it and
set to the execution mode, and its launch command is recorded. That is kept
in a marker file, ``<udocker dir>/supervisor/<id>.<mode>.json``, and in
memory, so a warm call costs the tag's one manifest request (none for a
digest or an archive already hashed) and no process. An exclusive lock in the
udocker dir keeps concurrent callers from building the same container twice;
a build cut off half-way is redone.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Optional

from ..errors import ImageError
from ..runner import DEFAULT_PATH
from ..watchdog import Deadline
from . import udocker
from .launch import LaunchTemplate, RecordingError, parse_recording
from .probe import elf_kind, ptrace_allowed, resolve_in_root
from .pull import pull
from .spec import ContainerSpec
from .store import ImageStore

__all__ = ["Ready", "prepare", "image_digest", "container_name", "HOST_BINDS"]

HOST_BINDS: tuple[str, ...] = ("/dev", "/proc", "/etc/resolv.conf", "/etc/hosts")
"""Host paths a PRoot container sees (each only if it exists on the host)."""

_NAME_PREFIX = "supervisor-"
_HASH_CHUNK = 1024 * 1024
Clock = Callable[[], float]


@dataclass(frozen=True)
class Ready:
    """A container that can run: its udocker name and launch template."""

    name: str
    template: LaunchTemplate
    root: Path  # the container's root file system on the host


_digest_cache: dict[tuple[str, int, int, int, int], str] = {}
_ready_cache: dict[tuple[str, str, str], Ready] = {}
_cache_lock = threading.Lock()


def image_digest(image_file: Path) -> str:
    """The sha256 (hex) of ``image_file``; remembered per file identity and mtime."""
    try:
        path = image_file.resolve()
        st = path.stat()
        key = (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        with _cache_lock:
            cached = _digest_cache.get(key)
        if cached is not None:
            return cached
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(_HASH_CHUNK), b""):
                digest.update(chunk)
    except OSError as exc:
        raise ImageError(f"cannot read the container image file {image_file}: "
                         f"{exc.strerror or exc}") from exc
    value = digest.hexdigest()
    with _cache_lock:
        _digest_cache[key] = value
    return value


def container_name(key: str) -> str:
    """The udocker container name for the image with id ``key`` (hex)."""
    return _NAME_PREFIX + key[:32]


def _check_sandbox(spec: ContainerSpec) -> None:
    """Refuse a mode this sandbox cannot run, before anything is pulled or started."""
    settings = spec.settings
    if spec.uses_proot:
        if settings.proot is None or not settings.proot.is_file():
            raise ImageError(f"container image {spec.image}: proot not found at "
                             f"{settings.proot or '/usr/bin/proot'} (apt-get install proot, "
                             f"or add the udocker layer), needed by execmode {spec.execmode}")
        if not ptrace_allowed():
            raise ImageError(f"container image {spec.image}: execmode {spec.execmode} (PRoot) "
                             "needs ptrace, which this sandbox forbids (as AWS Lambda does); "
                             "use container.execmode F1 or auto")
    elif settings.tools_tarball is None and (settings.fakechroot_so is None
                                             or not settings.fakechroot_so.is_file()):
        raise ImageError(f"container image {spec.image}: execmode {spec.execmode} (Fakechroot) "
                         "needs libfakechroot.so: add the udocker layer, set "
                         "SUPERVISOR_FAKECHROOT_SO, or apt-get install libfakechroot")


def prepare(spec: ContainerSpec, *, host_env: Optional[Mapping[str, str]] = None,
            deadline: Optional[Deadline] = None, clock: Clock = time.monotonic) -> Ready:
    """Have the spec's container ready; see the module docstring.

    Raises :class:`~supervisor.errors.ImageError` (one line naming the image
    as configured) when the image cannot be had or run here, and
    :class:`~supervisor.errors.ScriptTimeout` when ``deadline`` passes first
    (what was pulled so far stays for the next call).
    """
    deadline = deadline or Deadline.none()
    host_env = host_env or {}
    _check_sandbox(spec)
    store = ImageStore(spec.udocker_dir)
    if spec.reference is not None:
        pulled = pull(spec.reference, store, deadline, clock=clock, label=spec.image,
                      insecure=spec.insecure)
        key, source = pulled.key, (lambda: store.write_repo(pulled))
    elif spec.image_file is not None:
        image_file = spec.image_file
        key = image_digest(image_file)[:32]
        source = None
    else:
        raise ImageError(f"container image {spec.image}: the archive must be fetched first")
    name = container_name(key)
    cache_key = (str(spec.udocker_dir), name, spec.execmode)
    with _cache_lock:
        ready = _ready_cache.get(cache_key)
    if ready is not None and ready.root.is_dir():
        return ready
    marker = spec.state_dir / f"{key}.{spec.execmode}.json"
    ready = _read_marker(marker, spec, name)
    if ready is None:
        try:
            spec.state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ImageError(f"container image {spec.image}: cannot create the udocker dir "
                             f"{spec.udocker_dir}: {exc.strerror or exc}") from None
        with udocker.locked(spec.state_dir / "lock", deadline, clock):
            ready = _read_marker(marker, spec, name)
            if ready is None:
                try:
                    udocker.install_wrappers(spec, host_env.get("PATH") or DEFAULT_PATH)
                    env = udocker.udocker_env(spec, tmp_dir=_tmp_dir(spec), host_env=host_env)
                    ready = _build(spec, name, key, source, marker, env=env,
                                   deadline=deadline, clock=clock)
                except OSError as exc:  # a full or read-only /tmp, mostly
                    raise ImageError(f"container image {spec.image}: cannot set it up in "
                                     f"{spec.udocker_dir}: {exc.strerror or exc}") from None
    with _cache_lock:
        _ready_cache[cache_key] = ready
    return ready


def _tmp_dir(spec: ContainerSpec) -> Path:
    path = spec.state_dir / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _container_root(spec: ContainerSpec, name: str) -> Path:
    # udocker's layout: containers/<name> is a symlink to the container's dir.
    return spec.udocker_dir / "containers" / name / "ROOT"


def _read_marker(marker: Path, spec: ContainerSpec, name: str) -> Optional[Ready]:
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
        template = LaunchTemplate.from_json(data["template"])
        if data["name"] != name or data["execmode"] != spec.execmode:
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    root = _container_root(spec, name)
    if not root.is_dir() or (spec.uses_proot and not os.access(template.argv[0], os.X_OK)):
        return None
    return Ready(name=name, template=template, root=root)


def sandbox_dirs(spec: ContainerSpec) -> tuple[Path, Path]:
    """The ``/tmp`` and ``/dev/shm`` a PRoot container sees (emptied before each run)."""
    base = spec.state_dir / "sandbox"
    return base / "tmp", base / "shm"


def _build(spec: ContainerSpec, name: str, key: str, source: Optional[Callable[[], str]],
           marker: Path, *, env: Mapping[str, str], deadline: Deadline,
           clock: Clock) -> Ready:
    """Create the container (or only switch its mode) and record its launch command."""
    def run(*args: str) -> str:
        return udocker.call(spec, args, env=env, deadline=deadline, clock=clock)

    marker.unlink(missing_ok=True)
    root = _container_root(spec, name)
    if not root.is_dir():
        link = spec.udocker_dir / "containers" / name
        if link.is_symlink() and not link.exists():
            link.unlink()  # leftovers of an attempt killed half-way (a Lambda timeout)
        elif link.exists():
            run("rm", "-f", name)
        image = source() if source is not None else _load_archive(spec, key, run)
        run("create", f"--name={name}", image)
    run("setup", f"--execmode={spec.execmode}", name)
    if not spec.uses_proot:
        _refuse_static_shell(spec, root)
    template = _record(spec, name, env=env, deadline=deadline, clock=clock)
    text = json.dumps({"name": name, "execmode": spec.execmode, "image": spec.image,
                       "template": template.to_json()}, sort_keys=True)
    udocker.write_if_changed(marker, text + "\n", 0o644)
    return Ready(name=name, template=template, root=root)


def _load_archive(spec: ContainerSpec, key: str, run: Callable[..., str]) -> str:
    """``udocker load`` the spec's archive; the image name it got."""
    assert spec.image_file is not None
    repo = f"supervisor-image/{key}"
    for line in run("images").splitlines():
        ref = line.split()[0] if line.split() else ""
        if ref.startswith(repo + ":"):
            run("rmi", "-f", ref)
    loaded = run("load", f"--input={os.path.abspath(spec.image_file)}", repo)
    images = [line.strip() for line in loaded.splitlines() if line.strip().startswith(repo + ":")]
    if not images:
        raise ImageError(f"container image {spec.image}: udocker load found no image in it")
    return images[0]


def _refuse_static_shell(spec: ContainerSpec, root: Path) -> None:
    shell = resolve_in_root(root, "/bin/sh")
    if shell is None:
        raise ImageError(f"container image {spec.image}: it has no /bin/sh to run the script")
    if elf_kind(shell) == "static":
        raise ImageError(
            f"container image {spec.image}: its /bin/sh is statically linked, and Fakechroot "
            f"(execmode {spec.execmode}, what runs where ptrace is forbidden, as on AWS "
            "Lambda) cannot confine a static program (it would run on the host); use an image "
            "whose /bin/sh is dynamically linked")


def _record(spec: ContainerSpec, name: str, *, env: Mapping[str, str], deadline: Deadline,
            clock: Clock) -> LaunchTemplate:
    """Run ``udocker run`` once with the recording marker: the engine command it builds."""
    runs = spec.runs_dir
    runs.mkdir(parents=True, exist_ok=True)
    args = ["--quiet", "run", "--nobanner", "--nosysdirs", "--entrypoint="]
    if spec.uses_proot:
        args.append(f"--workdir={runs}")
        tmp, shm = sandbox_dirs(spec)
        for directory in (tmp, shm):
            directory.mkdir(parents=True, exist_ok=True)
            directory.chmod(0o1777)
        binds = [p for p in HOST_BINDS if os.path.exists(p)]
        args += [f"--volume={p}" for p in binds]
        args += [f"--volume={runs}:{runs}", f"--volume={tmp}:/tmp"]
        if os.path.isdir("/dev/shm"):
            args.append(f"--volume={shm}:/dev/shm")
    else:
        # Fakechroot: the runs dir stays at its host path (Debian's libfakechroot has no
        # bind mounts); the process's cwd is the work dir, set per run.
        args.append(f"--env=FAKECHROOT_EXCLUDE_PATH={runs}:/dev:/proc")
    with udocker.scratch(spec) as scratch_dir:
        out = scratch_dir / "launch"
        sentinel = f"{udocker.SENTINEL}{out}"
        udocker.call(spec, [*args, name, "/bin/sh", sentinel], env=env, deadline=deadline,
                     clock=clock, check=False)
        try:
            argv_bytes = out.with_name("launch.argv").read_bytes()
            env_bytes = out.with_name("launch.env").read_bytes()
        except OSError:
            raise ImageError(f"container image {spec.image}: udocker run (execmode "
                             f"{spec.execmode}) never started its engine") from None
        try:
            template = parse_recording("proot" if spec.uses_proot else "fakechroot",
                                       argv_bytes, env_bytes, sentinel=sentinel,
                                       workdir=str(runs))
        except RecordingError as exc:
            raise ImageError(f"container image {spec.image}: {exc}") from None
        kept: dict[str, str] = {}
        tmp = _tmp_dir(spec)
        for copy in sorted(out.with_name("launch.kept").glob("udocker-*")):
            dest = spec.state_dir / f"{name}.{spec.execmode}.{copy.name.rsplit('-', 1)[-1]}"
            shutil.copyfile(copy, dest)
            kept[str(tmp / copy.name)] = str(dest)
        return template.with_files(kept)

