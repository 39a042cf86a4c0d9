"""Wall clock <-> frames of a recorded segment, and reading a segment's packets.

The rule, exact by construction: the segmenter (recorder/segmenter.py, `_start`) opens a
segment with PAT/PMT followed at once by the PES of the frame that starts the segment, and
the catalog's `start_time` is that frame's wall clock (its DTS instant). So for any packet of
the segment

    wall(pts) = segment.start_time + (pts - first_dts) / 90 kHz

where first_dts is the DTS of the first PES *in file order*. It is read from the segment's
first bytes, not taken from PyAV: its demuxer hands a video PES over only once the next one
starts, so an audio packet written after the keyframe can come out first. Differences are
taken modulo 2**33 (the TS clock wraps every 26.5 h) and compared in integers, so "the last
frame whose presentation time is not after t" never depends on float rounding."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

from liverec.catalog import Segment
from liverec.errors import MediaError, StorageError
from liverec.layout import StreamRef
from liverec.media.ts import PACKET_SIZE, first_dts
from liverec.storage import BlobStore, ObjectNotFoundError

PTS_HZ = 90_000
_WRAP = 1 << 33
_HALF = 1 << 32
_HEAD_BYTES = PACKET_SIZE * 32  # PAT, PMT, then the first PES: a few packets in
# Demuxer probing is the slow part of opening a 2 s segment (it decodes to find stream
# parameters); the PMT names both streams and the SPS rides in the keyframe, so a small
# probe finds everything. Cuts av.open from ~8 ms to ~3.5 ms at 720p.
_OPEN_OPTIONS = {"probesize": "32768", "analyzeduration": "0", "fpsprobesize": "0"}


def ticks_between(a: int, b: int) -> int:
    """b - a in 90 kHz ticks, across a 33-bit wrap (and PyAV's unwrapped values)."""
    return (b - a + _HALF) % _WRAP - _HALF


@dataclass(frozen=True)
class SegmentClock:
    """Maps a segment's 90 kHz timestamps onto the wall clock."""

    start_time: datetime  # the catalog's start_time: wall clock of first_dts
    first_dts: int

    def offset(self, ts: int) -> int:
        """Ticks from the segment's start to `ts`."""
        return ticks_between(self.first_dts, ts)

    def time_of(self, ts: int) -> datetime:
        """The wall clock of `ts`, rounded *up* to the microsecond, so that the returned time,
        given back as a time, selects this very frame."""
        return self.start_time + timedelta(microseconds=-(-self.offset(ts) * 100 // 9))

    def limit(self, t: datetime) -> int:
        """The largest offset (ticks) whose instant is not after `t`: a packet is shown at or
        before t exactly when offset(pts) <= limit(t)."""
        delta = t - self.start_time
        micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
        return micros * 9 // 100

    def shown_by(self, ts: int, t: datetime | None) -> bool:
        """Whether `ts` is not after `t` (None: no bound)."""
        return t is None or self.offset(ts) <= self.limit(t)

    def ticks_of(self, seconds: float) -> int:
        return round(seconds * PTS_HZ)


@dataclass
class SegmentMedia:
    """A segment opened for reading: its packets, in decode order per stream."""

    segment: Segment
    clock: SegmentClock
    container: Any
    source: str | bytes  # the file's path, or its bytes when the store is not local
    video: list[Any] = field(default_factory=list)  # av.Packet, decode order
    audio: list[Any] = field(default_factory=list)

    def raw(self) -> bytes:
        """The segment file's bytes."""
        if isinstance(self.source, bytes):
            return self.source
        try:
            with open(self.source, "rb") as fh:
                return fh.read()
        except OSError as exc:
            raise StorageError(f"cannot read segment {self.segment.key}: {exc}") from exc

    @property
    def video_stream(self) -> Any:
        return self.container.streams.video[0] if self.container.streams.video else None

    def end_offset(self) -> int:
        """Ticks from the segment's start to its end (the catalog's duration)."""
        return self.clock.ticks_of(self.segment.duration)

    def frames(self) -> list[Any]:
        """Video packets in presentation order (audio packets when there is no video)."""
        return sorted(self.video or self.audio, key=lambda p: self.clock.offset(p.pts))

    def frame_end(self, frames: list[Any], index: int) -> int:
        """Offset where frames[index] stops being shown: the next frame's; for the last
        frame, the segment's end or one frame step on, whichever is later (with B-frames the
        last frame shown can be after the segment's end, which counts in DTS)."""
        if index + 1 < len(frames):
            return self.clock.offset(frames[index + 1].pts)
        step = round(PTS_HZ / frame_rate(frames, self.clock))
        return max(self.end_offset(), self.clock.offset(frames[index].pts) + step)

    def last_shown(self, t: datetime | None) -> int | None:
        """Index in frames() of the last frame not after `t` (None: the last frame)."""
        frames = self.frames()
        best = None
        for i, pkt in enumerate(frames):
            if not self.clock.shown_by(pkt.pts, t):
                break
            best = i
        return best

    def decode(self, first: int, last: int, keep: set[int]) -> dict[int, Any]:
        """Decode video packets first..last (indices in decode order; first must be a
        keyframe) and return the frames whose pts is in `keep`, by pts.

        Packets whose frames are not kept are decoded with skip_frame NONREF: a
        non-reference frame nobody wants costs nothing. Slice threading only (PyAV's
        default): with frame threads the per-packet skip setting would apply late, and on
        two cores they measured no faster for the few dozen frames of a GOP."""
        import av  # on first use: PyAV and FFmpeg's libraries are ~17 MB of RSS

        stream = self.video_stream
        if stream is None:
            raise MediaError("the segment has no video")
        # A decoder of its own per run: the stream's context is spent once flushed.
        ctx = av.CodecContext.create(stream.codec_context.name, "r")
        if stream.codec_context.extradata:
            ctx.extradata = stream.codec_context.extradata
        ctx.thread_type = "SLICE"
        out: dict[int, Any] = {}
        try:
            for pkt in self.video[first : last + 1]:
                ctx.skip_frame = "DEFAULT" if pkt.pts in keep else "NONREF"
                for frame in ctx.decode(pkt):
                    if frame.pts in keep:
                        out[frame.pts] = frame
            ctx.skip_frame = "DEFAULT"
            for frame in ctx.decode(None):
                if frame.pts in keep:
                    out[frame.pts] = frame
        except av.FFmpegError as exc:
            raise MediaError(f"cannot decode {self.segment.key}: {exc}") from exc
        return out

    def keyframe_before(self, index: int) -> int:
        """Index (decode order) of the last keyframe at or before video[index]."""
        for i in range(index, -1, -1):
            if self.video[i].is_keyframe:
                return i
        raise MediaError(f"{self.segment.key}: no keyframe before frame {index}")


@contextmanager
def open_segment(
    store: BlobStore, stream: StreamRef, segment: Segment, *, audio: bool = True
) -> Iterator[SegmentMedia]:
    """Open a catalogued segment of `stream` and read its packets (video, and audio if
    asked).

    A local store's file is opened by path (no copy through Python); other stores' bytes are
    fetched once."""
    key = stream.key(segment.key)
    path = store.local_path(key)
    source: str | bytes
    try:
        if path is not None:
            with open(path, "rb") as fh:
                head = fh.read(_HEAD_BYTES)
            source = str(path)
        else:
            source = store.get(key)
            head = source[:_HEAD_BYTES]
    except (OSError, ObjectNotFoundError) as exc:
        raise StorageError(f"segment {segment.key} is catalogued but cannot be read") from exc
    with _opened(segment, source, head, audio=audio) as media:
        yield media


@contextmanager
def open_segment_bytes(
    segment: Segment, data: bytes, *, audio: bool = True
) -> Iterator[SegmentMedia]:
    """Open a segment that is not stored yet (the one a live recorder is writing) from its
    bytes; `segment` carries its wall-clock start like a catalogued one."""
    with _opened(segment, data, data[:_HEAD_BYTES], audio=audio) as media:
        yield media


@contextmanager
def _opened(
    segment: Segment, source: str | bytes, head: bytes, *, audio: bool
) -> Iterator[SegmentMedia]:
    import av  # on first use: PyAV and FFmpeg's libraries are ~17 MB of RSS

    clock = SegmentClock(segment.start_time, first_dts(head))
    try:
        opened = io.BytesIO(source) if isinstance(source, bytes) else source
        container: Any = av.open(opened, format="mpegts", options=_OPEN_OPTIONS)
    except av.FFmpegError as exc:
        raise MediaError(f"cannot open {segment.key}: {exc}") from exc
    try:
        media = SegmentMedia(segment, clock, container, source)
        streams: list[Any] = list(container.streams.video[:1])
        if audio:
            streams += list(container.streams.audio[:1])
        if streams:
            try:
                for pkt in container.demux(streams):
                    if pkt.pts is None or pkt.size == 0:
                        continue
                    if pkt.dts is None:
                        pkt.dts = pkt.pts
                    (media.video if pkt.stream.type == "video" else media.audio).append(pkt)
            except av.FFmpegError as exc:
                raise MediaError(f"cannot read {segment.key}: {exc}") from exc
        yield media
    finally:
        container.close()


def frame_rate(frames: list[Any], clock: SegmentClock) -> float:
    """Frames per second from the median pts step (25 when it cannot be told)."""
    steps = sorted(clock.offset(b.pts) - clock.offset(a.pts) for a, b in pairwise(frames))
    steps = [s for s in steps if s > 0]
    if not steps:
        return 25.0
    return PTS_HZ / steps[len(steps) // 2]
