"""Cuts one publish's frames into MPEG-TS segments on keyframes, and keeps its wall clock.

Pure and synchronous: frames and the server's clock reading go in, finished segments come
out. The wall clock is anchored at the first frame; publisher timestamps then give every
offset. A jump in the publisher's timestamps (a reset, a jump back, a long jump forward)
ends the segment, re-anchors the clock on the server's time and marks the next segment as a
discontinuity, so no segment ever carries a wrong time."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from liverec.media.ts import TsMuxer

# A publisher's timestamps may step back a little (jitter between its clocks); beyond this
# it is a jump. Forward gaps longer than JUMP_FORWARD_MS are jumps too (a stream that pauses
# and resumes with old timestamps, or a publisher that resets its clock).
JUMP_BACK_MS = 200
JUMP_FORWARD_MS = 10_000
# Timeline ms -> 90 kHz with a base so that audio slightly before the first video frame
# still has a positive timestamp.
TS_BASE_90K = 900_000
# A publisher that never sends a keyframe still gets its media written: segments are cut
# anyway once they grow this long or this large.
HARD_CUT_FACTOR = 4
HARD_CUT_MIN_MS = 20_000
MAX_SEGMENT_BYTES = 48 * 1024 * 1024


def _whole_ms(t: datetime) -> datetime:
    """The clock in whole milliseconds, the catalog's precision: every segment time is then
    exactly the same in the catalog, the playlists and the API."""
    return t.replace(microsecond=t.microsecond - t.microsecond % 1000)


@dataclass(slots=True)
class SegmentData:
    seq: int  # per publish, from 0
    start_ms: int  # timeline ms of the first frame
    wall_start: datetime  # UTC wall clock of start_ms
    duration: float  # seconds, up to where the next segment starts
    data: bytes
    discontinuity: bool  # the clock was re-anchored at this segment's start
    keyframe_start: bool
    video_frames: int


@dataclass(slots=True)
class _Track:
    offset: int | None = None  # timeline ms = publisher ms + offset
    last_t: int | None = None
    last_duration: int = 0


@dataclass(slots=True)
class _Open:
    start_ms: int
    wall_start: datetime
    discontinuity: bool
    keyframe_start: bool
    parts: list[bytes] = field(default_factory=list)
    size: int = 0
    video_frames: int = 0


class Segmenter:
    def __init__(self, target_duration: float, *, video: bool, audio: bool) -> None:
        if not video and not audio:
            raise ValueError("a segmenter needs at least one track")
        self.target_ms = max(1, round(target_duration * 1000))
        self.hard_cut_ms = max(self.target_ms * HARD_CUT_FACTOR, HARD_CUT_MIN_MS)
        self.has_video = video
        self.has_audio = audio
        self._mux = TsMuxer(video=video, audio=audio)
        self._offset: int | None = None  # the time base of the latest jump, for new tracks
        self._anchor_t = 0
        self._anchor_wall: datetime | None = None
        self._video = _Track()
        self._audio = _Track()
        self._open: _Open | None = None
        self._seq = 0
        self._pending_discontinuity = False
        self._end_t = 0  # timeline ms where the media written so far ends

    # -- clock -------------------------------------------------------------------------

    def wall(self, t: int) -> datetime:
        assert self._anchor_wall is not None
        return self._anchor_wall + timedelta(milliseconds=t - self._anchor_t)

    def _timeline(self, track: _Track, raw: int, now: datetime) -> tuple[int, list[SegmentData]]:
        """Map a publisher timestamp onto the timeline, handling jumps."""
        out: list[SegmentData] = []
        if self._offset is None:
            self._offset = track.offset = -raw
            self._anchor_t = 0
            self._anchor_wall = _whole_ms(now)
            return 0, out
        if track.offset is None:
            # A track's first frame: it shares the other track's time base, unless the
            # publisher started it on a clock far from it (then it starts where media ends).
            track.offset = self._offset
            if abs(raw + track.offset - self._end_t) > JUMP_FORWARD_MS:
                track.offset = self._end_t - raw
        t = raw + track.offset
        if track.last_t is not None:
            step = t - track.last_t
            if step < -JUMP_BACK_MS or step > JUMP_FORWARD_MS:
                # Continue the media timeline where it ended; re-anchor the wall clock. The
                # publisher's clock jumped for every track, so every track follows.
                end_t = max(self._end_t, track.last_t + track.last_duration)
                shift = end_t - raw - track.offset
                for other in (self._video, self._audio):
                    if other.offset is not None:
                        other.offset += shift
                self._offset = end_t - raw
                t = end_t
                if self._open is not None:
                    out += self._finish(t)
                wall_end = self.wall(end_t)
                self._anchor_t = t
                self._anchor_wall = max(_whole_ms(now), wall_end)
                self._pending_discontinuity = True
            elif step < 0:
                t = track.last_t  # small jitter back: keep the track monotonic
        return t, out

    # -- frames ------------------------------------------------------------------------

    def video(
        self, raw_ts: int, cts: int, keyframe: bool, annexb: bytes, now: datetime
    ) -> list[SegmentData]:
        track = self._video
        t, out = self._timeline(track, raw_ts, now)
        out += self._maybe_cut(t, cut_point=keyframe or not self.has_video, keyframe=keyframe)
        if self._open is None:
            self._start(t, keyframe)
        dts90 = TS_BASE_90K + t * 90
        pts90 = dts90 + max(0, cts) * 90
        self._append(self._mux.video(pts90, dts90, annexb, keyframe))
        assert self._open is not None
        self._open.video_frames += 1
        self._advance(track, t, 40)
        return out

    def audio(self, raw_ts: int, adts: bytes, frame_ms: int, now: datetime) -> list[SegmentData]:
        track = self._audio
        t, out = self._timeline(track, raw_ts, now)
        out += self._maybe_cut(t, cut_point=not self.has_video, keyframe=False)
        if self._open is None:
            # Every audio frame can start an audio-only segment (and a new recording).
            self._start(t, not self.has_video)
        self._append(self._mux.audio(TS_BASE_90K + t * 90, adts))
        self._advance(track, t, frame_ms)
        return out

    def flush(self) -> list[SegmentData]:
        """End of the publish: the open segment ends where its media ends."""
        if self._open is None:
            return []
        return self._finish(self._end_t)

    # -- internals ---------------------------------------------------------------------

    def _advance(self, track: _Track, t: int, default_duration: int) -> None:
        if track.last_t is not None and t > track.last_t:
            track.last_duration = min(t - track.last_t, 1000)
        elif track.last_duration == 0:
            track.last_duration = default_duration
        track.last_t = t
        self._end_t = max(self._end_t, t + track.last_duration)

    def _maybe_cut(self, t: int, *, cut_point: bool, keyframe: bool) -> list[SegmentData]:
        seg = self._open
        if seg is None:
            return []
        elapsed = t - seg.start_ms
        if cut_point and elapsed >= self.target_ms:
            return self._finish(t)
        if elapsed >= self.hard_cut_ms or seg.size >= MAX_SEGMENT_BYTES:
            return self._finish(t)
        return []

    def _start(self, t: int, keyframe: bool) -> None:
        self._open = _Open(
            start_ms=t,
            wall_start=self.wall(t),
            discontinuity=self._pending_discontinuity,
            keyframe_start=keyframe,
        )
        self._pending_discontinuity = False
        self._append(self._mux.segment_header())

    def _append(self, data: bytes) -> None:
        assert self._open is not None
        self._open.parts.append(data)
        self._open.size += len(data)

    def _finish(self, end_t: int) -> list[SegmentData]:
        seg = self._open
        assert seg is not None
        self._open = None
        duration_ms = max(1, end_t - seg.start_ms)
        done = SegmentData(
            seq=self._seq,
            start_ms=seg.start_ms,
            wall_start=seg.wall_start,
            duration=duration_ms / 1000,
            data=b"".join(seg.parts),
            discontinuity=seg.discontinuity,
            keyframe_start=seg.keyframe_start,
            video_frames=seg.video_frames,
        )
        self._seq += 1
        return [done]
