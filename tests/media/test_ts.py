"""MPEG-TS muxer: packet structure checked by a small independent demuxer here, and the real
thing: FLV -> flv/h264/aac helpers -> TsMuxer -> .ts segments + m3u8, decoded by FFmpeg."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from liverec.errors import MediaError
from liverec.media import m3u8
from liverec.media.aac import AacConfig
from liverec.media.flv import parse_audio, parse_video
from liverec.media.h264 import AvcConfig, access_unit_annexb
from liverec.media.ts import AUDIO_PID, PMT_PID, VIDEO_PID, TsMuxer, _crc32_mpeg2
from support.mediagen import (
    audio_duration,
    decode_frames,
    libav_warnings,
    make_media,
    read_flv_tags,
)

# -- an independent reader for what the muxer writes ------------------------------------------


@dataclass
class Pes:
    pid: int
    stream_id: int
    length_field: int
    pts: int
    dts: int | None
    payload: bytes
    pcr: int | None  # PCR base carried in the PES's first packet
    random_access: bool


@dataclass
class Ts:
    pes: list[Pes] = field(default_factory=list)
    sections: dict[int, list[bytes]] = field(default_factory=dict)
    cc: dict[int, int] = field(default_factory=dict)


def _ts_field(b: bytes | bytearray) -> int:
    assert b[0] & 1 and b[2] & 1 and b[4] & 1, "marker bits"
    return ((b[0] >> 1) & 7) << 30 | b[1] << 22 | (b[2] >> 1) << 15 | b[3] << 7 | b[4] >> 1


def _finish(pid: int, buf: bytearray, pcr: int | None, rai: bool) -> Pes:
    assert buf[:3] == b"\x00\x00\x01"
    stream_id, length = buf[3], int.from_bytes(buf[4:6], "big")
    assert buf[6] == 0x84  # '10' marker, data_alignment_indicator
    flags, header_len = buf[7], buf[8]
    pts = _ts_field(buf[9:14])
    dts = None
    if flags == 0xC0:
        assert header_len == 10 and buf[9] >> 4 == 3 and buf[14] >> 4 == 1
        dts = _ts_field(buf[14:19])
    else:
        assert flags == 0x80 and header_len == 5 and buf[9] >> 4 == 2
    if length:
        assert length == len(buf) - 6
    return Pes(pid, stream_id, length, pts, dts, bytes(buf[9 + header_len :]), pcr, rai)


def read_ts(data: bytes, state: Ts | None = None) -> Ts:
    """Parse the muxer's output strictly: sizes, continuity, adaptation fields, PSI, PES."""
    ts = state or Ts()
    assert len(data) % 188 == 0
    open_pes: dict[int, tuple[bytearray, int | None, bool]] = {}
    for off in range(0, len(data), 188):
        p = data[off : off + 188]
        assert p[0] == 0x47
        pusi, pid = bool(p[1] & 0x40), (p[1] & 0x1F) << 8 | p[2]
        afc, cc = p[3] >> 4, p[3] & 0x0F
        assert afc in (1, 3)  # every packet carries payload
        if pid in ts.cc:
            assert cc == (ts.cc[pid] + 1) % 16, f"continuity on PID {pid:#x}"
        ts.cc[pid] = cc
        pos, pcr, rai = 4, None, False
        if afc == 3:
            af_len = p[4]
            assert 5 + af_len <= 188
            if af_len:
                af_flags = p[5]
                rai = bool(af_flags & 0x40)
                body = p[6 : 5 + af_len]
                if af_flags & 0x10:
                    pcr = int.from_bytes(body[:6], "big") >> 15
                    assert body[4] & 0x7E == 0x7E and body[5] == 0 and (body[4] & 1) == 0
                    body = body[6:]
                assert af_flags & ~0x50 == 0
                assert set(body) <= {0xFF}
            pos = 5 + af_len
        payload = p[pos:]
        assert payload, "empty payload"
        if pid in (0, PMT_PID):
            assert pusi and payload[0] == 0
            length = (payload[2] & 0x0F) << 8 | payload[3]
            section = payload[1 : 4 + length]
            assert _crc32_mpeg2(section) == 0  # CRC over a section with its CRC is 0
            assert set(payload[4 + length :]) <= {0xFF}
            ts.sections.setdefault(pid, []).append(section)
            continue
        if pusi:
            if pid in open_pes:
                ts.pes.append(_finish(pid, *open_pes.pop(pid)))
            open_pes[pid] = (bytearray(payload), pcr, rai)
        else:
            assert pcr is None and not rai
            open_pes[pid][0].extend(payload)
    for pid, (buf, pcr, rai) in open_pes.items():
        ts.pes.append(_finish(pid, buf, pcr, rai))
    return ts


# -- structure -------------------------------------------------------------------------------


def test_crc32_mpeg2_check_value() -> None:
    assert _crc32_mpeg2(b"123456789") == 0x0376E6E7


def test_psi_tables() -> None:
    mux = TsMuxer(video=True, audio=True)
    ts = read_ts(mux.segment_header())
    pat, pmt = ts.sections[0][0], ts.sections[PMT_PID][0]
    assert pat[0] == 0 and pat[8:12] == bytes((0, 1, 0xF0, 0x00))  # program 1 -> PID 0x1000
    assert pmt[0] == 2 and pmt[8:10] == bytes((0xE1, 0x00))  # PCR on the video PID
    assert pmt[12:22] == bytes((0x1B, 0xE1, 0x00, 0xF0, 0, 0x0F, 0xE1, 0x01, 0xF0, 0))
    audio_only = read_ts(TsMuxer(video=False, audio=True).segment_header()).sections[PMT_PID][0]
    assert audio_only[8:10] == bytes((0xE1, 0x01)) and audio_only[12:17] == bytes(
        (0x0F, 0xE1, 0x01, 0xF0, 0)
    )


@pytest.mark.parametrize(
    "size", [1, 2, 150, 164, 165, 166, 170, 171, 172, 173, 174, 183, 184, 348, 349, 12345]
)
@pytest.mark.parametrize("keyframe", [True, False])
def test_video_pes_sizes(size: int, keyframe: bool) -> None:
    mux = TsMuxer(video=True, audio=False)
    payload = bytes(i & 0xFF for i in range(size))
    ts = read_ts(mux.segment_header() + mux.video(9000, 9000, b"\x00\x00\x00\x01\x09\xf0", True))
    read_ts(mux.video(16200, 12600, payload, keyframe), ts)
    pes = ts.pes[-1]
    assert (pes.pid, pes.stream_id, pes.length_field) == (VIDEO_PID, 0xE0, 0)
    assert pes.payload == payload
    assert (pes.pts, pes.dts) == (16200, 12600)
    assert pes.random_access == keyframe
    assert pes.pcr == 12600  # the DTS; also when not a keyframe (40 ms since the last PCR)


def test_pts_equal_dts_writes_pts_only_and_timestamps_wrap() -> None:
    mux = TsMuxer(video=True, audio=True)
    data = mux.segment_header()
    data += mux.video(2**33 + 5, 2**33 + 5, b"x", True)
    data += mux.video(-3000, -6000, b"y", False)
    data += mux.audio(2**34 + 7, b"\xff\xf1")
    video, video2, audio = read_ts(data).pes
    assert (video.pts, video.dts, video.pcr) == (5, None, 5)
    assert (video2.pts, video2.dts) == (2**33 - 3000, 2**33 - 6000)
    assert video2.pcr == 2**33 - 6000  # modular distance from 5 is 40 ms+, so repeated
    assert (audio.pts, audio.dts, audio.pcr, audio.stream_id) == (7, None, None, 0xC0)
    assert audio.length_field == 8 + 2


def test_pcr_repeats_about_every_40ms() -> None:
    mux = TsMuxer(video=True, audio=True)
    data = mux.segment_header()
    for i in range(12):  # 60 fps, keyframe first
        data += mux.video(i * 1500, i * 1500, b"frame", i == 0)
        data += mux.audio(i * 1500, b"\xff\xf1aac")
    pes = read_ts(data).pes
    assert [p.pcr for p in pes if p.pid == AUDIO_PID] == [None] * 12
    assert [p.pcr for p in pes if p.pid == VIDEO_PID] == [
        0, None, 3000, None, 6000, None, 9000, None, 12000, None, 15000, None
    ]  # fmt: skip
    # A new segment starts with a PCR whatever the clock did.
    data = mux.segment_header() + mux.video(18000, 18000, b"frame", False)
    assert read_ts(data).pes[0].pcr == 18000


def test_audio_only_carries_pcr_on_audio() -> None:
    mux = TsMuxer(video=False, audio=True)
    data = mux.segment_header()
    for i in range(4):
        data += mux.audio(i * 1000, b"\xff\xf1" + bytes(300))
    pes = read_ts(data).pes
    assert [p.pcr for p in pes] == [0, None, 2000, None]
    with pytest.raises(MediaError):
        mux.video(0, 0, b"", True)
    with pytest.raises(MediaError):
        mux.audio(0, bytes(65536 - 8))
    with pytest.raises(MediaError):
        TsMuxer(video=True, audio=False).audio(0, b"")
    with pytest.raises(ValueError):
        TsMuxer(video=False, audio=False)


def test_continuity_counters_run_across_segments() -> None:
    mux = TsMuxer(video=True, audio=True)
    state = Ts()
    for seg in range(20):  # 20 segments: every counter wraps
        data = mux.segment_header()
        data += mux.video(seg * 3600, seg * 3600, bytes(1000), True)
        data += mux.audio(seg * 3600, bytes(400))
        read_ts(data, state)
    assert len(state.pes) == 40 and len(state.sections[0]) == 20


# -- the real thing: FLV -> HLS, decoded by FFmpeg -------------------------------------------


@dataclass
class Remuxed:
    playlist: Path
    segments: list[Path]
    frames: list[tuple[int, int]]  # (pts ms, dts ms) of every video frame muxed
    audio_frames: int
    rate: int


def remux(flv: Path, out: Path, segment_ms: int) -> Remuxed:
    """What the recorder does, minus I/O policy: cut at keyframes once segment_ms is reached."""
    out.mkdir(parents=True, exist_ok=True)
    tags = read_flv_tags(flv)
    has_video = any(t.type == 9 for t in tags)
    has_audio = any(t.type == 8 for t in tags)
    mux = TsMuxer(has_video, has_audio)
    avc: AvcConfig | None = None
    asc: AacConfig | None = None
    entries: list[m3u8.SegmentEntry] = []
    paths: list[Path] = []
    chunks: list[bytes] = []
    start: int | None = None
    last = 0
    frames: list[tuple[int, int]] = []
    audio_frames = 0

    def cut(end: int) -> None:
        assert start is not None
        path = out / f"{len(paths)}.ts"
        path.write_bytes(b"".join(chunks))
        paths.append(path)
        entries.append(m3u8.SegmentEntry(path.name, (end - start) / 1000))
        chunks.clear()

    for tag in tags:
        if tag.type == 9:
            v = parse_video(tag.payload)
            if v.packet_type == 0:
                avc = AvcConfig.parse(v.body)
            if v.packet_type != 1:
                continue
            assert avc is not None
            if v.keyframe and (start is None or tag.timestamp - start >= segment_ms):
                if start is not None:
                    cut(tag.timestamp)
                start = tag.timestamp
                chunks.append(mux.segment_header())
            if start is None:
                continue
            pts, dts = tag.timestamp + v.cts, tag.timestamp
            au = access_unit_annexb(v.body, avc, v.keyframe)
            chunks.append(mux.video(pts * 90, dts * 90, au, v.keyframe))
            frames.append((pts, dts))
            last = max(last, tag.timestamp + 40)
        elif tag.type == 8:
            a = parse_audio(tag.payload)
            if a.packet_type == 0:
                asc = AacConfig.parse(a.body)
                continue
            assert asc is not None
            if start is None and not has_video:
                start = tag.timestamp
                chunks.append(mux.segment_header())
            elif start is None:
                continue  # audio before the first keyframe is not recorded
            if not has_video and tag.timestamp - start >= segment_ms:
                cut(tag.timestamp)
                start = tag.timestamp
                chunks.append(mux.segment_header())
            chunks.append(mux.audio(tag.timestamp * 90, asc.adts_header(len(a.body)) + a.body))
            audio_frames += 1
            last = max(last, tag.timestamp + round(asc.frame_duration_90k / 90))
    cut(last)
    playlist = out / "index.m3u8"
    pl = m3u8.MediaPlaylist(entries, playlist_type="VOD", endlist=True)
    playlist.write_text(m3u8.render(pl))
    return Remuxed(playlist, paths, frames, audio_frames, asc.sample_rate if asc else 0)


def _ffmpeg_warnings(path: Path) -> str:
    if shutil.which("ffmpeg") is None:
        return ""
    cmd = ["ffmpeg", "-nostdin", "-v", "warning", "-i", str(path), "-f", "null", "-"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60).stderr


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("av", {}),
        ("bframes", {"bframes": 2, "fps": 30, "gop": 30}),
        ("video_only", {"audio": False, "gop": 25}),
        ("audio_48k", {"audio_rate": 48000, "fps": 24, "gop": 48}),
    ],
)
def test_remux_flv_to_hls_decodes_exactly(
    tmp_path: Path, name: str, kwargs: dict[str, int | bool]
) -> None:
    fps = int(kwargs.get("fps", 25))
    flv = make_media(tmp_path / f"{name}.flv", 6.0, **kwargs)  # type: ignore[arg-type]
    r = remux(flv, tmp_path / "hls", 2000)
    assert len(r.segments) == 3

    with libav_warnings() as logs:
        decoded = decode_frames(str(r.playlist))
    assert logs == []
    # Every frame, in order, at the time the publisher gave it.
    total = round(6.0 * fps)
    assert [n for _, n in decoded] == list(range(total))
    expected = sorted(pts for pts, _ in r.frames)
    assert [round(t * 1000) for t, _ in decoded] == expected
    assert all(abs(t * 1000 - ms) < 1e-6 for (t, _), ms in zip(decoded, expected, strict=True))

    # Each segment decodes alone, from its first frame: a keyframe with SPS/PPS in band.
    gop = int(kwargs.get("gop", 50))
    first = 0
    for seg in r.segments:
        with libav_warnings() as logs:
            numbers = [n for _, n in decode_frames(str(seg))]
        assert logs == []
        assert numbers[0] == first and first % gop == 0
        assert numbers == list(range(first, first + len(numbers)))
        first += len(numbers)

    if kwargs.get("audio", True):
        with libav_warnings() as logs:
            seconds = audio_duration(str(r.playlist))
        assert logs == []
        assert seconds == pytest.approx(r.audio_frames * 1024 / r.rate, abs=1e-9)
        assert seconds == pytest.approx(audio_duration(str(flv)), abs=0.05)
    assert _ffmpeg_warnings(r.playlist) == ""


def test_remux_audio_only(tmp_path: Path) -> None:
    flv = make_media(tmp_path / "a.flv", 5.0, video=False)
    r = remux(flv, tmp_path / "hls", 2000)
    assert len(r.segments) == 3
    with libav_warnings() as logs:
        seconds = audio_duration(str(r.playlist))
    assert logs == []
    assert seconds == pytest.approx(r.audio_frames * 1024 / 44100, abs=1e-9)
    assert seconds == pytest.approx(audio_duration(str(flv)), abs=1e-9)
    assert _ffmpeg_warnings(r.playlist) == ""
