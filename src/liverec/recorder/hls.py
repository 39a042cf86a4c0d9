"""Writes one publish's segments and playlists, in order, and reports them upward.

Each finished segment is stored atomically, then reported (`segment_stored`, which the
service turns into a catalog row), then the recording's playlist is rewritten: a live EVENT
playlist while the publish lasts, a VOD playlist with EXT-X-ENDLIST at the end. A publish
longer than the maximum file duration continues in a new recording at a segment boundary,
which is always a keyframe, so no frame is lost between the two."""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from liverec.errors import CatalogError, StorageError
from liverec.media.m3u8 import PLAYLIST_TYPE, MediaPlaylist, SegmentEntry, render
from liverec.media.ts import TS_TYPE
from liverec.recorder.segmenter import SegmentData

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_BACKLOG = 16  # segments waiting for the store: about a minute at 4 s


class BlobWriter(Protocol):
    def put(self, key: str, data: bytes, content_type: str) -> None: ...


@dataclass(frozen=True, slots=True)
class RecordingStarted:
    session_id: str
    playlist_name: str  # record/{entry_point}/{stream_name}/{sessionid}_{sessiondate}.m3u8
    start_time: datetime


@dataclass(frozen=True, slots=True)
class SegmentStored:
    seq: int  # within the recording
    name: str  # record/... like the playlist
    start_time: datetime
    duration: float
    size: int
    discontinuity: bool


class RecordingEvents(Protocol):
    """What the writer reports; called in a worker thread, in order, one call at a time."""

    def recording_started(self, rec: RecordingStarted) -> int: ...

    def segment_stored(self, recording_id: int, seg: SegmentStored) -> None: ...

    def recording_ended(self, recording_id: int, end_time: datetime) -> None: ...


def session_date(t: datetime) -> str:
    """FLS's sessiondate: UTC yyyyMMddHHmmssSSS."""
    return t.strftime("%Y%m%d%H%M%S") + f"{t.microsecond // 1000:03d}"


@dataclass
class _Recording:
    id: int
    base: str  # record/{ep}/{stream}/{sessionid}_{sessiondate}
    started: datetime
    entries: list[SegmentEntry] = field(default_factory=list)
    duration: float = 0.0
    end: datetime | None = None


class HlsWriter:
    """One per publish. `submit()` never blocks the ingest path; `close()` drains.

    Storage and catalog calls run on `executor` (a pool of the recorder's own, so API work
    cannot starve recording), in order, with retries and backoff while an outage lasts less
    than `retry_for`; past that, each segment gets one attempt and a failed one is dropped
    (the next is marked as a discontinuity) rather than holding memory without bound."""

    def __init__(
        self,
        *,
        folder: str,  # record/{entry_point}/{stream_name}
        session_id: str,
        key_prefix: str,  # where this project's files live in the store
        store: BlobWriter,
        events: RecordingEvents,
        max_file_duration: float,
        retry_for: float = 60.0,
        max_backlog: int = MAX_BACKLOG,
        executor: Executor | None = None,
    ) -> None:
        self.folder = folder
        self.session_id = session_id
        self.key_prefix = key_prefix
        self.store = store
        self.events = events
        self.max_file_duration = max_file_duration
        self.retry_for = retry_for
        self.max_backlog = max_backlog
        self.executor = executor
        self.recordings: list[str] = []  # playlist names, for tests and logs
        self.dropped = 0  # segments lost to a storage or catalog outage
        self._queue: asyncio.Queue[SegmentData | None] = asyncio.Queue()
        self._current: _Recording | None = None
        self._lost_previous = False
        self._failing_since: float | None = None  # loop time the current outage began
        self._task = asyncio.create_task(self._run(), name=f"hls {folder}")

    def submit(self, seg: SegmentData) -> None:
        if self._queue.qsize() >= self.max_backlog:
            # The store has been failing for minutes: keep memory bounded.
            self.dropped += 1
            self._lost_previous = True
            log.error("%s: storage backlog full, segment %d dropped", self.folder, seg.seq)
            return
        self._queue.put_nowait(seg)

    async def close(self) -> None:
        self._queue.put_nowait(None)
        await self._task

    @property
    def recording_id(self) -> int | None:
        """The catalog id of the recording being written, if any."""
        return self._current.id if self._current is not None else None

    def when_done(self, callback: Callable[[], None]) -> None:
        """Call `callback` once everything submitted has been written (or given up)."""
        self._task.add_done_callback(lambda _: callback())

    async def _io(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(fn, *args))

    async def _run(self) -> None:
        while True:
            seg = await self._queue.get()
            if seg is None:
                try:
                    await self._end_recording()
                except Exception:
                    log.exception("%s: closing the recording failed", self.folder)
                return
            try:
                await self._write(seg)
            except Exception:
                self.dropped += 1
                self._lost_previous = True
                log.exception("%s: writing segment %d failed", self.folder, seg.seq)

    async def _write(self, seg: SegmentData, *, again: bool = False) -> None:
        rec = self._current
        if rec is not None and rec.duration >= self.max_file_duration and seg.keyframe_start:
            await self._end_recording()
            rec = None
        if rec is None:
            rec = await self._start_recording(seg.wall_start)
        index = len(rec.entries)
        name = f"{rec.base}_{index}.ts"
        discontinuity = (seg.discontinuity or self._lost_previous) and index > 0
        if not await self._put(name, seg.data, TS_TYPE):
            self.dropped += 1
            self._lost_previous = True
            return
        stored = SegmentStored(
            seq=index,
            name=name,
            start_time=seg.wall_start,
            duration=seg.duration,
            size=len(seg.data),
            discontinuity=discontinuity,
        )
        try:
            await self._retrying(self.events.segment_stored, rec.id, stored)
        except CatalogError as exc:
            # The recording is no longer ours (another node closed it after our lease
            # lapsed): leave it as it is and go on in a new recording.
            log.warning(
                "%s: recording %s was closed elsewhere (%s); continuing in a new one",
                self.folder,
                rec.base,
                exc,
            )
            self._current = None
            self._lost_previous = True
            if not again:
                await self._write(seg, again=True)
            return
        self._lost_previous = False
        rec.entries.append(
            SegmentEntry(
                uri=name.rsplit("/", 1)[1],
                duration=seg.duration,
                program_date_time=seg.wall_start,
                discontinuity=discontinuity,
            )
        )
        rec.duration += seg.duration
        rec.end = seg.wall_start + timedelta(seconds=seg.duration)
        await self._put_playlist(rec, ended=False)

    async def _start_recording(self, start: datetime) -> _Recording:
        base = f"{self.folder}/{self.session_id}_{session_date(start)}"
        playlist = base + ".m3u8"
        started = RecordingStarted(
            session_id=self.session_id, playlist_name=playlist, start_time=start
        )
        rec_id = await self._retrying(self.events.recording_started, started)
        self._current = _Recording(id=rec_id, base=base, started=start)
        self.recordings.append(playlist)
        log.info("recording started: %s", playlist)
        return self._current

    async def _end_recording(self) -> None:
        rec, self._current = self._current, None
        if rec is None:
            return
        if rec.entries:
            await self._put_playlist(rec, ended=True)
        end = rec.end or rec.started
        await self._retrying(self.events.recording_ended, rec.id, end)
        log.info(
            "recording ended: %s.m3u8 (%d segments, %.1f s)",
            rec.base,
            len(rec.entries),
            rec.duration,
        )

    async def _put_playlist(self, rec: _Recording, *, ended: bool) -> None:
        text = render_playlist(rec.entries, ended=ended)
        await self._put(rec.base + ".m3u8", text.encode(), PLAYLIST_TYPE)

    async def _put(self, name: str, data: bytes, content_type: str) -> bool:
        """Store; False if it failed and the outage has outlasted retry_for."""
        try:
            await self._retrying(self.store.put, self.key_prefix + name, data, content_type)
        except (StorageError, OSError) as exc:
            log.error("%s: giving up on %s: %s", self.folder, name, exc)
            return False
        return True

    async def _retrying(self, fn: Callable[..., T], *args: Any) -> T:
        """Call fn in the executor; retry failures other than a CatalogError (a refusal, not
        an outage) with backoff until the current outage has lasted retry_for."""
        loop = asyncio.get_running_loop()
        delay = 0.1
        while True:
            try:
                result = await self._io(fn, *args)
            except CatalogError:
                raise
            except Exception as exc:
                now = loop.time()
                if self._failing_since is None:
                    self._failing_since = now
                if now + delay - self._failing_since > self.retry_for:
                    raise
                log.warning(
                    "%s: %s failed, retrying: %s", self.folder, getattr(fn, "__name__", "call"), exc
                )
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 5.0)
            else:
                self._failing_since = None
                return result


def render_playlist(entries: list[SegmentEntry], *, ended: bool) -> str:
    """A recording's playlist: live EVENT while it grows, VOD with EXT-X-ENDLIST at the end."""
    return render(
        MediaPlaylist(
            segments=entries,
            playlist_type="VOD" if ended else "EVENT",
            endlist=ended,
        )
    )
