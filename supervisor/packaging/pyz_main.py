"""``__main__`` of ``supervisor-batch.pyz``: unpack the vendored packages once, then run.

The builder (:mod:`supervisor.packaging`) copies this file into the archive as
``__main__.py`` and fills in ``BUILD_ID`` (the SHA-256 of everything else in the
archive). It runs on any
``python3`` >= 3.9 with the standard library only, so it must stay 3.9 syntax.

Why unpack: Python imports pure-Python modules from a zip, but botocore reads its
service models with ``os.listdir``/``open`` under its package directory and hands
``cacert.pem`` to OpenSSL by path; neither works inside a zip. So the archive's
packages are extracted, once per build, into a cache directory that is never beside
the archive (job hosts mount it read-only):

1. ``$SUPERVISOR_CACHE_DIR``, when set;
2. ``${XDG_CACHE_HOME:-$HOME/.cache}/supervisor-batch``;
3. ``<system temp dir>/supervisor-batch-<uid>`` (private to the user: 0700, owned),

the first one that is usable, in a sub-directory named after ``BUILD_ID``. A new
build unpacks beside the old one; two jobs starting at once each unpack into a
temporary directory and ``os.rename`` it into place: the loser uses the winner's.
Nothing is written to ``os.environ``: the script the supervisor runs sees the job's
environment as it was.
"""
from __future__ import annotations

import os
import sys
from typing import Mapping

BUILD_ID = "@BUILD_ID@"
CACHE_ENV = "SUPERVISOR_CACHE_DIR"
PROG = "supervisor-batch"
MARKER = ".supervisor-batch-complete"
EX_SOFTWARE = 70  # supervisor-batch's exit code for an internal failure


def archive_path() -> str:
    """The ``.pyz`` this module was loaded from."""
    return os.path.dirname(os.path.abspath(__file__))


def cache_roots(environ: Mapping[str, str]) -> list[tuple[str, bool]]:
    """Candidate cache roots, best first, each with whether it must be private to us."""
    roots: list[tuple[str, bool]] = []
    explicit = environ.get(CACHE_ENV, "")
    if explicit:
        roots.append((explicit, False))
    base = environ.get("XDG_CACHE_HOME", "")
    if not base and environ.get("HOME", ""):
        base = os.path.join(environ["HOME"], ".cache")
    if base:
        roots.append((os.path.join(base, PROG), False))
    import tempfile

    roots.append((os.path.join(tempfile.gettempdir(), "%s-%d" % (PROG, os.getuid())), True))
    return roots


def _usable_root(root: str, private: bool) -> None:
    """Create ``root``; raise OSError when it cannot (or, if private, must not) be used."""
    os.makedirs(root, mode=0o700, exist_ok=True)
    if private:  # in a shared temp dir: only a directory of ours that no one else can write
        info = os.lstat(root)
        import stat

        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() \
                or info.st_mode & 0o022:
            raise OSError("%s is not a private directory of uid %d" % (root, os.getuid()))
    if not os.access(root, os.W_OK | os.X_OK):
        raise OSError("%s is not writable" % root)


def _extract(archive: str, root: str) -> str:
    """Unpack the archive under ``root`` (atomically); return the unpacked directory."""
    import shutil
    import tempfile
    import zipfile

    target = os.path.join(root, BUILD_ID[:32])
    for _ in range(3):
        if os.path.isfile(os.path.join(target, MARKER)):
            return target
        tmp = tempfile.mkdtemp(prefix=".unpack-", dir=root)
        try:
            with zipfile.ZipFile(archive) as zf:
                members = [name for name in zf.namelist() if name != "__main__.py"]
                zf.extractall(tmp, members)
            with open(os.path.join(tmp, MARKER), "w") as out:
                out.write(BUILD_ID + "\n")
            os.chmod(tmp, 0o755)
            try:
                os.rename(tmp, target)  # atomic; fails when another job got there first
                return target
            except OSError:
                if not os.path.isfile(os.path.join(target, MARKER)):
                    # not a complete tree (damaged by a cleaner?): move it aside, retry
                    aside = tempfile.mkdtemp(prefix=".stale-", dir=root)
                    try:
                        os.rename(target, os.path.join(aside, "tree"))
                    except OSError:
                        pass
                    shutil.rmtree(aside, ignore_errors=True)
        finally:
            if os.path.isdir(tmp):
                shutil.rmtree(tmp, ignore_errors=True)
    if os.path.isfile(os.path.join(target, MARKER)):
        return target
    raise OSError("could not unpack into %s" % target)


def unpack(archive: str, environ: Mapping[str, str]) -> str:
    """The directory holding the archive's packages, unpacked in the first usable root."""
    problems: list[str] = []
    for root, private in cache_roots(environ):
        try:
            _usable_root(root, private)
            return _extract(archive, root)
        except OSError as exc:
            problems.append("%s: %s" % (root, exc))
    raise OSError("no usable cache directory to unpack into (set %s): %s"
                  % (CACHE_ENV, "; ".join(problems)))


def main() -> None:
    """Unpack (once), put the unpacked tree first on ``sys.path``, run supervisor-batch."""
    archive = archive_path()
    try:
        packages = unpack(archive, dict(os.environ))
    except OSError as exc:
        sys.stderr.write("%s: %s\n" % (PROG, " ".join(str(exc).split())))
        raise SystemExit(EX_SOFTWARE) from None
    # The unpacked tree replaces the archive on sys.path and comes before everything else.
    sys.path[:] = [packages] + [p for p in sys.path if os.path.abspath(p) != archive]
    from supervisor.batch_entry import console_main

    console_main()


if __name__ == "__main__":
    main()
