"""The HLS writer against a real local store and a catalog-like journal that fails the way
the catalog does: outages that end, outages that last, a recording closed by another node;
and its listeners, which are told everything and cannot stop a recording."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from liverec.errors import CatalogUnavailableError, LeaseLostError, StorageError
from liverec.layout import StreamRef
from liverec.media.m3u8 import SegmentEntry, parse
from liverec.recorder import (
    Listener,
    MediaInfo,
    RecorderEvent,
    RecordingEnded,
    RecordingStarted,
    SegmentDropped,
    SegmentStored,
    hls,
)
from liverec.recorder.hls import HlsWriter
from liverec.recorder.playlist import render_playlist
from liverec.recorder.segmenter import SegmentData
from liverec.storage import LocalStore
from liverec.storage.parts import bytes_part

T0 = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
CAM = StreamRef("app", "na", "live", "cam")


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
    """The journal: records what the writer reports, as the catalog would keep it, with
    recordings numbered from 1."""

    started: list[RecordingStarted] = field(default_factory=list)
    stored: list[tuple[int, SegmentStored]] = field(default_factory=list)
    ended: list[int] = field(default_factory=list)
    closed_elsewhere: set[int] = field(default_factory=set)
    end_fails: bool = False
    down: bool = False  # every call fails, as in a catalog outage
    calls: int = 0

    def number(self, playlist: str) -> int:
        return 1 + [r.recording.playlist for r in self.started].index(playlist)

    def __call__(self, event: RecorderEvent) -> None:
        self.calls += 1
        if self.down:
            raise CatalogUnavailableError("catalog unreachable")
        if isinstance(event, RecordingStarted):
            self.started.append(event)
        elif isinstance(event, SegmentStored):
            rec = self.number(event.recording.playlist)
            if rec in self.closed_elsewhere:
                raise LeaseLostError(f"recording {rec} is closed")
            self.stored.append((rec, event))
        elif isinstance(event, RecordingEnded) and not event.lost:
            if self.end_fails:
                raise CatalogUnavailableError("database gone")
            self.ended.append(self.number(event.recording.playlist))


def segment(
    seq: int,
    *,
    keyframe: bool = True,
    duration: float = 4.0,
    playlist_target: int = 12,
    packets: int = 1,
) -> SegmentData:
    return SegmentData(
        seq=seq,
        start_ms=seq * 4000,
        wall_start=T0 + timedelta(seconds=4 * seq),
        duration=duration,
        part=bytes_part((b"\x47" + bytes([seq]) * 187) * packets),
        discontinuity=False,
        keyframe_start=keyframe,
        video_frames=100,
        playlist_target=playlist_target,
    )


def writer(
    store: FlakyStore, events: Events, listeners: tuple[Listener, ...] = (), **kw: float
) -> HlsWriter:
    return HlsWriter(
        stream=CAM,
        session_id="s1",
        store=store,
        journal=events,
        listeners=listeners,
        max_file_duration=kw.pop("max_file_duration", 3600.0),
        retry_for=kw.pop("retry_for", 5.0),
        max_backlog=int(kw.pop("max_backlog", 16)),
        max_burst=int(kw.pop("max_burst", 64)),
        max_backlog_bytes=int(kw.pop("max_backlog_bytes", 32 << 20)),
        max_held_bytes=int(kw.pop("max_held_bytes", 8 << 20)),
    )


def playlist(root: Path, events: Events, index: int = 0) -> str:
    return (root / "na/app" / events.started[index].recording.playlist).read_text()


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
    told: list[RecorderEvent] = []

    def listener(event: RecorderEvent) -> None:
        told.append(event)

    w = writer(store, events, (listener,), retry_for=0.3, max_backlog=3)
    w.submit(segment(0))
    await asyncio.sleep(0.1)
    store.down = True
    w.submit(segment(1))
    await until(lambda: w.store_failing)  # the writer holds segment 1, retrying
    for i in range(2, 8):  # more than the backlog holds while the store fails
        w.submit(segment(i))
    assert w.dropped == 3  # 5-7, at once; 1-4 once retry_for has passed
    await asyncio.sleep(1.0)
    store.down = False
    w.submit(segment(8))
    await w.close()
    assert w.dropped >= 4
    # Each one told to the listeners (metrics count them), with the media it held.
    dropped = [e for e in told if isinstance(e, SegmentDropped)]
    assert len(dropped) == w.dropped and all(e.duration == 4.0 for e in dropped)
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
    assert events.started[1].recording.start == T0 + timedelta(seconds=8)
    assert len(parse(playlist(tmp_path, events, 1)).segments) == 2


async def test_close_returns_when_the_catalog_fails_at_the_end(tmp_path: Path) -> None:
    store, events = FlakyStore(tmp_path), Events(end_fails=True)
    w = writer(store, events, retry_for=0.3)
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


@dataclass
class Heard:
    """A listener: what it was told, in order; fails on every call when `broken`."""

    events: list[RecorderEvent] = field(default_factory=list)
    broken: bool = False

    def __call__(self, event: RecorderEvent) -> None:
        self.events.append(event)
        if self.broken:
            raise RuntimeError("listener bug")

    def kinds(self) -> list[str]:
        return [type(e).__name__ for e in self.events]


async def test_listeners_hear_everything_in_order_after_the_journal(tmp_path: Path) -> None:
    store, events = FlakyStore(tmp_path), Events()
    heard, broken = Heard(), Heard(broken=True)
    w = writer(store, events, (broken, heard), max_file_duration=8.0)
    info = MediaInfo(CAM, "H264", "AAC", 1280, 720, 30.0, 3_000_000, 44100, 2)
    w.submit_info(info)
    for i in range(3):
        w.submit(segment(i))
    await w.close()
    # A broken listener changes nothing: every segment is stored and journaled.
    assert [s.seq for _, s in events.stored] == [0, 1, 0]
    assert heard.events == broken.events
    assert heard.kinds() == [
        "MediaInfo",
        "RecordingStarted",
        "SegmentStored",
        "SegmentStored",
        "RecordingEnded",  # rolled over at 8 s
        "RecordingStarted",
        "SegmentStored",
        "RecordingEnded",
    ]
    assert heard.events[0] is info
    stored = [e for e in heard.events if isinstance(e, SegmentStored)]
    assert [e.data for e in stored] == [segment(i).data for i in range(3)]
    assert stored[0].name == events.started[0].recording.segment(0)
    ended = [e for e in heard.events if isinstance(e, RecordingEnded)]
    assert [(e.segments, e.lost) for e in ended] == [(2, False), (1, False)]
    assert ended[0].end_time == T0 + timedelta(seconds=8)


async def test_listeners_hear_a_recording_end_the_journal_failed_and_one_lost(
    tmp_path: Path,
) -> None:
    store, events = FlakyStore(tmp_path), Events()
    heard = Heard()
    w = writer(store, events, (heard,), retry_for=0.3)
    w.submit(segment(0))
    await asyncio.sleep(0.2)
    events.closed_elsewhere.add(1)
    w.submit(segment(1))  # recording 1 is lost; segment 1 opens recording 2
    await asyncio.sleep(0.2)
    events.end_fails = True
    await w.close()
    ended = [e for e in heard.events if isinstance(e, RecordingEnded)]
    assert [(e.recording.playlist, e.lost) for e in ended] == [
        (events.started[0].recording.playlist, True),
        (events.started[1].recording.playlist, False),  # told although the journal failed
    ]
    assert events.ended == []


class TappedStore(FlakyStore):
    """Keeps every version of every playlist it stores, in order."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.playlists: list[str] = []

    def put(self, key: str, data: bytes, content_type: str) -> None:
        super().put(key, data, content_type)
        if key.endswith(".m3u8"):
            self.playlists.append(data.decode())


async def test_every_playlist_version_declares_the_same_target_duration(
    tmp_path: Path,
) -> None:
    store, events = TappedStore(tmp_path), Events()
    w = writer(store, events, max_file_duration=20.0)
    durations = [0.5, 4.0, 12.0, 2.0, 11.5, 4.0, 1.0]  # a rollover after 18.5 s
    for i, d in enumerate(durations):
        w.submit(segment(i, duration=d))
    await w.close()
    assert len(events.started) == 2
    versions = [parse(text) for text in store.playlists]
    assert len(versions) == len(durations) + 2  # one per segment, and one final each
    # The first version, with only a 0.5 s segment, declares 12 s already.
    assert {v.target_duration for v in versions} == {12}
    assert all(e.duration <= 12 for v in versions for e in v.segments)
    assert [v.endlist for v in versions].count(True) == 2


def test_render_playlist_declares_the_target_it_is_given(
    caplog: pytest.LogCaptureFixture,
) -> None:
    entries = [SegmentEntry("0.ts", 4.0, T0), SegmentEntry("1.ts", 2.4, T0)]
    assert parse(render_playlist(entries, ended=False, target_duration=12)).target_duration == 12
    # Unknown: the smallest that fits (EXTINF rounded to the nearest integer).
    assert parse(render_playlist(entries, ended=True, target_duration=None)).target_duration == 4
    # A segment past the target (which the segmenter rules out): raised to fit, and logged.
    long = [*entries, SegmentEntry("2.ts", 12.6, T0)]
    with caplog.at_level("ERROR"):
        assert parse(render_playlist(long, ended=True, target_duration=12)).target_duration == 13
    assert "exceeds the target duration 12 s" in caplog.text


async def test_a_catalog_outage_holds_up_the_catalogue_never_the_media(tmp_path: Path) -> None:
    store, events = FlakyStore(tmp_path), Events()
    w = writer(store, events, retry_for=0.3)
    w.submit(segment(0))
    await asyncio.sleep(0.1)
    events.down = True
    for i in range(1, 6):
        w.submit(segment(i))
    await asyncio.sleep(0.5)  # longer than retry_for: held all the same while live
    # The media went on: stored, and in the live playlist.
    assert len(parse(playlist(tmp_path, events)).segments) == 6
    assert [s.seq for _, s in events.stored] == [0]
    events.down = False
    w.submit(segment(6))
    await w.close()
    # Everything catalogued once, in order, without a gap; the recording closed after.
    assert [s.seq for _, s in events.stored] == list(range(7))
    assert all(s.data == b"" for _, s in events.stored[1:])  # no media kept for the journal
    assert events.ended == [1] and w.dropped == 0
    assert "#EXT-X-DISCONTINUITY" not in playlist(tmp_path, events)


async def test_a_catalog_down_at_the_start_catalogues_the_recording_when_back(
    tmp_path: Path,
) -> None:
    store, events = FlakyStore(tmp_path), Events(down=True)
    w = writer(store, events)
    w.submit(segment(0))
    w.submit(segment(1))
    await asyncio.sleep(0.3)
    events.down = False
    await w.close()
    assert len(events.started) == 1 and [s.seq for _, s in events.stored] == [0, 1]
    assert events.ended == [1]


async def test_close_gives_up_on_a_catalog_that_stays_down(tmp_path: Path) -> None:
    store, events = FlakyStore(tmp_path), Events()
    w = writer(store, events, retry_for=0.3)
    w.submit(segment(0))
    await asyncio.sleep(0.1)
    events.down = True
    w.submit(segment(1))
    await asyncio.wait_for(w.close(), 5)
    assert parse(playlist(tmp_path, events)).endlist  # the files are whole all the same
    assert [s.seq for _, s in events.stored] == [0] and events.ended == []


async def test_a_segment_dropped_at_submit_marks_the_next_one_accepted(tmp_path: Path) -> None:
    store, events = FlakyStore(tmp_path), Events()
    w = writer(store, events, retry_for=30.0, max_backlog=3)
    store.down = True
    w.submit(segment(0))
    await until(lambda: w.store_failing)  # the writer holds segment 0, retrying
    for i in (1, 2, 3, 4):  # 1-3 wait in the backlog, 4 is dropped
        w.submit(segment(i))
    store.down = False
    await asyncio.sleep(0.5)
    w.submit(segment(5))
    await w.close()
    entries = parse(playlist(tmp_path, events)).segments
    assert [e.uri[-5:] for e in entries] == ["_0.ts", "_1.ts", "_2.ts", "_3.ts", "_4.ts"]
    # The gap is between segments 3 and 5 (the writer's index 4), not before the next
    # segment written after the drop (1).
    assert [e.discontinuity for e in entries] == [False, False, False, False, True]
    assert entries[4].program_date_time == T0 + timedelta(seconds=20)
    assert w.dropped == 1


async def test_a_burst_to_a_healthy_store_is_stored_whole(tmp_path: Path) -> None:
    # A server that stalled (paused, starved of CPU) reads what the kernel kept for it at
    # once: many segments are cut before the writer runs. The store is fine: max_backlog
    # (for a failing store) drops none of them.
    store, events = FlakyStore(tmp_path), Events()
    w = writer(store, events, max_backlog=3)
    for i in range(20):
        w.submit(segment(i))
    await w.close()
    assert w.dropped == 0
    entries = parse(playlist(tmp_path, events)).segments
    assert [e.uri.rsplit("_", 1)[1] for e in entries] == [f"{i}.ts" for i in range(20)]
    assert not any(e.discontinuity for e in entries)


async def test_a_burst_past_max_burst_is_dropped_and_marked(tmp_path: Path) -> None:
    # Each waiting segment holds a part file's descriptor: a burst is bounded all the same.
    store, events = FlakyStore(tmp_path), Events()
    w = writer(store, events, max_backlog=3, max_burst=8)
    for i in range(12):  # 0-7 wait, 8-11 are dropped
        w.submit(segment(i))
    await asyncio.sleep(0.5)
    w.submit(segment(12))
    await w.close()
    entries = parse(playlist(tmp_path, events)).segments
    assert len(entries) == 9 and w.dropped == 4
    assert [e.discontinuity for e in entries] == [False] * 8 + [True]
    assert entries[8].program_date_time == T0 + timedelta(seconds=48)


MB = 1 << 20
BIG = MB // 188  # packets in a ~1 MB segment


async def until(condition: Callable[[], bool]) -> None:
    """Wait until `condition` holds (the writer stores in its own thread)."""
    async with asyncio.timeout(30):
        while True:
            try:
                if condition():
                    return
            except FileNotFoundError:  # a file the condition reads is not there yet
                pass
            await asyncio.sleep(0.01)


def unstored_bytes(w: HlsWriter) -> int:
    return sum(len(s.data) for s in w.unstored())


async def test_a_catalog_outage_keeps_no_more_than_max_held_bytes(tmp_path: Path) -> None:
    # A publisher that floods big segments while the catalog is down: they are stored,
    # and only the first max_held_bytes of them stay in memory for live-edge snapshots.
    store, events = FlakyStore(tmp_path), Events()
    w = writer(store, events, max_held_bytes=3 * MB)
    w.submit(segment(0, packets=BIG))
    await until(lambda: len(events.stored) == 1)
    events.down = True
    for i in range(1, 11):
        w.submit(segment(i, packets=BIG))
    await until(lambda: len(parse(playlist(tmp_path, events)).segments) == 11)
    await until(lambda: unstored_bytes(w) <= 3 * MB)  # the last one leaves after its put
    assert [s.seq for s in w.unstored()] == [1, 2, 3]  # held: the first that fit
    events.down = False
    await w.close()
    assert [s.seq for _, s in events.stored] == list(range(11)) and w.unstored() == []


async def test_a_slow_store_queues_no_more_than_max_backlog_bytes(tmp_path: Path) -> None:
    # The store fails (the writer retries the segment it holds) while the publisher floods:
    # the queue behind it stays within max_backlog_bytes; the rest is dropped and marked.
    store, events = FlakyStore(tmp_path), Events()
    w = writer(store, events, retry_for=30.0, max_backlog_bytes=3 * MB)
    store.down = True
    w.submit(segment(0, packets=BIG))
    await until(lambda: store.attempts > 0)  # the writer holds segment 0, retrying
    for i in range(1, 11):
        w.submit(segment(i, packets=BIG))
        assert unstored_bytes(w) <= 4 * MB  # segment 0 and at most 3 MB queued
    assert [s.seq for s in w.unstored()] == [0, 1, 2, 3]  # a fourth ~1 MB would pass 3 MB
    store.down = False
    await w.close()
    entries = parse(playlist(tmp_path, events)).segments
    assert len(entries) == 4 and w.dropped == 7
    assert entries[3].discontinuity is False  # the gap follows the last one written


class Head:
    """Retention's head of the recording, as the catalog would answer: seqs before `first`
    trimmed (0: none)."""

    def __init__(self, first: int) -> None:
        self.first = first
        self.asked = 0

    def __call__(self, playlist: str) -> tuple[int, int]:
        self.asked += 1
        return self.first, 0


async def playlists_written(heard: Heard, count: int) -> None:
    """Until `count` segments have their playlist written: listeners hear of a segment
    after it (the journal before it)."""
    async with asyncio.timeout(5):
        while heard.kinds().count("SegmentStored") < count:
            await asyncio.sleep(0.01)


async def test_a_live_playlist_asks_for_the_trimmed_head_now_and_then_the_final_one_always(
    tmp_path: Path,
) -> None:
    store, events, head = FlakyStore(tmp_path), Events(), Head(2)
    heard = Heard()
    w = writer(store, events, (heard,))
    w.head = head
    for i in range(6):
        w.submit(segment(i))
    await playlists_written(heard, 6)
    # Six playlists written within HEAD_EVERY of the recording's start: none asked (the
    # trimmed files outlive the catalog rows by retention's grace period).
    assert head.asked == 0
    assert parse(playlist(tmp_path, events)).media_sequence == 0
    await w.close()
    assert head.asked == 1  # the final playlist asks, whenever it is written
    final = parse(playlist(tmp_path, events))
    assert final.endlist and final.media_sequence == 2 and len(final.segments) == 4


async def test_a_live_playlist_asks_again_once_head_every_has_passed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hls, "HEAD_EVERY", 0.0)
    store, events, head = FlakyStore(tmp_path), Events(), Head(2)
    heard = Heard()
    w = writer(store, events, (heard,))
    w.head = head
    for i in range(4):
        w.submit(segment(i))
    await playlists_written(heard, 4)
    assert head.asked == 4
    live = parse(playlist(tmp_path, events))
    assert not live.endlist and live.media_sequence == 2 and len(live.segments) == 2
    await w.close()


async def test_a_head_the_catalog_could_not_give_is_asked_again_with_the_next_playlist(
    tmp_path: Path,
) -> None:
    store, events, head = FlakyStore(tmp_path), Events(), Head(2)
    heard = Heard()
    failing = [True]

    def flaky_head(playlist: str) -> tuple[int, int]:
        if failing[0]:
            failing[0] = False
            raise CatalogUnavailableError("catalog unreachable")
        return head(playlist)

    w = writer(store, events, (heard,))
    w.head = flaky_head
    w.submit(segment(0))
    await playlists_written(heard, 1)
    # Written long after the recording started (as if HEAD_EVERY had passed): the first
    # ask fails, the next playlist asks again rather than waiting HEAD_EVERY more.
    assert w._current is not None
    w._current.head_read -= hls.HEAD_EVERY
    for i in range(1, 4):
        w.submit(segment(i))
    await playlists_written(heard, 4)
    assert head.asked == 1
    assert parse(playlist(tmp_path, events)).media_sequence == 2
    await w.close()
