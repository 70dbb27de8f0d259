"""S3 notifications, locally: new objects in the endpoint's buckets become Lambda invocations.

moto stores a bucket's notification configuration but sends nothing, so
this module does S3's part. :meth:`EventSource.refresh` reads every bucket's
``LambdaFunctionConfigurations`` (events, prefix and suffix filter rules,
target function) from the endpoint; :meth:`EventSource.poll_once` lists the
buckets that have any, and for every object that appeared since (a new key,
or a new upload of a key: a new version id in a versioned bucket, else a new
ETag or LastModified) and matches a configuration, sends that function one
event with one record, built as S3 builds it
(:func:`supervisor.s3event.object_created_record`: URL-encoded key,
eventVersion 2.1, size, eTag, sequencer, ``versionId`` in a versioned
bucket, ``configurationId`` = the configuration's Id), as an asynchronous
(``Event``) invocation. Objects are taken in order: buckets, then keys, sorted.

**What counts as new.** S3 notifies only about objects created after the
configuration was set. Here a bucket's contents are taken as a baseline when
:meth:`refresh` first sees a configuration on it; only later objects are
events. So: deploy, then ``refresh()``, then upload. (An object written
between the last poll and a ``refresh()`` that adds a configuration to an
already watched bucket is an event for the new configuration too.)

Limits of polling: an object created and deleted between two polls is never
seen; re-uploading identical bytes to an unversioned key within the same
second (same ETag and LastModified) looks like no change; the event name is
``ObjectCreated:CompleteMultipartUpload`` for a multipart ETag, else
``ObjectCreated:Put`` (a copy or a POST cannot be told apart).
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Collection, Literal, Mapping, Optional, Protocol

from ..aws import ClientFactory
from ..s3event import event_of, object_created_record

__all__ = ["EventSource", "Invoker", "Watch", "NewObject"]

log = logging.getLogger(__name__)


class Invoker(Protocol):
    """What the event source sends invocations to (``LambdaExecutor``)."""

    def invoke(self, function: str, event: Mapping[str, Any],
               invocation_type: Literal["Event"] = "Event", *,
               request_id: Optional[str] = None) -> Any:
        """Queue an asynchronous invocation of ``function`` with ``event``."""


@dataclass(frozen=True)
class Watch:
    """One ``LambdaFunctionConfigurations`` entry of a bucket."""

    bucket: str
    id: str
    function_arn: str
    events: tuple[str, ...]
    prefix: str = ""
    suffix: str = ""

    @property
    def function(self) -> str:
        """The function's name (the ARN's ``function:NAME`` part, without a qualifier)."""
        parts = self.function_arn.split(":")
        if len(parts) >= 7 and parts[5] == "function":
            return parts[6]
        return self.function_arn

    def matches(self, key: str, event_name: str) -> bool:
        """Whether an ``event_name`` (``ObjectCreated:Put``) on ``key`` is for this entry."""
        full = f"s3:{event_name}"
        wanted = any(pattern == full or (pattern.endswith("*")
                                         and full.startswith(pattern[:-1]))
                     for pattern in self.events)
        return wanted and key.startswith(self.prefix) and key.endswith(self.suffix)

    @classmethod
    def from_entry(cls, bucket: str, entry: Mapping[str, Any]) -> "Watch":
        """A ``LambdaFunctionConfigurations`` entry as S3 returns it."""
        rules = ((entry.get("Filter") or {}).get("Key") or {}).get("FilterRules") or []
        filters = {str(r.get("Name", "")).lower(): str(r.get("Value", "")) for r in rules}
        return cls(bucket=bucket, id=str(entry.get("Id") or ""),
                   function_arn=str(entry.get("LambdaFunctionArn") or ""),
                   events=tuple(str(e) for e in entry.get("Events") or ()),
                   prefix=filters.get("prefix", ""), suffix=filters.get("suffix", ""))


@dataclass(frozen=True)
class NewObject:
    """An object version the source has not seen before."""

    bucket: str
    key: str
    size: int
    etag: str
    version_id: Optional[str]
    stamp: str  # what tells uploads of one key apart: the version id, or ETag + LastModified

    @property
    def ident(self) -> tuple[str, str]:
        """The object version's identity among everything the source has seen."""
        return (self.key, self.stamp)

    @property
    def event_name(self) -> str:
        """``ObjectCreated:CompleteMultipartUpload`` for a multipart ETag, else ``…:Put``."""
        multipart = "-" in self.etag.strip('"')
        return "ObjectCreated:CompleteMultipartUpload" if multipart else "ObjectCreated:Put"


@dataclass
class _Bucket:
    versioned: bool
    seen: set[tuple[str, str]]  # (key, version id or "<etag> <last modified>")


class EventSource:
    """Turns new S3 objects into ``Event`` invocations, as S3 notifications do.

    Drive it with :meth:`poll_once` or run it on a thread with :meth:`start`
    and :meth:`stop`. ``region`` goes into the records (default: the S3
    client's). ``functions`` limits it to the notifications of those function
    names (default: every function). Thread-safe.
    """

    def __init__(self, clients: ClientFactory, invoker: Invoker, *,
                 region: Optional[str] = None, interval: float = 0.2,
                 functions: Optional[Collection[str]] = None) -> None:
        self._clients = clients
        self._functions = None if functions is None else frozenset(functions)
        self._invoker = invoker
        self._region = region
        self.interval = interval
        self._lock = threading.RLock()
        self._watches: dict[str, tuple[Watch, ...]] = {}
        self._buckets: dict[str, _Bucket] = {}
        self._thread: Optional[threading.Thread] = None
        self._stop = threading.Event()
        self._error: Optional[BaseException] = None
        self.dispatched = 0

    @property
    def watches(self) -> tuple[Watch, ...]:
        """Every notification entry read by the last :meth:`refresh`."""
        with self._lock:
            return tuple(w for b in sorted(self._watches) for w in self._watches[b])

    def refresh(self) -> tuple[Watch, ...]:
        """Re-read the notification configuration of every bucket (call after deploys).

        A bucket seen with a configuration for the first time gets its
        baseline now: what it holds already is not an event.
        """
        s3 = self._clients.s3()
        with self._lock:
            watches: dict[str, tuple[Watch, ...]] = {}
            for bucket in sorted(b["Name"] for b in s3.list_buckets().get("Buckets", [])):
                try:
                    config = s3.get_bucket_notification_configuration(Bucket=bucket)
                except s3.exceptions.NoSuchBucket:
                    continue  # deleted since the listing
                entries = tuple(
                    watch for watch in (Watch.from_entry(bucket, e) for e in
                                        config.get("LambdaFunctionConfigurations") or [])
                    if self._functions is None or watch.function in self._functions)
                if entries:
                    watches[bucket] = entries
            for bucket in watches:
                if bucket not in self._buckets:
                    status = s3.get_bucket_versioning(Bucket=bucket).get("Status")
                    state = _Bucket(versioned=status == "Enabled", seen=set())
                    state.seen.update(obj.ident for obj in self._list(bucket, state))
                    self._buckets[bucket] = state
            for bucket in set(self._buckets) - set(watches):
                del self._buckets[bucket]
            self._watches = watches
            return self.watches

    def poll_once(self) -> int:
        """Send one event per new object and matching entry; returns how many were sent.

        An invocation the invoker refuses (say, the function's local code is
        not what was deployed) raises here; the object counts as seen.
        """
        with self._lock:
            sent = 0
            for bucket, obj in self._new_objects():
                state = self._buckets[bucket]
                state.seen.add(obj.ident)
                for watch in self._watches.get(bucket, ()):
                    if watch.matches(obj.key, obj.event_name):
                        self._send(watch, obj)
                        sent += 1
            self.dispatched += sent
            return sent

    def pending(self) -> bool:
        """Whether an object is there that a poll would send an event for."""
        with self._lock:
            return any(watch.matches(obj.key, obj.event_name)
                       for bucket, obj in self._new_objects()
                       for watch in self._watches.get(bucket, ()))

    def start(self) -> None:
        """Poll every ``interval`` seconds on a thread until :meth:`stop`."""
        if self._thread is not None:
            raise RuntimeError("the event source is already running")
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="local-s3-events",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the polling thread; re-raises what stopped it, if it failed."""
        thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None:
            thread.join()
        error, self._error = self._error, None
        if error is not None:
            raise error

    @property
    def error(self) -> Optional[BaseException]:
        """What stopped the polling thread, if anything did."""
        return self._error

    # --- internals ------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception as exc:  # kept for stop(); the thread ends
                log.exception("local S3 events: polling failed")
                self._error = exc
                return
            self._stop.wait(self.interval)

    def _send(self, watch: Watch, obj: NewObject) -> None:
        region = self._region or self._clients.s3().meta.region_name or "us-east-1"
        record = object_created_record(obj.bucket, obj.key, size=obj.size, etag=obj.etag,
                                       version_id=obj.version_id, region=region,
                                       event_name=obj.event_name)
        record["s3"]["configurationId"] = watch.id
        log.info("s3://%s/%s -> %s", obj.bucket, obj.key, watch.function)
        self._invoker.invoke(watch.function, event_of(record), "Event")

    def _new_objects(self) -> list[tuple[str, NewObject]]:
        found: list[tuple[str, NewObject]] = []
        for bucket in sorted(self._buckets):
            state = self._buckets[bucket]
            found.extend((bucket, obj) for obj in self._list(bucket, state)
                         if obj.ident not in state.seen)
        return found

    def _list(self, bucket: str, state: _Bucket) -> list[NewObject]:
        """Every object (every version, in a versioned bucket), by key, oldest first."""
        s3 = self._clients.s3()
        out: list[tuple[NewObject, str, int]] = []
        if state.versioned:
            # S3 lists the versions of a key newest first: the position breaks ties of
            # LastModified (whole seconds) between quick uploads.
            for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
                for v in page.get("Versions", []):
                    version = str(v["VersionId"])
                    out.append((NewObject(bucket, v["Key"], int(v.get("Size", 0)),
                                          str(v.get("ETag", "")), version, version),
                                str(v.get("LastModified")), -len(out)))
        else:
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                for o in page.get("Contents", []):
                    etag, modified = str(o.get("ETag", "")), str(o.get("LastModified"))
                    out.append((NewObject(bucket, o["Key"], int(o.get("Size", 0)), etag, None,
                                          f"{etag} {modified}"), modified, 0))
        out.sort(key=lambda item: (item[0].key, item[1], item[2]))
        return [obj for obj, _, _ in out]
