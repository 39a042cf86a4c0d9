"""Writes one publish's segments and playlists, in order, and reports them upward.

Each finished segment is stored atomically, then reported (`segment_stored`, which the
service turns into a catalog row), then the recording's playlist is rewritten: a live EVENT
playlist while the publish lasts, a VOD playlist with EXT-X-ENDLIST at the end. A publish
longer than the maximum file duration continues in a new recording at a segment boundary,
which is always a keyframe, so no frame is lost between the two."""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from liverec.errors import StorageError
from liverec.media.m3u8 import MediaPlaylist, SegmentEntry, render
from liverec.recorder.segmenter import SegmentData

log = logging.getLogger(__name__)

TS_TYPE = "video/mp2t"
M3U8_TYPE = "application/vnd.apple.mpegurl"


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
    """One per publish. `submit()` never blocks the ingest path; `close()` drains."""

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
    ) -> None:
        self.folder = folder
        self.session_id = session_id
        self.key_prefix = key_prefix
        self.store = store
        self.events = events
        self.max_file_duration = max_file_duration
        self.retry_for = retry_for
        self.recordings: list[str] = []  # playlist names, for tests and logs
        self._queue: asyncio.Queue[SegmentData | None] = asyncio.Queue()
        self._current: _Recording | None = None
        self._lost_previous = False
        self._task = asyncio.create_task(self._run(), name=f"hls {folder}")

    def submit(self, seg: SegmentData) -> None:
        self._queue.put_nowait(seg)

    @property
    def backlog(self) -> int:
        return self._queue.qsize()

    async def close(self) -> None:
        self._queue.put_nowait(None)
        await self._task

    async def _run(self) -> None:
        while True:
            seg = await self._queue.get()
            try:
                if seg is None:
                    await self._end_recording()
                    return
                await self._write(seg)
            except Exception:
                log.exception("%s: writing a segment failed", self.folder)

    async def _write(self, seg: SegmentData) -> None:
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
            self._lost_previous = True
            return
        self._lost_previous = False
        stored = SegmentStored(
            seq=index,
            name=name,
            start_time=seg.wall_start,
            duration=seg.duration,
            size=len(seg.data),
            discontinuity=discontinuity,
        )
        await asyncio.to_thread(self.events.segment_stored, rec.id, stored)
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
        rec_id = await asyncio.to_thread(
            self.events.recording_started,
            RecordingStarted(session_id=self.session_id, playlist_name=playlist, start_time=start),
        )
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
        await asyncio.to_thread(self.events.recording_ended, rec.id, end)
        log.info(
            "recording ended: %s.m3u8 (%d segments, %.1f s)",
            rec.base,
            len(rec.entries),
            rec.duration,
        )

    async def _put_playlist(self, rec: _Recording, *, ended: bool) -> None:
        text = render(
            MediaPlaylist(
                segments=rec.entries,
                playlist_type="VOD" if ended else "EVENT",
                endlist=ended,
            )
        )
        await self._put(rec.base + ".m3u8", text.encode(), M3U8_TYPE)

    async def _put(self, name: str, data: bytes, content_type: str) -> bool:
        """Store with retries and backoff; False if the store stayed down for retry_for."""
        key = self.key_prefix + name
        delay = 0.1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.retry_for
        while True:
            try:
                await asyncio.to_thread(self.store.put, key, data, content_type)
                return True
            except (StorageError, OSError) as exc:
                if loop.time() + delay > deadline:
                    log.error("%s: giving up on %s after retries: %s", self.folder, name, exc)
                    return False
                log.warning("%s: storing %s failed, retrying: %s", self.folder, name, exc)
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 5.0)
