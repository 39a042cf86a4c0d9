"""MPEG-TS segment -> elementary-stream access units, with their 90 kHz PTS and DTS as
written: what the MP4 writer remuxes.

Pure and synchronous, bytes in, units out. It reads the layout recorder/segmenter.py writes
(media/ts.py's TsMuxer: PAT/PMT first, one H.264 and/or one ADTS AAC stream, one access
unit per PES) but does not rely on its PIDs: the PMT names the streams. A PES ends where the
next one of its PID starts or where the segment ends; segments hold whole frames, so the last
PES of each PID is complete. Timestamps are returned exactly as in the PES header (33 bits,
not unwrapped): the caller owns the timeline.

Kept here, next to its only user, rather than in media/ts.py, which another change owns at
the moment; it belongs there (every TS packet liverec parses is meant to be handled there)."""

from __future__ import annotations

import struct

from liverec.errors import MediaError
from liverec.media.ts import AccessUnit, Segment

__all__ = ["PACKET_SIZE", "AccessUnit", "Segment", "read_segment"]

PACKET_SIZE = 188
# Per packet: transport_error/PUSI/priority + PID, scrambling/adaptation/continuity, and the
# adaptation field's length (meaningful only when there is one).
_HEADER = struct.Struct(">xHBB183x")
_PAT_PID = 0
_STREAM_TYPE_H264 = 0x1B
_STREAM_TYPE_ADTS = 0x0F


def read_segment(ts: bytes) -> Segment:
    """The access units of one TS segment, in file order; MediaError if it has no PMT or a
    PES without a timestamp."""
    if len(ts) % PACKET_SIZE or (ts and ts[0] != 0x47):
        raise MediaError("not a whole number of TS packets")
    view = memoryview(ts)
    pmt_pid: int | None = None
    kinds: dict[int, bool] = {}  # PID -> video?
    parts: dict[int, list[memoryview]] = {}  # PID -> payloads of its open PES
    order: dict[int, int] = {}  # PID -> offset where its open PES started
    found: list[tuple[int, AccessUnit]] = []
    out = Segment(False, False)
    pos = -PACKET_SIZE
    # The per-packet loop is most of the remux's CPU: headers are unpacked in C, and a
    # continuation packet (most of them) costs a dict lookup and a memoryview slice.
    for pid_field, flags, af_length in _HEADER.iter_unpack(ts):
        pos += PACKET_SIZE
        if flags & 0x20:  # an adaptation field, then a payload if 0x10
            start = pos + 5 + af_length
            if not flags & 0x10 or start >= pos + PACKET_SIZE:
                continue
        elif flags & 0x10:
            start = pos + 4
        else:
            continue
        pid = pid_field & 0x1FFF
        if not pid_field & 0x4000:  # no payload unit start: the open PES goes on
            pieces = parts.get(pid)
            if pieces is not None:
                pieces.append(view[start : pos + PACKET_SIZE])
            continue
        if pid in kinds:
            _flush(parts, order, pid, kinds[pid], found)
            parts[pid] = [view[start : pos + PACKET_SIZE]]
            order[pid] = pos
        elif pid == _PAT_PID:
            pmt_pid = _pat_pmt_pid(ts[start : pos + PACKET_SIZE])
        elif pid == pmt_pid and not kinds:
            kinds = _pmt_streams(ts[start : pos + PACKET_SIZE])
            out.has_video = any(kinds.values())
            out.has_audio = not all(kinds.values())
    if not kinds:
        raise MediaError("the segment has no PMT (or it names no H.264 or AAC stream)")
    for pid in list(parts):
        _flush(parts, order, pid, kinds[pid], found)
    # A PES is complete only when the next of its PID starts, so units are found out of
    # order; file order is where each started.
    found.sort(key=lambda item: item[0])
    out.units = [unit for _, unit in found]
    return out


def _section(payload: bytes) -> bytes:
    """A PSI section from a payload that starts one (pointer field first)."""
    pointer = payload[0]
    section = payload[1 + pointer :]
    if len(section) < 3:
        raise MediaError("truncated PSI section")
    length = ((section[1] & 0x0F) << 8) | section[2]
    if len(section) < 3 + length:
        raise MediaError("PSI section longer than one packet")
    return section[: 3 + length]


def _pat_pmt_pid(payload: bytes) -> int:
    section = _section(payload)
    # Programs follow the 8-byte header and precede the 4-byte CRC; the first with a
    # program number other than 0 (0 is the network PID) is ours.
    for pos in range(8, len(section) - 4, 4):
        program = (section[pos] << 8) | section[pos + 1]
        if program:
            return ((section[pos + 2] & 0x1F) << 8) | section[pos + 3]
    raise MediaError("the PAT names no program")


def _pmt_streams(payload: bytes) -> dict[int, bool]:
    section = _section(payload)
    info_length = ((section[10] & 0x0F) << 8) | section[11]
    pos = 12 + info_length
    streams: dict[int, bool] = {}
    video = audio = False
    while pos + 5 <= len(section) - 4:
        stream_type = section[pos]
        pid = ((section[pos + 1] & 0x1F) << 8) | section[pos + 2]
        es_info = ((section[pos + 3] & 0x0F) << 8) | section[pos + 4]
        # The first stream of each kind; anything else (another codec) is not remuxed.
        if stream_type == _STREAM_TYPE_H264 and not video:
            streams[pid], video = True, True
        elif stream_type == _STREAM_TYPE_ADTS and not audio:
            streams[pid], audio = False, True
        pos += 5 + es_info
    return streams


def _flush(
    parts: dict[int, list[memoryview]],
    order: dict[int, int],
    pid: int,
    video: bool,
    found: list[tuple[int, AccessUnit]],
) -> None:
    pieces = parts.pop(pid, None)
    if not pieces:
        return
    pes = b"".join(pieces)
    if len(pes) < 9 or pes[:3] != b"\x00\x00\x01":
        raise MediaError("a PES does not start with a start code")
    flags = pes[7] >> 6
    payload_at = 9 + pes[8]
    if flags == 0b11:
        pts, dts = _timestamp(pes, 9), _timestamp(pes, 14)
    elif flags == 0b10:
        pts = dts = _timestamp(pes, 9)
    else:
        raise MediaError("a PES has no timestamp")
    length = (pes[4] << 8) | pes[5]
    end = 6 + length if length else len(pes)  # 0: unbounded (video), to the next PES
    if payload_at > end or end > len(pes):
        raise MediaError("a PES is shorter than its header says")
    found.append((order[pid], AccessUnit(video, pts, dts, pes[payload_at:end])))


def _timestamp(pes: bytes, at: int) -> int:
    b = pes[at : at + 5]
    if len(b) < 5:
        raise MediaError("truncated PES timestamp")
    return ((b[0] >> 1) & 0x07) << 30 | b[1] << 22 | (b[2] >> 1) << 15 | b[3] << 7 | b[4] >> 1
