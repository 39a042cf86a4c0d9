"""The segmenter on synthetic frames: keyframe cuts, durations, wall clock, jumps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from liverec.recorder.segmenter import SegmentData, Segmenter

T0 = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
AU = b"\x00\x00\x00\x01\x09\xf0" + b"\x00\x00\x00\x01\x65" + b"\x88" * 50
ADTS = b"\xff\xf1\x50\x80\x02\x1f\xfc" + b"\x00" * 10


def feed_video(
    seg: Segmenter,
    start: int,
    count: int,
    *,
    gop: int = 25,
    step: int = 40,
    now: datetime = T0,
    first_index: int = 0,
) -> list[SegmentData]:
    out: list[SegmentData] = []
    for i in range(count):
        index = first_index + i
        out += seg.video(start + i * step, 0, index % gop == 0, AU, now)
    return out


def test_cuts_on_keyframes_once_target_reached() -> None:
    seg = Segmenter(4.0, video=True, audio=False)
    done = feed_video(seg, 1000, 250, gop=25)  # 10 s, keyframe every second
    done += seg.flush()
    assert [d.seq for d in done] == [0, 1, 2]
    assert [d.duration for d in done] == [4.0, 4.0, 2.0]
    assert all(d.keyframe_start for d in done)
    assert [d.video_frames for d in done] == [100, 100, 50]
    assert [d.wall_start for d in done] == [
        T0,
        T0 + timedelta(seconds=4),
        T0 + timedelta(seconds=8),
    ]
    assert not any(d.discontinuity for d in done)
    assert all(d.data[:1] == b"\x47" and len(d.data) % 188 == 0 for d in done)


def test_segment_waits_for_a_keyframe() -> None:
    seg = Segmenter(4.0, video=True, audio=False)
    done = feed_video(seg, 0, 250, gop=75)  # keyframes at 0, 3, 6, 9 s
    done += seg.flush()
    assert [d.duration for d in done] == [6.0, 4.0]


def test_audio_only_cuts_on_any_frame() -> None:
    seg = Segmenter(2.0, video=False, audio=True)
    done: list[SegmentData] = []
    for i in range(220):  # ~5 s of 23 ms frames
        done += seg.audio(i * 23, ADTS, 23, T0)
    done += seg.flush()
    assert len(done) == 3
    assert sum(d.duration for d in done) == pytest.approx(220 * 23 / 1000)


@pytest.mark.parametrize("jump", [-5000, -300, 60_000])
def test_timestamp_jump_is_a_discontinuity_with_true_wall_time(jump: int) -> None:
    seg = Segmenter(4.0, video=True, audio=False)
    done = feed_video(seg, 0, 75)  # 3 s
    later = T0 + timedelta(seconds=10)  # the server's clock when the jump arrives
    done += feed_video(seg, 3000 + jump, 50, now=later, first_index=75)
    done += seg.flush()
    assert [d.discontinuity for d in done] == [False, True]
    assert done[0].duration == pytest.approx(3.0)
    assert done[1].wall_start == later
    assert done[1].start_ms == 3000  # media timeline continues where it ended


def test_small_backward_jitter_is_not_a_jump() -> None:
    seg = Segmenter(4.0, video=True, audio=True)
    out = seg.video(0, 0, True, AU, T0)
    out += seg.audio(100, ADTS, 23, T0)
    out += seg.audio(50, ADTS, 23, T0)  # 50 ms back
    out += seg.flush()
    assert [d.discontinuity for d in out] == [False]


def test_stream_without_keyframes_is_still_cut() -> None:
    seg = Segmenter(1.0, video=True, audio=False)
    done = seg.video(0, 0, True, AU, T0)
    for i in range(1, 1000):  # 40 s without another keyframe
        done += seg.video(i * 40, 0, False, AU, T0)
    assert len(done) == 1 and done[0].duration == pytest.approx(20.0)
    assert not done[0].discontinuity


def test_second_track_on_a_far_clock_starts_where_media_is() -> None:
    seg = Segmenter(4.0, video=True, audio=True)
    done = feed_video(seg, 0, 50)  # 2 s of video from 0
    for i in range(100):  # audio whose clock starts 60 s later
        done += seg.audio(60_000 + i * 23, ADTS, 23, T0)
    done += feed_video(seg, 2000, 100, first_index=50)
    done += seg.flush()
    # No segment is stamped a minute ahead: the push is 6 s of media.
    assert done[-1].wall_start + timedelta(seconds=done[-1].duration) <= T0 + timedelta(seconds=6.1)
    assert not any(d.discontinuity for d in done)


def test_audio_only_segments_can_start_a_new_recording() -> None:
    seg = Segmenter(1.0, video=False, audio=True)
    done: list[SegmentData] = []
    for i in range(100):
        done += seg.audio(i * 23, ADTS, 23, T0)
    assert done and all(d.keyframe_start for d in done)
