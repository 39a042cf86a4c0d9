"""Snapshots and clips on real recordings.

Generated FLV media (every picture shows its frame number) is fed, tag by tag, through the
real StreamRecorder into a LocalStore and a SQLite catalog, as the server does; the clock
object runs with the tags' timestamps, so every frame's wall clock is known exactly."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import av
import pytest

from liverec.catalog import Catalog, SecretBox, make_engine, migrate
from liverec.errors import ConflictError, NotFoundError, StorageError
from liverec.layout import StreamRef, session_date
from liverec.media.m3u8 import format_time, parse
from liverec.postprocess.clip import ClipResult, ClipWriter
from liverec.postprocess.precise import cut_segment
from liverec.postprocess.snapshot import SnapshotResult, SnapshotWriter
from liverec.postprocess.timing import open_segment
from liverec.storage import LocalStore
from support.mediagen import (
    audio_duration,
    decode_frames,
    libav_warnings,
    make_media,
    read_frame_number,
)
from support.recordflv import record_flv

APP = "0123456789abcdef0123456789abcdef"
REGION = "na"
EP = "live"
CAM1 = StreamRef(APP, REGION, EP, "cam1")
T0 = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
REC2 = T0 + timedelta(seconds=20)  # the second push of cam1, after a gap
US = timedelta(microseconds=1)
MS = timedelta(milliseconds=1)


async def push(
    path: Path, catalog: Catalog, store: LocalStore, stream: str, start: datetime, sid: str
) -> dict[int, datetime]:
    return await record_flv(
        path,
        catalog,
        store,
        app_id=APP,
        entry_point=EP,
        stream=stream,
        region=REGION,
        start=start,
        session_id=sid,
    )


@dataclass
class Recorded:
    catalog: Catalog
    store: LocalStore
    cam: dict[int, datetime]  # frame number -> wall clock, both recordings of cam1
    bcam: dict[int, datetime]  # the B-frame stream

    def folder(self, stream: str = "cam1") -> Path:
        return self.store.root / REGION / APP / "record" / EP / stream

    def frame_time(self, n: int) -> datetime:
        return self.cam[n]

    def segments(self, stream: str = "cam1") -> list[Any]:
        return [
            s
            for _, s in self.catalog.segments_between(
                StreamRef(APP, REGION, EP, stream), T0 - timedelta(hours=1), T0 + timedelta(hours=1)
            )
        ]


@pytest.fixture(scope="module")
def rec(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    d = tmp_path_factory.mktemp("pp")
    engine = make_engine(f"sqlite:///{d / 'catalog.db'}")
    migrate(engine)
    catalog = Catalog(engine, SecretBox(SecretBox.generate_key()))
    catalog.create_project(APP)
    store = LocalStore(d / "store")
    # cam1: 8 s then, after a gap, 4 s more (frames numbered from 1000); 1 s GOPs.
    a = make_media(d / "a.flv", 8, fps=25, gop=25)
    b = make_media(d / "b.flv", 4, fps=25, gop=25, start_number=1000)
    bf = make_media(d / "bf.flv", 6, fps=25, gop=25, bframes=2)
    radio = make_media(d / "radio.flv", 3, video=False)
    spare = make_media(d / "spare.flv", 4, fps=25, gop=25)

    async def record() -> tuple[dict[int, datetime], dict[int, datetime]]:
        cam = await push(a, catalog, store, "cam1", T0, "s1")
        second = await push(b, catalog, store, "cam1", REC2, "s2")
        cam.update({1000 + n: t for n, t in second.items()})
        bcam = await push(bf, catalog, store, "bcam", T0, "s3")
        await push(radio, catalog, store, "radio", T0, "s4")
        await push(spare, catalog, store, "broken", T0, "s5")
        return cam, bcam

    cam, bcam = asyncio.run(record())
    yield Recorded(catalog, store, cam, bcam)
    engine.dispose()


_names = iter(range(1_000_000))


def snap(rec: Recorded, time: datetime | None, stream: str = "cam1") -> SnapshotResult:
    return SnapshotWriter(rec.catalog, rec.store)(
        StreamRef(APP, REGION, EP, stream), file_name=f"snap{next(_names)}.jpg", time=time
    )


def clip(
    rec: Recorded,
    start: datetime,
    end: datetime | None,
    *,
    precise: bool = False,
    stream: str = "cam1",
    name: str | None = None,
) -> ClipResult:
    return ClipWriter(rec.catalog, rec.store)(
        StreamRef(APP, REGION, EP, stream),
        file_name=name or f"clip{next(_names)}.m3u8",
        start=start,
        end=end,
        precise=precise,
    )


def shown_number(rec: Recorded, result: SnapshotResult) -> int:
    path = rec.store.root / REGION / APP / result.file_name
    with av.open(str(path)) as container:
        return read_frame_number(next(container.decode(video=0)))


def played(rec: Recorded, result: ClipResult, *, quiet: bool = True) -> list[int]:
    """The frame numbers a player decodes from the clip. FFmpeg must not complain (a
    timestamp going back, a continuity counter jump, an undecodable picture) unless the clip
    crosses recordings: its HLS demuxer reads on through an EXT-X-DISCONTINUITY as if the
    stream were continuous."""
    with libav_warnings() as logs:
        frames = decode_frames(str(rec.store.root / REGION / APP / result.file_name))
    if quiet:
        assert logs == []
    return [n for _, n in frames]


# -- the recordings themselves -----------------------------------------------------------------


def test_recordings_are_as_the_tests_assume(rec: Recorded) -> None:
    segs = rec.segments()
    assert len(segs) == 6  # 4 of the first push, 2 of the second
    assert len({s.recording_id for s in segs}) == 2
    assert segs[0].start_time == T0
    assert segs[4].start_time == REC2
    assert rec.cam[50] == segs[1].start_time  # segment 1 starts with frame 50's keyframe


# -- snapshots --------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 37, 49, 50, 51, 100, 199, 1000, 1050, 1099])
def test_snapshot_at_just_before_and_after_a_frame(rec: Recorded, n: int) -> None:
    at = rec.frame_time(n)
    result = snap(rec, at)
    assert (shown_number(rec, result), result.time) == (n, at)
    assert (result.width, result.height) == (320, 240)
    assert result.file_name.startswith(f"record/{EP}/cam1/snap")
    after = snap(rec, at + 17 * MS)
    assert (shown_number(rec, after), after.time) == (n, at)
    if n % 1000:
        before = snap(rec, at - US)
        assert shown_number(rec, before) == n - 1
        assert before.time == rec.frame_time(n - 1)


def test_snapshot_time_none_is_the_latest_frame(rec: Recorded) -> None:
    result = snap(rec, None)
    assert shown_number(rec, result) == 1099
    assert result.time == rec.frame_time(1099)


def test_snapshot_same_instant_in_any_offset(rec: Recorded) -> None:
    at = rec.frame_time(123) + 5 * MS
    east = snap(rec, at.astimezone(timezone(timedelta(hours=8))))
    zulu = snap(rec, at)
    assert east.time == zulu.time == rec.frame_time(123)
    assert shown_number(rec, east) == shown_number(rec, zulu) == 123


def test_snapshot_time_given_back_selects_the_same_frame(rec: Recorded) -> None:
    first = snap(rec, rec.frame_time(77) + 30 * MS)
    again = snap(rec, datetime.fromisoformat(format_time(first.time)))
    assert shown_number(rec, again) == 77


@pytest.mark.parametrize(
    "at",
    [
        T0 - timedelta(seconds=1),  # before the first recording
        T0 + timedelta(seconds=12),  # in the gap between the two
        REC2 + timedelta(seconds=30),  # after the last
        T0 + 10 * MS,  # inside the first segment, before its first video frame (audio first)
    ],
)
def test_snapshot_outside_the_recordings_is_not_found(rec: Recorded, at: datetime) -> None:
    name = f"missing{next(_names)}.jpg"
    with pytest.raises(NotFoundError):
        SnapshotWriter(rec.catalog, rec.store)(CAM1, file_name=name, time=at)
    # The name is released and nothing was written.
    assert not rec.catalog.file_reserved(CAM1, name)
    assert not (rec.folder() / name).exists()


def test_snapshot_of_an_unknown_stream_is_not_found(rec: Recorded) -> None:
    with pytest.raises(NotFoundError):
        snap(rec, None, stream="nobody")
    with pytest.raises(NotFoundError):
        snap(rec, T0 + timedelta(seconds=1), stream="nobody")


def test_snapshot_of_audio_only_recording_says_no_video(rec: Recorded) -> None:
    with pytest.raises(NotFoundError, match="no video"):
        snap(rec, T0 + timedelta(seconds=1), stream="radio")
    with pytest.raises(NotFoundError, match="no video"):
        snap(rec, None, stream="radio")


def test_snapshot_file_name_conflict(rec: Recorded) -> None:
    make_snapshot = SnapshotWriter(rec.catalog, rec.store)
    kwargs: dict[str, Any] = {"file_name": "same.jpg", "time": rec.frame_time(10)}
    make_snapshot(CAM1, **kwargs)
    data = (rec.folder() / "same.jpg").read_bytes()
    assert data[:2] == b"\xff\xd8"  # a JPEG
    with pytest.raises(ConflictError):
        make_snapshot(CAM1, **(kwargs | {"time": rec.frame_time(20)}))
    assert (rec.folder() / "same.jpg").read_bytes() == data  # the first one stays


@pytest.mark.parametrize("n", [47, 48, 49, 50, 51, 52, 75, 149])
def test_snapshot_with_b_frames(rec: Recorded, n: int) -> None:
    # With B-frames the keyframe opening a segment is shown a little after the segment
    # starts; until then the previous segment's last frames are on screen.
    at = rec.bcam[n]
    for t in (at, at + 39 * MS):
        result = snap(rec, t, stream="bcam")
        assert shown_number(rec, result) == n
        assert result.time == at
    assert shown_number(rec, snap(rec, at - US, stream="bcam")) == n - 1


# -- plain clips ------------------------------------------------------------------------------


def test_plain_clip_from_segment_holding_start_to_segment_holding_end(rec: Recorded) -> None:
    segs = rec.segments()
    result = clip(rec, T0 + timedelta(seconds=3), T0 + timedelta(seconds=5))
    playlist = parse((rec.store.root / REGION / APP / result.file_name).read_text())
    assert [e.uri for e in playlist.segments] == [s.key.rsplit("/", 1)[1] for s in segs[1:3]]
    assert [e.program_date_time for e in playlist.segments] == [s.start_time for s in segs[1:3]]
    assert playlist.endlist and playlist.playlist_type == "VOD"
    assert not any(e.discontinuity for e in playlist.segments)
    assert (result.start, result.end) == (segs[1].start_time, segs[2].end_time)
    assert result.segments == 2 and not result.precise
    assert result.duration == pytest.approx(segs[1].duration + segs[2].duration)
    assert played(rec, result) == list(range(50, 150))


def test_plain_clip_boundaries_are_exact(rec: Recorded) -> None:
    segs = rec.segments()
    # A start at a segment's very end is in the next one; an end at a start includes it.
    result = clip(rec, segs[0].end_time, segs[2].start_time)
    assert result.segments == 2
    assert (result.start, result.end) == (segs[1].start_time, segs[2].end_time)


def test_plain_clip_across_recordings_has_a_discontinuity(rec: Recorded) -> None:
    result = clip(rec, T0 + timedelta(seconds=5), REC2 + timedelta(seconds=1))
    text = (rec.store.root / REGION / APP / result.file_name).read_text()
    playlist = parse(text)
    assert [e.discontinuity for e in playlist.segments] == [False, False, True]
    assert text.count("#EXT-X-DISCONTINUITY\n") == 1
    assert text.count("#EXT-X-PROGRAM-DATE-TIME") == 3
    frames = played(rec, result, quiet=False)
    assert frames == list(range(100, 200)) + list(range(1000, 1050))


def test_plain_clip_end_none_runs_to_the_latest_media(rec: Recorded) -> None:
    segs = rec.segments()
    result = clip(rec, REC2 + timedelta(seconds=3), None)
    assert result.segments == 1
    assert result.end == segs[-1].end_time
    both = clip(rec, T0 + timedelta(seconds=7), None)
    assert both.segments == 3 and both.end == segs[-1].end_time


def test_plain_clip_same_instant_in_any_offset(rec: Recorded) -> None:
    east = timezone(timedelta(hours=8))
    start, end = T0 + timedelta(seconds=2.5), T0 + timedelta(seconds=6.1)
    a = clip(rec, start.astimezone(east), end.astimezone(east))
    b = clip(rec, start, end)
    assert (a.start, a.end, a.duration, a.segments) == (b.start, b.end, b.duration, b.segments)
    read = [(rec.store.root / REGION / APP / r.file_name).read_text() for r in (a, b)]
    assert read[0] == read[1]


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (T0 + timedelta(seconds=10), T0 + timedelta(seconds=15)),  # inside the gap
        (T0 - timedelta(seconds=30), T0 - timedelta(seconds=10)),  # before everything
        (REC2 + timedelta(seconds=10), None),  # after the last media
    ],
)
def test_clip_without_segments_is_not_found(
    rec: Recorded, start: datetime, end: datetime | None
) -> None:
    name = f"none{next(_names)}.m3u8"
    with pytest.raises(NotFoundError, match="no recording of cam1"):
        clip(rec, start, end, name=name)
    assert not rec.catalog.file_reserved(CAM1, name)
    with pytest.raises(NotFoundError):
        clip(rec, start, end, name="x.m3u8", stream="nobody")


def test_clip_file_name_conflict(rec: Recorded) -> None:
    clip(rec, T0 + timedelta(seconds=1), T0 + timedelta(seconds=2), name="taken.m3u8")
    with pytest.raises(ConflictError):
        clip(rec, T0 + timedelta(seconds=3), T0 + timedelta(seconds=4), name="taken.m3u8")
    with pytest.raises(ConflictError):  # a recording's playlist name is taken too
        clip(rec, T0, T0 + timedelta(seconds=1), name=f"s1_{session_date(T0)}.m3u8")


# -- precise clips ----------------------------------------------------------------------------


def expect_exact(
    rec: Recorded, result: ClipResult, first: int, last: int, *, quiet: bool = True
) -> list[int]:
    frames = played(rec, result, quiet=quiet)
    assert frames[0] == first and frames[-1] == last
    assert result.start == rec.frame_time(first) and result.end == rec.frame_time(last)
    assert result.precise
    path = str(rec.store.root / REGION / APP / result.file_name)
    assert audio_duration(path) == pytest.approx(result.duration, abs=0.1)
    return frames


@pytest.mark.parametrize(
    ("first", "last"),
    [
        (13, 162),  # head and tail inside GOPs of different segments
        (50, 99),  # on keyframes: exactly two whole segments
        (60, 70),  # inside one GOP of one segment
        (30, 80),  # across a keyframe in one segment... and into the next
        (0, 199),  # the whole recording
        (74, 76),  # around a keyframe (75) in the middle of a segment
    ],
)
def test_precise_clip_starts_and_ends_on_the_exact_frames(
    rec: Recorded, first: int, last: int
) -> None:
    start = rec.frame_time(first) + 20 * MS  # between two frames: the one shown then
    end = rec.frame_time(last) + 39 * MS
    result = clip(rec, start, end, precise=True)
    assert expect_exact(rec, result, first, last) == list(range(first, last + 1))


def test_precise_clip_writes_head_and_tail_only_where_needed(rec: Recorded) -> None:
    base = f"p{next(_names)}"
    result = clip(rec, rec.frame_time(13), rec.frame_time(162), precise=True, name=f"{base}.m3u8")
    playlist = parse((rec.store.root / REGION / APP / result.file_name).read_text())
    segs = rec.segments()
    assert [e.uri for e in playlist.segments] == [
        f"{base}_head.ts",
        segs[1].key.rsplit("/", 1)[1],
        segs[2].key.rsplit("/", 1)[1],
        f"{base}_tail.ts",
    ]
    assert playlist.segments[0].program_date_time == rec.frame_time(13)
    assert all(e.program_date_time is not None for e in playlist.segments)
    one = clip(rec, rec.frame_time(60), rec.frame_time(70), precise=True, name=f"{base}1.m3u8")
    assert [e.uri for e in parse((rec.folder() / f"{base}1.m3u8").read_text()).segments] == [
        f"{base}1_head.ts"
    ]
    assert one.duration == pytest.approx(11 * 0.04)
    # Already on the segment's boundaries: the recorded segments are referenced as they are.
    whole = clip(rec, rec.frame_time(50), rec.frame_time(99), precise=True, name=f"{base}2.m3u8")
    assert whole.segments == 1
    assert [e.uri for e in parse((rec.folder() / f"{base}2.m3u8").read_text()).segments] == [
        segs[1].key.rsplit("/", 1)[1]
    ]


def test_only_the_partial_gop_is_reencoded(rec: Recorded) -> None:
    seg = rec.segments()[0]  # frames 0-49, keyframes at 0 and 25
    with open_segment(rec.store, CAM1, seg) as media:
        recorded = {bytes(p) for p in media.video}
        head = cut_segment(media, 13, None)
        tail = cut_segment(media, None, 30)
        both = cut_segment(media, 13, 20)
    assert (head.reencoded, tail.reencoded, both.reencoded) == (12, 0, 8)
    for cut, frames, copied in ((head, 37, 25), (tail, 31, 31), (both, 8, 0)):
        container: Any = av.open(io.BytesIO(cut.data), format="mpegts")
        with container:
            packets = [bytes(p) for p in container.demux(video=0) if p.size]
        # From the keyframe on, the frames are the recorded bytes, unchanged.
        assert len(packets) == frames
        assert sum(data in recorded for data in packets) == copied
    assert head.start_time == rec.frame_time(13)
    assert head.duration == pytest.approx((seg.end_time - rec.frame_time(13)).total_seconds())
    assert tail.start_time == seg.start_time  # the audio before frame 0 is kept
    assert both.duration == pytest.approx(8 * 0.04)


def test_precise_clip_across_recordings(rec: Recorded) -> None:
    result = clip(rec, rec.frame_time(170), rec.frame_time(1030), precise=True)
    text = (rec.store.root / REGION / APP / result.file_name).read_text()
    assert text.count("#EXT-X-DISCONTINUITY\n") == 1
    frames = expect_exact(rec, result, 170, 1030, quiet=False)
    assert frames == list(range(170, 200)) + list(range(1000, 1031))


def test_precise_clip_same_instant_in_any_offset(rec: Recorded) -> None:
    east = timezone(timedelta(hours=8))
    start, end = rec.frame_time(33) + 3 * MS, rec.frame_time(140)
    a = clip(rec, start.astimezone(east), end.astimezone(east), precise=True)
    b = clip(rec, start, end, precise=True)
    assert (a.start, a.end, a.duration) == (b.start, b.end, b.duration)
    assert played(rec, a) == played(rec, b) == list(range(33, 141))


@pytest.mark.parametrize(("first", "last"), [(20, 140), (48, 49), (49, 51), (60, 98), (3, 47)])
def test_precise_clip_with_b_frames(rec: Recorded, first: int, last: int) -> None:
    start, end = rec.bcam[first], rec.bcam[last] + 10 * MS
    result = clip(rec, start, end, precise=True, stream="bcam")
    assert played(rec, result) == list(range(first, last + 1))
    assert (result.start, result.end) == (rec.bcam[first], rec.bcam[last])


def test_precise_clip_of_audio_only_cuts_on_audio_frames(rec: Recorded) -> None:
    start, end = T0 + timedelta(seconds=0.5), T0 + timedelta(seconds=2.5)
    result = clip(rec, start, end, precise=True, stream="radio")
    assert result.precise and result.segments == 2
    assert start - 24 * MS < result.start <= start  # the AAC frame playing at start
    assert end - 24 * MS < result.end <= end
    path = str(rec.store.root / REGION / APP / result.file_name)
    assert audio_duration(path) == pytest.approx(2.0, abs=0.05)
    assert result.duration == pytest.approx(2.0, abs=0.05)


class PlaylistFailingStore(LocalStore):
    """A real local store whose playlist writes fail, as a full disk or an S3 outage would."""

    def put(self, key: str, data: bytes, content_type: str = "") -> None:
        if key.endswith(".m3u8"):
            raise StorageError(f"cannot write {key!r}: no space left")
        super().put(key, data, content_type)


def test_precise_clip_failing_late_removes_what_it_wrote(rec: Recorded) -> None:
    store = PlaylistFailingStore(rec.store.root)
    with pytest.raises(StorageError):
        ClipWriter(rec.catalog, store)(
            CAM1,
            file_name="late.m3u8",
            start=rec.frame_time(13),
            end=rec.frame_time(162),
            precise=True,
        )
    assert not rec.catalog.file_reserved(CAM1, "late.m3u8")
    assert not list(rec.folder().glob("late*"))
    result = clip(rec, rec.frame_time(13), rec.frame_time(162), precise=True, name="late.m3u8")
    assert played(rec, result) == list(range(13, 163))


def test_precise_clip_on_a_missing_segment_cleans_up(rec: Recorded) -> None:
    segs = rec.segments("broken")
    (rec.store.root / REGION / APP / segs[-1].key).unlink()
    with pytest.raises(StorageError):
        clip(rec, T0 + timedelta(seconds=1.1), None, precise=True, stream="broken", name="b.m3u8")
    assert not rec.catalog.file_reserved(CAM1.with_stream("broken"), "b.m3u8")
    assert not list(rec.folder("broken").glob("b*"))


# -- precise clips: the answer's times and the media agree ------------------------------------

FRAME = timedelta(milliseconds=40)  # 25 fps in every video stream here
AAC_FRAME = 1024 / 44100  # seconds of one AAC frame


@dataclass(frozen=True)
class Opening:
    """How a clip's playlist starts, as FFmpeg's HLS demuxer (what players build on) reads
    it: all times in seconds of the media's own 90 kHz timeline."""

    start: float  # where the demuxer says the playlist's media starts (its earliest PTS)
    first_frame: float  # presentation time of the first video frame decoded
    video_start: float  # the video stream's start_time
    first_audio: float | None  # presentation time of the first audio packet
    audio_frame: float  # duration of that audio packet


def opening(rec: Recorded, result: ClipResult) -> Opening:
    path = str(rec.store.root / REGION / APP / result.file_name)
    container: Any = av.open(path, options={"protocol_whitelist": "file"})
    with container:
        video = container.streams.video[0]
        audio = container.streams.audio[0] if container.streams.audio else None
        first_audio: float | None = None
        audio_frame = AAC_FRAME
        first_frame: float | None = None
        for pkt in container.demux():
            if pkt.pts is None:
                continue
            time = float(pkt.pts * pkt.time_base)
            # The first one read: audio is in order, and after an EXT-X-DISCONTINUITY the
            # next recording's timestamps may be anywhere.
            if pkt.stream == audio and first_audio is None:
                first_audio = time
                audio_frame = float(pkt.duration * pkt.time_base) if pkt.duration else AAC_FRAME
            if pkt.stream == video:
                for frame in video.codec_context.decode(pkt):
                    if first_frame is None:
                        first_frame = float(frame.pts * frame.time_base)
        assert first_frame is not None
        return Opening(
            container.start_time / av.time_base,
            first_frame,
            float(video.start_time * video.time_base),
            first_audio,
            audio_frame,
        )


# Cuts of both streams: `bcam` has B-frames (2, so a 80 ms reorder delay), `cam1` none.
CUTS = [
    ("cam1", 13, 162),
    ("cam1", 60, 70),
    ("cam1", 0, 199),  # the whole recording: audio before frame 0 and after frame 199
    ("cam1", 50, 99),
    ("cam1", 74, 76),
    ("cam1", 170, 1030),  # across recordings
    ("bcam", 20, 140),
    ("bcam", 3, 47),
    ("bcam", 60, 98),
    ("bcam", 50, 99),  # a B-frame segment's first frame is shown after it starts
    ("bcam", 20, 99),  # ...and its last ones after it ends
    ("bcam", 48, 49),  # frames of segment 0 shown after segment 1 starts
    ("bcam", 49, 51),
    ("bcam", 49, 140),
    ("bcam", 0, 149),  # the whole recording
]


def precise_clip(
    rec: Recorded, stream: str, first: int, last: int
) -> tuple[ClipResult, list[int], bool]:
    """A precise clip from frame `first` to frame `last` (asked for 5 ms into each), checked
    to play exactly those frames; the frames; and whether it crosses recordings."""
    times = rec.cam if stream == "cam1" else rec.bcam
    result = clip(rec, times[first] + 5 * MS, times[last] + 5 * MS, precise=True, stream=stream)
    assert (result.start, result.end) == (times[first], times[last])
    crossing = last >= 1000 > first
    frames = played(rec, result, quiet=not crossing)
    assert frames == [n for n in range(first, last + 1) if n in times]
    return result, frames, crossing


@pytest.mark.parametrize(("stream", "first", "last"), CUTS)
def test_precise_clip_duration_runs_from_first_frame_to_end_of_last(
    rec: Recorded, stream: str, first: int, last: int
) -> None:
    result, frames, crossing = precise_clip(rec, stream, first, last)
    # The answer's duration runs from the first frame to the end of the last one's display:
    # endTime - startTime plus the last frame's own display time, never the 0.1-0.2 s more
    # of a head segment timed from its first DTS.
    frame = FRAME.total_seconds()
    if not crossing:
        span = (result.end - result.start).total_seconds()
        assert result.duration == pytest.approx(span + frame, abs=0.002)
    else:
        # Across recordings endTime - startTime spans the gap; the clip plays each one's
        # media, and the recorded segments it references whole also hold the audio muxed
        # around a recording's first and last frames (less than one frame here).
        assert abs(result.duration - len(frames) * frame) < frame
    playlist = parse((rec.store.root / REGION / APP / result.file_name).read_text())
    assert playlist.segments[0].program_date_time == result.start
    assert sum(e.duration for e in playlist.segments) == pytest.approx(result.duration, abs=0.003)
    assert all(e.duration > 0 for e in playlist.segments)


@pytest.mark.parametrize(("stream", "first", "last"), CUTS)
def test_precise_clip_plays_nothing_before_its_first_frame(
    rec: Recorded, stream: str, first: int, last: int
) -> None:
    result, _, _ = precise_clip(rec, stream, first, last)
    head = opening(rec, result)
    # The first frame is shown at the start of the playlist's media: no audio under a blank
    # picture before it (at most part of one audio frame, the one playing at that instant).
    assert head.first_frame == head.video_start
    assert head.start == pytest.approx(head.first_frame, abs=2e-6)  # microseconds there
    if head.first_audio is not None:
        assert head.first_audio > head.first_frame - head.audio_frame
