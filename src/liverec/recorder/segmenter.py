"""Cuts one publish's frames into MPEG-TS segments on keyframes, and keeps its wall clock.

Pure and synchronous: frames and the server's clock reading go in, finished segments come
out. The wall clock is anchored at the first frame; publisher timestamps then give every
offset. A jump in the publisher's timestamps (a reset, a jump back, a long jump forward)
ends the segment, re-anchors the clock on the server's time and marks the next segment as a
discontinuity, so no segment ever carries a wrong time.

No segment is longer than the playlist target duration (RFC 8216 6.2.1: a media playlist's
EXT-X-TARGETDURATION MUST NOT change, and no EXTINF may exceed it). The bound is fixed before
the first frame, from the entry point's target alone (`playlist_target_duration`: max(2 x
target, target + LONG_GOP_MS), rounded up to whole seconds; 12 s for the default 4 s), and
every playlist of the publish declares it: live, final and rebuilt by crash recovery alike.
Each frame at timeline ms t, with the open segment started at s, is checked in this order:

1. t - s > limit, which only a pause in the media can cause (3 keeps every frame of a
   segment before limit - 1 s): the segment ends where its media ends, before the pause,
   and the frame at t starts the next segment, marked as a discontinuity (its timestamps do
   not continue the previous segment's) with its wall clock from the same anchor, so frames
   after the pause keep their exact time. A pause that fits stays inside its segment: the
   frames keep their timestamps, so `wall(pts) = start_time + (pts - first_dts) / 90 kHz`
   (postprocess/timing.py) stays exact, and the EXTINF, which runs to where the next segment
   starts, counts the pause.
2. A keyframe (any frame of an audio-only stream) cuts once t - s >= target; or earlier, when
   waiting for the next keyframe would pass the limit: when t - s plus the longest of the
   recent keyframe intervals is more than the limit. So keyframe intervals up to the limit
   always give segments that start on a keyframe; encoders' default of 250 frames (x264,
   OBS "auto") is 8.3-10.4 s at 30-24 fps, hence the generous LONG_GOP_MS. A segment whose
   video started without a keyframe (after a cut by rule 1 or 3) ends at the first keyframe:
   it cannot be decoded from its start, so it is kept short.
3. At t - s >= limit - HARD_CUT_SLACK_MS, or MAX_SEGMENT_BYTES, the segment is cut at t
   without a keyframe: the only way to stay inside the limit when keyframes are further
   apart than it or never come. Such a segment starts on a non-keyframe (keyframe_start is
   False) but continues the timestamps. A frame is credited at most HARD_CUT_SLACK_MS
   of duration (`_advance`), so a segment whose frames all start before limit - slack ends by
   the limit however it ends (a cut, a pause, a jump or the end of the publish).

Audio frames are muxed a few to a PES, as ffmpeg's and nginx-rtmp's HLS muxers do: up to
MAX_AUDIO_PES_BYTES or MAX_AUDIO_DELAY_MS of consecutive frames (each one frame's duration
after the last, by the publisher's clock) share one PES with the first one's PTS, and
demuxers time the others by their sample counts. A lone AAC frame took three TS packets for
~370 bytes (~2 % of a 3 Mbit/s stream in headers and stuffing) and most of the muxer's work
per audio frame. The waiting frames go into the segment before it is cut, and a segment
whose first frame is audio writes that frame at once, so its first PES is its start.

Why not a bound of about the target, cutting at it without a keyframe: a segment that does
not start on a keyframe cannot be decoded from its start (a player joining there, a clip or a
snapshot that starts in it), and the bound must be declared before any keyframe interval has
been seen. The price of a generous bound is live latency: players stay about 3 target
durations behind the live edge."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from liverec.media.ts import AccessUnit, Segment, TsMuxer
from liverec.storage.parts import Part, memory_part

_WRAP = 1 << 33  # PES timestamps are 33 bits, as the muxer writes them

# A publisher's timestamps may step back a little (jitter between its clocks); beyond this
# it is a jump. A frame more than JUMP_FORWARD_MS past the end of all media so far is a jump
# too (a publisher that resets its clock, or pauses that long): the wall clock is then
# re-anchored on the server's, which a long pause cannot mislead. Shorter pauses keep the
# publisher's timestamps (rule 1 of the module docstring).
JUMP_BACK_MS = 200
JUMP_FORWARD_MS = 10_000
# Timeline ms -> 90 kHz with a base so that audio slightly before the first video frame
# still has a positive timestamp.
TS_BASE_90K = 900_000
# The playlist target duration (the limit) leaves room for keyframe intervals this much
# longer than the target, so that common encoder defaults still cut on keyframes (rule 2).
LONG_GOP_MS = 8_000
# A publisher that never sends a keyframe still gets its media written: segments are cut
# without one this close to the limit (rule 3), or once this large. The slack is also the
# longest duration a frame is credited (`_advance`), which keeps every segment in the limit.
HARD_CUT_SLACK_MS = 1_000
MAX_SEGMENT_BYTES = 48 * 1024 * 1024
# Keyframe intervals remembered to predict the next one (rule 2): a few GOPs, so that one
# odd interval is forgotten soon.
KEYFRAME_HISTORY = 8
# Audio frames per PES (module docstring): ffmpeg's default PES payload size, and a delay
# under nginx-rtmp's default 300 ms (hls_max_audio_delay). A frame whose timestamp is more
# than AUDIO_JITTER_MS off one frame after the last starts a PES of its own.
MAX_AUDIO_PES_BYTES = 2930
MAX_AUDIO_DELAY_MS = 200
AUDIO_JITTER_MS = 2


def playlist_target_duration(target_duration: float) -> int:
    """The EXT-X-TARGETDURATION (whole seconds) of every playlist of a publish cut for
    `target_duration` seconds: the segmenter's limit, so no segment is ever longer. A pure
    function of the target, so that crash recovery can declare it again (recovery.py)."""
    target_ms = _target_ms(target_duration)
    return -(-max(2 * target_ms, target_ms + LONG_GOP_MS) // 1000)


def _target_ms(target_duration: float) -> int:
    return max(1, round(target_duration * 1000))


def _utc_now() -> datetime:
    return datetime.now(UTC)


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
    # Its TS bytes: a file written while it grew (storage/parts.py), or memory. Its
    # holder releases it once stored (recorder/hls.py).
    part: Part
    # Its timestamps do not continue the previous segment's: a jump (the clock was
    # re-anchored at its start) or a pause no segment could span (rule 1).
    discontinuity: bool
    keyframe_start: bool
    video_frames: int
    playlist_target: int  # EXT-X-TARGETDURATION of its playlists: duration <= it
    # Its PES payloads with their TS timestamps, when asked for (a remuxer to MP4 takes
    # them instead of reading the TS back: most of its cost); None otherwise.
    units: Segment | None = None

    @property
    def data(self) -> bytes:
        """Its bytes, read from the part (for the few that need them whole)."""
        return self.part.read()

    @property
    def size(self) -> int:
        return self.part.size


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
    # Its TS bytes: appended to a part file in chunks, so that no stream holds its whole
    # open segment (~1.5 MB at 3 Mbit/s and 4 s) in memory.
    part: Part
    video_frames: int = 0
    video_keyframe_start: bool | None = None  # whether its first video frame is a keyframe
    units: list[AccessUnit] = field(default_factory=list)  # when the segmenter keeps them


class Segmenter:
    def __init__(
        self,
        target_duration: float,
        *,
        video: bool,
        audio: bool,
        keep_units: bool = False,
        parts: Callable[[], Part] = memory_part,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        if not video and not audio:
            raise ValueError("a segmenter needs at least one track")
        self.target_ms = _target_ms(target_duration)
        self.playlist_target = playlist_target_duration(target_duration)
        self.limit_ms = self.playlist_target * 1000  # no segment is longer
        self.hard_cut_ms = self.limit_ms - HARD_CUT_SLACK_MS
        self.has_video = video
        self.has_audio = audio
        self.keep_units = keep_units  # hand each segment's PES payloads over too
        self.parts = parts  # where each segment's bytes go while it grows
        self.clock = clock  # the server's, for frames handed over without their arrival time
        self._mux = TsMuxer(video=video, audio=audio)
        self._offset: int | None = None  # the time base of the latest jump, for new tracks
        self._anchor_t = 0
        self._anchor_wall: datetime | None = None
        self._video = _Track()
        # The latest video frame's presentation instant: timeline ms and the anchor it was
        # on (last_video_time makes the datetime only when asked, not for every frame).
        self._last_video: tuple[int, int, datetime] | None = None
        self._audio = _Track()
        self._open: _Open | None = None
        self._seq = 0
        self._pending_discontinuity = False
        self._end_t = 0  # timeline ms where the media written so far ends
        self._last_keyframe: int | None = None  # None: none since the start, a jump or a pause
        self._keyframe_gaps: deque[int] = deque(maxlen=KEYFRAME_HISTORY)
        # ADTS frames waiting for one PES: the first one's 90 kHz PTS and timeline ms, the
        # last one's timeline ms, their bytes.
        self._audio_run: list[bytes] = []
        self._audio_pts = 0
        self._audio_first_t = 0
        self._audio_last_t = 0
        self._audio_bytes = 0

    # -- clock -------------------------------------------------------------------------

    def wall(self, t: int) -> datetime:
        assert self._anchor_wall is not None
        return self._anchor_wall + timedelta(milliseconds=t - self._anchor_t)

    @property
    def last_video_time(self) -> datetime | None:
        """The wall clock of the latest video frame (its presentation instant, as
        post-processing will read it back from the segment); None before any."""
        last = self._last_video
        if last is None:
            return None
        t, anchor_t, anchor_wall = last
        return anchor_wall + timedelta(milliseconds=t - anchor_t)

    def _timeline(
        self, track: _Track, raw: int, now: datetime | None
    ) -> tuple[int, list[SegmentData]]:
        """Map a publisher timestamp onto the timeline, handling jumps. `now`: the server's
        clock when the frame arrived; None: read `clock` (only the first frame and jumps
        need it)."""
        out: list[SegmentData] = []
        if self._offset is None:
            self._offset = track.offset = -raw
            self._anchor_t = 0
            self._anchor_wall = _whole_ms(self.clock() if now is None else now)
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
            # Forward, from where all media ends: one track that stalls while the other goes
            # on (a frozen camera, a live microphone) still runs on the publisher's clock.
            if step < -JUMP_BACK_MS or t - self._end_t > JUMP_FORWARD_MS:
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
                self._anchor_wall = max(_whole_ms(self.clock() if now is None else now), wall_end)
                self._pending_discontinuity = True
                self._last_keyframe = None  # an interval across a jump is no GOP
            elif step < 0:
                t = track.last_t  # small jitter back: keep the track monotonic
        return t, out

    # -- frames ------------------------------------------------------------------------

    def video(
        self, raw_ts: int, cts: int, keyframe: bool, annexb: bytes, now: datetime | None = None
    ) -> list[SegmentData]:
        track = self._video
        t, out = self._timeline(track, raw_ts, now)
        if track.last_t is not None and t - track.last_t > HARD_CUT_SLACK_MS:
            self._last_keyframe = None  # the video paused: an interval across it is no GOP
        out += self._maybe_cut(t, cut_point=keyframe or not self.has_video, keyframe=keyframe)
        if keyframe:
            self._note_keyframe(t)
        if self._open is None:
            self._start(t, keyframe)
        dts90 = TS_BASE_90K + t * 90
        pts90 = dts90 + max(0, cts) * 90
        self._append(self._mux.video(pts90, dts90, annexb, keyframe))
        if self.keep_units:
            assert self._open is not None
            self._open.units.append(AccessUnit(True, pts90 % _WRAP, dts90 % _WRAP, annexb))
        assert self._anchor_wall is not None
        self._last_video = (t + max(0, cts), self._anchor_t, self._anchor_wall)
        assert self._open is not None
        if self._open.video_frames == 0:
            self._open.video_keyframe_start = keyframe
        self._open.video_frames += 1
        self._advance(track, t, 40)
        return out

    def audio(
        self, raw_ts: int, adts: bytes, frame_ms: int, now: datetime | None = None
    ) -> list[SegmentData]:
        track = self._audio
        t, out = self._timeline(track, raw_ts, now)
        out += self._maybe_cut(t, cut_point=not self.has_video, keyframe=False)
        pts90 = TS_BASE_90K + t * 90
        if self._open is None:
            # Every audio frame can start an audio-only segment (and a new recording): its
            # first PES is this frame's, written at once.
            self._start(t, not self.has_video)
            self._write_audio(pts90, adts)
        else:
            self._bundle_audio(t, pts90, adts, frame_ms)
        self._advance(track, t, frame_ms)
        return out

    def _bundle_audio(self, t: int, pts90: int, adts: bytes, frame_ms: int) -> None:
        """Add an ADTS frame to the PES being gathered, or start one (module docstring)."""
        run = self._audio_run
        if run and (
            abs(t - self._audio_last_t - frame_ms) > AUDIO_JITTER_MS
            or self._audio_bytes + len(adts) > MAX_AUDIO_PES_BYTES
            or t - self._audio_first_t >= MAX_AUDIO_DELAY_MS
        ):
            self._flush_audio()
        if not run:
            self._audio_pts = pts90
            self._audio_first_t = t
            self._audio_bytes = 0
        run.append(adts)
        self._audio_last_t = t
        self._audio_bytes += len(adts)

    def _flush_audio(self) -> None:
        """Write the gathered audio frames as one PES into the open segment."""
        run = self._audio_run
        if run:
            data = run[0] if len(run) == 1 else b"".join(run)
            run.clear()
            self._write_audio(self._audio_pts, data)

    def _write_audio(self, pts90: int, adts: bytes) -> None:
        """One audio PES (one or more ADTS frames) into the open segment."""
        self._append(self._mux.audio(pts90, adts))
        if self.keep_units:  # as a reader of the TS will find it: a unit per PES
            assert self._open is not None
            self._open.units.append(AccessUnit(False, pts90 % _WRAP, pts90 % _WRAP, adts))

    def open_segment(self) -> tuple[datetime, bytes] | None:
        """The segment being filled: its wall-clock start and its TS bytes so far (whole
        frames: each frame's packets are appended at once). For snapshots at the live
        edge; may be called from another thread (it only reads)."""
        seg = self._open
        if seg is None:
            return None
        return seg.wall_start, seg.part.read()  # whole frames (parts.py)

    def flush(self) -> list[SegmentData]:
        """End of the publish: the open segment ends where its media ends."""
        if self._open is None:
            return []
        return self._finish(self._end_t)

    # -- internals ---------------------------------------------------------------------

    def _advance(self, track: _Track, t: int, default_duration: int) -> None:
        if track.last_t is not None and t > track.last_t:
            # A longer step is a pause after the frame, not the frame's duration (rule 3).
            track.last_duration = min(t - track.last_t, HARD_CUT_SLACK_MS)
        elif track.last_duration == 0:
            track.last_duration = default_duration
        track.last_t = t
        self._end_t = max(self._end_t, t + track.last_duration)

    def _maybe_cut(self, t: int, *, cut_point: bool, keyframe: bool) -> list[SegmentData]:
        """Whether the frame at t ends the open segment: the rules of the module docstring,
        in their order."""
        seg = self._open
        if seg is None:
            return []
        elapsed = t - seg.start_ms
        if elapsed > self.limit_ms:
            # Rule 1: a pause the segment cannot span. It ends where its media ends (before
            # the limit, by rule 3); the next one starts at t on the same anchor.
            self._pending_discontinuity = True
            return self._finish(self._end_t)
        if cut_point and (
            elapsed >= self.target_ms
            or elapsed + self._next_keyframe_in(t, keyframe) > self.limit_ms
            or seg.video_keyframe_start is False
        ):
            return self._finish(t)  # rule 2
        if elapsed >= self.hard_cut_ms or seg.part.size >= MAX_SEGMENT_BYTES:
            return self._finish(t)  # rule 3
        return []

    def _next_keyframe_in(self, t: int, keyframe: bool) -> int:
        """The expected ms from the keyframe at t to the next: the longest recent interval,
        this one's included (0 while unknown, and for audio-only streams)."""
        latest = t - self._last_keyframe if keyframe and self._last_keyframe is not None else 0
        return max(latest, max(self._keyframe_gaps, default=0))

    def _note_keyframe(self, t: int) -> None:
        if self._last_keyframe is not None and t > self._last_keyframe:
            self._keyframe_gaps.append(t - self._last_keyframe)
        self._last_keyframe = t

    def _start(self, t: int, keyframe: bool) -> None:
        self._open = _Open(
            start_ms=t,
            wall_start=self.wall(t),
            discontinuity=self._pending_discontinuity,
            keyframe_start=keyframe,
            part=self.parts(),
        )
        self._pending_discontinuity = False
        self._append(self._mux.segment_header())

    def _append(self, data: bytes) -> None:
        assert self._open is not None
        self._open.part.append(data)

    def _finish(self, end_t: int) -> list[SegmentData]:
        self._flush_audio()  # the frames gathered belong to this segment
        seg = self._open
        assert seg is not None
        self._open = None
        seg.part.finish()
        # Never past the limit by the rules; the bound keeps the playlists valid regardless.
        duration_ms = min(max(1, end_t - seg.start_ms), self.limit_ms)
        done = SegmentData(
            seq=self._seq,
            start_ms=seg.start_ms,
            wall_start=seg.wall_start,
            duration=duration_ms / 1000,
            part=seg.part,
            discontinuity=seg.discontinuity,
            keyframe_start=seg.keyframe_start,
            video_frames=seg.video_frames,
            playlist_target=self.playlist_target,
            units=Segment(self.has_video, self.has_audio, seg.units) if self.keep_units else None,
        )
        self._seq += 1
        return [done]
