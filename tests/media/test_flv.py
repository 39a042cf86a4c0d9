"""FLV tag bodies: real encoder output (via an FLV file made by mediagen) and edge cases."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from liverec.errors import MediaError
from liverec.media.flv import (
    CODEC_AVC,
    SOUND_AAC,
    audio_codec_name,
    metadata_codec_name,
    parse_audio,
    parse_video,
    video_codec_name,
)
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


def _fourcc_number(fourcc: bytes) -> float:
    return float(int.from_bytes(fourcc, "big"))


@pytest.mark.parametrize(
    ("payload", "name"),
    [
        (b"\x22abc", "Sorenson H.263"),
        (b"\x13abc", "Screen video"),
        (b"\x14abc", "On2 VP6"),
        (b"\x15abc", "On2 VP6 with alpha channel"),
        (b"\x16abc", "Screen video version 2"),
        (b"\x1cabc", "HEVC (non-standard FLV codec id 12)"),
        (b"\x1fabc", "unknown (FLV codec id 15)"),
        # Enhanced RTMP: IsExHeader, keyframe, SequenceStart, then the FourCC.
        (b"\x90hvc1\x01", "HEVC (Enhanced RTMP FourCC 'hvc1')"),
        (b"\x90av01\x81", "AV1 (Enhanced RTMP FourCC 'av01')"),
        (b"\x91vp09\x00\x00\x00", "VP9 (Enhanced RTMP FourCC 'vp09')"),
        (b"\x90avc1\x01", "H.264 (Enhanced RTMP FourCC 'avc1')"),
        (b"\x90xy\x00\x1b", "unknown (Enhanced RTMP FourCC 'xy\\x00\\x1b')"),
        # E-RTMP v2: multitrack (type byte before the FourCC), ModEx (skipped), both.
        (b"\x96\x00hvc1\x00", "HEVC (Enhanced RTMP FourCC 'hvc1')"),
        (b"\x97\x02\x00\x00\x01\x01av01", "AV1 (Enhanced RTMP FourCC 'av01')"),
        (b"\x97\x00\x05\x06\x20vp09", "VP9 (Enhanced RTMP FourCC 'vp09')"),
        (b"\x97\xff\x00\x00" + bytes(1) + b"\x01hvc1", "HEVC (Enhanced RTMP FourCC 'hvc1')"),
        # A command frame names no codec.
        (b"\xd0\x00", "Enhanced RTMP (a command frame, no codec named)"),
    ],
)
def test_video_codec_names(payload: bytes, name: str) -> None:
    assert video_codec_name(parse_video(payload)) == name


@pytest.mark.parametrize(
    ("payload", "name"),
    [
        (b"\x2f\xff\xfb", "MP3"),
        (b"\x3e\x00\x00", "Linear PCM (little endian)"),
        (b"\x0e\x80", "Linear PCM (platform endian)"),
        (b"\x1e\x00", "ADPCM"),
        (b"\x62\x00", "Nellymoser"),
        (b"\x72\x00", "G.711 A-law"),
        (b"\x82\x00", "G.711 mu-law"),
        (b"\xb2\x00", "Speex"),
        (b"\xd2\x00", "unknown (FLV sound format 13)"),
        # Enhanced RTMP v2 audio: SoundFormat 9, packet type, FourCC.
        (b"\x90Opus\x01", "Opus (Enhanced RTMP FourCC 'Opus')"),
        (b"\x91.mp3\xff", "MP3 (Enhanced RTMP FourCC '.mp3')"),
        (b"\x90fLaC", "FLAC (Enhanced RTMP FourCC 'fLaC')"),
        (b"\x95\x00ac-3", "AC-3 (Enhanced RTMP FourCC 'ac-3')"),
        (b"\x97\x02\x00\x00\x01\x01ec-3", "E-AC-3 (Enhanced RTMP FourCC 'ec-3')"),
    ],
)
def test_audio_codec_names(payload: bytes, name: str) -> None:
    assert audio_codec_name(parse_audio(payload)) == name


@pytest.mark.parametrize(
    ("value", "video", "name"),
    [
        (2.0, True, "Sorenson H.263"),
        (4.0, True, "On2 VP6"),
        # What ffmpeg 6.1+ and OBS 29.1+ write for HEVC: the FourCC as a number.
        (_fourcc_number(b"hvc1"), True, "HEVC (Enhanced RTMP FourCC 'hvc1')"),
        (1752589105.0, True, "HEVC (Enhanced RTMP FourCC 'hvc1')"),
        (_fourcc_number(b"av01"), True, "AV1 (Enhanced RTMP FourCC 'av01')"),
        (_fourcc_number(b"vp09"), True, "VP9 (Enhanced RTMP FourCC 'vp09')"),
        ("hvc1", True, "HEVC (Enhanced RTMP FourCC 'hvc1')"),
        (9.0, True, "unknown (FLV codec id 9)"),
        (2.0, False, "MP3"),
        (11.0, False, "Speex"),
        (_fourcc_number(b"Opus"), False, "Opus (Enhanced RTMP FourCC 'Opus')"),
        (".mp3", False, "MP3 (Enhanced RTMP FourCC '.mp3')"),
        (7.5, True, "unknown (7.5)"),
        ("speex-wb", False, "unknown ('speex-wb')"),
        (True, True, "unknown (True)"),
    ],
)
def test_metadata_codec_names(value: object, video: bool, name: str) -> None:
    assert metadata_codec_name(value, video=video) == name


def test_a_hostile_metadata_codec_is_named_briefly() -> None:
    # Clients show ~255 bytes of a status description (ffmpeg's buffer is 256).
    assert len(metadata_codec_name("x" * 10_000, video=True)) < 60
    assert len(metadata_codec_name({"a": "b" * 10_000}, video=False)) < 60


@pytest.mark.parametrize(
    "payload", [b"\x90hvc", b"\x96\x00hvc", b"\x97\x05\x00\x00", b"\x97\xff\x00", b"\xd0", b"\x90"]
)
def test_truncated_enhanced_video_is_malformed(payload: bytes) -> None:
    with pytest.raises(MediaError):
        parse_video(payload)


@pytest.mark.parametrize("payload", [b"\x90Op", b"\x95\x00Opu", b"\x97\x03\x00", b"\x90"])
def test_truncated_enhanced_audio_is_malformed(payload: bytes) -> None:
    with pytest.raises(MediaError):
        parse_audio(payload)
