"""Frame-accurate boundary segments for precise clips: re-encode only partial GOPs.

A cut keeps a segment's frames from S to E (presentation order). Frames before the first
keyframe at or after S cannot be copied (their references are cut off), so that partial GOP
is decoded from its keyframe and re-encoded with libx264 (same size, keyframe first, crf 18,
veryfast, no B-frames); from that keyframe on the packets are copied as they are. At the tail,
packets up to E are copied, unless a kept frame comes after a dropped one in decode order
(B-frames referring to a frame after E): then the last GOP is re-encoded up to E. Audio
packets from S's instant up to the end of E's display are copied.

Every packet keeps its original 90 kHz PTS, so the new segment's timestamps run on exactly
into the recorded segments the clip references next. Re-encoded frames get DTS = PTS - d,
with d the reorder delay of the copied keyframe that follows them, so DTS stays monotonic.

Muxed with media/ts.py's TsMuxer rather than PyAV's mpegts muxer: it writes the very layout
the recorder writes (PIDs, PAT/PMT first, PCR on keyframes, AUD-led access units), takes
our 90 kHz timestamps verbatim (libavformat's muxer would apply its own mux delay and
negative-timestamp shifting unless told otherwise), and costs no container setup."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from typing import Any

import av

from liverec.errors import MediaError
from liverec.media.ts import NULL_PACKET, PACKET_SIZE, TsMuxer, continuity, renumber
from liverec.postprocess.timing import PTS_HZ, SegmentMedia, frame_rate

AUD = b"\x00\x00\x00\x01\x09\xf0"
_MIN_PACKETS = 16
_X264_OPTIONS = {
    "preset": "veryfast",
    "crf": "18",
    # One IDR at the start, no B-frames (so DTS can be set from PTS), no scene cuts.
    "x264-params": "bframes=0:keyint=infinite:scenecut=0",
}


@dataclass(frozen=True)
class Cut:
    data: bytes  # the new MPEG-TS segment
    start_time: datetime  # its EXT-X-PROGRAM-DATE-TIME: wall clock of its first frame
    duration: float  # its EXTINF, seconds
    reencoded: int  # video frames re-encoded (the others were copied)


@dataclass(frozen=True, slots=True)
class _Out:
    order: int  # DTS as ticks from the segment's start (wrap-safe), to sort by
    video: bool
    pts: int
    dts: int
    data: bytes
    keyframe: bool


def cut_segment(media: SegmentMedia, head: int | None, tail: int | None) -> Cut:
    """The part of `media` from frames()[head] to frames()[tail] (indices in presentation
    order; None: from the segment's start / to its end) as a new segment."""
    clock = media.clock
    frames = media.frames()
    if not frames:
        raise MediaError(f"{media.segment.key} has no frames to cut")
    lo = clock.offset(frames[head].pts) if head is not None else None
    hi = clock.offset(frames[tail].pts) if tail is not None else None
    hi_end = media.frame_end(frames, tail) if tail is not None else None
    out: list[_Out] = []
    reencoded = 0
    if media.video:
        video, reencoded = _video(media, lo, hi)
        out += video
    for pkt in media.audio:
        off = clock.offset(pkt.pts)
        if (lo is None or off >= lo) and (hi_end is None or off < hi_end):
            out.append(_Out(clock.offset(pkt.dts), False, pkt.pts, pkt.dts, bytes(pkt), True))
    out.sort(key=lambda o: (o.order, not o.video))
    has_audio = any(not o.video for o in out)  # a cut of a frame or two may have none
    mux = TsMuxer(video=bool(media.video), audio=has_audio)
    parts = [mux.segment_header()]
    for o in out:
        if o.video:
            parts.append(mux.video(o.pts, o.dts, o.data, o.keyframe))
        else:
            parts.append(mux.audio(o.pts, o.data))
    data = b"".join(parts)
    # FFmpeg's TS probe wants 10 packets before it calls a file MPEG-TS; a cut of a frame or
    # two of small pictures can be shorter, so pad it with null packets.
    data += NULL_PACKET * max(0, _MIN_PACKETS - len(data) // PACKET_SIZE)
    if (head is None) != (tail is None):
        # Players read a playlist's segments as one TS stream: keep the continuity counters
        # running on from the recorded segment before a tail / into the one after a head.
        first_cc, last_cc = continuity(media.raw())
        data = renumber(data, first_cc if head is None else None, last_cc if tail is None else None)
    # As in the recorder, a segment starts at its first DTS (for a head cut: S's, or a bit
    # earlier with B-frames) and a tail ends where E stops being shown.
    start_off = out[0].order if head is not None and out else 0
    end_off = hi_end if hi_end is not None else media.end_offset()
    return Cut(
        data=data,
        start_time=clock.time_of(clock.first_dts + start_off),
        duration=max(0, end_off - start_off) / PTS_HZ,
        reencoded=reencoded,
    )


def _video(media: SegmentMedia, lo: int | None, hi: int | None) -> tuple[list[_Out], int]:
    clock = media.clock
    vids = media.video  # decode order
    offs = [clock.offset(p.pts) for p in vids]

    def kept(i: int) -> bool:
        return (lo is None or offs[i] >= lo) and (hi is None or offs[i] <= hi)

    out: list[_Out] = []
    reencoded = 0
    copy_from = 0
    if lo is not None:
        # The first keyframe at or after S: copying can start there, not before.
        copy_from = next(
            (i for i, p in enumerate(vids) if p.is_keyframe and offs[i] >= lo), len(vids)
        )
        k_off = offs[copy_from] if copy_from < len(vids) else None
        head = [i for i in range(len(vids)) if kept(i) and (k_off is None or offs[i] < k_off)]
        if head:
            # DTS of the re-encoded frames must stay below the next keyframe's: its own
            # reorder delay, or when it opens the next segment, the largest seen here.
            delay = (
                _reorder(media, copy_from)
                if copy_from < len(vids)
                else max(_reorder(media, i) for i in range(len(vids)))
            )
            start = media.keyframe_before(min(head))
            out += _reencode(media, start, head, delay)
            reencoded += len(head)
    rest = [i for i in range(copy_from, len(vids)) if kept(i)]
    if rest == list(range(copy_from, copy_from + len(rest))):
        copied = rest
        tail: list[int] = []
    else:
        # A kept frame decodes after a dropped one (B-frames referring past E): copy whole
        # packets up to the last keyframe, re-encode from it.
        keys = [i for i in rest if vids[i].is_keyframe]
        k2 = keys[-1] if keys else copy_from
        copied = [i for i in rest if i < k2]
        tail = [i for i in rest if i >= k2]
    for i in copied:
        pkt = vids[i]
        out.append(
            _Out(clock.offset(pkt.dts), True, pkt.pts, pkt.dts, bytes(pkt), bool(pkt.is_keyframe))
        )
    if tail:
        out += _reencode(media, tail[0], tail, _reorder(media, tail[0]))
        reencoded += len(tail)
    return out, reencoded


def _reorder(media: SegmentMedia, index: int) -> int:
    """PTS - DTS of video packet `index`: the reorder delay of the stream there."""
    pkt = media.video[index]
    return max(0, media.clock.offset(pkt.pts) - media.clock.offset(pkt.dts))


def _reencode(media: SegmentMedia, start: int, wanted: list[int], delay: int) -> list[_Out]:
    """Decode from keyframe `start` and re-encode the frames of video packets `wanted`,
    keeping their PTS; DTS = PTS - delay."""
    vids = media.video
    keep = {vids[i].pts for i in wanted}
    decoded = media.decode(start, max(wanted), keep)
    missing = keep - decoded.keys()
    if missing:
        raise MediaError(f"{media.segment.key}: {len(missing)} frame(s) did not decode")
    frames = [decoded[pts] for pts in sorted(keep, key=media.clock.offset)]
    first = frames[0]
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width = first.width
    ctx.height = first.height
    ctx.pix_fmt = "yuv420p"
    ctx.time_base = Fraction(1, PTS_HZ)
    ctx.framerate = Fraction(frame_rate(media.frames(), media.clock)).limit_denominator(1001)
    ctx.options = dict(_X264_OPTIONS)
    packets: list[Any] = []
    try:
        for frame in frames:
            image = frame.reformat(format="yuv420p")
            image.pts = frame.pts
            image.time_base = Fraction(1, PTS_HZ)
            image.pict_type = av.video.frame.PictureType.NONE  # let x264 choose: IDR first
            packets += ctx.encode(image)
        packets += ctx.encode(None)
    except av.FFmpegError as exc:
        raise MediaError(f"cannot re-encode {media.segment.key}: {exc}") from exc
    if len(packets) != len(frames):
        raise MediaError(f"{media.segment.key}: {len(frames)} frames in, {len(packets)} out")
    out = []
    for pkt in packets:
        dts = pkt.pts - delay
        data = bytes(pkt)
        out.append(
            _Out(media.clock.offset(dts), True, pkt.pts, dts, AUD + data, bool(pkt.is_keyframe))
        )
    return out
