"""Where deploy and local find their artefacts: given paths, else the per-user cache.

Nothing here builds: every artefact a function needs is given, or the test asks only
where the cache is.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from supervisor import __version__
from supervisor.config import FunctionConfig, from_fdl
from supervisor.errors import BuildError
from supervisor.packaging import artefacts_for, cache_dir, cache_root, wheelhouse
from supervisor.packaging.cache import sources_hash

ROOT = Path(__file__).resolve().parents[2]
FDL = """\
functions:
  aws:
  - lambda:
      name: {name}
      init_script: run.sh
      execution_mode: {mode}
      container: {{image: busybox, run_on_host: {on_host}}}
      input: [{{storage_provider: s3, path: {name}/in}}]
      output: [{{storage_provider: s3, path: {name}/out}}]
"""


def configs(tmp_path: Path, *, mode: str = "lambda", on_host: bool = True
            ) -> list[FunctionConfig]:
    (tmp_path / "run.sh").write_text("echo hi\n")
    fdl = tmp_path / "fn.yaml"
    fdl.write_text(FDL.format(name="fn", mode=mode, on_host=str(on_host).lower()))
    return from_fdl(fdl)


def never(line: str) -> None:
    raise AssertionError(f"nothing should be built or said: {line}")


def test_the_cache_is_xdg_cache_home_else_home_dot_cache() -> None:
    assert cache_root({"XDG_CACHE_HOME": "/x/cache", "HOME": "/h"}) == Path("/x/cache/supervisor")
    assert cache_root({"HOME": "/h"}) == Path("/h/.cache/supervisor")
    assert cache_root({"XDG_CACHE_HOME": "relative", "HOME": "/h"}) == Path(
        "/h/.cache/supervisor")  # the XDG spec ignores a relative path
    assert wheelhouse({"HOME": "/h"}) == Path("/h/.cache/supervisor/wheels")
    with pytest.raises(BuildError, match="set XDG_CACHE_HOME or HOME"):
        cache_root({})


def test_the_cache_directory_is_per_version_and_per_package_sources(tmp_path: Path) -> None:
    package = tmp_path / "supervisor"
    shutil.copytree(ROOT / "supervisor", package, ignore=shutil.ignore_patterns("__pycache__"))
    environ = {"HOME": "/h"}
    first = cache_dir(environ, package)
    assert first.parent == Path("/h/.cache/supervisor")
    assert first.name == f"{__version__}-{sources_hash(package)[:16]}"
    assert cache_dir(environ, package) == first
    (package / "packaging" / "pins" / "udocker-layer.txt").write_text("udocker==9.9.9\n")
    assert cache_dir(environ, package) != first  # an edited package builds anew
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "x.pyc").write_bytes(b"\0")
    second = cache_dir(environ, package)
    assert cache_dir(environ, package) == second  # bytecode is no source


def test_given_artefacts_are_used_as_they_are(tmp_path: Path) -> None:
    layer, pyz, udocker = (tmp_path / n for n in ("l.zip", "b.pyz", "u.zip"))
    found = artefacts_for(configs(tmp_path, mode="lambda-batch", on_host=False),
                          environ={}, log=never, layer_zip=layer, batch_pyz=pyz,
                          udocker_layer_zip=udocker)
    assert (found.layer_zip, found.batch_pyz, found.udocker_layer_zip) == (layer, pyz, udocker)


def test_a_udocker_layer_beside_the_given_layer_is_taken(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "udocker-layer.zip").write_bytes(b"PK")
    found = artefacts_for(configs(tmp_path, on_host=False), environ={}, log=never,
                          layer_zip=dist / "supervisor-layer.zip")
    assert found.udocker_layer_zip == dist / "udocker-layer.zip"


def test_what_no_function_needs_is_not_built(tmp_path: Path) -> None:
    """A host-run lambda function needs neither the pyz nor the udocker layer."""
    layer = tmp_path / "l.zip"
    found = artefacts_for(configs(tmp_path), environ={}, log=never, layer_zip=layer)
    assert found.layer_zip == layer
    assert not found.batch_pyz.exists() and not found.udocker_layer_zip.exists()
