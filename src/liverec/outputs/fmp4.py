"""Fragmented MP4 (ISO 14496-12) for MP4 record files: the boxes we write, and reading back
what a file holds, for finishing it and for crash recovery.

Layout of a slice file, written front to back and never rewritten except its duration
fields (`patch_durations`, before it is published):

    ftyp  moov(mvhd, trak..., mvex(mehd, trex...))          the init segment, no samples
    prft moof mdat  prft moof mdat  ...                      one fragment per TS segment

Every track's timescale is 90 kHz, the TS clock, so the TS timestamps carry over to the
tick (an audio timescale of the sample rate would round them). `prft` (producer reference
time) gives each fragment's wall clock, so the catalogue's times can be read back from the
file alone. A fragment is self-contained (moof + mdat, data offsets relative to its moof),
so a file cut anywhere plays up to its last complete fragment: `scan` finds that point and
the durations, and `patch_durations` writes them into mvhd, tkhd, mdhd and mehd so players
show the length without reading every fragment."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import BinaryIO

from liverec.errors import MediaError
from liverec.media.h264 import NAL_PPS, NAL_SPS
from liverec.outputs.samples import PTS_HZ, AudioConfig, Sample, VideoConfig

MOVIE_TIMESCALE = 1000  # mvhd, tkhd and mehd durations: milliseconds
TIMESCALE = PTS_HZ  # every track's media timescale
SYNC = 0x02000000  # sample_depends_on = 2 (an I-picture / audio frame)
NON_SYNC = 0x01010000  # depends on others, sample_is_non_sync_sample
_MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
_NTP_EPOCH = datetime(1900, 1, 1, tzinfo=UTC)
# trun flags: data offset, then per sample duration, size, flags and composition offset.
_TRUN_VIDEO = 0x000001 | 0x000100 | 0x000200 | 0x000400 | 0x000800
_TRUN_AUDIO = 0x000001 | 0x000100 | 0x000200
_TFHD_BASE_IS_MOOF = 0x020000
_TFHD_DEFAULT_FLAGS = 0x000020


def box(kind: bytes, *parts: bytes) -> bytes:
    body = b"".join(parts)
    return struct.pack(">I4s", 8 + len(body), kind) + body


def full_box(kind: bytes, version: int, flags: int, *parts: bytes) -> bytes:
    return box(kind, struct.pack(">I", (version << 24) | flags), *parts)


@dataclass(frozen=True, slots=True)
class Track:
    track_id: int
    video: VideoConfig | None = None  # exactly one of the two
    audio: AudioConfig | None = None


# -- the init segment ----------------------------------------------------------------------


def init_segment(tracks: Sequence[Track]) -> bytes:
    """ftyp + moov of a fragmented file with these tracks. Durations are 0 until patched."""
    ftyp = box(b"ftyp", b"iso5", struct.pack(">I", 512), b"iso5iso6mp41")
    next_id = max(t.track_id for t in tracks) + 1
    mvhd = full_box(
        b"mvhd",
        0,
        0,
        struct.pack(">IIII", 0, 0, MOVIE_TIMESCALE, 0),  # times, timescale, duration
        struct.pack(">IH10x", 0x10000, 0x100),  # rate 1.0, volume 1.0
        _MATRIX,
        bytes(24),
        struct.pack(">I", next_id),
    )
    traks = [_trak(t) for t in tracks]
    mehd = full_box(b"mehd", 1, 0, struct.pack(">Q", 0))
    trexs = [full_box(b"trex", 0, 0, struct.pack(">5I", t.track_id, 1, 0, 0, 0)) for t in tracks]
    return ftyp + box(b"moov", mvhd, *traks, box(b"mvex", mehd, *trexs))


def _trak(track: Track) -> bytes:
    video = track.video
    width, height = (video.width, video.height) if video else (0, 0)
    tkhd = full_box(
        b"tkhd",
        0,
        0x3,  # enabled, in movie
        struct.pack(">IIIII", 0, 0, track.track_id, 0, 0),  # times, id, reserved, duration
        bytes(8),
        struct.pack(">hhhH", 0, 0, 0 if video else 0x100, 0),  # layer, group, volume
        _MATRIX,
        struct.pack(">II", width << 16, height << 16),
    )
    mdhd = full_box(
        b"mdhd", 1, 0, struct.pack(">QQIQ", 0, 0, TIMESCALE, 0), struct.pack(">HH", 0x55C4, 0)
    )  # language "und"
    handler, name = (b"vide", b"VideoHandler") if video else (b"soun", b"SoundHandler")
    hdlr = full_box(b"hdlr", 0, 0, bytes(4), handler, bytes(12), name + b"\x00")
    media_header = full_box(b"vmhd", 0, 1, bytes(8)) if video else full_box(b"smhd", 0, 0, bytes(4))
    dinf = box(b"dinf", full_box(b"dref", 0, 0, struct.pack(">I", 1), full_box(b"url ", 0, 1)))
    entry = _avc1(video) if video else _mp4a(_require(track.audio))
    empty = struct.pack(">I", 0)
    stbl = box(
        b"stbl",
        full_box(b"stsd", 0, 0, struct.pack(">I", 1), entry),
        full_box(b"stts", 0, 0, empty),
        full_box(b"stsc", 0, 0, empty),
        full_box(b"stsz", 0, 0, empty, empty),
        full_box(b"stco", 0, 0, empty),
    )
    minf = box(b"minf", media_header, dinf, stbl)
    return box(b"trak", tkhd, box(b"mdia", mdhd, hdlr, minf))


def _require(audio: AudioConfig | None) -> AudioConfig:
    if audio is None:
        raise ValueError("a track needs a video or an audio configuration")
    return audio


def _avc1(config: VideoConfig) -> bytes:
    sps = config.sps[0]
    record = bytes((1, sps[1], sps[2], sps[3], 0xFF, 0xE0 | len(config.sps)))
    record += b"".join(struct.pack(">H", len(s)) + s for s in config.sps)
    record += bytes((len(config.pps),))
    record += b"".join(struct.pack(">H", len(p)) + p for p in config.pps)
    record += _avcc_extension(sps)
    return box(
        b"avc1",
        bytes(6),
        struct.pack(">H", 1),  # data_reference_index
        bytes(16),
        struct.pack(">HHIII", config.width, config.height, 0x480000, 0x480000, 0),
        struct.pack(">H", 1),  # frame_count
        bytes(32),  # compressorname
        struct.pack(">Hh", 0x18, -1),
        box(b"avcC", record),
    )


def _avcc_extension(sps: bytes) -> bytes:
    """What ISO 14496-15 5.3.3.1.2 adds to the record for High profiles: chroma format and
    bit depths, read from the SPS (no SPS extensions)."""
    if sps[1] not in (100, 110, 122, 144):
        return b""
    bits = _ExpGolomb(_unescape(sps[4:]))
    bits.ue()  # seq_parameter_set_id
    chroma = bits.ue()
    if chroma == 3:
        bits.bit()  # separate_colour_plane_flag
    luma, chroma_depth = bits.ue(), bits.ue()
    return bytes((0xFC | (chroma & 3), 0xF8 | (luma & 7), 0xF8 | (chroma_depth & 7), 0))


class _ExpGolomb:
    def __init__(self, data: bytes) -> None:
        self._value = int.from_bytes(data, "big")
        self._left = len(data) * 8

    def bit(self) -> int:
        if self._left <= 0:
            raise MediaError("SPS truncated")
        self._left -= 1
        return (self._value >> self._left) & 1

    def ue(self) -> int:
        zeros = 0
        while self.bit() == 0:
            zeros += 1
            if zeros > 31:
                raise MediaError("SPS: bad exp-Golomb code")
        value = 1
        for _ in range(zeros):
            value = (value << 1) | self.bit()
        return value - 1


def _unescape(data: bytes) -> bytes:
    return data.replace(b"\x00\x00\x03", b"\x00\x00")


def _mp4a(config: AudioConfig) -> bytes:
    asc = config.audio_specific_config
    decoder_specific = _descriptor(5, asc)
    decoder_config = _descriptor(
        4, struct.pack(">BB3sII", 0x40, 0x15, bytes(3), 0, 0) + decoder_specific
    )  # MPEG-4 audio, audio stream; buffer size and bitrates unknown (0)
    es = _descriptor(3, struct.pack(">HB", 0, 0) + decoder_config + _descriptor(6, b"\x02"))
    rate = config.sample_rate if config.sample_rate < 0x10000 else 0
    return box(
        b"mp4a",
        bytes(6),
        struct.pack(">H", 1),
        bytes(8),
        struct.pack(">HHHH", config.channels or 2, 16, 0, 0),
        struct.pack(">I", rate << 16),
        full_box(b"esds", 0, 0, es),
    )


def _descriptor(tag: int, body: bytes) -> bytes:
    if len(body) > 0x7F:
        raise ValueError("descriptor too long for one length byte")
    return bytes((tag, len(body))) + body


# -- fragments -------------------------------------------------------------------------------


@dataclass(slots=True)
class Run:
    """One track's samples in one fragment, with their durations (the next sample's DTS
    minus theirs) and times relative to the file's origin."""

    track_id: int
    video: bool
    base: int  # tfdt: the first sample's DTS, ticks from the file's origin
    samples: list[bytes] = field(default_factory=list)
    durations: list[int] = field(default_factory=list)
    sync: list[bool] = field(default_factory=list)
    cts: list[int] = field(default_factory=list)  # PTS - DTS, video only


def video_sample(sample: Sample, config: VideoConfig) -> bytes:
    """An H.264 sample: its NAL units with 4-byte lengths, less any SPS/PPS the sample
    entry already holds (a changed one stays in band, where decoders pick it up)."""
    keep = set(config.sps) | set(config.pps)
    nals = sample.nals or []
    return b"".join(
        struct.pack(">I", len(nal)) + nal
        for nal in nals
        if nal[0] & 0x1F not in (NAL_SPS, NAL_PPS) or nal not in keep
    )


def fragment(sequence: int, runs: Sequence[Run], *, wall: datetime, media_time: int) -> bytes:
    """prft + moof + mdat. `wall` is the wall clock at `media_time` (ticks from the origin
    on the first run's track)."""
    runs = [r for r in runs if r.samples]
    if not runs:
        raise ValueError("a fragment needs samples")
    # Data offsets count from the moof's first byte, so the moof's size comes first; it
    # does not depend on the offsets' values.
    moof_size = len(_moof(sequence, runs, [0] * len(runs)))
    offsets = []
    at = moof_size + 8
    for run in runs:
        offsets.append(at)
        at += sum(len(s) for s in run.samples)
    moof = _moof(sequence, runs, offsets)
    mdat_size = at - moof_size
    prft = full_box(
        b"prft", 1, 0, struct.pack(">IQQ", runs[0].track_id, _ntp(wall), max(0, media_time))
    )
    parts = [prft, moof, struct.pack(">I4s", mdat_size, b"mdat")]
    for run in runs:
        parts.extend(run.samples)
    return b"".join(parts)


def _moof(sequence: int, runs: Sequence[Run], offsets: Sequence[int]) -> bytes:
    trafs = []
    for run, offset in zip(runs, offsets, strict=True):
        count = len(run.samples)
        sizes = [len(s) for s in run.samples]
        if run.video:
            tfhd = full_box(b"tfhd", 0, _TFHD_BASE_IS_MOOF, struct.pack(">I", run.track_id))
            fields: list[int] = []
            for duration, size, sync, cts in zip(
                run.durations, sizes, run.sync, run.cts, strict=True
            ):
                fields += (duration, size, SYNC if sync else NON_SYNC, cts)
            trun = full_box(
                b"trun", 0, _TRUN_VIDEO, struct.pack(f">Ii{4 * count}I", count, offset, *fields)
            )
        else:
            tfhd = full_box(
                b"tfhd",
                0,
                _TFHD_BASE_IS_MOOF | _TFHD_DEFAULT_FLAGS,
                struct.pack(">II", run.track_id, SYNC),
            )
            fields = [v for pair in zip(run.durations, sizes, strict=True) for v in pair]
            trun = full_box(
                b"trun", 0, _TRUN_AUDIO, struct.pack(f">Ii{2 * count}I", count, offset, *fields)
            )
        tfdt = full_box(b"tfdt", 1, 0, struct.pack(">Q", run.base))
        trafs.append(box(b"traf", tfhd, tfdt, trun))
    return box(b"moof", full_box(b"mfhd", 0, 0, struct.pack(">I", sequence)), *trafs)


def _ntp(t: datetime) -> int:
    delta = t - _NTP_EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    seconds, rest = divmod(micros, 1_000_000)
    return (seconds << 32) | round(rest * (1 << 32) / 1_000_000)


def _from_ntp(value: int) -> datetime:
    micros = round((value & 0xFFFFFFFF) * 1_000_000 / (1 << 32))
    return _NTP_EPOCH + timedelta(seconds=value >> 32, microseconds=micros)


# -- reading a file back ---------------------------------------------------------------------


@dataclass(slots=True)
class Scan:
    """What a slice file holds, up to its last complete fragment."""

    complete: int = 0  # bytes up to the end of the last complete fragment (or of the moov)
    fragments: int = 0
    track_ends: dict[int, int] = field(default_factory=dict)  # track id -> end, ticks
    track_starts: dict[int, int] = field(default_factory=dict)  # ... its first sample's DTS
    end_wall: datetime | None = None  # the wall clock where the media ends
    # Where the durations go: (offset, field size, track id or 0 for the movie, timescale).
    duration_fields: list[tuple[int, int, int, int]] = field(default_factory=list)

    @property
    def end(self) -> int:
        """Ticks from the origin to the end of the media (all tracks)."""
        return max(self.track_ends.values(), default=0)


def scan(fh: BinaryIO) -> Scan:
    """Read the boxes of a slice file (moov and moofs; mdats are skipped, not read); a box
    cut short by a crash ends the scan."""
    fh.seek(0, 2)
    size = fh.tell()
    out = Scan()
    pos = 0
    moov = moof = False
    prft: tuple[int, int] | None = None  # (ntp, media time) of the pending fragment
    pending: dict[int, tuple[int, int]] = {}
    latest: tuple[int, int] | None = None
    while pos + 8 <= size:
        fh.seek(pos)
        length, kind = struct.unpack(">I4s", fh.read(8))
        if length < 8 or pos + length > size:
            break  # torn (or not ours): the file ends before this box does
        if kind == b"moov":
            fh.seek(pos)
            out.duration_fields = _duration_fields(fh.read(length), pos)
            moov = True
            out.complete = pos + length
        elif kind == b"prft":
            fh.seek(pos + 12)
            _, ntp, media = struct.unpack(">IQQ", fh.read(20))
            prft = (ntp, media)
        elif kind == b"moof" and moov:
            fh.seek(pos)
            pending = _track_ends(fh.read(length))
            moof = True
        elif kind == b"mdat" and moof:
            for track, (start, end) in pending.items():
                out.track_starts.setdefault(track, start)
                out.track_ends[track] = max(out.track_ends.get(track, 0), end)
            out.fragments += 1
            out.complete = pos + length
            latest = prft
            moof, prft = False, None
        pos += length
    if latest is not None:
        ntp, media = latest
        ticks = out.end - media
        out.end_wall = _from_ntp(ntp) + timedelta(microseconds=ticks * 100 // 9)
    return out


def _children(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """(type, offset, size) of the boxes in data[start:end]."""
    out = []
    pos = start
    while pos + 8 <= end:
        length, kind = struct.unpack_from(">I4s", data, pos)
        if length < 8 or pos + length > end:
            raise MediaError(f"bad box {kind!r} in a slice file")
        out.append((kind, pos, length))
        pos += length
    return out


def _duration_fields(moov: bytes, at: int) -> list[tuple[int, int, int, int]]:
    fields = []
    for kind, pos, length in _children(moov, 8, len(moov)):
        if kind == b"mvhd":
            fields.append(_version_field(moov, pos, at, track=0, timescale=MOVIE_TIMESCALE))
        elif kind == b"trak":
            track = 0
            for sub, spos, slen in _children(moov, pos + 8, pos + length):
                if sub == b"tkhd":
                    track = struct.unpack_from(">I", moov, spos + (28 if moov[spos + 8] else 20))[0]
                    fields.append(_version_field(moov, spos, at, track, MOVIE_TIMESCALE))
                elif sub == b"mdia":
                    for mkind, mpos, _ in _children(moov, spos + 8, spos + slen):
                        if mkind == b"mdhd":
                            fields.append(_version_field(moov, mpos, at, track, TIMESCALE))
        elif kind == b"mvex":
            for sub, spos, _ in _children(moov, pos + 8, pos + length):
                if sub == b"mehd":
                    v1 = moov[spos + 8] == 1
                    fields.append((at + spos + 12, 8 if v1 else 4, 0, MOVIE_TIMESCALE))
    return fields


def _version_field(
    data: bytes, pos: int, at: int, track: int, timescale: int
) -> tuple[int, int, int, int]:
    """Where the duration of an mvhd, tkhd or mdhd box is: after the version/flags and the
    creation and modification times (and the timescale or the track id and a reserved
    word), 4 bytes in version 0, 8 in version 1."""
    v1 = data[pos + 8] == 1
    times = 16 if v1 else 8
    offset = pos + 12 + times + 4  # timescale (mvhd, mdhd), or track id (tkhd)
    if data[pos + 4 : pos + 8] == b"tkhd":
        offset += 4  # tkhd: a reserved word after the track id
    return at + offset, 8 if v1 else 4, track, timescale


def _track_ends(moof: bytes) -> dict[int, tuple[int, int]]:
    """Track id -> (tfdt, tfdt + durations) of each traf of a moof we wrote."""
    ends: dict[int, tuple[int, int]] = {}
    for kind, pos, length in _children(moof, 8, len(moof)):
        if kind != b"traf":
            continue
        track = base = total = 0
        for sub, spos, _ in _children(moof, pos + 8, pos + length):
            if sub == b"tfhd":
                track = struct.unpack_from(">I", moof, spos + 12)[0]
            elif sub == b"tfdt":
                v1 = moof[spos + 8] == 1
                base = struct.unpack_from(">Q" if v1 else ">I", moof, spos + 12)[0]
            elif sub == b"trun":
                total += _trun_duration(moof, spos)
        ends[track] = (base, base + total)
    return ends


def _trun_duration(data: bytes, pos: int) -> int:
    flags = struct.unpack_from(">I", data, pos + 8)[0] & 0xFFFFFF
    count = struct.unpack_from(">I", data, pos + 12)[0]
    at = pos + 16 + (4 if flags & 0x1 else 0) + (4 if flags & 0x4 else 0)
    if not flags & 0x100:
        raise MediaError("a trun without sample durations (not written by liverec)")
    per_sample = 4 * sum(1 for bit in (0x100, 0x200, 0x400, 0x800) if flags & bit)
    return sum(struct.unpack_from(">I", data, at + i * per_sample)[0] for i in range(count))


def patch_durations(fh: BinaryIO, found: Scan) -> None:
    """Write the media's length into mvhd and mehd (to the end of the last track), tkhd and
    mdhd (each track's samples' total: from its first sample, which need not be at 0; a
    player adds that start itself), in place."""
    for offset, width, track, timescale in found.duration_fields:
        if track:
            ticks = found.track_ends.get(track, 0) - found.track_starts.get(track, 0)
        else:
            ticks = found.end
        value = -(-ticks * timescale // TIMESCALE)  # rounded up: covers the last sample
        fh.seek(offset)
        fh.write(value.to_bytes(width, "big") if value < 1 << (8 * width) else b"\xff" * width)
