"""Frame-accurate boundary segments for precise clips: re-encode only partial GOPs.

A cut keeps a segment's frames from S to E (presentation order). Frames before the first
keyframe at or after S cannot be copied (their references are cut off), so that partial GOP
is decoded from its keyframe and re-encoded with libx264 (same size, keyframe first, crf 18,
veryfast, no B-frames); from that keyframe on the packets are copied as they are. At the tail,
packets up to E are copied, unless a kept frame comes after a dropped one in decode order
(B-frames referring to a frame after E): then the last GOP is re-encoded up to E. Audio
packets from S's instant up to the end of E's display are copied: none before S, so the
first thing a player meets is S itself, not a stretch of audio under a blank picture.

Every packet keeps its original 90 kHz PTS, so the new segment's timestamps run on exactly
into the recorded segments the clip references next. Re-encoded frames get DTS = PTS - d,
with d the reorder delay of the copied keyframe that follows them, so DTS stays monotonic.

Timing. A cut's EXT-X-PROGRAM-DATE-TIME and EXTINF run in presentation time: a head cut
starts at S's PTS (with B-frames its DTS, and the segment's first DTS in file order, are up to
the reorder delay earlier; counting from there put a blank lead-in of 0.1-0.2 s before S)
and a cut ending at E ends where E stops being shown (`shown_until`). A cut that runs to the
segment's end ends where the segment does, which is where the next recorded segment's
EXT-X-PROGRAM-DATE-TIME takes over (the recorder's DTS-based start_time, timing.py). So a
clip's EXTINFs add up to the time from S's start to E's end, one frame more than E - S.

With B-frames the last frames of a segment (in presentation order) are shown only after the
next segment starts: its keyframe is shown a reorder delay after its DTS. A clip starting on
one of them has no time of its own before the next segment's start, so those frames are cut
as the `lead` of the next segment instead: re-encoded at the front of it, with the next
segment's audio from S on.

Muxed with media/ts.py's TsMuxer rather than PyAV's mpegts muxer: it writes the very layout
the recorder writes (PIDs, PAT/PMT first, PCR on keyframes, AUD-led access units), takes
our 90 kHz timestamps verbatim (libavformat's muxer would apply its own mux delay and
negative-timestamp shifting unless told otherwise), and costs no container setup."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from typing import Any

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
    # Its EXT-X-PROGRAM-DATE-TIME: the wall clock of its first frame's PTS (a cut with no head
    # or lead: the segment's start_time).
    start_time: datetime
    duration: float  # its EXTINF, seconds: to where its last frame stops being shown
    reencoded: int  # video frames re-encoded (the others were copied)


@dataclass(frozen=True, slots=True)
class _Out:
    video: bool
    pts: int
    dts: int
    data: bytes
    keyframe: bool


def shown_until(media: SegmentMedia, frames: list[Any], index: int) -> int:
    """Offset (ticks from the segment's start) where frames[index] stops being shown: the next
    frame's PTS; after a segment's last frame, one frame step (the median), which is where the
    next segment's first frame is shown.

    Unlike SegmentMedia.frame_end this is never stretched to the segment's end: a clip ending
    on a recording's last frame ends with that frame, not with the audio muxed after it."""
    if index + 1 < len(frames):
        return media.clock.offset(frames[index + 1].pts)
    step = round(PTS_HZ / frame_rate(frames, media.clock))
    return media.clock.offset(frames[index].pts) + step


def cut_segment(
    media: SegmentMedia,
    head: int | None,
    tail: int | None,
    *,
    lead: tuple[SegmentMedia, int] | None = None,
) -> Cut:
    """The part of `media` from frames()[head] to frames()[tail] (indices in presentation
    order; None: from the segment's start / to its end) as a new segment.

    `lead` = (the previous segment of the same recording, an index into its frames()): start
    with that frame instead, which with B-frames is shown only after `media` starts (head must
    be None then). Its frames from there on are re-encoded in front of all of `media`'s.

    The cut starts at its first frame's PTS (with no head or lead: at the segment's start)
    and ends where frames()[tail] stops being shown (no tail: at the segment's end); its
    audio is kept within those bounds."""
    clock = media.clock
    frames = media.frames()
    if not frames:
        raise MediaError(f"{media.segment.key} has no frames to cut")
    if lead is not None and head is not None:
        raise ValueError("a cut starts at its head or at its lead, not both")
    start_time = clock.start_time
    lo: int | None = None  # the first frame's offset: nothing before it is kept
    if lead is not None:
        lead_media, first = lead
        first_pts = lead_media.frames()[first].pts
        start_time = lead_media.clock.time_of(first_pts)  # that frame's own clock, as snapshots
        lo = clock.offset(first_pts)
    elif head is not None:
        start_time = clock.time_of(frames[head].pts)
        lo = clock.offset(frames[head].pts)
    hi = clock.offset(frames[tail].pts) if tail is not None else None
    hi_end = shown_until(media, frames, tail) if tail is not None else None
    out: list[_Out] = []
    reencoded = 0
    if lead is not None and media.video:
        video, reencoded = _lead(lead[0], lead[1], _reorder(media, 0))
        out += video
    if media.video:
        video, count = _video(media, lo if lead is None else None, hi)
        out += video
        reencoded += count
    audio = list(lead[0].audio) + media.audio if lead is not None else media.audio
    for pkt in audio:
        off = clock.offset(pkt.pts)
        if (lo is None or off >= lo) and (hi_end is None or off < hi_end):
            out.append(_Out(False, pkt.pts, pkt.dts, bytes(pkt), True))
    out.sort(key=lambda o: (clock.offset(o.dts), not o.video))
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
    if (lo is None) != (tail is None):
        # Players read a playlist's segments as one TS stream: keep the continuity counters
        # running on from the recorded segment before a tail / into the one after a head.
        first_cc, last_cc = continuity(media.raw())
        data = renumber(data, first_cc if lo is None else None, last_cc if tail is None else None)
    start_off = lo if lo is not None else 0
    end_off = hi_end if hi_end is not None else media.end_offset()
    return Cut(
        data=data,
        start_time=start_time,
        duration=max(0, end_off - start_off) / PTS_HZ,
        reencoded=reencoded,
    )


def _lead(media: SegmentMedia, first: int, delay: int) -> tuple[list[_Out], int]:
    """Re-encoded video of `media` from frames()[first] on: the frames shown after the next
    segment starts. `delay` is the reorder delay of that segment's first (key)frame, so their
    DTS stay below its DTS."""
    offs = [media.clock.offset(p.pts) for p in media.video]
    lo = media.clock.offset(media.frames()[first].pts)
    wanted = [i for i in range(len(media.video)) if offs[i] >= lo]
    if not wanted:
        return [], 0
    out = _reencode(media, media.keyframe_before(min(wanted)), wanted, delay)
    return out, len(wanted)


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
        out.append(_Out(True, pkt.pts, pkt.dts, bytes(pkt), bool(pkt.is_keyframe)))
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
    import av  # on first use: PyAV and FFmpeg's libraries are ~17 MB of RSS

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
        out.append(_Out(True, pkt.pts, dts, AUD + data, bool(pkt.is_keyframe)))
    return out
