"""The three builds: stage a tree, prune it, check it, write it as a reproducible zip."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import BuildError
from .checks import LAYER_CHECK, PYZ_CHECK, UDOCKER_CHECK, check_pyz_runs, run_check
from .closure import prune_modules, supervisor_imports
from .elf import glibc_text, read_elf
from .engine_tree import check_engines, stage_engines
from .engines import ENGINE_DIR, FAKECHROOT, Engines, lambda_glibc_shortfalls
from .layout import (
    LAYER_BOTO3_REQUIREMENTS,
    LAYER_REQUIREMENTS,
    LAYER_TARGET,
    PRUNED_PACKAGES,
    PYZ_MAIN,
    PYZ_REQUIREMENTS,
    PYZ_TARGET,
    RUNTIME_PROVIDED,
    UDOCKER_REQUIREMENTS,
    Log,
)
from .pins import read_pins
from .staging import check_pure, copy_package, prune_boto_data, strip_compiled
from .wheels import fetch_wheels, unpack_wheel
from .zips import SHEBANG, payload_id, tree_entries, write_zip

__all__ = ["build_pyz", "build_layer", "build_udocker_layer"]


def build_pyz(stage: Path, dest: Path, wheelhouse: Path, package: Path, verify: bool,
              log: Log) -> Path:
    """Stage and write ``supervisor-batch.pyz``; returns the staged tree."""
    tree = stage / "pyz"
    tree.mkdir()
    for wheel in fetch_wheels(read_pins(PYZ_REQUIREMENTS), PYZ_TARGET, wheelhouse, log):
        unpack_wheel(wheel, tree)
    prune_boto_data(tree)
    copy_package(tree, package)
    removed = strip_compiled(tree)
    log(f"pyz: {len(removed)} compiled file(s) removed: {', '.join(removed) or 'none'}")
    if verify:
        run_check(PYZ_CHECK, str(tree))
    check_pure(tree)
    entries = tree_entries(tree)
    build_id = payload_id(entries)
    main = PYZ_MAIN.read_text(encoding="utf-8")
    if main.count('"@BUILD_ID@"') != 1:
        raise BuildError(f"{PYZ_MAIN.name} has no BUILD_ID placeholder")
    main = main.replace('"@BUILD_ID@"', f'"{build_id}"')
    write_zip(dest, entries, extra={"__main__.py": main.encode("utf-8")}, head=SHEBANG,
              mode=0o755)
    if verify:
        check_pyz_runs(dest)
    return tree


def build_layer(stage: Path, dest: Path, wheelhouse: Path, package: Path,
                runtime_from: Path, with_boto3: bool, verify: bool, log: Log) -> list[str]:
    """Stage and write ``supervisor-layer.zip``; returns the powertools modules kept.

    ``runtime_from`` holds a boto3 (the pyz's staged tree) that stands for the managed
    runtime's in the check.
    """
    tree = stage / "layer"
    site = tree / "python"
    site.mkdir(parents=True)
    pins = read_pins(LAYER_REQUIREMENTS)
    if with_boto3:
        pins += read_pins(LAYER_BOTO3_REQUIREMENTS)
    for wheel in fetch_wheels(pins, LAYER_TARGET, wheelhouse, log):
        unpack_wheel(wheel, site)
    copy_package(site, package)
    removed = strip_compiled(site)
    log(f"layer: {len(removed)} compiled file(s) removed: {', '.join(removed) or 'none'}")
    available = {p.name[:-3] if p.name.endswith(".py") else p.name for p in site.iterdir()}
    available |= set(RUNTIME_PROVIDED)
    kept: list[str] = []
    for pruned in PRUNED_PACKAGES:
        roots = supervisor_imports(pruned, package)
        modules = prune_modules(site, pruned, roots, available)
        kept += modules
        log(f"layer: {pruned}: kept the {len(modules)} module(s) that the supervisor's "
            f"{len(roots)} import(s) of it need")
    if verify:
        # The runtime's boto3, simulated by the pyz's copy (it comes after the layer).
        runtime = stage / "runtime"
        runtime.mkdir()
        for name in RUNTIME_PROVIDED:
            for src in (runtime_from / name, runtime_from / f"{name}.py"):
                if src.exists():
                    (runtime / src.name).symlink_to(src)
        run_check(LAYER_CHECK, str(site), str(runtime), json.dumps(kept))
    check_pure(site)
    write_zip(dest, tree_entries(site, "python/"))
    return kept


def build_udocker_layer(stage: Path, dest: Path, wheelhouse: Path, engines: Engines,
                        verify: bool, log: Log) -> None:
    """Stage and write ``udocker-layer.zip``: ``python/udocker``, ``udocker/`` engines."""
    tree = stage / "udocker-layer"
    site = tree / "python"
    site.mkdir(parents=True)
    pins = read_pins(UDOCKER_REQUIREMENTS)
    for wheel in fetch_wheels(pins, LAYER_TARGET, wheelhouse, log):
        unpack_wheel(wheel, site)
    check_pure(site)
    modes = stage_engines(engines, tree / ENGINE_DIR, stage / "udocker-tools")
    if verify:
        version = next(p.version for p in pins if p.key == "udocker")
        run_check(UDOCKER_CHECK, str(site), version)
        check_engines(engines, tree / ENGINE_DIR, log)
    for f in engines.files:
        if f.runpath:
            log(f"udocker layer: {f.name}: RUNPATH {f.runpath} (the libraries beside it)")
    shortfalls = lambda_glibc_shortfalls(engines)
    for line in shortfalls:
        log(f"udocker layer: warning: needing a newer glibc than Lambda's {line}")
    if shortfalls:
        log("udocker layer: warning: these engines are for this machine; for Lambda, build "
            "with supervisor build --udocker-tarball (udockertools' statically linked "
            "engines)")
    fakechroot = read_elf(next(f.data for f in engines.files if f.name == FAKECHROOT),
                          FAKECHROOT)
    log(f"udocker layer: engines from {engines.source}; {FAKECHROOT} needs a container "
        f"image with glibc >= {glibc_text(fakechroot.glibc)}")
    write_zip(dest, tree_entries(tree),
              modes={f"{ENGINE_DIR}/{name}": mode for name, mode in modes.items()})
