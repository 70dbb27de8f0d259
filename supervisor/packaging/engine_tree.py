"""The udocker layer's ``udocker/`` tree: the engine files staged (RUNPATHs set), then run."""
from __future__ import annotations

import subprocess
from pathlib import Path

from ..errors import BuildError
from .checks import tail
from .elf import read_elf
from .engines import FAKECHROOT, GLIBC_SONAMES, PATCHELF, Engines, engine_manifest, host_machine
from .layout import Log
from .zips import FILE_MODE

__all__ = ["stage_engines", "check_engines"]


def stage_engines(engines: Engines, tree: Path, tools: Path) -> dict[str, int]:
    """Write the engine files under ``tree`` (RUNPATHs set); their zip modes by name."""
    tool = tools / "patchelf"
    modes: dict[str, int] = {}
    for f in engines.files:
        path = tree / f.name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f.data)
        path.chmod(0o755 if f.executable else FILE_MODE)
        modes[f.name] = 0o755 if f.executable else FILE_MODE
        if f.runpath is None:
            continue
        if not tool.exists():
            tools.mkdir(parents=True, exist_ok=True)
            tool.write_bytes(engines.patchelf)
            tool.chmod(0o755)
        try:
            proc = subprocess.run([str(tool), "--set-rpath", f.runpath, str(path)],
                                  capture_output=True, text=True, timeout=60)
        except OSError as exc:
            raise BuildError(f"{f.name}: cannot run patchelf to set its RUNPATH: {exc}") from None
        if proc.returncode != 0:
            raise BuildError(f"{f.name}: patchelf --set-rpath failed:\n"
                             + tail(proc.stderr + proc.stdout))
        if read_elf(path.read_bytes(), f.name).runpath != f.runpath:
            raise BuildError(f"{f.name}: patchelf did not set its RUNPATH to {f.runpath}")
    (tree / "MANIFEST.txt").write_bytes(engine_manifest(engines))
    modes["MANIFEST.txt"] = FILE_MODE
    return modes


_CLEAN_ENV = {"PATH": "/usr/bin:/bin"}


def check_engines(engines: Engines, tree: Path, log: Log) -> None:
    """Run the staged executables (``--version``) in a clean environment, as Lambda
    would run them; check that every bundled library is the one the loader maps, and
    that libfakechroot needs nothing a container image would not have."""
    fakechroot = read_elf((tree / FAKECHROOT).read_bytes(), FAKECHROOT)
    foreign = [n for n in fakechroot.needed if n not in GLIBC_SONAMES]
    if foreign:
        raise BuildError(f"{FAKECHROOT} needs {', '.join(foreign)}: it is preloaded into "
                         "the container's processes, where only glibc can be relied on")
    machine = host_machine()
    lib_dir = (tree / "lib").resolve()
    machines = {f.name: read_elf(f.data, f.origin).machine for f in engines.files
                if f.name.startswith(("bin/", "lib/"))}
    if len(set(machines.values())) > 1:
        raise BuildError("the engine files are for different machines: "
                         + ", ".join(f"{n} {m}" for n, m in sorted(machines.items())))
    for f in engines.files:
        if not f.executable:
            continue
        path = tree / f.name
        elf = read_elf(path.read_bytes(), f.name)
        if elf.machine != machine:
            log(f"udocker layer: {f.name} is {elf.machine}, this machine {machine}: not run")
            continue
        proc = subprocess.run([str(path), "--version"], env=_CLEAN_ENV, cwd=tree,
                              capture_output=True, text=True, timeout=60)
        if proc.returncode != 0 or (f.name == PATCHELF
                                    and not proc.stdout.startswith("patchelf")):
            raise BuildError(f"{f.name} --version failed in a clean environment:\n"
                             + tail(proc.stderr + proc.stdout))
        bundled = [n for n in elf.needed if (tree / "lib" / n).is_file()]
        if not bundled:
            continue
        proc = subprocess.run([str(path)], env=dict(_CLEAN_ENV, LD_TRACE_LOADED_OBJECTS="1"),
                              cwd=tree, capture_output=True, text=True, timeout=60)
        mapped = {}
        for line in proc.stdout.splitlines():
            soname, sep, rest = line.strip().partition(" => ")
            if sep:
                mapped[soname] = rest.rsplit(" (", 1)[0].strip()
        wrong = [f"{n} => {mapped.get(n, 'not loaded')}" for n in bundled
                 if n not in mapped or Path(mapped[n]).resolve().parent != lib_dir]
        if wrong:
            raise BuildError(f"{f.name} does not load the libraries beside it: "
                             + "; ".join(wrong))

