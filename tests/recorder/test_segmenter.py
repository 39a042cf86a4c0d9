"""The segmenter on synthetic frames: keyframe cuts, durations, wall clock, jumps, and the
playlist target duration it never exceeds, pauses included."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from liverec.media.m3u8 import target_duration_for
from liverec.media.ts import AUDIO_PID, PACKET_SIZE, VIDEO_PID, first_dts
from liverec.recorder.segmenter import (
    TS_BASE_90K,
    SegmentData,
    Segmenter,
    playlist_target_duration,
)
from liverec.storage.parts import PartDir
from support.aacgen import aac_frames, demuxed_audio

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
    seg = Segmenter(1.0, video=True, audio=False)  # limit 9 s: cut 1 s before it
    done = seg.video(0, 0, True, AU, T0)
    for i in range(1, 1000):  # 40 s without another keyframe
        done += seg.video(i * 40, 0, False, AU, T0)
    assert [d.duration for d in done] == [8.0] * 4
    assert [d.keyframe_start for d in done] == [True, False, False, False]
    assert not any(d.discontinuity for d in done)


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


# -- the playlist target duration: fixed, and never exceeded ------------------------------


@pytest.mark.parametrize(
    ("target", "expected"),
    [(4.0, 12), (2.0, 10), (1.0, 9), (0.5, 9), (6.0, 14), (7.5, 16), (10.0, 20), (600.0, 1200)],
)
def test_playlist_target_duration_rule(target: float, expected: int) -> None:
    assert playlist_target_duration(target) == expected
    seg = Segmenter(target, video=True, audio=False)
    assert seg.playlist_target == expected and seg.limit_ms == expected * 1000


def pes_times(data: bytes, pid: int) -> list[int]:
    """The DTS (PTS when alone) of every PES on `pid` in TS bytes, in file order."""
    out = []
    for pos in range(0, len(data), PACKET_SIZE):
        pkt = data[pos : pos + PACKET_SIZE]
        if ((pkt[1] & 0x1F) << 8 | pkt[2]) != pid or not pkt[1] & 0x40:
            continue
        pes = pkt[4 + (1 + pkt[4] if pkt[3] & 0x20 else 0) :]
        f = pes[14:19] if pes[7] >> 6 == 0b11 else pes[9:14]
        out.append((f[0] >> 1 & 7) << 30 | f[1] << 22 | (f[2] >> 1) << 15 | f[3] << 7 | f[4] >> 1)
    return out


def video_dts(data: bytes) -> list[int]:
    return pes_times(data, VIDEO_PID)


def check_playlist_rules(done: list[SegmentData], video_raw: list[int]) -> None:
    """What every recording must keep: one target duration, no EXTINF past it, segments
    that end where the next starts unless it is marked, and every video frame's wall
    clock, by the rule post-processing reads it with, equal to the server's clock when it
    arrived (the tests send each frame at T0 + its timestamp)."""
    assert {d.playlist_target for d in done} == {done[0].playlist_target}
    limit = done[0].playlist_target
    assert all(0 < d.duration <= limit for d in done)
    assert target_duration_for(d.duration for d in done) <= limit
    for a, b in itertools.pairwise(done):
        end = a.wall_start + timedelta(seconds=a.duration)
        assert end == b.wall_start if not b.discontinuity else end <= b.wall_start
    walls = []
    for d in done:
        first = first_dts(d.data)
        walls += [
            d.wall_start + timedelta(milliseconds=(v - first) / 90) for v in video_dts(d.data)
        ]
    assert walls == [T0 + timedelta(milliseconds=t) for t in video_raw]


def feed_av(
    seg: Segmenter,
    end: int,
    *,
    keyframe: Callable[[int], bool],
    skip: Callable[[int], bool] = lambda t: False,
    skip_video: Callable[[int], bool] = lambda t: False,
) -> tuple[list[SegmentData], list[int]]:
    """Video every 40 ms and audio every 23 ms up to `end` ms, each sent at T0 + its
    timestamp; frames at a skipped time are never sent (the publisher paused)."""
    out: list[SegmentData] = []
    sent: list[int] = []
    audio = 0
    for t in range(0, end, 40):
        while audio <= t:
            if not skip(audio):
                out += seg.audio(audio, ADTS, 23, T0 + timedelta(milliseconds=audio))
            audio += 23
        if skip(t) or skip_video(t):
            continue
        out += seg.video(t, 0, keyframe(t), AU, T0 + timedelta(milliseconds=t))
        sent.append(t)
    return out + seg.flush(), sent


def test_long_encoder_default_gops_still_cut_on_keyframes() -> None:
    # x264's default keyint of 250 frames at 24 fps: a keyframe every 10.417 s.
    seg = Segmenter(4.0, video=True, audio=False)
    done: list[SegmentData] = []
    stamps = [round(i * 1000 / 24) for i in range(1500)]  # 62.5 s
    for i, t in enumerate(stamps):
        done += seg.video(t, 0, i % 250 == 0, AU, T0 + timedelta(milliseconds=t))
    done += seg.flush()
    assert all(d.keyframe_start for d in done)
    assert [d.duration for d in done[:-1]] == pytest.approx([10.417] * 5, abs=0.001)
    check_playlist_rules(done, stamps)


def test_a_keyframe_cuts_early_when_the_next_would_pass_the_limit() -> None:
    # 10 s GOPs, and one extra keyframe 3 s into a segment (a scene cut): waiting past it
    # for the next, 10 s later, would make a 13 s segment.
    keyframes = {0, 10_000, 13_000, 23_000, 33_000}
    seg = Segmenter(4.0, video=True, audio=True)
    done, sent = feed_av(seg, 40_000, keyframe=keyframes.__contains__)
    assert [d.duration for d in done] == pytest.approx([10.0, 3.0, 10.0, 10.0, 7.0], abs=0.03)
    assert all(d.keyframe_start for d in done[1:])  # the first starts with audio
    check_playlist_rules(done, sent)


def test_gops_longer_than_the_limit_are_cut_without_keyframes() -> None:
    seg = Segmenter(4.0, video=True, audio=False)
    done: list[SegmentData] = []
    stamps = list(range(0, 60_000, 40))
    for t in stamps:
        done += seg.video(t, 0, t % 20_000 == 0, AU, T0 + timedelta(milliseconds=t))
    done += seg.flush()
    # Cut at 11 s (1 s before the limit), then back on the next keyframe.
    assert [d.duration for d in done] == [11.0, 9.0, 11.0, 9.0, 11.0, 9.0]
    assert [d.keyframe_start for d in done] == [True, False] * 3
    assert not any(d.discontinuity for d in done)
    check_playlist_rules(done, stamps)


@pytest.mark.parametrize(
    ("pause_at", "pause", "split"),
    [
        (5_000, 7_000, False),  # the pause fits in its segment (4-12 s + the next keyframe)
        (5_000, 9_000, False),
        (8_000, 8_000, False),  # the segment (from 4 s) reaches the 12 s limit exactly
        (7_900, 8_200, True),  # it would take the segment past the limit
        (7_500, 9_000, True),
        (5_000, 14_000, True),  # longer than JUMP_FORWARD_MS: the clock is re-anchored
    ],
)
def test_a_paused_publisher_keeps_the_target_duration_and_the_wall_clock(
    pause_at: int, pause: int, split: bool
) -> None:
    seg = Segmenter(4.0, video=True, audio=True)
    done, sent = feed_av(
        seg,
        40_000,
        keyframe=lambda t: t % 2000 == 0,
        skip=lambda t: pause_at <= t < pause_at + pause,
    )
    assert any(d.discontinuity for d in done) == split
    assert done[0].playlist_target == 12
    check_playlist_rules(done, sent)
    if split:
        # The segment before the pause ends with its media, not with the pause; the one
        # after it, which starts on whatever frame came first, ends at the first keyframe.
        after = next(i for i, d in enumerate(done) if d.discontinuity)
        end = done[after - 1].wall_start + timedelta(seconds=done[after - 1].duration)
        assert end - T0 < timedelta(milliseconds=pause_at + 40)
        assert not done[after].keyframe_start and done[after + 1].keyframe_start


def test_a_stalled_video_track_is_no_jump() -> None:
    # The camera freezes for 14 s while the microphone goes on: the frames that follow
    # are still on the publisher's clock, and the segment is cut before the limit.
    seg = Segmenter(4.0, video=True, audio=True)
    done, sent = feed_av(
        seg,
        40_000,
        keyframe=lambda t: t % 2000 == 0,
        skip_video=lambda t: 5_000 <= t < 19_000,
    )
    assert not any(d.discontinuity for d in done)
    assert max(d.duration for d in done) <= 11.05
    check_playlist_rules(done, sent)
    # After the stall, segments are cut on keyframes at the target again.
    assert [d.duration for d in done[-4:]] == pytest.approx([4.0, 4.0, 4.0, 4.0], abs=0.03)


def test_segments_cut_into_part_files_are_the_same_bytes(tmp_path: Path) -> None:
    big = AU + b"\x88" * 12_000  # a 720p-sized frame: parts are written in chunks
    in_memory = Segmenter(4.0, video=True, audio=False)
    on_disk = Segmenter(4.0, video=True, audio=False, parts=PartDir(tmp_path).new_part)
    expected: list[SegmentData] = []
    done: list[SegmentData] = []
    live: list[bytes] = []
    for i in range(250):
        expected += in_memory.video(i * 40, 0, i % 25 == 0, big, T0)
        done += on_disk.video(i * 40, 0, i % 25 == 0, big, T0)
        if i % 10 == 5:
            current = on_disk.open_segment()
            assert current is not None and current == in_memory.open_segment()
            live.append(current[1])
    expected += in_memory.flush()
    done += on_disk.flush()
    assert [d.data for d in done] == [d.data for d in expected]
    assert all(d.part.in_file and d.part.path is not None for d in done)
    assert all(d.size == len(d.data) > 1_000_000 for d in done[:2])
    assert max(len(b) for b in live) > 64 * 1024  # open segments were read across chunks
    for d in done:
        d.part.release()
    assert list(tmp_path.rglob("*.part")) == []


# -- audio frames a few to a PES ---------------------------------------------------------


def audio_pes(data: bytes) -> list[int]:
    return pes_times(data, AUDIO_PID)


def test_consecutive_audio_frames_share_a_pes_and_demux_with_their_own_times() -> None:
    frames = aac_frames(200)  # 4.6 s at 44.1 kHz, ~23.2 ms a frame
    stamps = [round(i * 1024_000 / 44100) for i in range(200)]  # RTMP's whole ms
    seg = Segmenter(4.0, video=False, audio=True)
    done: list[SegmentData] = []
    for t, adts in zip(stamps, frames, strict=True):
        done += seg.audio(t, adts, 23, T0 + timedelta(milliseconds=t))
    done += seg.flush()
    data = b"".join(d.data for d in done)
    pes = audio_pes(data)
    assert len(pes) < 200 / 5  # a few frames each
    back = demuxed_audio(data)
    assert [f for _, f in back] == frames  # every frame, in order
    for (pts, _), t in zip(back, stamps, strict=True):
        assert abs(pts - (TS_BASE_90K + t * 90)) <= 90  # within RTMP's millisecond
    # Stored: ~1 % over the frames, where a PES each took 3 packets (~50 % on these).
    assert len(data) < 1.1 * sum(map(len, frames)) + 2 * 188 * len(done)


def test_a_gap_in_the_audio_starts_a_new_pes_at_its_own_time() -> None:
    frames = aac_frames(20)
    stamps = [i * 23 for i in range(10)] + [i * 23 + 500 for i in range(10, 20)]
    seg = Segmenter(4.0, video=False, audio=True)
    for t, adts in zip(stamps, frames, strict=True):
        seg.audio(t, adts, 23, T0 + timedelta(milliseconds=t))
    data = b"".join(d.data for d in seg.flush())
    assert TS_BASE_90K + 730 * 90 in audio_pes(data)  # the frame after the gap has its PTS
    back = demuxed_audio(data)
    assert abs(back[10][0] - (TS_BASE_90K + 730 * 90)) <= 90


def test_audio_gathered_before_a_keyframe_cut_stays_in_the_segment_it_came_in() -> None:
    seg = Segmenter(2.0, video=True, audio=True)
    done, _ = feed_av(seg, 6000, keyframe=lambda t: t % 2000 == 0)
    assert len(done) == 3
    for d in done:
        audio = audio_pes(d.data)
        video = video_dts(d.data)
        # Each segment's audio starts within a frame of its video and ends within the
        # gathering delay of its end; none of it runs into the next segment's time.
        start = TS_BASE_90K + d.start_ms * 90
        end = start + round(d.duration * 90_000)
        assert video[0] == start
        assert start - 23 * 90 <= audio[0] <= start + 23 * 90
        assert all(start - 23 * 90 <= pts < end for pts in audio)


def test_an_audio_only_segment_starts_with_its_first_frame() -> None:
    seg = Segmenter(2.0, video=False, audio=True)
    done: list[SegmentData] = []
    for i in range(300):
        done += seg.audio(i * 23, ADTS, 23, T0 + timedelta(milliseconds=i * 23))
    done += seg.flush()
    assert len(done) > 2
    for d in done:
        assert first_dts(d.data) == TS_BASE_90K + d.start_ms * 90
