"""The pure parts under the MP4 writer, on TS bytes made by the recorder's own TsMuxer: the
TS reader, and the timeline (exact timestamps, the 33-bit wrap, discontinuities, jitter)."""

from __future__ import annotations

import pytest

from liverec.errors import MediaError
from liverec.media.aac import AacConfig
from liverec.media.ts import TsMuxer
from liverec.outputs.samples import Timeline, split_annexb
from liverec.outputs.tsread import read_segment
from support.aacgen import aac_frames, demuxed_audio

WRAP = 1 << 33
FRAME = 3600  # 25 fps, in 90 kHz ticks
AUD = b"\x00\x00\x00\x01\x09\xf0"
SPS = b"\x67\x42\xc0\x1e\xda\x02\x80\xbf\xe5\x84\x00\x00\x03\x00\x04\x00\x00\x03\x00\xca"
PPS = b"\x68\xce\x3c\x80"
AAC = AacConfig(object_type=2, sample_rate=48000, sampling_index=3, channels=2)


def access_unit(keyframe: bool, n: int) -> bytes:
    body = (b"\x65" if keyframe else b"\x41") + bytes([n % 256]) * 50
    params = b"\x00\x00\x00\x01" + SPS + b"\x00\x00\x00\x01" + PPS if keyframe else b""
    return AUD + params + b"\x00\x00\x00\x01" + body


def adts(n: int) -> bytes:
    payload = bytes([0x21, n % 256]) * 10
    return AAC.adts_header(len(payload)) + payload


def segment(mux: TsMuxer, frames: range, base: int, *, audio: bool = True) -> bytes:
    """Video frames `frames` at 25 fps from `base` (ticks, wrapped to 33 bits), a keyframe
    first, each followed by an audio frame muxed after it with a 10 ms older timestamp."""
    out = [mux.segment_header()]
    for i, n in enumerate(frames):
        dts = (base + n * FRAME) % WRAP
        out.append(mux.video((dts + 2 * FRAME) % WRAP, dts, access_unit(i == 0, n), i == 0))
        if audio:
            out.append(mux.audio((dts - 900) % WRAP, adts(n)))
    return b"".join(out)


def test_the_reader_gives_units_in_file_order_with_their_timestamps() -> None:
    mux = TsMuxer(video=True, audio=True)
    ts = read_segment(segment(mux, range(3), 1000))
    assert (ts.has_video, ts.has_audio) == (True, True)
    assert [(u.video, u.dts) for u in ts.units] == [
        (True, 1000),
        (False, 100),
        (True, 1000 + FRAME),
        (False, 100 + FRAME),
        (True, 1000 + 2 * FRAME),
        (False, 100 + 2 * FRAME),
    ]
    assert ts.units[0].pts == 1000 + 2 * FRAME
    assert ts.units[0].data == access_unit(True, 0)
    assert ts.units[1].data == adts(0)
    with pytest.raises(MediaError):
        read_segment(b"\x47" + bytes(186))
    with pytest.raises(MediaError):
        read_segment(b"\x47\x1f\xff\x10" + bytes(184))  # no PMT


def test_timestamps_carry_over_exactly_across_segments_and_the_33_bit_wrap() -> None:
    mux = TsMuxer(video=True, audio=True)
    base = WRAP - 30 * FRAME  # the clock wraps during the second segment
    timeline = Timeline()
    first = timeline.segment(segment(mux, range(25), base), 1.0, False)
    second = timeline.segment(segment(mux, range(25, 50), base), 1.0, False)
    assert second.start == first.end == first.start + 90_000
    video = first.video + second.video
    assert [s.dts - video[0].dts for s in video] == [n * FRAME for n in range(50)]
    assert all(s.pts - s.dts == 2 * FRAME for s in video)
    assert [s.sync for s in video] == [n in (0, 25) for n in range(50)]
    audio = first.audio + second.audio
    assert [s.dts - video[0].dts for s in audio] == [n * FRAME - 900 for n in range(50)]
    assert first.first_dts() == first.start - 900  # the audio muxed after the keyframe
    assert first.cut_point and second.cut_point
    # The AUD is dropped; the parameter sets are the track's configuration.
    assert [n[0] & 0x1F for n in video[0].nals or []] == [7, 8, 5]
    assert first.video_config is not None
    assert first.video_config.sps == (SPS,) and first.video_config.pps == (PPS,)
    assert first.audio_config is not None
    assert first.audio_config.audio_specific_config == bytes((0x11, 0x90))  # LC, 48 kHz, 2ch


@pytest.mark.parametrize("jump", [10 * 90_000, -30 * 90_000])
def test_a_discontinuity_starts_where_the_segment_before_ended(jump: int) -> None:
    mux = TsMuxer(video=True, audio=False)
    timeline = Timeline()
    first = timeline.segment(segment(mux, range(25), 50 * 90_000, audio=False), 1.0, False)
    after = timeline.segment(
        segment(mux, range(25, 50), 50 * 90_000 + jump, audio=False), 1.0, True
    )
    assert after.start == first.end
    assert after.video[0].dts == first.video[-1].dts + FRAME
    # Unmarked (the segmenter marks every jump, but): a jump forward is kept, the
    # publisher's timeline; one back is closed all the same, or time would run back.
    timeline = Timeline()
    first = timeline.segment(segment(mux, range(25), 50 * 90_000, audio=False), 1.0, False)
    unmarked = timeline.segment(
        segment(mux, range(25, 50), 50 * 90_000 + jump, audio=False), 1.0, False
    )
    assert unmarked.start == first.end + max(0, jump)


def test_jitter_back_within_a_track_moves_a_sample_one_tick() -> None:
    mux = TsMuxer(video=False, audio=True)
    data = mux.segment_header() + mux.audio(9000, adts(0)) + mux.audio(9000, adts(1))
    seg = Timeline().segment(data, 0.05, False)
    assert [s.dts - seg.start for s in seg.audio] == [0, 1]


def test_a_pes_of_several_adts_frames_is_one_sample_each() -> None:
    mux = TsMuxer(video=False, audio=True)
    data = mux.segment_header() + mux.audio(9000, adts(0) + adts(1) + adts(2))
    seg = Timeline().segment(data, 0.064, False)
    assert seg.cut_point  # no video: any segment can start a file
    assert [s.dts - seg.start for s in seg.audio] == [0, 1920, 3840]  # 1024 samples at 48 kHz
    assert [s.data for s in seg.audio] == [adts(n)[7:] for n in range(3)]


@pytest.mark.parametrize("rate", [44100, 48000, 22050])
@pytest.mark.parametrize("base", [0, 7, 2070, 900_000 + 23 * 90, 123_456_789])
def test_frames_after_a_pes_start_are_timed_as_ffmpeg_reads_them(rate: int, base: int) -> None:
    # At 44.1 kHz a frame lasts 2089.8 ticks: each after the first is where FFmpeg's
    # demuxer puts it, so the MP4 plays every frame when the HLS does, to the tick.
    frames = aac_frames(12, rate)
    mux = TsMuxer(video=False, audio=True)
    data = mux.segment_header() + mux.audio(base, b"".join(frames))
    ffmpeg = [pts - base for pts, _ in demuxed_audio(data)]
    seg = Timeline().segment(data, 0.3, False)
    assert [s.dts - seg.start for s in seg.audio] == ffmpeg
    assert ffmpeg[1] in (1024 * 90_000 // rate, 1024 * 90_000 // rate + 1)


def test_split_annexb() -> None:
    assert split_annexb(b"\x00\x00\x00\x01\x09\xf0\x00\x00\x01\x65\x01\x00\x00\x00\x01\x41") == [
        b"\x09\xf0",
        b"\x65\x01",
        b"\x41",
    ]
    assert split_annexb(b"") == []
