"""Snapshots: the JPEG of the frame shown at a wall-clock instant.

The frame is the last video frame whose presentation time is not after the asked time
(timing.py says how a frame's wall clock is known exactly). It is picked from the packets'
timestamps before anything is decoded, then decoded from the keyframe before it up to itself,
non-reference frames on the way skipped, and encoded as a full-resolution JPEG with PyAV's
mjpeg encoder."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any, Protocol

from liverec.catalog import Segment
from liverec.errors import MediaError, NotFoundError
from liverec.layout import StreamRef
from liverec.media.m3u8 import format_time
from liverec.media.names import JPEG_TYPE
from liverec.postprocess.index import SegmentIndex
from liverec.postprocess.reserve import reserved_file
from liverec.postprocess.timing import SegmentMedia, open_segment, open_segment_bytes
from liverec.storage import BlobStore

# mjpeg's quantiser pinned at 2 (what `ffmpeg -q:v 2` gives): ~51 dB PSNR at 720p, ~75 kB.
_JPEG_OPTIONS = {"qmin": "2", "qmax": "2"}
_MS = timedelta(milliseconds=1)


@dataclass(frozen=True)
class SnapshotResult:
    file_name: str  # record/{entry_point}/{stream_name}/{fileName}
    time: datetime  # the frame's own wall clock (UTC, rounded up to the microsecond)
    width: int
    height: int


@dataclass(frozen=True)
class LiveSegment:
    """A segment a live recorder is writing (or has not stored yet): its bytes so far."""

    start_time: datetime  # the wall clock of its first frame, as it will be catalogued
    data: bytes


class LiveSource(Protocol):
    """The segments of live streams that are not catalogued yet, on whichever node."""

    def live_segment(self, stream: StreamRef, at: datetime | None) -> LiveSegment | None:
        """The uncatalogued segment whose media holds `at` (None: the newest)."""
        ...


class SnapshotWriter:
    """Makes snapshots of recorded streams (api/context.py's SnapshotMaker). With a
    LiveSource, an instant at the live edge (inside the segment being written) is taken
    from the live recorder's media, on whichever node records the stream."""

    def __init__(
        self, catalog: SegmentIndex, store: BlobStore, live: LiveSource | None = None
    ) -> None:
        self.catalog = catalog
        self.store = store
        self.live = live

    def __call__(
        self, stream: StreamRef, *, file_name: str, time: datetime | None
    ) -> SnapshotResult:
        """Write the JPEG of the frame shown at `time` (None: the latest recorded frame,
        also while the stream is live) to record/{entry_point}/{stream_name}/{file_name}.

        The name is reserved first (ConflictError when it is taken) and released again if
        anything fails afterwards. NotFoundError when no recording holds `time` or the
        recording has no video there."""
        name = stream.file(file_name)
        with reserved_file(self.catalog, stream, file_name, "snapshot"):
            finder = _Finder(self.catalog, self.store, stream, self.live)
            jpeg, frame_time, width, height = finder.snapshot(time)
            self.store.put(stream.key(name), jpeg, JPEG_TYPE)
        return SnapshotResult(file_name=name, time=frame_time, width=width, height=height)


def encode_jpeg(frame: Any) -> bytes:
    """A decoded video frame -> JPEG bytes at the frame's own size (full-range yuvj420p)."""
    import av  # on first use: PyAV and FFmpeg's libraries are ~17 MB of RSS

    ctx = av.CodecContext.create("mjpeg", "w")
    ctx.width = frame.width
    ctx.height = frame.height
    ctx.pix_fmt = "yuvj420p"
    ctx.time_base = Fraction(1, 25)
    ctx.options = dict(_JPEG_OPTIONS)
    try:
        image = frame.reformat(format="yuvj420p")
        packets = ctx.encode(image) + ctx.encode(None)
    except av.FFmpegError as exc:
        raise MediaError(f"cannot encode the JPEG: {exc}") from exc
    return b"".join(bytes(p) for p in packets)


@dataclass
class _Finder:
    catalog: SegmentIndex
    store: BlobStore
    stream: StreamRef
    live: LiveSource | None = None

    @property
    def stream_name(self) -> str:
        return self.stream.stream_name

    def snapshot(self, time: datetime | None) -> tuple[bytes, datetime, int, int]:
        live = self.live.live_segment(self.stream, time) if self.live is not None else None
        if live is not None:
            pseudo = Segment(
                id=-1,
                recording_id=-1,
                seq=-1,
                key=self.stream.folder + "(live)",
                start_time=live.start_time,
                duration=0.0,
                size=len(live.data),
                discontinuity=False,
            )
            with open_segment_bytes(pseudo, live.data, audio=False) as media:
                shown = self._shown(media, time)
            if shown is not None:
                return shown
            # Before the live segment's first frame is shown (B-frames): the last stored
            # segment still shows.
            time = time if time is not None else live.start_time
            segment = self._segment_at(live.start_time - _MS)
            found = self._encode_shown(segment, time)
            if found is None:
                raise NotFoundError(f"no video frame of {self.stream_name} at {format_time(time)}")
            return found
        segment = self._latest_segment() if time is None else self._segment_at(time)
        found = self._encode_shown(segment, time)
        if found is None and time is not None and segment.seq > 0 and not segment.discontinuity:
            # With B-frames a segment's keyframe is shown a little after the segment starts;
            # until then the screen still shows the previous segment's last frames.
            previous = self._previous(segment)
            if previous is not None:
                found = self._encode_shown(previous, time)
        if found is None:
            raise NotFoundError(
                f"no video frame of {self.stream_name} at {format_time(time)}"
                if time is not None
                else f"no video frame of {self.stream_name}"
            )
        return found

    def _segment_at(self, time: datetime) -> Segment:
        pairs = self.catalog.segments_between(self.stream, time, time)
        holding = [seg for _, seg in pairs if seg.start_time <= time]
        if not holding:
            raise NotFoundError(f"no recording of {self.stream_name} at {format_time(time)}")
        return holding[-1]

    def _latest_segment(self) -> Segment:
        rec = self.catalog.latest_recording(self.stream)
        if rec is not None:
            pairs = self.catalog.segments_between(
                self.stream, rec.end_time - 1000 * _MS, rec.end_time
            )
            own = [seg for r, seg in pairs if r.id == rec.id]
            if own:
                return max(own, key=lambda s: s.seq)
        raise NotFoundError(f"no recording of {self.stream_name}")

    def _previous(self, segment: Segment) -> Segment | None:
        before = segment.start_time - _MS
        pairs = self.catalog.segments_between(self.stream, before, before)
        for _, seg in pairs:
            if seg.recording_id == segment.recording_id and seg.seq == segment.seq - 1:
                return seg
        return None

    def _encode_shown(
        self, segment: Segment, time: datetime | None
    ) -> tuple[bytes, datetime, int, int] | None:
        """JPEG, wall clock and size of the last frame of `segment` not after `time`; None
        if its first frame is after `time`."""
        with open_segment(self.store, self.stream, segment, audio=False) as media:
            return self._shown(media, time)

    def _shown(
        self, media: SegmentMedia, time: datetime | None
    ) -> tuple[bytes, datetime, int, int] | None:
        if not media.video:
            raise NotFoundError(f"no video in the recording of {self.stream_name}")
        frames = media.frames()
        index = media.last_shown(time)
        if index is None:
            return None
        target = frames[index]
        at = next(i for i, p in enumerate(media.video) if p is target)
        frame = media.decode(media.keyframe_before(at), at, {target.pts}).get(target.pts)
        if frame is None:
            raise MediaError(f"{media.segment.key}: frame at pts {target.pts} did not decode")
        return encode_jpeg(frame), media.clock.time_of(target.pts), frame.width, frame.height
