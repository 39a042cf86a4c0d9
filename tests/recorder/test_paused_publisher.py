"""A publisher that pauses, recorded in-process through the real recorder (Recorders ->
StreamRecorder -> segmenter -> HLS writer -> SQLite catalog and a local store), tag by tag
on a clock that follows the tags: every version of the recording's playlist declares the
same EXT-X-TARGETDURATION and no EXTINF past it, every frame after the pause has its exact
wall clock when read back the way post-processing reads it, the playlist plays every frame
(FFmpeg's HLS demuxer), and crash recovery rebuilds the very playlist the writer wrote."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from liverec.catalog import Catalog, SecretBox, make_engine, migrate
from liverec.layout import StreamRef
from liverec.media import flv
from liverec.media.m3u8 import parse, target_duration_for
from liverec.postprocess.timing import open_segment
from liverec.recorder import Recorders, finalize_recording
from liverec.recorder.segmenter import playlist_target_duration
from liverec.storage import LocalStore
from support.mediagen import decode_frames, make_media, read_flv_tags
from support.recordflv import TagClock

APP = "app"
CAM = StreamRef(APP, "na", "live", "cam")
T0 = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
MS = timedelta(milliseconds=1)


class TappedStore:
    """A LocalStore that keeps every version of every playlist put into it, in order."""

    def __init__(self, root: Path) -> None:
        self.inner = LocalStore(root)
        self.playlists: list[str] = []

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self.inner.put(key, data, content_type)
        if key.endswith(".m3u8"):
            self.playlists.append(data.decode())


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 25 fps with a keyframe every 2 s, and AAC audio.
    return make_media(tmp_path_factory.mktemp("paused") / "cam.flv", 24, fps=25, gop=50)


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    engine = make_engine(f"sqlite:///{tmp_path / 'catalog.db'}")
    migrate(engine)
    catalog = Catalog(engine, SecretBox(SecretBox.generate_key()))
    catalog.create_project(APP, is_default=True)
    catalog.create_entry_point(APP, "live")  # target duration 4 s
    yield catalog
    engine.dispose()


async def push_with_pause(
    path: Path, catalog: Catalog, store: TappedStore, *, pause_at: int, pause: int
) -> list[datetime]:
    """Push `path`, sending nothing for `pause` ms from `pause_at` ms of media on (both the
    publisher's timestamps and the server's clock move on); returns the wall clock of every
    video frame pushed, in presentation order."""
    ep = catalog.get_entry_point(APP, "live")
    clock = TagClock(T0)
    recorder = Recorders(catalog, store, node_id="n", lease_seconds=3600, clock=clock).start(
        CAM,
        target_duration=ep.target_duration,
        max_file_duration=ep.max_file_duration,
        session_id="s",
    )
    tags = [t for t in read_flv_tags(path) if t.type in (8, 9)]
    t0 = tags[0].timestamp
    shown: list[datetime] = []
    for tag in tags:
        ms = tag.timestamp - t0
        if ms >= pause_at:
            ms += pause
        clock.time = T0 + ms * MS
        if tag.type == 9:
            video = flv.parse_video(tag.payload)
            if video.packet_type == 1:
                shown.append(T0 + (ms + video.cts) * MS)
            recorder.on_video(t0 + ms, tag.payload)
        else:
            recorder.on_audio(t0 + ms, tag.payload)
    await recorder.close()
    return sorted(shown)


@pytest.mark.parametrize(
    ("pause_at", "pause", "split"),
    [
        (5_000, 8_000, False),  # fits in its segment: 4 s to the keyframe at 14 s
        (7_500, 9_000, True),  # would take the segment from 4 s past the 12 s limit
        (5_000, 14_000, True),  # longer than the segmenter's jump threshold
    ],
)
def test_a_paused_publisher(
    media: Path, catalog: Catalog, tmp_path: Path, pause_at: int, pause: int, split: bool
) -> None:
    store = TappedStore(tmp_path / "store")
    shown = asyncio.run(push_with_pause(media, catalog, store, pause_at=pause_at, pause=pause))

    versions = [parse(text) for text in store.playlists]
    assert len(versions) >= 6 and versions[-1].endlist
    assert not any(v.endlist for v in versions[:-1])
    target = playlist_target_duration(4.0)
    assert {v.target_duration for v in versions} == {target}
    final = versions[-1].segments
    assert all(e.duration <= target for e in final)
    assert target_duration_for(e.duration for e in final) <= target
    assert any(e.discontinuity for e in final) == split

    # Every video frame's wall clock, read back from the stored segments by the
    # post-processing rule, is the instant it was pushed at; the pause included.
    pairs = catalog.segments_between(CAM, T0 - timedelta(hours=1), T0 + timedelta(hours=1))
    assert len({rec.id for rec, _ in pairs}) == 1
    walls: list[datetime] = []
    for _, seg in pairs:
        with open_segment(store.inner, CAM, seg, audio=False) as seg_media:
            walls += [seg_media.clock.time_of(pkt.pts) for pkt in seg_media.video]
    assert sorted(walls) == shown
    assert any(w > T0 + (pause_at + pause) * MS for w in walls)

    # It plays: every frame, once, in order.
    rec = pairs[0][0]
    playlist = store.inner.local_path(CAM.key(rec.playlist_key))
    assert playlist is not None
    assert [n for _, n in decode_frames(str(playlist))] == list(range(len(shown)))

    # Crash recovery rebuilds the same playlist from the catalog, target duration included.
    finalize_recording(catalog, store, rec)
    assert store.playlists[-1] == store.playlists[-2]
