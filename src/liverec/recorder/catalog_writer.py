"""The journal of one publish: the recorder's events written to the catalog.

The catalog decides what happened: a recording exists once its row does, a segment once it
is catalogued (after its file is durable), and a recording that another node closed after
this node's lease ran out raises LeaseLostError from the catalog, which the writer passes
on to the recorder as it is. A recording's callback (`close_notice`, given by service.py)
is enqueued in the transaction that closes it.

The segments of all publishes are catalogued by group commit (`SegmentBatches`): a writer
thread that finds another's transaction in progress queues its segment, and the next
transaction takes every segment queued meanwhile. Nothing waits on a timer (an idle node
commits each segment at once); under load, one commit (one fsync, one BEGIN IMMEDIATE
instead of SQLite's polling for its write lock) serves many streams. Each writer still
returns only once its own segment is committed, with its own error, so the journal's
order, retries and the kill -9 guarantee are those of one transaction per segment."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from liverec.catalog import NewSegment, Notice, Recording
from liverec.layout import StreamRef
from liverec.recorder.events import (
    MediaInfo,
    RecorderEvent,
    RecordingEnded,
    RecordingStarted,
    SegmentDropped,
    SegmentStored,
)

# The callback that reports a closed recording (events.FlsNotices.recording_closed).
CloseNotice = Callable[[Recording], Notice]


class BatchCatalog(Protocol):
    """What group commit needs of the catalog (catalog/recordings.py)."""

    def add_segment(
        self,
        recording_id: int,
        *,
        seq: int,
        key: str,
        start_time: datetime,
        duration: float,
        size: int,
        discontinuity: bool,
    ) -> object: ...

    def add_segments(self, batch: Sequence[NewSegment]) -> Sequence[object]: ...


class RecordingCatalog(BatchCatalog, Protocol):
    """What the catalog writer needs of the catalog (group commit's part included)."""

    def create_recording(
        self,
        stream: StreamRef,
        *,
        session_id: str,
        playlist_key: str,
        start_time: datetime,
        node_id: str,
        lease_seconds: float,
        stream_id: int | None = None,
    ) -> Recording: ...

    def end_recording(
        self, recording_id: int, end_time: datetime, notice: CloseNotice | None = None
    ) -> bool: ...

    def recording_head(self, recording_id: int) -> tuple[int, int]: ...


# Segments in one transaction at most: bounds how long one commit holds the write lock.
MAX_BATCH = 64


class _Queued:
    __slots__ = ("done", "error", "segment")

    def __init__(self, segment: NewSegment) -> None:
        self.segment = segment
        self.done = False
        self.error: BaseException | None = None


class SegmentBatches:
    """Group commit of segments across publishes (see the module docstring). `add` is
    called in the recorders' worker threads and returns once the segment is committed."""

    def __init__(self, catalog: BatchCatalog, max_batch: int = MAX_BATCH) -> None:
        self.catalog = catalog
        self.max_batch = max_batch
        self._cond = threading.Condition()
        self._queue: list[_Queued] = []
        self._busy = False  # a thread is committing a batch
        self.commits = 0  # transactions, and segments in them: for tests and benches
        self.segments = 0

    @property
    def committing(self) -> bool:
        """A transaction of segments is in progress."""
        with self._cond:
            return self._busy

    @property
    def waiting(self) -> int:
        """Segments queued behind the transaction in progress."""
        with self._cond:
            return len(self._queue)

    def add(self, segment: NewSegment) -> None:
        item = _Queued(segment)
        with self._cond:
            self._queue.append(item)
            while self._busy and not item.done:
                self._cond.wait()
            if not item.done:  # this thread commits what is queued, its own segment first
                self._busy = True
                self._queue.remove(item)
                batch = [item, *self._queue[: self.max_batch - 1]]
                del self._queue[: self.max_batch - 1]
        if not item.done:
            self._commit(batch)
        if item.error is not None:
            raise item.error

    def _commit(self, batch: list[_Queued]) -> None:
        results: Sequence[object] = ()
        try:
            if len(batch) == 1:
                results = [self._one(batch[0].segment)]
            else:
                results = self.catalog.add_segments([q.segment for q in batch])
        except Exception as exc:  # the catalog failed: every segment of the batch did
            results = [exc] * len(batch)
        finally:
            if len(results) != len(batch):  # interrupted (BaseException): none is known
                results = [RuntimeError("the segment's commit was interrupted")] * len(batch)
            with self._cond:
                self.commits += 1
                self.segments += len(batch)
                for queued, result in zip(batch, results, strict=True):
                    queued.error = result if isinstance(result, BaseException) else None
                    queued.done = True
                self._busy = False
                self._cond.notify_all()

    def _one(self, s: NewSegment) -> object:
        try:
            return self.catalog.add_segment(
                s.recording_id,
                seq=s.seq,
                key=s.key,
                start_time=s.start_time,
                duration=s.duration,
                size=s.size,
                discontinuity=s.discontinuity,
            )
        except Exception as exc:  # its own refusal or failure, as the batch would give it
            return exc


class CatalogWriter:
    """The journal (recorder/events.py) of one publish's writer: called in its worker
    threads, in order, one call at a time."""

    def __init__(
        self,
        catalog: RecordingCatalog,
        *,
        node_id: str,
        lease_seconds: float,
        close_notice: CloseNotice | None = None,
        batches: SegmentBatches | None = None,
        stream_id: int | None = None,
    ) -> None:
        self.catalog = catalog
        self.stream_id = stream_id  # the stream's catalog row, when the publish knows it
        self.batches = batches  # None: a transaction per segment
        self.node_id = node_id
        self.lease_seconds = lease_seconds
        self.close_notice = close_notice
        self._ids: dict[str, int] = {}  # playlist name -> catalog id, while open

    def __call__(self, event: RecorderEvent) -> None:
        if isinstance(event, RecordingStarted):
            self._started(event)
        elif isinstance(event, SegmentStored):
            self._stored(event)
        elif isinstance(event, RecordingEnded):
            self._ended(event)
        elif not isinstance(event, MediaInfo | SegmentDropped):  # not catalogued
            raise TypeError(f"not a recorder event: {event!r}")

    def head(self, playlist: str) -> tuple[int, int] | None:
        """Where retention trimmed the head of this publish's recording `playlist` (the
        writer's HeadSource; any thread); None before it is catalogued."""
        rec_id = self._ids.get(playlist)
        return None if rec_id is None else self.catalog.recording_head(rec_id)

    def _started(self, event: RecordingStarted) -> None:
        path = event.recording
        rec = self.catalog.create_recording(
            path.stream,
            session_id=path.session_id,
            playlist_key=path.playlist,
            start_time=path.start,
            node_id=self.node_id,
            lease_seconds=self.lease_seconds,
            stream_id=self.stream_id,
        )
        self._ids[path.playlist] = rec.id

    def _stored(self, event: SegmentStored) -> None:
        segment = NewSegment(
            recording_id=self._ids[event.recording.playlist],
            seq=event.seq,
            key=event.name,
            start_time=event.start_time,
            duration=event.duration,
            size=event.size,
            discontinuity=event.discontinuity,
        )
        if self.batches is not None:
            self.batches.add(segment)
            return
        self.catalog.add_segment(
            segment.recording_id,
            seq=segment.seq,
            key=segment.key,
            start_time=segment.start_time,
            duration=segment.duration,
            size=segment.size,
            discontinuity=segment.discontinuity,
        )

    def _ended(self, event: RecordingEnded) -> None:
        rec_id = self._ids.get(event.recording.playlist)
        if rec_id is None or event.lost:
            self._ids.pop(event.recording.playlist, None)
            return
        # A recording that ended before its first segment was stored is not kept; one
        # transaction decides which, closes or forgets it, and enqueues its callback.
        self.catalog.end_recording(rec_id, event.end_time, self.close_notice)
        del self._ids[event.recording.playlist]
