"""What this node is doing, as Prometheus metrics (`GET /metrics`, api/health.py).

One `Metrics` per Service, with a registry of its own (never prometheus_client's global
one): several services or apps in one process (the tests) do not share figures.

Most figures are read at scrape time from state the parts keep anyway, so the hot paths pay
nothing for them: the live publishes and what they received (publishing.Publishing: one
integer addition per FLV tag, done there), the recorders' backlogs, the disk (statvfs), the
callback outbox (one count query, at most every few seconds, never on the scrape's own
time). Counters are kept only where no state exists to read: publishes admitted and
refused (Service.start_publish), segments stored (a recorder listener), segment writes
and their latency (`TimedWrites`, around the recorders' store), API requests (a
middleware, api/observe.py).

Counters other parts feed (call them, they are cheap and thread-safe):

    metrics.retention_deleted(n_segments, n_bytes)   what a retention sweep deleted
    metrics.segments_dropped(n)                      segments the recorder lost (outages)

Metric names (all `liverec_`):

    live_publishes                         gauge    publishes live on this node
    publishes_accepted_total               counter  publishes admitted
    publishes_refused_total{reason}        counter  publishes refused (refusal_reason)
    rtmp_connections_refused_total{reason} counter  RTMP connections refused or closed by a
                                                    limit (rtmp/server.py RtmpServer)
    refusals_total{reason}                 counter  API requests and HTTP connections refused
                                                    by a limit or a failed credential or
                                                    signature (api/guard.py, api/connlimits.py)
    ingest_bytes_total                     counter  FLV tag bytes received (audio + video)
    ingest_frames_total{kind}              counter  video / audio frames received
    segments_stored_total                  counter  HLS segments stored and catalogued
    segment_writes_total{result}           counter  segment puts to the store, ok / failed
    segment_write_seconds                  histogram  one segment put's time (tries apart)
    segments_dropped_total                 counter  segments lost (fed by the recorder)
    recorder_backlog_segments              gauge    segments waiting for the store
    retention_deleted_segments_total       counter  segments retention deleted
    retention_freed_bytes_total            counter  bytes retention freed
    storage_used_bytes                     gauge    bytes under the local storage root; on
                                                    object storage, the recorded media the
                                                    catalog lists in the node's region
    storage_free_bytes, storage_size_bytes gauge    the local storage filesystem (none on
                                                    object storage: it has no such figure)
    storage_min_free_bytes                 gauge    the `storage_min_free` setting
    callback_queue_depth                   gauge    notices waiting in the outbox
    http_requests_total{route,method,status}  counter   API requests by route template
    http_request_seconds{route,method}     histogram  their latency
    build_info{version}                    gauge    1

With `metrics_stream_labels` on, per live stream too (labels app_id, entry_point, stream;
a stream's series go away when its publish ends, so use rate() over them, not sums of
ended streams): stream_ingest_bytes_total, stream_ingest_frames_total{kind},
stream_recorder_backlog_segments. Off by default: a label per stream name is a series per
stream name, and names are the publishers' to choose.

With ingest workers (`serve --workers N`, workers.py) each worker is a node with its own
Metrics, which only it can fill (its publishes, frames, segments); the API process's
/metrics sums the WORKER_FAMILIES of every worker into its own (`WorkerFigures`), so the
names, labels and meaning stay those above. A worker that dies keeps its last counts in
the sums: the totals never go back when it is restarted."""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from liverec import __version__
from liverec.errors import RefusedError
from liverec.layout import StreamRef
from liverec.metrics_workers import WORKER_FAMILIES, MergedRegistry, WorkerFigures
from liverec.recorder import RecorderEvent, SegmentDropped, SegmentStored
from liverec.recorder.hls import BlobWriter
from liverec.storage.parts import Part

__all__ = [
    "CONTENT_TYPE",
    "WORKER_FAMILIES",
    "Metrics",
    "Refreshed",
    "StorageUsage",
    "TimedWrites",
    "WorkerFigures",
    "refusal_reason",
]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Segment puts: local disk answers in milliseconds, an object store in tens to hundreds.
WRITE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# The callback queue depth is one count query: at most this often.
QUEUE_MAX_AGE = 5.0
# The walk of the storage root that sets bytes used: at start, then this often (between
# walks, stored segments and retention's deletions move the figure).
REWALK_EVERY = 3600.0


# -- publish refusals -----------------------------------------------------------------------

# A refusal's description -> its reason label (admission.py and rtmp/pushauth.py word
# them); the first match wins. A label per refusal kind, never the free text.
_REFUSALS: tuple[tuple[str, str], ...] = (
    ("no project takes pushes", "unknown_project"),
    ("unknown entry point", "unknown_entry_point"),
    ("needs a signed push URL", "push_auth"),
    ("bad ts in the push URL", "push_auth"),
    ("wrong push signature", "push_auth"),
    ("the push URL has expired", "push_auth"),
    ("is banned until", "banned"),
    ("is already being published", "stream_busy"),
    ("disk is full", "disk_full"),
    ("codec", "codec"),
)
_REFUSAL_CODES = {
    "NetStream.Publish.BadName": "bad_stream_name",
    "NetStream.Publish.Unauthorized": "webhook",  # the push signature is matched above
}


def refusal_reason(exc: BaseException) -> str:
    """The `reason` label of a refused publish: a RefusedError's kind, or `internal_error`
    for anything else (the catalog down: the publisher is refused all the same)."""
    if not isinstance(exc, RefusedError):
        return "internal_error"
    for words, reason in _REFUSALS:
        if words in exc.description:
            return reason
    return _REFUSAL_CODES.get(exc.code, "other")


# -- what the scrape reads --------------------------------------------------------------------


class IngestedLike(Protocol):
    @property
    def bytes(self) -> int: ...
    @property
    def video_frames(self) -> int: ...
    @property
    def audio_frames(self) -> int: ...


class WriterLike(Protocol):
    def unstored(self) -> Sequence[object]: ...


class RecorderLike(Protocol):
    @property
    def writer(self) -> WriterLike: ...


class LivePublishLike(Protocol):
    @property
    def ingested(self) -> IngestedLike: ...
    @property
    def recorder(self) -> RecorderLike | None: ...


class LivePublishes(Protocol):
    """publishing.Publishing, as the scrape reads it (from a worker thread: it copies
    what the loop changes and only reads it)."""

    @property
    def live(self) -> Mapping[StreamRef, LivePublishLike]: ...
    @property
    def ingested_ended(self) -> IngestedLike: ...


class Refreshed:
    """A figure that costs a query (the callback queue depth), kept at most `max_age`
    seconds: a scrape that finds it stale starts one refresh in the background and answers
    the value it has, so a catalog that hangs never holds the scrape. Only the first
    scrape waits for the first value, `first_wait` seconds at most."""

    def __init__(
        self, fetch: Callable[[], int], max_age: float = QUEUE_MAX_AGE, first_wait: float = 1.0
    ) -> None:
        self._fetch = fetch
        self.max_age = max_age
        self.first_wait = first_wait
        self._value: int | None = None
        self._at = -math.inf
        self._lock = threading.Lock()
        self._busy: threading.Event | None = None

    def value(self) -> int | None:
        with self._lock:
            busy = self._busy
            if busy is None and time.monotonic() - self._at >= self.max_age:
                busy = self._busy = threading.Event()
                threading.Thread(target=self._refresh, args=(busy,), daemon=True).start()
            first = self._value is None
        if first and busy is not None:
            busy.wait(self.first_wait)
        return self._value

    def _refresh(self, done: threading.Event) -> None:
        try:
            value: int | None = self._fetch()
        except Exception:
            value = None  # unknown while the catalog is down: the series goes away
        with self._lock:
            self._value, self._at, self._busy = value, time.monotonic(), None
        done.set()


class StorageUsage:
    """The local storage root's filesystem (statvfs, at each scrape: microseconds) and the
    bytes under the root, which are not walked at each scrape: a walk in the background
    at the first scrape and every `rewalk_every` seconds sets them, and between walks
    `added` (each stored segment) and `removed` (retention) move them. Playlists rewritten
    and other files written between walks are caught up by the next walk."""

    def __init__(self, root: Path, rewalk_every: float = REWALK_EVERY) -> None:
        self.root = root
        self.rewalk_every = rewalk_every
        self._lock = threading.Lock()
        self._walked: int | None = None
        self._moved = 0  # bytes added less bytes removed since the walk began
        self._walk_began = -math.inf
        self._walking = False

    def added(self, n_bytes: int) -> None:
        with self._lock:
            self._moved += n_bytes

    def removed(self, n_bytes: int) -> None:
        with self._lock:
            self._moved -= n_bytes

    def disk(self) -> tuple[int, int] | None:
        """(bytes free to liverec's user, filesystem size), None if the root is gone."""
        try:
            st = os.statvfs(self.root)
        except OSError:
            return None
        return st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize

    def used(self) -> int | None:
        """Bytes under the root (None until the first walk is done); starts a walk in the
        background when the last one is older than `rewalk_every`."""
        with self._lock:
            if not self._walking and time.monotonic() - self._walk_began >= self.rewalk_every:
                self._walking = True
                self._walk_began = time.monotonic()
                moved_before = self._moved
                threading.Thread(target=self._walk, args=(moved_before,), daemon=True).start()
            if self._walked is None:
                return None
            return max(0, self._walked + self._moved)

    def _walk(self, moved_before: int) -> None:
        total = 0
        try:
            total = _tree_bytes(self.root)
        finally:
            with self._lock:
                # What moved while the walk ran stays counted (the walk may have seen some
                # of it: the next walk corrects that).
                self._walked, self._moved = total, self._moved - moved_before
                self._walking = False


def _tree_bytes(root: Path) -> int:
    total = 0
    stack = [str(root)]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        elif entry.is_file(follow_symlinks=False):
                            total += entry.stat(follow_symlinks=False).st_size
                    except OSError:
                        continue  # deleted while walked
        except OSError:
            continue
    return total


class TimedWrites:
    """The recorders' store (a BlobWriter), timing each segment put and counting those
    that fail. Every other call goes straight to the store."""

    def __init__(self, store: BlobWriter, metrics: Metrics) -> None:
        self._store = store
        self._metrics = metrics

    def put(self, key: str, data: bytes, content_type: str) -> None:
        if not key.endswith(".ts"):
            self._store.put(key, data, content_type)
            return
        began = time.perf_counter()
        try:
            self._store.put(key, data, content_type)
        except BaseException:
            self._metrics.segment_write(time.perf_counter() - began, ok=False)
            raise
        self._metrics.segment_write(time.perf_counter() - began, ok=True)

    def put_part(self, key: str, part: Part, content_type: str) -> None:
        """A segment from its part (storage/parts.py), timed as `put`."""
        began = time.perf_counter()
        try:
            self._store.put_part(key, part, content_type)  # type: ignore[attr-defined]
        except BaseException:
            self._metrics.segment_write(time.perf_counter() - began, ok=False)
            raise
        self._metrics.segment_write(time.perf_counter() - began, ok=True)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


class _Scraped(Collector):
    """The figures read at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics
        # The node's ingest counters never go back: a scrape that lands while a publish
        # moves from live to ended could otherwise see it twice or not at all.
        self._high = [0, 0, 0]

    def collect(self) -> Iterable[Metric]:
        m = self.m
        yield from self._publishes(m.publishing)
        if m.storage is not None:
            yield from self._storage(m.storage, m.min_free)
        elif m.catalog_used is not None:
            used = m.catalog_used.value()
            if used is not None:
                yield GaugeMetricFamily(
                    "liverec_storage_used_bytes",
                    "Bytes of recorded media (segments, MP4 slices, periodic snapshots) the "
                    "catalog lists in this region (object storage: no free figure)",
                    value=used,
                )
        if m.callback_queue is not None:
            depth = m.callback_queue.value()
            if depth is not None:
                yield GaugeMetricFamily(
                    "liverec_callback_queue_depth",
                    "Callbacks (notices) waiting in the outbox, all nodes",
                    value=depth,
                )

    def _publishes(self, publishing: LivePublishes | None) -> Iterable[Metric]:
        if publishing is None:
            return
        publishes = _copy_items(publishing.live)
        ended = publishing.ingested_ended
        totals = [ended.bytes, ended.video_frames, ended.audio_frames]
        backlog = 0
        per_stream = self.m.stream_labels
        s_bytes = CounterMetricFamily(
            "liverec_stream_ingest_bytes",
            "FLV tag bytes received by a live publish",
            labels=("app_id", "entry_point", "stream"),
        )
        s_frames = CounterMetricFamily(
            "liverec_stream_ingest_frames",
            "Frames received by a live publish",
            labels=("app_id", "entry_point", "stream", "kind"),
        )
        s_backlog = GaugeMetricFamily(
            "liverec_stream_recorder_backlog_segments",
            "Segments of a live publish waiting for the store",
            labels=("app_id", "entry_point", "stream"),
        )
        for stream, publish in publishes:
            got = publish.ingested
            n_bytes, video, audio = got.bytes, got.video_frames, got.audio_frames
            totals[0] += n_bytes
            totals[1] += video
            totals[2] += audio
            recorder = publish.recorder
            waiting = len(recorder.writer.unstored()) if recorder is not None else 0
            backlog += waiting
            if per_stream:
                labels = [stream.app_id, stream.entry_point, stream.stream_name]
                s_bytes.add_metric(labels, n_bytes)
                s_frames.add_metric([*labels, "video"], video)
                s_frames.add_metric([*labels, "audio"], audio)
                s_backlog.add_metric(labels, waiting)
        self._high = [max(h, t) for h, t in zip(self._high, totals, strict=True)]
        yield GaugeMetricFamily(
            "liverec_live_publishes", "Publishes live on this node", value=len(publishes)
        )
        yield CounterMetricFamily(
            "liverec_ingest_bytes", "FLV tag bytes received (audio and video)", value=self._high[0]
        )
        frames = CounterMetricFamily(
            "liverec_ingest_frames", "Frames received, by kind", labels=("kind",)
        )
        frames.add_metric(["video"], self._high[1])
        frames.add_metric(["audio"], self._high[2])
        yield frames
        yield GaugeMetricFamily(
            "liverec_recorder_backlog_segments",
            "Segments cut and waiting for the store, all live publishes",
            value=backlog,
        )
        if per_stream:
            yield from (s_bytes, s_frames, s_backlog)

    @staticmethod
    def _storage(storage: StorageUsage, min_free: int) -> Iterable[Metric]:
        disk = storage.disk()
        if disk is not None:
            free, size = disk
            yield GaugeMetricFamily(
                "liverec_storage_free_bytes",
                "Bytes free to liverec on the storage filesystem",
                value=free,
            )
            yield GaugeMetricFamily(
                "liverec_storage_size_bytes", "Size of the storage filesystem", value=size
            )
        yield GaugeMetricFamily(
            "liverec_storage_min_free_bytes",
            "The storage_min_free setting (0: no minimum)",
            value=min_free,
        )
        used = storage.used()
        if used is not None:
            yield GaugeMetricFamily(
                "liverec_storage_used_bytes",
                "Bytes of files under the storage root (walked hourly, kept up between walks)",
                value=used,
            )


def _copy_items(
    live: Mapping[StreamRef, LivePublishLike],
) -> list[tuple[StreamRef, LivePublishLike]]:
    """The live publishes, copied from a dict the event loop changes as we read."""
    for _ in range(5):
        try:
            return list(live.items())
        except RuntimeError:  # "changed size during iteration"
            continue
    return []


class Metrics:
    """The registry and the counters; `render()` is the scrape. Build it first; attach
    what the scrape reads (`watch`) once those parts exist."""

    def __init__(self, *, stream_labels: bool = False) -> None:
        self.stream_labels = stream_labels
        self.registry = CollectorRegistry()
        self.publishing: LivePublishes | None = None
        self.storage: StorageUsage | None = None
        self.min_free = 0
        self.catalog_used: Refreshed | None = None
        self.callback_queue: Refreshed | None = None
        self.workers: WorkerFigures | None = None  # ingest workers' figures (workers.py)
        r = self.registry
        self.publishes_accepted = Counter(
            "liverec_publishes_accepted", "Publishes admitted", registry=r
        )
        self.publishes_refused = Counter(
            "liverec_publishes_refused", "Publishes refused, by reason", ("reason",), registry=r
        )
        self.rtmp_refused = Counter(
            "liverec_rtmp_connections_refused",
            "RTMP connections refused or closed by a limit, by reason",
            ("reason",),
            registry=r,
        )
        self.segments_stored = Counter(
            "liverec_segments_stored", "HLS segments stored and catalogued", registry=r
        )
        self.segment_writes = Counter(
            "liverec_segment_writes",
            "Segment puts to the store, by result",
            ("result",),
            registry=r,
        )
        self.segment_write_seconds = Histogram(
            "liverec_segment_write_seconds",
            "Time of one segment put to the store (each try)",
            buckets=WRITE_BUCKETS,
            registry=r,
        )
        self.dropped = Counter(
            "liverec_segments_dropped", "Segments the recorder lost (storage outages)", registry=r
        )
        self.retention_segments = Counter(
            "liverec_retention_deleted_segments", "Segments deleted by retention", registry=r
        )
        self.retention_bytes = Counter(
            "liverec_retention_freed_bytes", "Bytes freed by retention", registry=r
        )
        self.http_requests = Counter(
            "liverec_http_requests",
            "API requests, by route template, method and status",
            ("route", "method", "status"),
            registry=r,
        )
        self.http_seconds = Histogram(
            "liverec_http_request_seconds",
            "API request time, by route template and method",
            ("route", "method"),
            buckets=HTTP_BUCKETS,
            registry=r,
        )
        self.refusals = Counter(
            "liverec_refusals",
            "Requests and connections refused by a limit or a failed check, by reason "
            "(auth_failed, auth_locked, hmac_replay, link_bad_signature, link_locked, "
            "push_bad_signature, push_locked, http_header_timeout, http_max_connections, "
            "http_max_per_ip)",
            ("reason",),
            registry=r,
        )
        Gauge("liverec_build_info", "liverec's version", ("version",), registry=r).labels(
            __version__
        ).set(1)
        for result in ("ok", "failed"):
            self.segment_writes.labels(result)  # both series from the start, at 0
        for reason in ("max_connections", "pending_per_ip", "handshake_timeout", "reserve_timeout"):
            self.rtmp_refused.labels(reason)  # rtmp/server.py's reasons, at 0
        r.register(_Scraped(self))

    def watch(
        self,
        *,
        publishing: LivePublishes | None = None,
        storage: StorageUsage | None = None,
        min_free: int = 0,
        callback_queue: Callable[[], int] | None = None,
        catalog_used: Callable[[], int] | None = None,
    ) -> None:
        """Attach what the scrape reads. `catalog_used`: the bytes used, from the catalog,
        where there is no local `storage` to look at (object storage)."""
        self.publishing = publishing
        self.storage = storage
        self.catalog_used = None if catalog_used is None else Refreshed(catalog_used)
        self.min_free = min_free
        self.callback_queue = None if callback_queue is None else Refreshed(callback_queue)

    # -- counters other parts call ----------------------------------------------------------

    def rtmp_refused_one(self, reason: str) -> None:
        """An RTMP connection refused or closed by a limit (RtmpServer's on_refused)."""
        self.rtmp_refused.labels(reason).inc()

    @contextlib.contextmanager
    def publish_attempt(self) -> Iterator[None]:
        """Around admitting a publish: counted accepted if the block returns, refused (by
        `refusal_reason`) if it raises."""
        try:
            yield
        except BaseException as exc:
            self.publishes_refused.labels(refusal_reason(exc)).inc()
            raise
        self.publishes_accepted.inc()

    def retention_deleted(self, n_segments: int, n_bytes: int) -> None:
        """Retention deleted `n_segments` segments of `n_bytes` bytes in all (call it after
        the blobs are gone; any thread)."""
        self.retention_segments.inc(n_segments)
        self.retention_bytes.inc(n_bytes)
        if self.storage is not None:
            self.storage.removed(n_bytes)

    def segments_dropped(self, n: int = 1) -> None:
        """The recorder gave up on `n` segments (any thread)."""
        self.dropped.inc(n)

    def segment_write(self, seconds: float, *, ok: bool) -> None:
        self.segment_writes.labels("ok" if ok else "failed").inc()
        self.segment_write_seconds.observe(seconds)

    def api_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.http_requests.labels(route, method, str(status)).inc()
        self.http_seconds.labels(route, method).observe(seconds)

    def refused(self, reason: str) -> None:
        """A refusal by a limit or a failed check (api/guard.py, api/connlimits.py)."""
        self.refusals.labels(reason).inc()

    def timed(self, store: BlobWriter) -> TimedWrites:
        """`store`, its segment puts timed and counted (for the recorders)."""
        return TimedWrites(store, self)

    def __call__(self, event: RecorderEvent) -> None:
        """A recorder listener: each HLS segment stored."""
        if isinstance(event, SegmentDropped):
            self.dropped.inc()
        if isinstance(event, SegmentStored) and event.hls:
            self.segments_stored.inc()
            if self.storage is not None:
                self.storage.added(event.size)

    # -- the scrape ---------------------------------------------------------------------------

    def render(self) -> bytes:
        """The Prometheus text exposition of everything (blocking: run it off the loop)."""
        if self.workers is None:
            return generate_latest(self.registry)
        return generate_latest(MergedRegistry(self.registry, self.workers.sums()))
