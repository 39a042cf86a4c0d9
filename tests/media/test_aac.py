"""AAC: AudioSpecificConfig parsing and ADTS framing, checked against FFmpeg's own decoder."""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from liverec.errors import MediaError
from liverec.media.aac import AacConfig, parse_adts
from liverec.media.flv import parse_audio
from support.mediagen import audio_duration, libav_warnings, make_media, read_flv_tags


def _flv_audio(path: Path) -> tuple[AacConfig, list[bytes]]:
    tags = [parse_audio(t.payload) for t in read_flv_tags(path) if t.type == 8]
    return AacConfig.parse(tags[0].body), [t.body for t in tags[1:]]


@pytest.mark.parametrize(("rate", "index"), [(44100, 4), (48000, 3), (22050, 7)])
def test_adts_round_trip_through_ffmpeg(tmp_path: Path, rate: int, index: int) -> None:
    flv = make_media(tmp_path / "a.flv", 1.0, video=False, audio_rate=rate)
    config, frames = _flv_audio(flv)
    assert (config.object_type, config.sample_rate, config.sampling_index) == (2, rate, index)
    assert config.channels == 2
    adts = tmp_path / "a.aac"
    adts.write_bytes(b"".join(config.adts_header(len(f)) + f for f in frames))
    # Our own reader sees the fields back ...
    data = adts.read_bytes()
    pos = 0
    for frame in frames:
        back, header_len, length = parse_adts(data[pos : pos + 7])
        assert back == config and header_len == 7 and length == len(frame) + 7
        pos += length
    assert pos == len(data)
    # ... and FFmpeg decodes every frame, cleanly, to the same audio as the FLV.
    with libav_warnings() as logs:
        assert audio_duration(str(adts)) == pytest.approx(audio_duration(str(flv)), abs=1e-9)
        with av.open(str(adts)) as container:
            stream = container.streams.audio[0]
            assert (stream.sample_rate, stream.channels) == (rate, 2)
    # The raw ADTS demuxer always says it estimates the file duration; nothing else is allowed.
    assert [log for log in logs if "Estimating duration" not in log[2]] == []
    assert config.frame_duration_90k == pytest.approx(1024 * 90000 / rate)


def _asc(*fields: tuple[int, int]) -> bytes:
    """Pack (value, bit count) fields MSB first, zero-padded to whole bytes."""
    bits = "".join(format(value, f"0{count}b") for value, count in fields)
    bits += "0" * (-len(bits) % 8)
    return int(bits, 2).to_bytes(len(bits) // 8, "big")


@pytest.mark.parametrize(
    ("asc", "expected"),
    [
        (b"\x12\x10", (2, 44100, 4, 2)),
        (b"\x11\x90", (2, 48000, 3, 2)),
        (b"\x12\x08", (2, 44100, 4, 1)),
        (b"\x12\x10\x56\xe5\x00", (2, 44100, 4, 2)),  # with the backward-compatible SBR hint
        (_asc((1, 5), (4, 4), (2, 4)), (1, 44100, 4, 2)),  # AAC main
        (_asc((2, 5), (12, 4), (1, 4)), (2, 7350, 12, 1)),
        # HE-AAC (5) and HE-AACv2 (29): core 22050 Hz, extension 44100 Hz, core object LC.
        (_asc((5, 5), (7, 4), (2, 4), (4, 4), (2, 5)), (2, 22050, 7, 2)),
        (_asc((29, 5), (7, 4), (1, 4), (4, 4), (2, 5)), (2, 22050, 7, 1)),
        # An explicit 24-bit sample rate (index 15) that has an ADTS index.
        (_asc((2, 5), (15, 4), (48000, 24), (2, 4)), (2, 48000, 3, 2)),
    ],
)
def test_parse_asc(asc: bytes, expected: tuple[int, int, int, int]) -> None:
    c = AacConfig.parse(asc)
    assert (c.object_type, c.sample_rate, c.sampling_index, c.channels) == expected


@pytest.mark.parametrize(
    "asc",
    [
        b"",
        b"\x12",
        _asc((2, 5), (13, 4), (2, 4)),  # reserved sampling index
        _asc((2, 5), (15, 4), (12345, 24), (2, 4)),  # explicit rate with no ADTS index
        _asc((2, 5), (15, 4)),  # explicit rate, truncated
        _asc((31, 5), (1, 6), (4, 4), (2, 4)),  # escaped object type 33: no ADTS profile
        _asc((7, 5), (4, 4), (2, 4)),  # TwinVQ: no ADTS profile
        _asc((2, 5), (4, 4), (15, 4)),  # channel configuration 15
    ],
)
def test_bad_asc(asc: bytes) -> None:
    with pytest.raises(MediaError):
        AacConfig.parse(asc)


def test_adts_header_bits() -> None:
    c = AacConfig(2, 44100, 4, 2)
    assert c.adts_header(100) == bytes([0xFF, 0xF1, 0x50, 0x80, 0x0D, 0x7F, 0xFC])
    assert parse_adts(c.adts_header(8184)) == (c, 7, 8191)
    with pytest.raises(MediaError):
        c.adts_header(8185)
    with pytest.raises(MediaError):
        parse_adts(b"\x00" * 7)
