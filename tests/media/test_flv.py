"""FLV tag bodies: real encoder output (via an FLV file made by mediagen) and edge cases."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from liverec.errors import MediaError
from liverec.media.flv import CODEC_AVC, SOUND_AAC, parse_audio, parse_video
from support.mediagen import FlvTag, make_media, read_flv_tags


@pytest.fixture(scope="module")
def tags(tmp_path_factory: pytest.TempPathFactory) -> list[FlvTag]:
    path = make_media(tmp_path_factory.mktemp("flv") / "a.flv", 2.0, gop=25, bframes=2)
    return read_flv_tags(path)


def test_real_video_tags(tags: list[FlvTag]) -> None:
    video = [parse_video(t.payload) for t in tags if t.type == 9]
    assert all(v.codec_id == CODEC_AVC for v in video)
    header, frames, end = video[0], video[1:-1], video[-1]
    assert header.packet_type == 0 and header.body[0] == 1  # AVCDecoderConfigurationRecord v1
    assert all(v.packet_type == 1 for v in frames)
    assert end.packet_type == 2 and end.body == b""  # end of sequence
    assert len(frames) == 50
    assert [i for i, v in enumerate(frames) if v.keyframe] == [0, 25]
    # B-frames: composition offsets present, and pts = dts + cts are 40 ms apart in order.
    video_tags = [t for t in tags if t.type == 9][1:-1]
    assert any(v.cts for v in frames)
    pts = sorted(t.timestamp + v.cts for t, v in zip(video_tags, frames, strict=True))
    assert [b - a for a, b in itertools.pairwise(pts)] == [40] * 49


def test_real_audio_tags(tags: list[FlvTag]) -> None:
    audio = [parse_audio(t.payload) for t in tags if t.type == 8]
    assert all(a.sound_format == SOUND_AAC for a in audio)
    assert audio[0].packet_type == 0 and audio[0].body[:2] == b"\x12\x10"  # LC 44.1k stereo
    assert all(a.packet_type == 1 and a.body for a in audio[1:])


def test_signed_composition_offset() -> None:
    tag = parse_video(b"\x27\x01\xff\xff\xd8" + b"\x00\x00\x00\x01\x09")
    assert (tag.frame_type, tag.codec_id, tag.packet_type, tag.cts) == (2, 7, 1, -40)
    assert not tag.keyframe
    assert tag.body == b"\x00\x00\x00\x01\x09"
    assert parse_video(b"\x17\x02\x00\x00\x00").packet_type == 2


def test_enhanced_rtmp_is_unsupported() -> None:
    tag = parse_video(b"\x91hvc1\x00\x00\x00rest")  # ExHeader, keyframe, coded frames
    assert tag.codec_id == -1 and tag.frame_type == 1 and tag.packet_type is None


def test_other_codecs_pass_through() -> None:
    assert parse_video(b"\x12abc").codec_id == 2  # Sorenson H.263
    mp3 = parse_audio(b"\x2f\xff\xfb")
    assert (mp3.sound_format, mp3.packet_type, mp3.body) == (2, None, b"\xff\xfb")


@pytest.mark.parametrize("payload", [b"", b"\x17", b"\x17\x01\x00\x00", b"\x17\x05\x00\x00\x00"])
def test_malformed_video(payload: bytes) -> None:
    with pytest.raises(MediaError):
        parse_video(payload)


@pytest.mark.parametrize("payload", [b"", b"\xaf", b"\xaf\x02"])
def test_malformed_audio(payload: bytes) -> None:
    with pytest.raises(MediaError):
        parse_audio(payload)


def test_enhanced_truncated() -> None:
    with pytest.raises(MediaError):
        parse_video(b"\x91hv")


def test_flv_reader_sees_every_tag(tmp_path: Path) -> None:
    path = make_media(tmp_path / "v.flv", 1.0, audio=False)
    tags = read_flv_tags(path)
    assert [t.type for t in tags if t.type != 18] == [9] * 27  # header, 25 frames, end
    assert [t.timestamp for t in tags if t.type == 9][1:-1] == [40 * i for i in range(25)]
