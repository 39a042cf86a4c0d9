"""Writes one publish's segments and playlists, in order, and reports them upward.

Each finished segment is stored atomically, then the recording's playlist is rewritten (a
live EVENT playlist while the publish lasts, a VOD playlist with EXT-X-ENDLIST at the end),
then the journal (the catalog writer) is given SegmentStored, then the listeners are told
(recorder/events.py). While the catalog fails, the journal's events wait on a queue of
their own, so an outage holds up the catalogue, never the media: they are written in order
when the catalog answers, retried without limit while the publish lasts (a catalog outage
of any length loses no frame) and for `retry_for` more after it ends.

A publish longer than the maximum file duration continues in a new recording at a segment
boundary, which is always a keyframe, so no frame is lost between the two."""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from liverec.errors import (
    ConflictError,
    InvalidKeyError,
    InvalidValueError,
    LeaseLostError,
    NotFoundError,
    StorageError,
)
from liverec.layout import RecordingPath, StreamRef, file_part
from liverec.logs import bind_recording
from liverec.media.m3u8 import PLAYLIST_TYPE, SegmentEntry, segment_lines, target_duration_for
from liverec.media.ts import TS_TYPE
from liverec.recorder.events import (
    Listener,
    MediaInfo,
    RecorderEvent,
    RecordingEnded,
    RecordingStarted,
    SegmentDropped,
    SegmentStored,
)
from liverec.recorder.playlist import render_playlist
from liverec.recorder.segmenter import SegmentData
from liverec.storage.parts import Part, PartStore, memory_part

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_BACKLOG = 16  # segments waiting for a failing store: about a minute at 4 s
# ... and waiting for any store. A healthy one can have many at once too: a process that
# stalled (a pause, swap, CPU starvation) reads the media the kernel kept for it in one
# burst, cut into segments within milliseconds; they are stored, not dropped, up to this
# bound (each waiting part file holds a descriptor; the burst is bounded by the socket
# buffers, well under this at 1 s segments and 3 Mbit/s).
MAX_BURST = 64
# ... and their bytes: 16 segments of 4 s up to 4 Mbit/s; past that, fewer. A publisher
# at 50 Mbit/s would otherwise hold 400 MB while the store is slow.
MAX_BACKLOG_BYTES = 32 * 1024 * 1024
# Segments stored but not yet catalogued (the catalog is failing) are kept for live-edge
# snapshots up to this many bytes per stream (5 segments of 4 s at 3 Mbit/s); the rest are
# let go at once. Without it 100 streams held 16 segments each through a catalog outage.
MAX_HELD_BYTES = 8 * 1024 * 1024
# A live playlist learns where retention trimmed its head this often: the trimmed files stay
# 60 s (retention.py's grace period), so the playlist never lists one that is gone.
HEAD_EVERY = 10.0
# Refusals, not outages: retrying cannot help.
_REFUSALS = (LeaseLostError, InvalidValueError, ConflictError, NotFoundError, InvalidKeyError)


class BlobWriter(Protocol):
    def put(self, key: str, data: bytes, content_type: str) -> None: ...


# Where retention trimmed a recording's head (catalog/retention.py), by playlist name: (the
# first seq kept, the discontinuities removed with the head); None: not known (yet).
HeadSource = Callable[[str], tuple[int, int] | None]


@dataclass
class _Recording:
    path: RecordingPath
    entries: list[SegmentEntry] = field(default_factory=list)
    rendered: list[str] = field(default_factory=list)  # segment_lines of each entry
    fits: int = 1  # the smallest target that fits the entries
    duration: float = 0.0
    end: datetime | None = None
    target_duration: int | None = None  # EXT-X-TARGETDURATION, set by its first segment
    first: int = 0  # seq of entries[0]: retention may have trimmed the head
    discontinuity_sequence: int = 0  # discontinuities trimmed with the head
    head_read: float = field(default_factory=time.monotonic)  # when the head was last asked


class HlsWriter:
    """One per publish. `submit()` never blocks the ingest path; `close()` drains.

    Storage calls and events run on `executor` (a pool of the recorder's own, so API work
    cannot starve recording), in order, with retries and backoff while an outage lasts less
    than `retry_for`; past that, each segment gets one attempt and a failed one is dropped
    (the next is marked as a discontinuity) rather than holding memory without bound.
    Segments waiting for the store are bounded by `max_backlog` while it fails, and by
    `max_burst` and `max_backlog_bytes` always; past a bound, a new segment is dropped.
    `journal` and `listeners`: see recorder/events.py. Needs a running event loop."""

    def __init__(
        self,
        *,
        stream: StreamRef,
        session_id: str,
        store: BlobWriter,
        journal: Listener,
        listeners: Sequence[Listener] = (),
        max_file_duration: float,
        retry_for: float = 60.0,
        max_backlog: int = MAX_BACKLOG,
        max_burst: int = MAX_BURST,
        max_backlog_bytes: int = MAX_BACKLOG_BYTES,
        max_held_bytes: int = MAX_HELD_BYTES,
        executor: Executor | None = None,
        hls: bool = True,
        mp4: bool = False,
        head: HeadSource | None = None,
    ) -> None:
        self.stream = stream
        self.head = head  # retention's trimmed head (_trim_head says when it is asked)
        self.hls = hls  # False: segments are cut for the other outputs, nothing stored
        self.mp4 = mp4
        self.session_id = session_id
        self.store = store
        # A runtime Protocol check costs microseconds: once, not at every segment.
        self._parts: PartStore | None = store if isinstance(store, PartStore) else None
        self.journal = journal
        self.listeners = tuple(listeners)
        self.max_file_duration = max_file_duration
        self.retry_for = retry_for
        self.max_backlog = max_backlog
        self.max_burst = max(max_burst, max_backlog)
        self.max_backlog_bytes = max_backlog_bytes
        self.max_held_bytes = max_held_bytes
        self.executor = executor
        self.dropped = 0  # segments lost to a storage or catalog outage
        self._queue: asyncio.Queue[SegmentData | MediaInfo | SegmentDropped | None] = (
            asyncio.Queue()
        )
        self._segments_queued = 0
        self._queued_bytes = 0  # their data, waiting for the store
        self._held_bytes = 0  # data of the segments in _journal_holds
        # Submitted and not yet written (or given up): a snapshot at the live edge may need
        # one. Read from other threads; only the loop changes it.
        self._unstored: list[SegmentData] = []
        self._current: _Recording | None = None
        self._lost_previous = False
        # A segment dropped at submit (the backlog was full) leaves its gap before the next
        # segment accepted, not before the next one written (earlier ones are still queued).
        self._gap_pending = False
        self._gap_before: set[int] = set()  # seqs of accepted segments that follow a gap
        self._failing_since: float | None = None  # loop time the current outage began
        # The journal's own queue: (event, the segment it releases from _unstored).
        self._journal_q: asyncio.Queue[tuple[RecorderEvent, SegmentData | None] | None] = (
            asyncio.Queue()
        )
        self._journal_holds: set[int] = set()  # seqs kept in _unstored until catalogued
        self._journal_waiting = 0  # events queued or being retried: later ones queue too
        self._lease_lost: set[str] = set()  # playlists another node closed
        self._journal_deadline: float | None = None  # after close: when to give up
        self._task = asyncio.create_task(self._run(), name=f"hls {stream}")
        self._journal_task = asyncio.create_task(self._journal_run(), name=f"journal {stream}")

    def new_part(self) -> Part:
        """Where the segmenter puts a segment while it grows: a file of the store's when
        it takes parts (storage/parts.py), else memory."""
        if self.hls and self._parts is not None:
            return self._parts.new_part()
        return memory_part()

    def submit(self, seg: SegmentData) -> None:
        size = seg.size
        queued = self._segments_queued
        if (
            queued >= self.max_burst
            or (queued >= self.max_backlog and self.store_failing)
            or (queued and self._queued_bytes + size > self.max_backlog_bytes)
        ):
            # The store is failing or slower than the stream: keep memory bounded.
            self.dropped += 1
            self._gap_pending = True
            log.error(
                "%s: storage backlog full (%d segments, %d bytes), segment %d dropped",
                self.stream,
                queued,
                self._queued_bytes,
                seg.seq,
            )
            self._queue.put_nowait(self._dropped(seg))  # told in order, off this path
            seg.part.release()
            return
        if self._gap_pending:
            self._gap_pending = False
            self._gap_before.add(seg.seq)
        self._segments_queued += 1
        self._queued_bytes += size
        self._unstored.append(seg)
        self._queue.put_nowait(seg)

    def _dropped(self, seg: SegmentData) -> SegmentDropped:
        return SegmentDropped(self.stream, seg.wall_start, seg.duration)

    def submit_info(self, info: MediaInfo) -> None:
        """Report what the stream carries, in order with its segments."""
        self._queue.put_nowait(info)

    def current_path(self) -> RecordingPath | None:
        """The files of the recording being written, if any."""
        rec = self._current
        return None if rec is None else rec.path

    @property
    def store_failing(self) -> bool:
        """A put has failed since the last one that worked (max_backlog applies)."""
        return self._failing_since is not None

    def unstored(self) -> list[SegmentData]:
        """Segments submitted and not yet written, oldest first (a copy)."""
        return list(self._unstored)

    async def close(self) -> None:
        self._queue.put_nowait(None)
        await self._task
        self._journal_deadline = asyncio.get_running_loop().time() + self.retry_for
        self._journal_q.put_nowait(None)
        await self._journal_task

    async def _io(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(fn, *args))

    async def _run(self) -> None:
        while True:
            item = await self._queue.get()
            if item is None:
                try:
                    await self._end_recording()
                except Exception:
                    log.exception("%s: closing the recording failed", self.stream)
                return
            if isinstance(item, MediaInfo | SegmentDropped):
                await self._inform(item)
                continue
            self._segments_queued -= 1
            self._queued_bytes -= item.size
            try:
                await self._write(item)
            except Exception:
                self.dropped += 1
                self._lost_previous = True
                log.exception("%s: writing segment %d failed", self.stream, item.seq)
                await self._tell(self._dropped(item))
            finally:
                if item.seq not in self._journal_holds:
                    self._unstored.remove(item)
                    await self._release(item)
            # Not kept while waiting for the next one: that would hold every stream's last
            # segment (1.5 MB at 3 Mbit/s) for a whole segment duration.
            del item

    async def _inform(self, event: RecorderEvent) -> None:
        """An event for the journal (a refusal is logged) and the listeners."""
        try:
            await self._journal(event)
        except Exception:
            log.exception("%s: the journal refused %s", self.stream, type(event).__name__)
        await self._tell(event)

    async def _journal(self, event: RecorderEvent, holds: SegmentData | None = None) -> None:
        """Journal `event` now, when nothing waits before it and the catalog answers; else
        queue it behind the others. Refusals (_REFUSALS: a lease lost, ...) raise."""
        if not self._journal_waiting:
            try:
                await self._io(self.journal, event)
                return
            except _REFUSALS:
                raise
            except Exception as exc:
                log.error("%s: catalog failing, holding its events: %s", self.stream, exc)
        self._journal_put(event, holds)

    def _journal_put(self, event: RecorderEvent, holds: SegmentData | None = None) -> None:
        """Queue `event` for the journal. `holds`: the segment it catalogues, kept for
        live-edge snapshots until then, unless the journal is behind or max_held_bytes are
        held already (memory stays bounded: a catalog outage keeps no more)."""
        if (
            holds is not None
            and self._journal_q.qsize() < self.max_backlog
            and self._held_bytes + holds.size <= self.max_held_bytes
        ):
            self._journal_holds.add(holds.seq)
            self._held_bytes += holds.size
        else:
            holds = None
        self._journal_waiting += 1
        self._journal_q.put_nowait((event, holds))

    async def _journal_run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            item = await self._journal_q.get()
            if item is None:
                return
            event, holds = item
            await self._journal_retrying(loop, event)
            self._journal_waiting -= 1
            if not self._journal_waiting:
                log.warning("%s: catalog back, its events caught up", self.stream)
            if holds is not None:
                self._journal_holds.discard(holds.seq)
                self._held_bytes -= holds.size
                if holds in self._unstored:
                    self._unstored.remove(holds)
                    await self._release(holds)
            del item, event, holds  # the segment held is not kept while the queue is empty

    async def _journal_retrying(
        self, loop: asyncio.AbstractEventLoop, event: RecorderEvent
    ) -> None:
        """Journal a queued event, retrying an outage until it succeeds (or, after close,
        until the deadline); a refusal is logged."""
        delay = 0.1
        playlist = getattr(getattr(event, "recording", None), "playlist", None)
        while True:
            if playlist in self._lease_lost and not isinstance(event, RecordingEnded):
                return  # another node closed it: nothing more of it is catalogued
            try:
                await self._io(self.journal, event)
                return
            except LeaseLostError as exc:
                # Found while catching up: the segments stored since are in its playlist
                # but not catalogued (the writer goes on in a new recording).
                log.error("%s: recording %s was closed elsewhere: %s", self.stream, playlist, exc)
                if playlist is not None:
                    self._lease_lost.add(playlist)
                return
            except _REFUSALS:
                log.exception("%s: the catalog refused %s", self.stream, type(event).__name__)
                return
            except Exception as exc:
                deadline = self._journal_deadline
                if deadline is not None and loop.time() + delay > deadline:
                    log.error(
                        "%s: catalog still failing after the publish ended; %s and %d more "
                        "events not catalogued: %s",
                        self.stream,
                        type(event).__name__,
                        self._journal_q.qsize(),
                        exc,
                    )
                    return
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 10.0)

    async def _write(self, seg: SegmentData, *, again: bool = False) -> None:
        rec = self._current
        if rec is not None and rec.path.playlist in self._lease_lost:
            # The recording is no longer ours (another node closed it after our lease
            # lapsed): leave it as it is and go on in a new one, after a discontinuity.
            self._current = None
            self._lost_previous = True
            await self._inform(self._ended(rec, lost=True))
            rec = None
        if rec is not None and rec.duration >= self.max_file_duration and seg.keyframe_start:
            await self._end_recording()
            rec = None
        if rec is None:
            rec = await self._start_recording(seg.wall_start)
        index = rec.first + len(rec.entries)
        name = rec.path.segment(index)
        gap = seg.seq in self._gap_before
        self._gap_before.discard(seg.seq)
        discontinuity = (seg.discontinuity or self._lost_previous or gap) and index > 0
        if self.hls and not await self._put_segment(name, seg.part):
            self.dropped += 1
            self._lost_previous = True
            await self._tell(self._dropped(seg))
            return
        stored = SegmentStored(
            recording=rec.path,
            seq=index,
            name=name,
            start_time=seg.wall_start,
            duration=seg.duration,
            size=seg.size,
            discontinuity=discontinuity,
            part=seg.part,
            hls=self.hls,
            units=seg.units,
        )
        if self.hls:
            try:
                await self._journal(replace(stored, part=None, units=None), holds=seg)
            except LeaseLostError as exc:
                # The recording is no longer ours (another node closed it after our lease
                # lapsed): leave it as it is and go on in a new recording.
                log.warning(
                    "%s: recording %s was closed elsewhere (%s); continuing in a new one",
                    self.stream,
                    rec.path.playlist,
                    exc,
                )
                self._lease_lost.add(rec.path.playlist)
                if not again:
                    await self._write(seg, again=True)
                return
        self._lost_previous = False
        if rec.target_duration is None:
            rec.target_duration = seg.playlist_target  # fixed for the recording's life
        entry = SegmentEntry(
            uri=file_part(name),
            duration=seg.duration,
            program_date_time=seg.wall_start,
            discontinuity=discontinuity,
        )
        rec.entries.append(entry)
        rec.rendered.append(segment_lines(entry))
        rec.fits = max(rec.fits, target_duration_for((seg.duration,)))
        rec.duration += seg.duration
        rec.end = seg.wall_start + timedelta(seconds=seg.duration)
        if self.hls:
            await self._put_playlist(rec, ended=False)
        await self._tell(stored)

    async def _start_recording(self, start: datetime) -> _Recording:
        path = self.stream.recording(self.session_id, start)
        started = RecordingStarted(recording=path, hls=self.hls, mp4=self.mp4)
        if self.hls:
            await self._journal(started)
        self._current = _Recording(path=path)
        bind_recording(path.playlist)  # this writer task's log lines name it from now on
        log.info("recording started: %s", path.playlist)
        await self._tell(started)
        return self._current

    async def _end_recording(self) -> None:
        rec, self._current = self._current, None
        if rec is None:
            return
        ended = self._ended(rec, lost=False)
        try:
            if self.hls:
                if rec.entries:
                    await self._put_playlist(rec, ended=True)
                await self._journal(ended)
        finally:
            await self._tell(ended)  # over all the same, even if the playlist failed
        log.info(
            "recording ended: %s (%d segments, %.1f s)",
            rec.path.playlist,
            len(rec.entries),
            rec.duration,
        )

    def _ended(self, rec: _Recording, *, lost: bool) -> RecordingEnded:
        return RecordingEnded(
            recording=rec.path,
            end_time=rec.end or rec.path.start,
            segments=len(rec.entries),
            lost=lost,
            hls=self.hls,
        )

    async def _tell(self, event: RecorderEvent) -> None:
        if self.listeners:
            await self._io(self._notify, event)

    def _notify(self, event: RecorderEvent) -> None:
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:
                log.exception("%s: a listener failed on %s", self.stream, type(event).__name__)

    async def _put_playlist(self, rec: _Recording, *, ended: bool) -> None:
        await self._trim_head(rec, ended=ended)
        text = render_playlist(
            rec.entries,
            ended=ended,
            target_duration=rec.target_duration,
            media_sequence=rec.first,
            discontinuity_sequence=rec.discontinuity_sequence,
            rendered=rec.rendered,
            fits=rec.fits,
        )
        await self._put(rec.path.playlist, text.encode(), PLAYLIST_TYPE)

    async def _trim_head(self, rec: _Recording, *, ended: bool) -> None:
        """Drop the entries retention deleted from the head of the recording (it deletes
        their files only a grace period later, so a playlist written just before it learnt
        of them lists no missing file for long). Never the last entry. A live playlist asks
        at most every HEAD_EVERY seconds (a catalog read a segment was a fifth of a
        recording's catalog work); the final one always asks."""
        if self.head is None or not rec.entries:
            return
        now = time.monotonic()
        if not ended and now - rec.head_read < HEAD_EVERY:
            return
        try:
            head = await self._io(self.head, rec.path.playlist)
        except Exception as exc:  # the catalog is failing: the head is as it was
            log.debug("%s: retention head unknown: %s", self.stream, exc)
            return  # asked again with the next playlist
        rec.head_read = now
        if head is None or head[0] <= rec.first:
            return
        drop = min(head[0] - rec.first, len(rec.entries) - 1)
        del rec.entries[:drop]
        del rec.rendered[:drop]
        rec.fits = target_duration_for(e.duration for e in rec.entries)
        rec.first += drop
        rec.discontinuity_sequence = head[1]

    async def _release(self, seg: SegmentData) -> None:
        """The segment is no longer needed here: its part file is closed, and deleted
        unless it became the stored segment (an unlink may wait on the disk: off the loop)."""
        if seg.part.in_file and not seg.part.stored:
            await self._io(seg.part.release)
        else:
            seg.part.release()

    async def _put_segment(self, name: str, part: Part) -> bool:
        """Store a segment from its part (renamed into place where the store can); False
        as _put."""
        try:
            if self._parts is not None:
                await self._retrying(self._parts.put_part, self.stream.key(name), part, TS_TYPE)
            else:
                await self._retrying(self.store.put, self.stream.key(name), part.read(), TS_TYPE)
        except (StorageError, OSError) as exc:
            log.error("%s: giving up on %s: %s", self.stream, name, exc)
            return False
        return True

    async def _put(self, name: str, data: bytes, content_type: str) -> bool:
        """Store; False if it failed and the outage has outlasted retry_for."""
        try:
            await self._retrying(self.store.put, self.stream.key(name), data, content_type)
        except (StorageError, OSError) as exc:
            log.error("%s: giving up on %s: %s", self.stream, name, exc)
            return False
        return True

    async def _retrying(self, fn: Callable[..., T], *args: Any) -> T:
        """Call fn in the executor; retry failures other than a refusal (_REFUSALS) with
        backoff until the current outage has lasted retry_for."""
        loop = asyncio.get_running_loop()
        delay = 0.1
        while True:
            try:
                result = await self._io(fn, *args)
            except _REFUSALS:
                raise
            except Exception as exc:
                now = loop.time()
                if self._failing_since is None:
                    self._failing_since = now
                if now + delay - self._failing_since > self.retry_for:
                    raise
                what = getattr(fn, "__name__", None) or type(args[0]).__name__
                log.warning("%s: %s failed, retrying: %s", self.stream, what, exc)
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 5.0)
            else:
                self._failing_since = None
                return result
