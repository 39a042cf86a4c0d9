"""One publish, from FLV tags to stored segments: codec checks, track discovery, lifecycle.

`StreamRecorder` is the MediaSink the RTMP session feeds. It accepts H.264 video and AAC
audio only (anything else is refused before a byte is recorded), waits until it knows which
tracks the stream has, then feeds the segmenter and hands finished segments to the writer."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from liverec.errors import RefusedError
from liverec.layout import RecordingPath, StreamRef
from liverec.media import flv
from liverec.media.aac import AacConfig
from liverec.media.h264 import AvcConfig, access_unit_annexb
from liverec.recorder.events import Listener, MediaInfo
from liverec.recorder.hls import BlobWriter, HeadSource, HlsWriter
from liverec.recorder.segmenter import SegmentData, Segmenter

log = logging.getLogger(__name__)

REJECTED = "NetStream.Publish.Rejected"
# Until both tracks are known, frames wait here; bounded in time and bytes.
DISCOVERY_MS = 1500
DISCOVERY_MAX_BYTES = 8 * 1024 * 1024
DISCOVERY_MAX_FRAMES = 2000
# onMetaData codec ids that promise H.264/AAC; Enhanced RTMP encoders send the FourCC as a
# number. Only a promise: the tags decide (Enhanced RTMP tags are refused in on_video/on_audio).
VIDEO_CODEC_NAMES = {7.0, "avc1", "h264", "H264", float(int.from_bytes(b"avc1", "big"))}
AUDIO_CODEC_NAMES = {10.0, "mp4a", "aac", "AAC", float(int.from_bytes(b"mp4a", "big"))}
# Said with every codec refusal: the publisher's user reads it (ffmpeg prints it as
# "Server error: ..."), so it names what to send instead.
SUPPORTED = "liverec records H.264 video and AAC audio"


def _unsupported(kind: str, codec: str, *, enhanced_form: bool = False) -> RefusedError:
    """The refusal of a codec, in words the publisher's user can act on.

    H.264 or AAC in Enhanced RTMP tags (FourCC 'avc1'/'mp4a') is refused too, as only the
    classic FLV tags are parsed: `enhanced_form` makes the message say which form to send."""
    form = " in classic (not Enhanced) RTMP tags" if enhanced_form else ""
    return RefusedError(REJECTED, f"{kind} codec {codec} is not supported: {SUPPORTED}{form}")


class Clock(Protocol):
    def now(self) -> datetime: ...


@dataclass(frozen=True, slots=True)
class StreamSettings:
    stream: StreamRef
    session_id: str  # FLS's sessionid: every recording of this publish carries it
    target_duration: float
    max_file_duration: float
    hls: bool = True  # store HLS segments and playlists
    mp4: bool = False  # make MP4 record files (a listener does: outputs/mp4.py)


@dataclass(slots=True)
class _Pending:
    video: bool
    ts: int
    payload: Any  # (cts, keyframe, annexb) or (adts, frame_ms)
    arrived: datetime  # the server's clock when it came in: anchors the wall clock


class StreamRecorder:
    def __init__(
        self,
        settings: StreamSettings,
        *,
        store: BlobWriter,
        journal: Listener,
        listeners: Sequence[Listener] = (),
        clock: Clock,
        on_closed: Callable[[], Awaitable[None]] | None = None,
        executor: Executor | None = None,
        head: HeadSource | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.on_closed = on_closed
        self.writer = HlsWriter(
            stream=settings.stream,
            session_id=settings.session_id,
            store=store,
            journal=journal,
            listeners=listeners,
            max_file_duration=settings.max_file_duration,
            executor=executor,
            hls=settings.hls,
            mp4=settings.mp4,
            head=head,
        )
        self.avc: AvcConfig | None = None
        self.aac: AacConfig | None = None
        self._frame_ms = 23  # an AAC frame's duration at the configuration's rate
        self.expect_video: bool | None = None  # from onMetaData, when the publisher sent it
        self.expect_audio: bool | None = None
        self.metadata: dict[str, Any] = {}
        self.segmenter: Segmenter | None = None
        self._pending: list[_Pending] = []
        self._pending_bytes = 0
        self._first_ts = 0
        self._first_arrival = datetime.min
        self._have_video = False  # among the pending frames
        self._have_audio = False
        self._closed = False
        self._refused = False  # a codec was refused: what waits in discovery is not kept

    # -- MediaSink ---------------------------------------------------------------------

    def on_metadata(self, metadata: dict[str, Any]) -> None:
        vcodec = metadata.get("videocodecid")
        acodec = metadata.get("audiocodecid")
        if self.segmenter is not None:
            return
        self.metadata = metadata
        if vcodec is not None and vcodec != "":
            if vcodec not in VIDEO_CODEC_NAMES:
                raise self._refuse(
                    _unsupported("video", flv.metadata_codec_name(vcodec, video=True))
                )
            self.expect_video = True
        elif "videocodecid" in metadata or "width" in metadata:
            self.expect_video = self.expect_video or False
        if acodec is not None and acodec != "":
            if acodec not in AUDIO_CODEC_NAMES:
                raise self._refuse(
                    _unsupported("audio", flv.metadata_codec_name(acodec, video=False))
                )
            self.expect_audio = True
        if vcodec is not None or acodec is not None:
            self.expect_video = bool(self.expect_video)
            self.expect_audio = bool(self.expect_audio)

    def on_video(self, timestamp: int, payload: bytes) -> None:
        tag = flv.parse_video(payload)
        if tag.codec_id != flv.CODEC_AVC:
            raise self._refuse(
                _unsupported("video", flv.video_codec_name(tag), enhanced_form=tag.fourcc == "avc1")
            )
        if tag.packet_type == 0:
            self.avc = AvcConfig.parse(tag.body)
            return
        if tag.packet_type != 1 or not tag.body or self.avc is None:
            return  # without a decoder configuration a frame is undecodable: not kept
        annexb = access_unit_annexb(tag.body, self.avc, tag.keyframe)
        seg = self.segmenter
        if seg is not None:  # recording: straight on, as _feed would (it reads the clock)
            if seg.has_video:
                self._emit(seg.video(timestamp, tag.cts, tag.keyframe, annexb))
            return
        self._frame(
            _Pending(True, timestamp, (tag.cts, tag.keyframe, annexb), self.clock.now()),
            len(annexb),
        )

    def on_audio(self, timestamp: int, payload: bytes) -> None:
        aac = self.aac
        if (
            aac is not None
            and len(payload) > 2
            and payload[0] >> 4 == flv.SOUND_AAC
            and payload[1] == flv.AAC_RAW
        ):
            body = payload[2:]  # a raw AAC frame (most messages of a stream): no tag object
        else:
            tag = flv.parse_audio(payload)
            if tag.sound_format != flv.SOUND_AAC:
                raise self._refuse(
                    _unsupported(
                        "audio", flv.audio_codec_name(tag), enhanced_form=tag.fourcc == "mp4a"
                    )
                )
            if tag.packet_type == 0:
                self.aac = AacConfig.parse(tag.body)
                self._frame_ms = max(1, round(1024_000 / self.aac.sample_rate))
                return
            if not tag.body or aac is None:
                return
            body = tag.body
        adts = aac.adts_header(len(body)) + body
        frame_ms = self._frame_ms
        seg = self.segmenter
        if seg is not None:
            if seg.has_audio:
                self._emit(seg.audio(timestamp, adts, frame_ms))
            return
        self._frame(_Pending(False, timestamp, (adts, frame_ms), self.clock.now()), len(adts))

    def last_video_time(self) -> datetime | None:
        """The wall clock of the latest video frame recorded (its presentation instant, as
        snapshots read it), None before the recording starts."""
        return None if self.segmenter is None else self.segmenter.last_video_time

    def recording_path(self) -> RecordingPath | None:
        """The files of the recording being written, if one has started."""
        return self.writer.current_path()

    def live_segment(self, at: datetime | None) -> tuple[datetime, bytes] | None:
        """The segment not yet catalogued whose media holds `at` (None: the newest): its
        wall-clock start and TS bytes. Segments waiting for the store count, then the one
        being filled. Callable from another thread (it reads what the loop writes)."""
        found: list[tuple[datetime, bytes]] = [
            (seg.wall_start, seg.data) for seg in self.writer.unstored()
        ]
        segmenter = self.segmenter
        if segmenter is not None:
            current = segmenter.open_segment()
            if current is not None:
                found.append(current)
        if not found:
            return None
        if at is None:
            return found[-1]
        holding = [item for item in found if item[0] <= at]
        return holding[-1] if holding else None

    def _refuse(self, refusal: RefusedError) -> RefusedError:
        """Refused before the tracks were known: nothing of this publish is recorded."""
        if self.segmenter is None:
            self._refused = True
        return refusal

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.segmenter is None and self._pending and not self._refused:
            self._start_segmenter()
        if self.segmenter is not None:
            self._emit(self.segmenter.flush())
        # The stream is free for its next publisher at once (a reconnect gets a new
        # recording); this publish's last segments are still being stored below.
        try:
            if self.on_closed is not None:
                await self.on_closed()
        finally:
            await self.writer.close()

    # -- internals ---------------------------------------------------------------------

    def _frame(self, frame: _Pending, size: int) -> None:
        if self.segmenter is not None:
            self._feed(frame)
            return
        if not self._pending:
            self._first_ts = frame.ts
            self._first_arrival = frame.arrived
        if frame.video and not frame.payload[1] and not self._have_video:
            return  # video must start on a keyframe
        self._pending.append(frame)
        self._pending_bytes += size
        if frame.video:
            self._have_video = True
        else:
            self._have_audio = True
        # Discovery ends when the tracks are known, or after DISCOVERY_MS of media by the
        # publisher's clock or by ours (a publisher cannot stall it with frozen timestamps),
        # or when too much is waiting.
        waited = frame.arrived - self._first_arrival
        if (
            self._tracks_known()
            or frame.ts - self._first_ts >= DISCOVERY_MS
            or waited.total_seconds() * 1000 >= DISCOVERY_MS
            or self._pending_bytes >= DISCOVERY_MAX_BYTES
            or len(self._pending) >= DISCOVERY_MAX_FRAMES
        ):
            self._start_segmenter()

    def _tracks_known(self) -> bool:
        if self.expect_video is None or self.expect_audio is None:
            # No metadata: both tracks seen means we know; otherwise wait out discovery.
            return (
                self.avc is not None
                and self.aac is not None
                and self._have_video
                and self._have_audio
            )
        return (self._have_video or not self.expect_video) and (
            self._have_audio or not self.expect_audio
        )

    def _start_segmenter(self) -> None:
        video = self.avc is not None and self._have_video
        audio = self.aac is not None and self._have_audio
        if not video and not audio:
            self._pending.clear()
            return
        self.segmenter = Segmenter(
            self.settings.target_duration,
            video=video,
            audio=audio,
            keep_units=self.settings.mp4,
            parts=self.writer.new_part,  # the open segment grows in a file, not in memory
            clock=self.clock.now,
        )
        self.writer.submit_info(self._media_info())
        pending, self._pending, self._pending_bytes = self._pending, [], 0
        for frame in pending:
            self._feed(frame)

    def _feed(self, frame: _Pending) -> None:
        seg = self.segmenter
        assert seg is not None
        now = frame.arrived
        if frame.video:
            if not seg.has_video:
                return
            cts, keyframe, annexb = frame.payload
            self._emit(seg.video(frame.ts, cts, keyframe, annexb, now))
        else:
            if not seg.has_audio:
                return
            adts, frame_ms = frame.payload
            self._emit(seg.audio(frame.ts, adts, frame_ms, now))

    def _media_info(self) -> MediaInfo:
        seg = self.segmenter
        assert seg is not None
        avc = self.avc if seg.has_video else None
        aac = self.aac if seg.has_audio else None
        return MediaInfo(
            stream=self.settings.stream,
            video_codec="H264" if avc else None,
            audio_codec="AAC" if aac else None,
            width=avc.width or None if avc else None,
            height=avc.height or None if avc else None,
            fps=_number(self.metadata.get("framerate")) if avc else None,
            # onMetaData's videodatarate is in kbit/s.
            video_bitrate=_bits(self.metadata.get("videodatarate")) if avc else None,
            sample_rate=aac.sample_rate if aac else None,
            channels=aac.channels if aac else None,
        )

    def _emit(self, segments: list[SegmentData]) -> None:
        for seg in segments:
            self.writer.submit(seg)


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < 1e6:
        return float(value)
    return None


def _bits(kbits: Any) -> int | None:
    number = _number(kbits)
    return None if number is None else round(number * 1000)
