"""Offline behaviour of storage: safe input names, output selection, keys, content types."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import pytest

from supervisor.errors import StageInError, StageOutError
from supervisor.storage import (
    FALLBACK_NAME,
    Uploaded,
    content_type,
    output_key,
    safe_name,
    select_outputs,
    stage_in,
)

# --- safe_name ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("photo.jpg", "photo.jpg"),
        ("in/2024/photo.jpg", "photo.jpg"),
        ("in/dir/", "dir"),
        ("in//dir//", "dir"),
        ("my file ü.txt", "my file ü.txt"),
        ("../../etc/passwd", "passwd"),
        ("..", FALLBACK_NAME),
        ("in/..", FALLBACK_NAME),
        (".", FALLBACK_NAME),
        ("a/./", FALLBACK_NAME),
        ("", FALLBACK_NAME),
        ("/", FALLBACK_NAME),
        ("///", FALLBACK_NAME),
        ("in/.hidden", ".hidden"),
        ("in/na\0me.txt", "name.txt"),
        ("\0", FALLBACK_NAME),
        (".\0.", FALLBACK_NAME),
    ],
)
def test_safe_name_is_the_last_usable_segment(key: str, expected: str) -> None:
    assert safe_name(key) == expected


def test_safe_name_caps_long_names_at_255_bytes_keeping_the_extension() -> None:
    name = safe_name("in/" + "a" * 400 + ".tar")
    assert len(name.encode("utf-8")) == 255
    assert name.endswith(".tar") and name.startswith("aaa")


def test_safe_name_cuts_multibyte_names_on_a_character_boundary() -> None:
    name = safe_name("é" * 300 + ".csv")
    raw = name.encode("utf-8")  # would raise if a character had been split
    assert len(raw) <= 255 and name.endswith(".csv")
    assert set(name[:-4]) == {"é"}


def test_safe_name_with_a_huge_extension_is_still_capped() -> None:
    name = safe_name("x." + "b" * 400)
    assert len(name.encode("utf-8")) == 255 and "/" not in name


@pytest.mark.parametrize("key", ["../../etc/passwd", "..", "a/../..", "/abs/olute", "x/\0/..", ""])
def test_safe_name_stays_inside_the_input_dir(tmp_path: Path, key: str) -> None:
    name = safe_name(key)
    assert "/" not in name and "\0" not in name and name not in ("", ".", "..")
    assert (tmp_path / name).resolve().parent == tmp_path.resolve()


# --- select_outputs ----------------------------------------------------------


def _write(path: Path, data: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data, encoding="utf-8")
    return path


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """An output dir with nested files, and things that must never be uploaded."""
    root = tmp_path / "output"
    for rel in ["result.csv", "b.txt", "sub/deep/c.csv", "sub/d.log", "img/e.png"]:
        _write(root / rel)
    outside = _write(tmp_path / "secret.txt", "do not upload")
    secret_dir = tmp_path / "secrets"
    _write(secret_dir / "key.csv")
    (root / "link-to-secret.txt").symlink_to(outside)
    (root / "linked-dir").symlink_to(secret_dir, target_is_directory=True)
    (root / "sub" / "dangling.csv").symlink_to(tmp_path / "nowhere")
    os.mkfifo(root / "sub" / "pipe.csv")
    return root


def test_select_outputs_returns_regular_files_recursively_sorted(out: Path) -> None:
    found = select_outputs(out)
    assert [rel for _, rel in found] == [
        "b.txt", "img/e.png", "result.csv", "sub/d.log", "sub/deep/c.csv"]
    for path, rel in found:
        assert path.is_absolute() and path == out / rel


def test_select_outputs_never_returns_symlinks_fifos_or_outside_files(out: Path) -> None:
    rels = {rel for _, rel in select_outputs(out)}
    assert not rels & {"link-to-secret.txt", "linked-dir/key.csv", "sub/dangling.csv",
                       "sub/pipe.csv"}
    real_out = out.resolve()
    for path, _ in select_outputs(out):
        assert real_out in path.resolve().parents


def test_select_outputs_filters_by_any_prefix_and_any_suffix(out: Path) -> None:
    assert [rel for _, rel in select_outputs(out, suffix=[".csv"])] == [
        "result.csv", "sub/deep/c.csv"]
    assert [rel for _, rel in select_outputs(out, prefix=["sub/", "img"])] == [
        "img/e.png", "sub/d.log", "sub/deep/c.csv"]
    assert [rel for _, rel in select_outputs(out, prefix=["sub/"], suffix=[".csv", ".log"])] == [
        "sub/d.log", "sub/deep/c.csv"]
    assert select_outputs(out, prefix=["nothing"]) == []


def test_select_outputs_reads_prefixes_as_relative_paths(out: Path) -> None:
    assert [rel for _, rel in select_outputs(out, prefix=["./sub/deep", "/img"])] == [
        "img/e.png", "sub/deep/c.csv"]


def test_select_outputs_of_a_missing_dir_is_empty(tmp_path: Path) -> None:
    assert select_outputs(tmp_path / "never-made") == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root can list any directory")
def test_select_outputs_reports_an_unreadable_dir(tmp_path: Path) -> None:
    locked = tmp_path / "output" / "locked"
    _write(locked / "f.txt")
    locked.chmod(0)
    try:
        with pytest.raises(StageOutError, match="cannot list outputs"):
            select_outputs(tmp_path / "output")
    finally:
        locked.chmod(0o755)


# --- output_key --------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "rel", "expected"),
    [
        ("", "a.txt", "a.txt"),
        ("", "sub/a.txt", "sub/a.txt"),
        ("out", "a.txt", "out/a.txt"),
        ("a/b", "c/d.txt", "a/b/c/d.txt"),
        ("a/b/", "d.txt", "a/b/d.txt"),
        ("/a//b/", "/d.txt", "a/b/d.txt"),
        ("a/b", "./d.txt", "a/b/d.txt"),
        ("a/./b", "x/./y", "a/b/x/y"),
        ("a", "../y", "a/../y"),
    ],
)
def test_output_key_joins_with_single_slashes(prefix: str, rel: str, expected: str) -> None:
    key = output_key(prefix, rel)
    assert key == expected
    assert not key.startswith("/") and "//" not in key


def test_output_key_refuses_an_empty_key() -> None:
    with pytest.raises(ValueError):
        output_key("", "./")


# --- content_type / Uploaded -------------------------------------------------


@pytest.mark.parametrize(
    ("rel", "expected"),
    [
        ("a.txt", "text/plain"),
        ("dir/pic.PNG", "image/png"),
        ("data.json", "application/json"),
        ("x.csv", "text/csv"),
        ("archive.tar.gz", "application/gzip"),
        ("noext", "application/octet-stream"),
        ("weird.zzzunknown", "application/octet-stream"),
    ],
)
def test_content_type_guesses_or_falls_back_to_octet_stream(rel: str, expected: str) -> None:
    assert content_type(rel) == expected


def test_uploaded_uri() -> None:
    assert Uploaded(bucket="b", key="x/y z.txt", size=3).uri == "s3://b/x/y z.txt"


def test_an_output_dir_replaced_by_a_symlink_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "task"
    secret.mkdir()
    (secret / "function_config.yaml").write_text("secret_key: hunter2\n")
    output = tmp_path / "work" / "output"
    output.parent.mkdir()
    output.symlink_to(secret)  # the script did: rm -rf "$TMP_OUTPUT_DIR"; ln -s /var/task ...
    with pytest.raises(StageOutError, match="through a symlink; nothing is uploaded"):
        select_outputs(output)


class CutBody:
    """A streamed body that stops after ``cut`` bytes (a connection cut in the middle)."""

    def __init__(self, data: bytes, cut: Optional[int], error: bool) -> None:
        self.data, self.cut, self.error, self.pos = data, cut, error, 0

    def read(self, n: int = -1) -> bytes:
        end = len(self.data) if self.cut is None else self.cut
        if self.pos >= end:
            if self.error and self.cut is not None:
                from urllib3.exceptions import ProtocolError

                raise ProtocolError("Connection broken: IncompleteRead")
            return b""
        chunk = self.data[self.pos:end if n < 0 else min(end, self.pos + n)]
        self.pos += len(chunk)
        return chunk

    def __enter__(self) -> "CutBody":
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class CuttingS3:
    """get_object answers cut short ``cuts`` times, then whole; records each call."""

    def __init__(self, data: bytes, cuts: int, *, error: bool) -> None:
        self.data, self.cuts, self.error = data, cuts, error
        self.calls: list[dict[str, Any]] = []

    def get_object(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        cut = len(self.data) // 2 if len(self.calls) <= self.cuts else None
        return {"ContentLength": len(self.data), "ETag": '"abc"',
                "Body": CutBody(self.data, cut, self.error)}


@pytest.mark.parametrize("error", [True, False])  # a broken connection, or a short body
def test_a_cut_small_download_is_retried_pinned_to_its_etag(tmp_path: Path, error: bool) -> None:
    data = b"0123456789" * 100
    s3 = CuttingS3(data, cuts=1, error=error)
    path = stage_in(s3, bucket="b", key="in/a.txt", input_dir=tmp_path, size=len(data))
    assert path.read_bytes() == data and len(s3.calls) == 2
    assert s3.calls[1]["IfMatch"] == '"abc"'  # the same object, or a clear failure


def test_a_download_cut_every_time_fails_in_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    data = b"x" * 1000
    s3 = CuttingS3(data, cuts=10, error=True)
    with pytest.raises(StageInError, match="broke off 3 times") as info:
        stage_in(s3, bucket="b", key="in/a.txt", input_dir=tmp_path, size=len(data))
    assert "\n" not in str(info.value) and list(tmp_path.iterdir()) == []
    short = CuttingS3(data, cuts=10, error=False)
    with pytest.raises(StageInError, match="got 500 bytes, the object has 1000"):
        stage_in(short, bucket="b", key="in/a.txt", input_dir=tmp_path, size=len(data))
    assert len(short.calls) == 3 and list(tmp_path.iterdir()) == []
