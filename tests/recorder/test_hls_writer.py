"""The HLS writer against a real local store and catalog-like event sinks that fail the way
real ones do: outages that end, outages that last, a recording closed by another node."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from liverec.errors import CatalogError, StorageError
from liverec.media.m3u8 import parse
from liverec.recorder.hls import HlsWriter, RecordingStarted, SegmentStored
from liverec.recorder.segmenter import SegmentData
from liverec.storage import LocalStore

T0 = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)


class FlakyStore:
    """A LocalStore whose puts fail while `down` is set or for the next `fail_next` calls."""

    def __init__(self, root: Path) -> None:
        self.inner = LocalStore(root)
        self.down = False
        self.fail_next = 0
        self.attempts = 0

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self.attempts += 1
        if self.down or self.fail_next > 0:
            self.fail_next = max(0, self.fail_next - 1)
            raise StorageError("store unavailable")
        self.inner.put(key, data, content_type)


@dataclass
class Events:
    """Records what the writer reports, as the catalog would keep it."""

    started: list[RecordingStarted] = field(default_factory=list)
    stored: list[tuple[int, SegmentStored]] = field(default_factory=list)
    ended: list[int] = field(default_factory=list)
    closed_elsewhere: set[int] = field(default_factory=set)
    end_fails: bool = False

    def recording_started(self, rec: RecordingStarted) -> int:
        self.started.append(rec)
        return len(self.started)

    def segment_stored(self, recording_id: int, seg: SegmentStored) -> None:
        if recording_id in self.closed_elsewhere:
            raise CatalogError(f"recording {recording_id} is closed")
        self.stored.append((recording_id, seg))

    def recording_ended(self, recording_id: int, end_time: datetime) -> None:
        if self.end_fails:
            raise CatalogError("database gone")
        self.ended.append(recording_id)


def segment(seq: int, *, keyframe: bool = True) -> SegmentData:
    return SegmentData(
        seq=seq,
        start_ms=seq * 4000,
        wall_start=T0 + timedelta(seconds=4 * seq),
        duration=4.0,
        data=b"\x47" + bytes([seq]) * 187,
        discontinuity=False,
        keyframe_start=keyframe,
        video_frames=100,
    )


def writer(store: FlakyStore, events: Events, **kw: float) -> HlsWriter:
    return HlsWriter(
        folder="record/live/cam",
        session_id="s1",
        key_prefix="na/app/",
        store=store,
        events=events,
        max_file_duration=kw.pop("max_file_duration", 3600.0),
        retry_for=kw.pop("retry_for", 5.0),
        max_backlog=int(kw.pop("max_backlog", 16)),
    )


def playlist(root: Path, events: Events, index: int = 0) -> str:
    return (root / "na/app" / events.started[index].playlist_name).read_text()


async def test_a_short_outage_loses_nothing(tmp_path: Path) -> None:
    store, events = FlakyStore(tmp_path), Events()
    w = writer(store, events)
    store.fail_next = 3
    for i in range(4):
        w.submit(segment(i))
    await w.close()
    assert [s.seq for _, s in events.stored] == [0, 1, 2, 3]
    text = playlist(tmp_path, events)
    assert parse(text).endlist and len(parse(text).segments) == 4
    assert "#EXT-X-DISCONTINUITY" not in text
    assert w.dropped == 0


async def test_a_long_outage_drops_and_marks_then_recovers(tmp_path: Path) -> None:
    store, events = FlakyStore(tmp_path), Events()
    w = writer(store, events, retry_for=0.3, max_backlog=3)
    w.submit(segment(0))
    await asyncio.sleep(0.1)
    store.down = True
    for i in range(1, 8):  # more than the backlog holds while the store is down
        w.submit(segment(i))
    await asyncio.sleep(1.0)
    store.down = False
    w.submit(segment(8))
    await w.close()
    assert w.dropped >= 4
    entries = parse(playlist(tmp_path, events)).segments
    assert entries[0].uri.endswith("_0.ts") and len(entries) < 9
    assert entries[-1].discontinuity  # the gap is marked for players
    assert entries[-1].program_date_time == T0 + timedelta(seconds=32)


async def test_recording_closed_elsewhere_continues_in_a_new_one(tmp_path: Path) -> None:
    store, events = FlakyStore(tmp_path), Events()
    w = writer(store, events)
    w.submit(segment(0))
    w.submit(segment(1))
    await asyncio.sleep(0.2)
    events.closed_elsewhere.add(1)  # another node took recording 1 over
    w.submit(segment(2))
    w.submit(segment(3))
    await w.close()
    assert [r for r, _ in events.stored] == [1, 1, 2, 2]
    assert events.started[1].start_time == T0 + timedelta(seconds=8)
    assert len(parse(playlist(tmp_path, events, 1)).segments) == 2


async def test_close_returns_when_the_catalog_fails_at_the_end(tmp_path: Path) -> None:
    store, events = FlakyStore(tmp_path), Events(end_fails=True)
    w = writer(store, events)
    w.submit(segment(0))
    await asyncio.wait_for(w.close(), 5)
    assert parse(playlist(tmp_path, events)).endlist  # the files are right all the same


@pytest.mark.parametrize("keyframes", [True, False])
async def test_rollover_only_at_a_keyframe(tmp_path: Path, keyframes: bool) -> None:
    store, events = FlakyStore(tmp_path), Events()
    w = writer(store, events, max_file_duration=8.0)
    for i in range(5):
        w.submit(segment(i, keyframe=keyframes))
    await w.close()
    assert len(events.started) == (3 if keyframes else 1)
    assert sorted(events.ended) == list(range(1, len(events.started) + 1))
