"""The staging trees: the supervisor's own files, and what is cut from the vendored ones."""
from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Sequence

from ..errors import BuildError
from .layout import BOTO_SERVICES, PACKAGE, PACKAGE_EXCLUDE

__all__ = ["package_files", "copy_package", "strip_compiled", "check_pure",
           "remove_empty_dirs", "prune_boto_data"]

# Files compiled for one platform that a pure-Python artefact drops: PyYAML's libyaml
# binding (yaml/_yaml*.so) and the ``_yaml`` shim package that re-exports it. PyYAML
# falls back to its pure-Python parser and emitter (``yaml.__with_libyaml__`` False).
STRIP = (re.compile(r"^yaml/_yaml\.[^/]*\.(so|pyd)$"), re.compile(r"^_yaml/"))
COMPILED_SUFFIXES = (".so", ".pyd", ".dylib", ".dll", ".pyc", ".pyo", ".exe")


def package_files(package: Path = PACKAGE, exclude: Sequence[str] = PACKAGE_EXCLUDE
                  ) -> list[Path]:
    """The supervisor's files that go into the artefacts (sorted; no bytecode), all of
    them but the sub-packages in ``exclude``."""
    files = []
    for path in sorted(package.rglob("*")):
        rel = path.relative_to(package)
        if (not path.is_file() or "__pycache__" in rel.parts
                or path.suffix in (".pyc", ".pyo") or rel.parts[0] in exclude):
            continue
        files.append(path)
    return files


def copy_package(dest: Path, package: Path = PACKAGE) -> None:
    """Copy ``package_files`` to ``dest/supervisor/``."""
    for path in package_files(package):
        target = dest / "supervisor" / path.relative_to(package)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)


def strip_compiled(tree: Path) -> list[str]:
    """Remove the known platform files (``STRIP``), then ``check_pure``; return them."""
    removed: list[str] = []
    for path in sorted(tree.rglob("*")):
        rel = path.relative_to(tree).as_posix()
        if path.is_file() and any(rx.search(rel) for rx in STRIP):
            path.unlink()
            removed.append(rel)
    remove_empty_dirs(tree)
    check_pure(tree)
    return removed


def check_pure(tree: Path) -> None:
    """Fail on any compiled file (by suffix or ELF header) or bytecode cache in ``tree``."""
    for path in sorted(tree.rglob("*")):
        rel = path.relative_to(tree).as_posix()
        if path.name == "__pycache__":
            raise BuildError(f"{rel}: bytecode in an artefact meant for several Pythons")
        if not path.is_file():
            continue
        with path.open("rb") as fh:
            elf = fh.read(4) == b"\x7fELF"
        if elf or path.suffix in COMPILED_SUFFIXES:
            raise BuildError(f"{rel}: a compiled file in a pure-Python artefact")


def remove_empty_dirs(tree: Path) -> None:
    """Remove every directory under ``tree`` that is (or became) empty, deepest first."""
    for path in sorted(tree.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def prune_boto_data(tree: Path, services: Sequence[str] = BOTO_SERVICES) -> None:
    """Keep ``services`` (newest API version, no examples) in botocore's and boto3's data."""
    for package in ("botocore", "boto3"):
        data = tree / package / "data"
        if not data.is_dir():
            continue
        for entry in sorted(data.iterdir()):
            if entry.is_file():
                continue  # endpoints.json, partitions.json, _retry.json, sdk-default-…
            if entry.name not in services:
                shutil.rmtree(entry)
                continue
            versions = sorted(d for d in entry.iterdir() if d.is_dir())
            for old in versions[:-1]:
                shutil.rmtree(old)
            for example in entry.glob("*/examples-*.json"):
                example.unlink()
