"""MP4 record files made by the real recorder in-process: what a slice holds and how it
plays, where slices are cut, timestamp jumps, the S3 and PostgreSQL variant, and the bytes
the MP4 costs against what was ingested. (Crash recovery and outages: test_mp4_spool.py;
the pure parts: test_mp4_remux.py.)"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from fractions import Fraction
from itertools import pairwise
from pathlib import Path

import pytest

from liverec.catalog import Catalog
from liverec.layout import parse_name, session_date
from liverec.outputs import Mp4SliceStored
from liverec.outputs.tsread import read_segment
from liverec.recorder import SegmentStored
from liverec.storage import LocalStore
from liverec.storage.s3 import S3Store
from outputs.mp4rig import BUCKET, CAM, T0, Rig, av_open, make_rig, play
from support.mediagen import read_flv_tags
from support.s3server import S3Server

FPS = 25
FRAME = 90_000 // FPS  # ticks
MS = timedelta(milliseconds=1)


@dataclass(frozen=True)
class TsPackets:
    """The HLS segments' packets, on one timeline from the first segment's earliest DTS."""

    video: list[tuple[int, int]]  # (pts, dts), decode order
    audio: list[tuple[int, int]]


def ts_packets(segments: list[SegmentStored]) -> TsPackets:
    video: list[tuple[int, int]] = []
    audio: list[tuple[int, int]] = []
    for seg in segments:
        with av_open(seg.data, "mpegts") as container:
            for packet in container.demux():
                if packet.size and packet.pts is not None:
                    dts = packet.pts if packet.dts is None else packet.dts
                    kind = video if packet.stream.type == "video" else audio
                    kind.append((packet.pts, dts))
    origin = min(d for _, d in video[:1] + audio[:1])
    return TsPackets(
        [(p - origin, d - origin) for p, d in video], [(p - origin, d - origin) for p, d in audio]
    )


def media_end(packets: list[tuple[int, int]]) -> int:
    """Where a track ends in the MP4: its last sample lasts as long as the one before."""
    if len(packets) < 2:
        return packets[-1][1] if packets else 0
    return packets[-1][1] + packets[-1][1] - packets[-2][1]


def aac_frames(src: Path) -> int:
    return sum(1 for t in read_flv_tags(src) if t.type == 8 and t.payload[1:2] == b"\x01")


# -- one slice -------------------------------------------------------------------------------


@pytest.mark.parametrize("bframes", [0, 2])
async def test_the_units_handed_over_are_what_reading_the_ts_gives(
    rig: Rig, media: Callable[..., Path], bframes: int
) -> None:
    # The writer takes the segmenter's units instead of reading each TS back (most of its
    # CPU): they must be exactly what the reader finds in the bytes stored.
    segments = await rig.push(media(4, fps=FPS, gop=FPS, bframes=bframes), [])
    assert segments and all(seg.units is not None for seg in segments)
    for seg in segments:
        assert seg.units == read_segment(seg.data)


@pytest.mark.parametrize("bframes", [0, 2])
async def test_a_slice_plays_every_frame_with_the_timestamps_of_the_hls(
    rig: Rig, media: Callable[..., Path], bframes: int
) -> None:
    src = media(6, fps=FPS, gop=FPS, bframes=bframes)
    writer = rig.writer()
    segments = await rig.push(src, [writer])
    writer.close()

    [row] = rig.slices()
    start = segments[0].start_time  # the first frame's arrival: no audio leads it
    assert row.start_time == start == T0
    assert row.name == CAM.folder + f"s1_{session_date(T0)}_0_{session_date(start)}.mp4"
    assert (row.session_id, row.slice_id) == ("s1", 0)
    data = rig.read(row.name)
    assert row.size == len(data)

    played = play(data)
    assert played.warnings == []
    assert played.frames == list(range(6 * FPS))  # first frame 0, last 149, none lost
    assert played.video[0][2]  # starts on a keyframe
    # Remuxed, not re-timed: every PTS and DTS is the TS's, from the same origin.
    ts = ts_packets(segments)
    assert [(pts, dts) for pts, dts, _ in played.video] == ts.video
    assert played.audio == ts.audio
    assert len(played.audio) == aac_frames(src)

    end = max(media_end(ts.video), media_end(ts.audio))  # ticks
    assert abs(row.end_time - (start + timedelta(microseconds=end * 100 // 9))) < MS
    assert played.duration is not None
    assert abs(played.duration - end / 90_000) < 1 / FPS  # FFmpeg adds the video's start
    assert rig.stored == [
        Mp4SliceStored(CAM, row.name, start, rig.stored[0].end_time, len(data), 0)
    ]
    assert rig.stored[0].end_time - row.end_time < MS
    assert not list(rig.spool.iterdir())  # published: the spool is empty


@pytest.mark.parametrize("kind", ["video", "audio"])
async def test_video_only_and_audio_only(rig: Rig, media: Callable[..., Path], kind: str) -> None:
    src = media(4, fps=FPS, gop=FPS, video=kind == "video", audio=kind == "audio")
    writer = rig.writer()
    segments = await rig.push(src, [writer])
    writer.close()

    [row] = rig.slices()
    played = play(rig.read(row.name))
    assert played.warnings == []
    ts = ts_packets(segments)
    assert [(pts, dts) for pts, dts, _ in played.video] == ts.video
    assert played.audio == ts.audio
    if kind == "video":
        assert played.frames == list(range(4 * FPS))
        assert played.audio == []
    else:
        assert played.video == []
        assert len(played.audio) == aac_frames(src) > 0
        with av_open(rig.read(row.name), "mp4") as container:
            samples = sum(f.samples for f in container.decode(audio=0))
        assert samples == 1024 * len(played.audio)
    assert (row.end_time - row.start_time).total_seconds() == pytest.approx(4.0, abs=0.05)


async def test_mp4_with_hls_off(rig: Rig, media: Callable[..., Path]) -> None:
    writer = rig.writer()
    segments = await rig.push(media(3, fps=FPS, gop=FPS), [writer], hls=False)
    writer.close()
    assert segments and not any(seg.hls for seg in segments)
    [row] = rig.slices()
    assert play(rig.read(row.name)).frames == list(range(3 * FPS))
    assert rig.store.list(CAM.root) == [CAM.key(row.name)]  # no playlist, no segment


# -- slices ----------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", ["seconds", "bytes"])
async def test_slices_cut_on_keyframes_lose_and_repeat_no_frame(
    rig: Rig, media: Callable[..., Path], limit: str
) -> None:
    src = media(10, fps=FPS, gop=FPS)  # a keyframe, and a 1 s segment, every second
    limits = {"slice_seconds": 3.0} if limit == "seconds" else {"slice_bytes": 70_000}
    writer = rig.writer(**limits)
    segments = await rig.push(src, [writer])
    writer.close()

    rows = rig.slices()
    assert [r.slice_id for r in rows] == list(range(len(rows)))
    assert len(rows) >= 3
    recording = CAM.recording("s1", segments[0].recording.start)
    frames: list[int] = []
    audio = 0
    for row in rows:
        assert row.name == recording.mp4(row.slice_id, row.start_time)
        parsed = parse_name(row.name)
        assert (parsed.kind, parsed.slice_id, parsed.session_id) == ("mp4", row.slice_id, "s1")
        played = play(rig.read(row.name))  # each slice alone
        assert played.warnings == []
        assert played.video[0][2]  # its first picture is a keyframe
        assert played.frames == list(range(played.frames[0], played.frames[-1] + 1))
        frames += played.frames
        audio += len(played.audio)
        if limit == "seconds":
            assert (row.end_time - row.start_time).total_seconds() <= 3.0 + 0.05
        else:
            assert row.size <= 70_000
    assert frames == list(range(10 * FPS))
    assert audio == aac_frames(src)
    # Each slice starts where the one before ends (its last audio frame may run into the
    # next slice's first picture by less than a frame: that is where the audio is).
    for before, after in pairwise(rows):
        assert abs(after.start_time - before.end_time) < timedelta(milliseconds=30)


async def test_a_slice_is_cut_only_where_a_segment_starts_on_a_keyframe(
    rig: Rig, media: Callable[..., Path]
) -> None:
    # Keyframes 10 s apart, past the segment limit (9 s for a 1 s target): the recorder
    # cuts a segment at 8 s without one. Slices of 3 s cannot be made; the first runs on to
    # the keyframe at 10 s, the second starts there.
    src = media(12, fps=FPS, gop=10 * FPS)
    writer = rig.writer(slice_seconds=3.0)
    segments = await rig.push(src, [writer])
    writer.close()

    assert any(not ts_starts_on_keyframe(seg) for seg in segments)  # a hard cut happened
    rows = rig.slices()
    assert [r.slice_id for r in rows] == [0, 1]
    first, second = (play(rig.read(r.name)) for r in rows)
    assert first.frames == list(range(10 * FPS))
    assert second.frames == list(range(10 * FPS, 12 * FPS))
    assert first.warnings == second.warnings == []
    assert second.video[0][2]


def ts_starts_on_keyframe(seg: SegmentStored) -> bool:
    with av_open(seg.data, "mpegts") as container:
        for packet in container.demux(video=0):
            return bool(packet.is_keyframe)
    return False


# -- timestamp jumps -------------------------------------------------------------------------


@pytest.mark.parametrize("jump", ["pause", "clock reset"])
async def test_a_discontinuity_keeps_the_mp4_continuous(
    rig: Rig, media: Callable[..., Path], jump: str
) -> None:
    src = media(6, fps=FPS, gop=FPS)

    def pause(ts: int) -> tuple[int, int]:
        # The publisher stops for 9.5 s at 3 s (longer than a segment may span).
        shifted = ts + 9500 if ts >= 3000 else ts
        return shifted, shifted

    def reset(ts: int) -> tuple[int, int]:
        # Its clock jumps back 15 s at 3 s; the media arrives without a pause.
        return (20_000 + ts - (15_000 if ts >= 3000 else 0)), ts

    writer = rig.writer()
    segments = await rig.push(src, [writer], timing=pause if jump == "pause" else reset)
    writer.close()

    assert any(seg.discontinuity for seg in segments)
    [row] = rig.slices()
    played = play(rig.read(row.name))
    assert played.warnings == []
    assert played.frames == list(range(6 * FPS))
    dts = [d for _, d, _ in played.video]
    assert all(b > a for a, b in pairwise(dts))
    shown = sorted(p for p, _, _ in played.video)
    # The jump is closed: the pictures after it follow on, as HLS plays them.
    assert max(b - a for a, b in pairwise(shown)) <= 2 * FRAME
    audio = [d for _, d in played.audio]
    assert all(b > a for a, b in pairwise(audio))
    # The wall clock is the recording's: the pause is in it, a clock reset is not.
    wall = (row.end_time - row.start_time).total_seconds()
    assert wall == pytest.approx(6.0 + (9.5 if jump == "pause" else 0.0), abs=0.1)


# -- S3 and PostgreSQL -----------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["s3", "postgresql"])
async def test_on_s3_and_postgresql(
    request: pytest.FixtureRequest,
    sqlite_catalog: Catalog,
    media: Callable[..., Path],
    tmp_path: Path,
    backend: str,
) -> None:
    if backend == "s3":
        server: S3Server = request.getfixturevalue("s3")
        store = S3Store(BUCKET, f"t{id(tmp_path)}", endpoint_url=server.endpoint_url)
        rig = make_rig(sqlite_catalog, store, tmp_path)
    else:
        rig = make_rig(request.getfixturevalue("pg_catalog"), LocalStore(tmp_path / "s"), tmp_path)
    src = media(6, fps=FPS, gop=FPS)
    try:
        writer = rig.writer(slice_seconds=3.0)
        await rig.push(src, [writer])
        writer.close()
        rows = rig.slices()
        assert [r.slice_id for r in rows] == list(range(len(rows)))
        assert len(rows) >= 2
        frames: list[int] = []
        for row in rows:
            data = rig.read(row.name)
            assert row.size == len(data)
            played = play(data)
            assert played.warnings == []
            frames += played.frames
        assert frames == list(range(6 * FPS))
        # Two workers publish the slices, and on_slice hears of each as it is done: a later
        # (shorter) slice may come first.
        assert sorted(s.name for s in rig.stored) == sorted(r.name for r in rows)
    finally:
        rig.close()
        if backend == "s3":
            assert isinstance(rig.store, S3Store)
            rig.store.close()


# -- bytes -----------------------------------------------------------------------------------


async def test_mp4_bytes_against_the_bytes_ingested(
    rig: Rig, media: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    src = media(10, fps=FPS, gop=2 * FPS, width=640, height=360, bitrate=1_000_000)
    writer = rig.writer()
    segments = await rig.push(src, [writer])
    writer.close()

    [row] = rig.slices()
    tags = [t for t in read_flv_tags(src) if t.type in (8, 9)]
    payload = sum(len(t.payload) for t in tags)  # what RTMP carried: FLV tag bodies
    flv = src.stat().st_size
    ts = sum(seg.size for seg in segments)
    with capsys.disabled():
        print(
            f"\nMP4 {row.size} B / FLV file {flv} B = {row.size / flv:.4f}; "
            f"/ FLV A/V payload {payload} B = {row.size / payload:.4f}; "
            f"/ TS {ts} B = {row.size / ts:.4f}"
        )
    assert row.size <= 1.02 * payload
    assert row.size < ts


def test_frame_constant() -> None:
    assert Fraction(90_000, FPS) == FRAME
