"""H.264: the config record and SPS sizes on real x264 output, AVCC -> Annex B access units."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from liverec.errors import MediaError
from liverec.media.flv import parse_video
from liverec.media.h264 import (
    AUD,
    AvcConfig,
    access_unit_annexb,
    avcc_to_annexb,
    nal_types,
    sps_dimensions,
    unescape_rbsp,
)
from support.mediagen import make_media, read_flv_tags


def _flv_video(path: Path) -> tuple[AvcConfig, list[tuple[bool, bytes]]]:
    tags = [parse_video(t.payload) for t in read_flv_tags(path) if t.type == 9]
    config = AvcConfig.parse(tags[0].body)
    return config, [(t.keyframe, t.body) for t in tags[1:] if t.packet_type == 1]


def _x264_sps(width: int, height: int, pix_fmt: str, params: str, profile: str) -> bytes:
    """The SPS x264 writes for one frame of this size and format (Annex B, in band)."""
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, pix_fmt
    ctx.time_base = Fraction(1, 25)
    ctx.options = {"preset": "ultrafast", "profile": profile, "x264-params": params}
    frame = av.VideoFrame(width, height, pix_fmt)
    for plane in frame.planes:
        plane.update(np.full(plane.buffer_size, 128, np.uint8).tobytes())
    frame.pts = 0
    data = b"".join(bytes(p) for p in [*ctx.encode(frame), *ctx.encode(None)])
    for nal in data.split(b"\x00\x00\x01"):
        if nal and nal[0] & 0x1F == 7:
            return nal.rstrip(b"\x00")
    raise AssertionError("no SPS")


@pytest.mark.parametrize(
    ("width", "height", "profile"),
    [(320, 240, "baseline"), (1280, 720, "main"), (1920, 1080, "high"), (854, 480, "high")],
)
def test_config_record_from_real_flv(tmp_path: Path, width: int, height: int, profile: str) -> None:
    path = make_media(
        tmp_path / "a.flv", 0.08, fps=25, width=width, height=height, audio=False, profile=profile
    )
    config, frames = _flv_video(path)
    assert (config.width, config.height) == (width, height)
    assert config.nal_length_size == 4
    # x264 ultrafast picks the lowest profile its tools need: the record must agree with its SPS.
    assert (config.profile, config.level) == (config.sps[0][1], config.sps[0][3])
    assert config.level > 0
    assert len(config.sps) == 1 and len(config.pps) == 1
    assert config.parameter_sets_annexb() == (
        b"\x00\x00\x00\x01" + config.sps[0] + b"\x00\x00\x00\x01" + config.pps[0]
    )
    keyframe, body = frames[0]
    assert keyframe and 5 in nal_types(body, 4)


@pytest.mark.parametrize(
    ("width", "height", "pix_fmt", "params", "profile", "profile_idc"),
    [
        (1920, 1080, "yuv420p", "8x8dct=1:cabac=1", "high", 100),  # cropped 1088 -> 1080
        (1918, 1078, "yuv420p", "cabac=1", "main", 77),  # right and bottom crop
        (1280, 720, "yuv420p", "", "baseline", 66),
        (720, 576, "yuv420p", "interlaced=1", "high", 77),  # frame_mbs_only = 0
        (1920, 1080, "yuv420p", "interlaced=1:8x8dct=1", "high", 100),  # field crop unit 4
        (640, 360, "yuv420p", "cqm=jvt", "high", 100),  # scaling lists in the SPS
        (1280, 720, "yuv422p", "", "high422", 122),  # chroma_format_idc 2
        (1922, 1082, "yuv444p", "cqm=jvt", "high444", 244),  # chroma 3: 12 scaling lists
    ],
)
def test_sps_dimensions(
    width: int, height: int, pix_fmt: str, params: str, profile: str, profile_idc: int
) -> None:
    sps = _x264_sps(width, height, pix_fmt, params, profile)
    assert sps[1] == profile_idc
    assert sps_dimensions(sps) == (width, height)


def _ue(v: int) -> str:
    code = bin(v + 1)[2:]
    return "0" * (len(code) - 1) + code


def test_sps_with_emulation_prevention() -> None:
    # profile_idc 0, constraints 0, level 3: the RBSP starts 00 00 03, escaped as 00 00 03 03.
    bits = "".join(["00000000", "00000000", "00000011", _ue(0), _ue(0), _ue(2), _ue(1), "0"])
    bits += _ue(19) + _ue(14) + "1" + "1" + "0" + "0" + "1"  # 320x240, no crop, no VUI
    bits += "0" * (-len(bits) % 8)
    rbsp = int(bits, 2).to_bytes(len(bits) // 8, "big")
    assert rbsp.startswith(b"\x00\x00\x03")
    nal = b"\x67\x00\x00\x03\x03" + rbsp[3:]
    assert unescape_rbsp(nal[1:]) == rbsp
    assert sps_dimensions(nal) == (320, 240)
    assert unescape_rbsp(b"\x01\x00\x00\x03\x00\x00\x03") == b"\x01\x00\x00\x00\x00"
    with pytest.raises(MediaError):
        sps_dimensions(b"\x67\x42")  # truncated
    with pytest.raises(MediaError):
        sps_dimensions(b"\x68\x42\x00\x0a")  # a PPS


def test_unreadable_sps_gives_zero_size() -> None:
    record = bytes([1, 66, 0, 30, 0xFF, 0xE1, 0, 2, 0x67, 0x42, 1, 0, 2, 0x68, 0xCE])
    config = AvcConfig.parse(record)
    assert (config.width, config.height) == (0, 0)
    assert config.sps == [b"\x67\x42"] and config.pps == [b"\x68\xce"]


@pytest.mark.parametrize(
    "record",
    [
        b"",
        bytes([0, 66, 0, 30, 0xFF, 0xE1, 0, 2, 0x67, 0x42, 1, 0, 1, 0x68]),  # version 0
        bytes([1, 66, 0, 30, 0xFF, 0xE1, 0, 9, 0x67, 0x42]),  # SPS past the end
        bytes([1, 66, 0, 30, 0xFF, 0xE1, 0, 2, 0x67, 0x42]),  # no PPS count
        bytes([1, 66, 0, 30, 0xFF, 0xE0, 1, 0, 1, 0x68]),  # no SPS
        bytes([1, 66, 0, 30, 0xFE, 0xE1, 0, 2, 0x67, 0x42, 1, 0, 1, 0x68]),  # length size 3
    ],
)
def test_bad_config_record(record: bytes) -> None:
    with pytest.raises(MediaError):
        AvcConfig.parse(record)


def test_avcc_to_annexb() -> None:
    data = b"\x00\x00\x00\x02\x09\xf0" + b"\x00\x00\x00\x03\x65\x88\x84" + b"\x00\x00\x00\x00"
    assert avcc_to_annexb(data, 4) == b"\x00\x00\x00\x01\x09\xf0\x00\x00\x00\x01\x65\x88\x84"
    assert nal_types(data, 4) == [9, 5]
    assert avcc_to_annexb(b"\x02\x41\x9a", 1) == b"\x00\x00\x00\x01\x41\x9a"
    assert avcc_to_annexb(b"", 4) == b""
    with pytest.raises(MediaError):
        avcc_to_annexb(b"\x00\x00\x00\x05\x65\x88", 4)
    with pytest.raises(MediaError):
        avcc_to_annexb(b"\x00\x00\x00\x01\x65\x00\x00", 4)


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> tuple[AvcConfig, list[tuple[bool, bytes]]]:
    path = make_media(tmp_path_factory.mktemp("h264") / "a.flv", 1.0, gop=10, audio=False)
    return _flv_video(path)


def test_access_units(real: tuple[AvcConfig, list[tuple[bool, bytes]]]) -> None:
    config, frames = real
    params = config.parameter_sets_annexb()
    for keyframe, body in frames:
        au = access_unit_annexb(body, config, keyframe)
        assert au.startswith(AUD)
        rest = au[len(AUD) :]
        if keyframe:
            assert rest.startswith(params)
            rest = rest[len(params) :]
        assert au.count(b"\x00\x00\x00\x01\x09") == 1
        # Whatever x264 put in the frame (SEI on the first, slices) follows, unchanged.
        expected = [n for n in avcc_to_annexb(body, 4).split(b"\x00\x00\x00\x01") if n]
        assert [n for n in rest.split(b"\x00\x00\x00\x01") if n] == expected


def test_access_unit_keeps_inband_sps_and_drops_aud() -> None:
    config = AvcConfig(4, [b"\x67\x42"], [b"\x68\xce"], 16, 16, 66, 30)

    def avcc(*nals: bytes) -> bytes:
        return b"".join(len(n).to_bytes(4, "big") + n for n in nals)

    sc = b"\x00\x00\x00\x01"
    # The publisher's own AUD is dropped, its own SPS/PPS kept and not doubled.
    au = access_unit_annexb(avcc(b"\x09\x10", b"\x67\x4d", b"\x68\xee", b"\x65\x88"), config, True)
    assert au == AUD + sc + b"\x67\x4d" + sc + b"\x68\xee" + sc + b"\x65\x88"
    au = access_unit_annexb(avcc(b"\x65\x88"), config, True)
    assert au == AUD + sc + b"\x67\x42" + sc + b"\x68\xce" + sc + b"\x65\x88"
    assert access_unit_annexb(avcc(b"\x41\x9a"), config, False) == AUD + sc + b"\x41\x9a"
    with pytest.raises(MediaError):
        access_unit_annexb(b"\x00\x00\x01\x00\x41", config, False)
