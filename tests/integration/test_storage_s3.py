"""stage_in / stage_out against the moto server over HTTP."""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

import pytest

from supervisor.aws import ClientFactory
from supervisor.config import StoragePath
from supervisor.errors import StageInError, StageOutError
from supervisor.storage import Uploaded, stage_in, stage_out

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


def _blob(size: int) -> bytes:
    """``size`` bytes that differ from block to block, so a misplaced range shows."""
    block = hashlib.sha256(str(size).encode()).digest() * (MiB // 32)
    return b"".join(bytes([i % 251]) + block[1:] for i in range(size // MiB + 1))[:size]


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.fixture
def input_dir(tmp_path: Path) -> Path:
    path = tmp_path / "input"
    path.mkdir()
    return path


# --- stage_in ----------------------------------------------------------------


def test_stage_in_downloads_the_object_to_its_safe_name(s3: Any, bucket: str,
                                                        input_dir: Path) -> None:
    s3.put_object(Bucket=bucket, Key="in/data.csv", Body=b"a,b\n1,2\n")
    path = stage_in(s3, bucket=bucket, key="in/data.csv", input_dir=input_dir)
    assert path == input_dir / "data.csv"
    assert path.read_bytes() == b"a,b\n1,2\n"
    assert _leftovers(input_dir) == ["data.csv"]


def test_stage_in_streams_a_large_object_in_ranges_intact(s3: Any, bucket: str,
                                                          input_dir: Path) -> None:
    data = _blob(20 * MiB + 123)
    s3.put_object(Bucket=bucket, Key="big.bin", Body=data)
    ranges: list[str] = []

    def record_range(params: dict[str, Any], **_: Any) -> None:
        ranges.append(params.get("Range", ""))

    s3.meta.events.register("provide-client-params.s3.GetObject", record_range)
    path = stage_in(s3, bucket=bucket, key="big.bin", input_dir=input_dir)
    assert len(ranges) == 3 and all(r.startswith("bytes=") for r in ranges)  # 8 MiB parts
    assert path.stat().st_size == len(data)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()
    assert _leftovers(input_dir) == ["big.bin"]


def test_stage_in_handles_spaces_and_non_ascii_keys(s3: Any, bucket: str,
                                                    input_dir: Path) -> None:
    key = "in/my folder/résumé 2024 ✓.txt"
    s3.put_object(Bucket=bucket, Key=key, Body="ünïcode".encode())
    path = stage_in(s3, bucket=bucket, key=key, input_dir=input_dir)
    assert path.name == "résumé 2024 ✓.txt"
    assert path.read_text(encoding="utf-8") == "ünïcode"


def test_stage_in_of_a_missing_key_fails_and_leaves_nothing(s3: Any, bucket: str,
                                                            input_dir: Path) -> None:
    with pytest.raises(StageInError) as err:
        stage_in(s3, bucket=bucket, key="in/missing.txt", input_dir=input_dir)
    message = str(err.value)
    assert f"s3://{bucket}/in/missing.txt" in message and "does not exist" in message
    assert "\n" not in message
    assert _leftovers(input_dir) == []


def test_stage_in_of_a_missing_bucket_fails(s3: Any, input_dir: Path) -> None:
    with pytest.raises(StageInError, match="does not exist"):
        stage_in(s3, bucket="no-such-bucket-here", key="k", input_dir=input_dir)
    assert _leftovers(input_dir) == []


def test_stage_in_of_a_small_object_is_one_get_without_head(s3: Any, bucket: str,
                                                             input_dir: Path) -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    first = s3.put_object(Bucket=bucket, Key="in/small.txt", Body=b"v1")["VersionId"]
    s3.put_object(Bucket=bucket, Key="in/small.txt", Body=b"version two")
    calls: list[str] = []
    s3.meta.events.register("before-call.s3.*",
                            lambda model, **_: calls.append(model.name))
    path = stage_in(s3, bucket=bucket, key="in/small.txt", input_dir=input_dir,
                    version_id=first, size=2)
    assert path.read_bytes() == b"v1" and calls == ["GetObject"]
    with pytest.raises(StageInError) as err:
        stage_in(s3, bucket=bucket, key="in/gone.txt", input_dir=input_dir, size=5)
    assert "does not exist" in str(err.value)
    assert _leftovers(input_dir) == ["small.txt"]


def test_stage_in_fetches_the_requested_version(s3: Any, bucket: str, input_dir: Path) -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    first = s3.put_object(Bucket=bucket, Key="doc.txt", Body=b"first")["VersionId"]
    s3.put_object(Bucket=bucket, Key="doc.txt", Body=b"second, longer")
    path = stage_in(s3, bucket=bucket, key="doc.txt", input_dir=input_dir, version_id=first)
    assert path.read_bytes() == b"first"
    latest = stage_in(s3, bucket=bucket, key="doc.txt", input_dir=input_dir)
    assert latest.read_bytes() == b"second, longer"
    assert _leftovers(input_dir) == ["doc.txt"]


def test_stage_in_into_a_missing_dir_is_a_stage_in_error(s3: Any, bucket: str,
                                                         tmp_path: Path) -> None:
    s3.put_object(Bucket=bucket, Key="k.txt", Body=b"x")
    with pytest.raises(StageInError, match="No such file or directory"):
        stage_in(s3, bucket=bucket, key="k.txt", input_dir=tmp_path / "absent")


# --- stage_out ---------------------------------------------------------------


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@pytest.fixture
def clients(aws_env: dict[str, str]) -> ClientFactory:
    """A factory made after ``aws_env``, so its clients reach the moto server."""
    return ClientFactory()


def _objects(s3: Any, bucket: str) -> dict[str, int]:
    listing = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {item["Key"]: item["Size"] for item in listing}


def test_stage_out_uploads_filtered_nested_outputs_to_each_path(
        clients: ClientFactory, s3: Any, bucket: str, tmp_path: Path) -> None:
    other = f"{bucket}-bare"
    s3.create_bucket(Bucket=other)
    out = tmp_path / "output"
    _write(out / "result.csv", b"a,b\n")
    _write(out / "plots/fig 1.png", b"\x89PNG....")
    _write(out / "logs/run.log", b"log line\n")
    _write(out / "logs/deep/more.csv", b"x\n")
    (out / "escape.csv").symlink_to(tmp_path / "result-outside.csv")
    _write(tmp_path / "result-outside.csv", b"never")
    outputs = [
        StoragePath("s3", f"{bucket}/results/run-1", suffix=(".csv", ".png")),
        StoragePath("s3", other, prefix=("logs/",)),
    ]
    uploaded = stage_out(clients, out, outputs)
    assert uploaded == sorted(uploaded, key=lambda u: (u.bucket, u.key))
    assert [(u.bucket, u.key, u.size) for u in uploaded] == [
        (bucket, "results/run-1/logs/deep/more.csv", 2),
        (bucket, "results/run-1/plots/fig 1.png", 8),
        (bucket, "results/run-1/result.csv", 4),
        (other, "logs/deep/more.csv", 2),
        (other, "logs/run.log", 9),
    ]
    assert _objects(s3, bucket) == {"results/run-1/logs/deep/more.csv": 2,
                                    "results/run-1/plots/fig 1.png": 8,
                                    "results/run-1/result.csv": 4}
    assert _objects(s3, other) == {"logs/deep/more.csv": 2, "logs/run.log": 9}
    got = s3.get_object(Bucket=bucket, Key="results/run-1/result.csv")
    assert got["Body"].read() == b"a,b\n" and got["ContentType"] == "text/csv"
    head = s3.head_object(Bucket=bucket, Key="results/run-1/plots/fig 1.png")
    assert head["ContentType"] == "image/png"
    assert s3.head_object(Bucket=other, Key="logs/run.log")["ContentType"] == (
        "application/octet-stream")
    assert uploaded[0].uri == f"s3://{bucket}/results/run-1/logs/deep/more.csv"


def test_stage_out_sends_large_files_as_multipart_intact(
        clients: ClientFactory, s3: Any, bucket: str, tmp_path: Path) -> None:
    out = tmp_path / "output"
    data = _blob(12 * MiB + 7)
    _write(out / "big.pdf", data)
    _write(out / "small.txt", b"tiny")
    uploaded = stage_out(clients, out, [StoragePath("s3", f"{bucket}/o")],
                         small_file_threshold=1 * MiB)
    assert uploaded == [Uploaded(bucket, "o/big.pdf", len(data)),
                        Uploaded(bucket, "o/small.txt", 4)]
    big = s3.get_object(Bucket=bucket, Key="o/big.pdf")
    assert big["ETag"].strip('"').endswith("-3")  # 5 MiB parts: a multipart upload
    assert big["ContentType"] == "application/pdf"
    assert hashlib.sha256(big["Body"].read()).hexdigest() == hashlib.sha256(data).hexdigest()
    small = s3.head_object(Bucket=bucket, Key="o/small.txt")
    assert small["ETag"].strip('"').endswith("-1")  # one part, completed at the commit
    assert small["ContentType"] == "text/plain"


def test_stage_out_to_a_missing_bucket_names_it_and_makes_nothing_visible(
        clients: ClientFactory, s3: Any, bucket: str, tmp_path: Path) -> None:
    out = tmp_path / "output"
    _write(out / "a.txt", b"a")
    _write(out / "big.bin", _blob(2 * MiB))
    outputs = [StoragePath("s3", "no-such-bucket-xyz/out"), StoragePath("s3", bucket)]
    with pytest.raises(StageOutError) as err:
        stage_out(clients, out, outputs, small_file_threshold=1 * MiB)
    message = str(err.value)
    assert message.startswith("2 of 4 outputs failed to upload")
    assert "s3://no-such-bucket-xyz/out/a.txt: bucket does not exist" in message
    assert "s3://no-such-bucket-xyz/out/big.bin" in message and "\n" not in message
    assert message.endswith("none was made visible")
    assert _objects(s3, bucket) == {}  # all or nothing: the good bucket got nothing either
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []  # all aborted


def test_stage_out_counts_a_file_that_vanished_before_upload_as_failed(
        aws_env: dict[str, str], s3: Any, bucket: str, tmp_path: Path) -> None:
    out = tmp_path / "output"
    _write(out / "keep.txt", b"k")
    _write(out / "gone.txt", b"g")

    class VanishingFactory(ClientFactory):
        """Removes an output after it was listed, when the clients are fetched."""

        def s3(self, storage_provider: str = "s3") -> Any:
            (out / "gone.txt").unlink(missing_ok=True)
            return super().s3(storage_provider)

    with pytest.raises(StageOutError, match=r"1 of 2 .*gone\.txt.*disappeared.*none was made"):
        stage_out(VanishingFactory(), out, [StoragePath("s3", bucket)])
    assert _objects(s3, bucket) == {}  # keep.txt is not visible without its sibling


def test_stage_out_with_nothing_configured_or_nothing_written_is_empty(
        clients: ClientFactory, bucket: str, tmp_path: Path) -> None:
    out = tmp_path / "output"
    out.mkdir()
    assert stage_out(clients, out, []) == []
    assert stage_out(clients, out, [StoragePath("s3", bucket)]) == []
    _write(out / "x.log", b"x")
    assert stage_out(clients, out, [StoragePath("s3", bucket, suffix=(".csv",))]) == []


def test_stage_out_uploads_a_file_once_when_paths_overlap(
        clients: ClientFactory, s3: Any, bucket: str, tmp_path: Path) -> None:
    out = tmp_path / "output"
    _write(out / "r.csv", b"r")
    same = StoragePath("s3", f"{bucket}/p")
    assert stage_out(clients, out, [same, same]) == [Uploaded(bucket, "p/r.csv", 1)]


def test_staged_in_file_can_be_staged_out_unchanged(
        clients: ClientFactory, s3: Any, bucket: str, tmp_path: Path) -> None:
    data = _blob(3 * MiB)
    s3.put_object(Bucket=bucket, Key="in/x.bin", Body=data)
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    path = stage_in(clients.s3(), bucket=bucket, key="in/x.bin", input_dir=tmp_path / "in")
    os.replace(path, tmp_path / "out" / "x.bin")
    stage_out(clients, tmp_path / "out", [StoragePath("s3", f"{bucket}/out")],
              small_file_threshold=MiB)
    assert s3.get_object(Bucket=bucket, Key="out/x.bin")["Body"].read() == data


class FailingClient:
    """An S3 client that fails one operation for one key, for good; the rest is real."""

    def __init__(self, real: Any, operation: str, key: str) -> None:
        self._real, self._operation, self._key = real, operation, key
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._real, name)

        def call(**kwargs: Any) -> Any:
            self.calls.append(name)
            if name == self._operation and kwargs.get("Key") == self._key:
                from botocore.exceptions import ClientError

                raise ClientError({"Error": {"Code": "InternalError",
                                             "Message": "injected failure"}}, name)
            return method(**kwargs)
        return call


class FaultyFactory(ClientFactory):
    """Clients whose S3 client fails ``operation`` for ``key``."""

    def __init__(self, operation: str, key: str) -> None:
        super().__init__()
        self.operation, self.key = operation, key
        self.client: Any = None

    def s3(self, storage_provider: str = "s3") -> Any:
        if self.client is None:
            self.client = FailingClient(super().s3(storage_provider), self.operation, self.key)
        return self.client


@pytest.mark.parametrize("operation", ["create_multipart_upload", "upload_part"])
def test_one_of_five_failing_for_good_leaves_none_visible(
        aws_env: dict[str, str], s3: Any, bucket: str, tmp_path: Path, operation: str) -> None:
    out = tmp_path / "output"
    for name in "abcde":
        _write(out / f"{name}.txt", name.encode() * 10)
    factory = FaultyFactory(operation, "out/c.txt")
    with pytest.raises(StageOutError) as err:
        stage_out(factory, out, [StoragePath("s3", f"{bucket}/out")])
    assert str(err.value).startswith("1 of 5 outputs failed to upload: s3://")
    assert "out/c.txt" in str(err.value) and str(err.value).endswith("none was made visible")
    assert _objects(s3, bucket) == {}
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert "complete_multipart_upload" not in factory.client.calls  # nothing was committed


def test_a_failure_during_the_commit_removes_what_was_committed_and_says_so(
        aws_env: dict[str, str], s3: Any, bucket: str, tmp_path: Path) -> None:
    out = tmp_path / "output"
    for name in "abcde":
        _write(out / f"{name}.txt", name.encode())
    factory = FaultyFactory("complete_multipart_upload", "out/d.txt")
    with pytest.raises(StageOutError) as err:
        stage_out(factory, out, [StoragePath("s3", f"{bucket}/out")])
    message = str(err.value)
    assert message.startswith("the commit of 5 outputs failed for 1: s3://")
    assert message.endswith("the 4 already committed were removed")
    assert _objects(s3, bucket) == {}
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_stage_out_past_the_deadline_makes_nothing_visible(
        clients: ClientFactory, s3: Any, bucket: str, tmp_path: Path) -> None:
    from supervisor.errors import ScriptTimeout
    from supervisor.watchdog import Deadline

    out = tmp_path / "output"
    for index in range(40):
        _write(out / f"f{index}.txt", b"x")
    with pytest.raises(ScriptTimeout, match="stage-out exceeded the time budget.*no output"):
        stage_out(clients, out, [StoragePath("s3", f"{bucket}/out")],
                  deadline=Deadline.after(0.0), max_workers=2)
    assert _objects(s3, bucket) == {}
    end = time.monotonic() + 10  # aborted once the requests running at the deadline end
    while s3.list_multipart_uploads(Bucket=bucket).get("Uploads") and time.monotonic() < end:
        time.sleep(0.05)
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
