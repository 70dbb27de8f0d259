"""One build into a directory: what is out of date is built, the rest is left as it is.

The artefacts come in two units, each with the hash of its inputs recorded in
``<out>/.supervisor-build.json``: the *core* (``supervisor-layer.zip`` and
``supervisor-batch.pyz``: the builder's own files and pins, the shipped supervisor
sources, ``with_boto3``, zlib's version) and the *udocker* layer (the builder's files,
the engine files' contents and where they come from). A unit whose hash matches and
whose outputs are intact is not built again (``force`` rebuilds). Two builds into one
directory take turns (a lock file beside the stamp).
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Optional

from ..errors import BuildError
from .artefacts import build_layer, build_pyz, build_udocker_layer
from .checks import check_layer_size, check_layers_total, layer_sizes, layers_total, mb
from .debian import debian_engines, missing_debian_files, missing_text
from .engines import Engines, engine_hash
from .layout import (
    BUILDER,
    CORE_NAMES,
    LAYER_NAME,
    LAYER_NAMES,
    PACKAGE,
    PYZ_NAME,
    STAMP_NAME,
    UDOCKER_LAYER_NAME,
    Log,
)
from .staging import package_files
from .tarball import tarball_engines
from .zips import Artefact, describe, sha256_file

__all__ = ["Options", "build", "engines_for", "core_inputs", "udocker_inputs",
           "report_lines", "LOCK_NAME"]

LOCK_NAME = ".supervisor-build.lock"
_CORE, _UDOCKER = "core", "udocker"


@dataclass(frozen=True)
class Options:
    """What a build is asked for; with the files hashed by the ``*_inputs`` functions,
    everything its outputs depend on.

    ``udocker``: True builds the udocker layer (failing when its engine files are
    missing), False leaves it out, None builds it when the engine files are here (or a
    tarball is given) and says why not otherwise.
    """

    out: Path
    wheelhouse: Path
    package: Path = PACKAGE
    with_boto3: bool = False
    force: bool = False
    verify: bool = True
    udocker: Optional[bool] = None
    udocker_tarball: Optional[Path] = None
    udocker_fakechroot: Optional[str] = None

    def describe_core(self) -> dict[str, object]:
        """The options the core artefacts depend on."""
        return {"with_boto3": self.with_boto3}

    def describe_udocker(self) -> dict[str, object]:
        """The options the udocker layer depends on (the tarball by content, not place)."""
        return {"udocker_engines": "tarball" if self.udocker_tarball else "debian",
                "udocker_fakechroot": self.udocker_fakechroot}


def engines_for(options: Options, log: Log) -> Optional[Engines]:
    """The udocker layer's engine files, or None when it is not to be built."""
    if options.udocker is False:
        return None
    if options.udocker_tarball is not None:
        return tarball_engines(options.udocker_tarball, options.udocker_fakechroot)
    missing = missing_debian_files()
    if missing and options.udocker is None:
        log(f"skipped {UDOCKER_LAYER_NAME}: {missing_text(missing)} "
            "(or build it with --udocker-tarball PATH)")
        return None
    return debian_engines()


def _digest(kind: str, options: Mapping[str, object],
            files: Iterable[tuple[str, Path]]) -> "hashlib._Hash":
    digest = hashlib.sha256(kind.encode() + b"\0")
    builder = [(f"packaging/{p.relative_to(BUILDER).as_posix()}", p)
               for p in sorted(BUILDER.rglob("*"))
               if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"]
    for name, path in [*builder, *files]:
        digest.update(name.encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    digest.update(json.dumps(options, sort_keys=True).encode())
    digest.update(zlib.ZLIB_RUNTIME_VERSION.encode())  # deflate's bytes depend on it
    return digest


def core_inputs(options: Options) -> str:
    """The hash of what the layer and the pyz are made of."""
    shipped = [("supervisor/" + p.relative_to(options.package).as_posix(), p)
               for p in package_files(options.package)]
    return _digest(_CORE, options.describe_core(), shipped).hexdigest()


def udocker_inputs(options: Options, engines: Engines) -> str:
    """The hash of what the udocker layer is made of."""
    digest = _digest(_UDOCKER, options.describe_udocker(), ())
    digest.update(engine_hash(engines).encode())
    return digest.hexdigest()


def _read_stamp(out: Path) -> dict[str, Any]:
    try:
        recorded = json.loads((out / STAMP_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"units": {}, "outputs": {}}
    if not isinstance(recorded, dict) or not isinstance(recorded.get("units"), dict) \
            or not isinstance(recorded.get("outputs"), dict):
        return {"units": {}, "outputs": {}}
    return recorded


def _write_stamp(out: Path, stamp: Mapping[str, Any]) -> None:
    tmp = out / f".{STAMP_NAME}.tmp"
    tmp.write_text(json.dumps(stamp, indent=2, sort_keys=True) + "\n")
    tmp.replace(out / STAMP_NAME)


def _up_to_date(out: Path, stamp: Mapping[str, Any], unit: str, inputs: str,
                names: Iterable[str]) -> Optional[dict[str, Artefact]]:
    """The unit's recorded artefacts, when its inputs match and they are intact."""
    if stamp["units"].get(unit, {}).get("inputs") != inputs:
        return None
    found: dict[str, Artefact] = {}
    for name in names:
        info = stamp["outputs"].get(name)
        path = out / name
        if not isinstance(info, dict) or not path.is_file() \
                or sha256_file(path) != info.get("sha256"):
            return None
        found[name] = Artefact(path=path, sha256=str(info["sha256"]), size=int(info["size"]),
                               unzipped=int(info["unzipped"]))
    return found


@contextlib.contextmanager
def _locked(out: Path, log: Log) -> Iterator[None]:
    """Hold ``out``'s build lock (waiting, and saying so, while another build has it)."""
    with open(out / LOCK_NAME, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for another build into {out}")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _check_sizes(found: Mapping[str, Artefact]) -> None:
    for name in LAYER_NAMES:
        if name in found:
            check_layer_size(found[name].size, found[name].unzipped, name=name)
    if all(name in found for name in LAYER_NAMES):
        check_layers_total(sum(found[name].unzipped for name in LAYER_NAMES))


def build(options: Options, log: Log) -> dict[str, Artefact]:
    """Build into ``options.out`` what is out of date; every artefact asked for, by name."""
    try:
        options.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BuildError(f"cannot create {options.out}: {exc.strerror or exc}") from exc
    with _locked(options.out, log):
        return _build(options, log)


def _build(options: Options, log: Log) -> dict[str, Artefact]:
    out = options.out
    engines = engines_for(options, log)
    units: list[tuple[str, tuple[str, ...], str, dict[str, object]]] = [
        (_CORE, CORE_NAMES, core_inputs(options), options.describe_core())]
    if engines is not None:
        units.append((_UDOCKER, (UDOCKER_LAYER_NAME,), udocker_inputs(options, engines),
                      options.describe_udocker()))
    stamp = _read_stamp(out)
    found: dict[str, Artefact] = {}
    todo = []
    for unit, names, inputs, described in units:
        have = None if options.force else _up_to_date(out, stamp, unit, inputs, names)
        if have is None:
            todo.append((unit, names, inputs, described))
        else:
            found.update(have)
            log(f"up to date (inputs {inputs[:12]}): {', '.join(names)}; --force rebuilds")
    if not todo:
        return found
    for unit, names, _, _ in todo:  # an interrupted build leaves nothing that looks done
        stamp["units"].pop(unit, None)
        for name in names:
            stamp["outputs"].pop(name, None)
    _write_stamp(out, stamp)
    names_built = [name for _, names, _, _ in todo for name in names]
    log(f"building {', '.join(names_built)} into {out}")
    started = time.monotonic()
    built = {unit for unit, _, _, _ in todo}
    with tempfile.TemporaryDirectory(prefix="supervisor-build-") as tmp:
        stage = Path(tmp)
        if _CORE in built:
            pyz_tree = build_pyz(stage, out / PYZ_NAME, options.wheelhouse, options.package,
                                 options.verify, log)
            build_layer(stage, out / LAYER_NAME, options.wheelhouse, options.package,
                        pyz_tree, options.with_boto3, options.verify, log)
        if engines is not None and _UDOCKER in built:
            build_udocker_layer(stage, out / UDOCKER_LAYER_NAME, options.wheelhouse, engines,
                                options.verify, log)
    for _, names, _, _ in todo:
        found.update({name: describe(out / name) for name in names})
    _check_sizes(found)
    for unit, names, inputs, described in todo:
        stamp["units"][unit] = {"inputs": inputs, "options": described}
        for name in names:
            stamp["outputs"][name] = {"sha256": found[name].sha256, "size": found[name].size,
                                      "unzipped": found[name].unzipped}
    _write_stamp(out, stamp)
    log(f"built {', '.join(names_built)} in {time.monotonic() - started:.1f} s")
    return found


def report_lines(found: Mapping[str, Artefact]) -> list[str]:
    """One line per artefact with its sizes against Lambda's limits and its SHA-256."""
    lines = [f"{found[name].path}: {layer_sizes(found[name].size, found[name].unzipped)}; "
             f"sha256 {found[name].sha256}" for name in LAYER_NAMES if name in found]
    if all(name in found for name in LAYER_NAMES):
        lines.append(layers_total(sum(found[name].unzipped for name in LAYER_NAMES)))
    if PYZ_NAME in found:
        pyz = found[PYZ_NAME]
        lines.append(f"{pyz.path}: {mb(pyz.size)}; sha256 {pyz.sha256}")
    return lines
