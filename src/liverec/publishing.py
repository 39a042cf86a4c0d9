"""The live publishes of this node: each one metered, recorded when it is to be, and ended
when its stream is banned.

`Publishing.start` turns an admitted publish into a `LivePublish`, the MediaSink the RTMP
session feeds. A LivePublish
- counts what arrives (bytes, video frames) and writes the publish's figures: its current
  bitrate and frame rate every few seconds, and one quality point a minute;
- reads the codec configuration it is sent (picture size, codecs) for the publish row,
  and reports it (callback 11, publish_media_info) once media follows it, and again
  whenever a new configuration changes it;
- holds a recorder while the stream is to be recorded. A recording switched on while the
  publish is live (a recording task) starts at the next keyframe: the recorder is given
  the metadata and codec configuration the publisher sent at its start. Switched off, the
  recording ends at once, like an unpublish;
- once banned, refuses the next message it is given: the session answers the publisher
  with the refusal and closes.

`Publishing.watch` polls the catalog for what each of this node's live streams should be
doing (catalog `live_controls`, one statement a second), so that a ban or a task given
through any node reaches the publish on whichever node holds it within about a second.

A publish's callbacks (events/notices.py: publish_start, publish_end, publish_media_info)
are enqueued in the transactions that write its row."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from liverec.admission import Admitted
from liverec.catalog import Catalog
from liverec.errors import LiverecError, MediaError, RefusedError
from liverec.events import FlsNotices
from liverec.events.notices import media_info_notice
from liverec.layout import RecordingPath, StreamRef
from liverec.media import flv
from liverec.media.aac import AacConfig
from liverec.media.h264 import AvcConfig, access_unit_annexb
from liverec.outputs.snapshots import PeriodicSnapshots
from liverec.postprocess import LiveSegment
from liverec.recorder import Recorders, StreamRecorder, new_session_id
from liverec.rtmp.session import PublishRequest

log = logging.getLogger(__name__)

REJECTED = "NetStream.Publish.Rejected"
FIGURES_EVERY = 10.0  # seconds between updates of a live publish's bitrate and frame rate
MINUTE = 60.0
WATCH_EVERY = 1.0  # seconds between polls of the catalog for bans and recording switches
MEDIA_WAIT = 1.0  # seconds a configuration waits for a frame before it is written alone
QualityAt = tuple[datetime, int, float]  # a quality point: its minute, bitrate, frame rate


@dataclass
class _Meter:
    """What arrived since `since` (monotonic seconds)."""

    since: float
    bytes: int = 0
    frames: int = 0

    def rates(self, now: float) -> tuple[int, float] | None:
        elapsed = now - self.since
        if elapsed < 1.0:
            return None
        return round(self.bytes * 8 / elapsed), self.frames / elapsed


@dataclass
class Ingested:
    """What a publish received in all (or, in `Publishing.ingested_ended`, every ended
    publish of this node): read by the metrics at scrape time (metrics.py), counted here
    with three integer additions at most per tag."""

    bytes: int = 0
    video_frames: int = 0  # AVC NALU tags
    audio_frames: int = 0  # AAC raw tags

    def add(self, other: Ingested) -> None:
        self.bytes += other.bytes
        self.video_frames += other.video_frames
        self.audio_frames += other.audio_frames


@dataclass
class _Config:
    """The publisher's metadata and codec configuration, to start a recorder mid-publish."""

    metadata: dict[str, Any] | None = None
    video: tuple[int, bytes] | None = None  # (timestamp, tag) of the AVC sequence header
    audio: tuple[int, bytes] | None = None  # of the AAC AudioSpecificConfig
    avc: AvcConfig | None = None
    aac: AacConfig | None = None
    media_written: bool = field(default=False)


class LivePublish:
    """One admitted publish on this node (a MediaSink). Needs a running event loop."""

    def __init__(
        self,
        admitted: Admitted,
        publish_id: int,
        owner: Publishing,
        on_closed: Callable[[QualityAt | None], Awaitable[None]],
        domain: str = "",
    ) -> None:
        self.admitted = admitted
        self.domain = domain  # the host the publisher connected to (callbacks' `domain`)
        self.stream = admitted.stream
        self.publish_id = publish_id
        self.owner = owner
        self.on_closed = on_closed  # ends the publish's row, with its last quality point
        self.recorder: StreamRecorder | None = None
        self.refusal: RefusedError | None = None
        self._config = _Config()
        self.ingested = Ingested()
        now = time.monotonic()
        self._figures = _Meter(now)
        self._minute = _Meter(now)
        self._minute_start = owner.clock()
        self._closed = False
        self._want_recording = admitted.record
        self._outputs = (admitted.outputs.hls, admitted.outputs.mp4)
        self._switch_outputs = False  # at the next keyframe, a recorder with the new outputs
        self._session = RecordingPath(self.stream, new_session_id(), owner.clock())
        self._snapshot_every: float | None = None
        self._next_snapshot = 0.0  # monotonic instant the next snapshot is due
        self._publish_started = time.monotonic()
        self._snapshot_busy = False
        self._media_seen = False  # a coded frame arrived: the media is known
        self._media_told: tuple[Any, ...] | None = None  # the media info last reported
        self._media_unwritten = False  # a configuration came before any frame: not written
        self._media_timer: asyncio.TimerHandle | None = None  # writes it if no frame comes
        # Media writes not done yet: each may enqueue publish_media_info, which must be in
        # the stream's callback queue before publish_end (close() waits for them).
        self._media_writes: set[asyncio.Future[Any]] = set()
        self.set_snapshots(admitted.snapshots.interval if admitted.snapshots.enabled else None)
        if admitted.record:
            self._start_recorder()

    # -- MediaSink ---------------------------------------------------------------------

    def on_metadata(self, metadata: dict[str, Any]) -> None:
        self._check()
        self._config.metadata = metadata
        if self.recorder is not None:
            self.recorder.on_metadata(metadata)

    def on_video(self, timestamp: int, payload: bytes) -> None:
        if self.refusal is not None:
            raise self.refusal
        size = len(payload)
        nalu = size > 1 and payload[1] == 1  # an AVC NALU tag: a frame
        self._count(size, nalu, False)
        avc = size > 1 and payload[0] & 0x0F == flv.CODEC_AVC
        if avc and payload[1] == 0:
            self._config.video = (timestamp, payload)
            self._note_avc(payload)
        keyframe = avc and nalu and payload[0] >> 4 == 1
        if avc and nalu and not self._media_seen:
            self._media_seen = True
            self._media_changed()
        if keyframe and self._switch_outputs:
            self._restart_recorder()
        if self.recorder is not None:
            self.recorder.on_video(timestamp, payload)
        if keyframe and self._snapshot_every is not None:
            self._maybe_snapshot(payload)

    def on_audio(self, timestamp: int, payload: bytes) -> None:
        if self.refusal is not None:
            raise self.refusal
        size = len(payload)
        aac = size > 1 and payload[0] >> 4 == flv.SOUND_AAC
        self._count(size, False, aac and payload[1] == 1)  # an AAC raw frame
        if aac and payload[1] == 0:
            self._config.audio = (timestamp, payload)
            self._note_aac(payload)
        elif aac and not self._media_seen:
            self._media_seen = True
            self._media_changed()
        if self.recorder is not None:
            self.recorder.on_audio(timestamp, payload)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        quality = None
        try:
            quality = self._last_quality(time.monotonic())
            if self._media_timer is not None:
                self._media_timer.cancel()
            if self._media_unwritten:
                self._write_media()  # configurations but no frame: written all the same
            if self.recorder is not None:
                recorder, self.recorder = self.recorder, None
                await recorder.close()
        finally:
            self.owner.forget(self)
            if self._media_writes:  # publish_media_info goes before publish_end
                await asyncio.wait(set(self._media_writes))
            await self.on_closed(quality)

    # -- control ------------------------------------------------------------------------

    def end(self, refusal: RefusedError) -> None:
        """End the publish: the next message the publisher sends is refused with this."""
        if self.refusal is None:
            log.info("publish %s ended: %s", self.stream, refusal.description)
            self.refusal = refusal

    async def set_recording(self, on: bool) -> None:
        """Start recording (at the next keyframe) or stop (the recording ends now)."""
        if on == self._want_recording or self._closed:
            return
        self._want_recording = on
        if on:
            log.info("publish %s: recording switched on", self.stream)
            self._start_recorder()
            return
        log.info("publish %s: recording switched off", self.stream)
        recorder, self.recorder = self.recorder, None
        if recorder is not None:
            await recorder.close()

    def set_outputs(self, hls: bool, mp4: bool) -> None:
        """The entry point's outputs changed: a recorder with the new ones takes over at
        the next keyframe (the current one records up to it: nothing is lost)."""
        if (hls, mp4) != self._outputs:
            log.info("publish %s: outputs now hls=%s mp4=%s", self.stream, hls, mp4)
            self._outputs = (hls, mp4)
            self._switch_outputs = self.recorder is not None

    def set_snapshots(self, interval: int | None) -> None:
        """Periodic snapshots every `interval` seconds (None: off), scheduled from the
        publish's start."""
        if interval == self._snapshot_every:
            return
        self._snapshot_every = None if interval is None else float(interval)
        if self._snapshot_every is not None:
            now = time.monotonic()
            elapsed = now - self._publish_started
            periods = -(-elapsed // self._snapshot_every)  # the next scheduled instant
            self._next_snapshot = self._publish_started + periods * self._snapshot_every

    def live_segment(self, at: datetime | None) -> LiveSegment | None:
        """The not-yet-catalogued segment whose media holds `at` (None: the newest), if
        the publish is being recorded."""
        if self.recorder is None:
            return None
        found = self.recorder.live_segment(at)
        return None if found is None else LiveSegment(*found)

    # -- internals ----------------------------------------------------------------------

    def _check(self) -> None:
        if self.refusal is not None:
            raise self.refusal

    def _restart_recorder(self) -> None:
        self._switch_outputs = False
        old, self.recorder = self.recorder, None
        if old is not None:
            self.owner.spawn(old.close())
        if self._want_recording:
            self._start_recorder()

    def _maybe_snapshot(self, payload: bytes) -> None:
        every = self._snapshot_every
        now = time.monotonic()
        if every is None or now < self._next_snapshot or self._snapshot_busy:
            return
        # The next instant after now: a slow decode or a long GOP skips, never piles up.
        self._next_snapshot += (-(-(now - self._next_snapshot) // every) or 1) * every
        avc = self._config.avc
        if avc is None or self.owner.snapshots is None:
            return
        try:
            annexb = access_unit_annexb(flv.parse_video(payload).body, avc, True)
        except MediaError:
            return
        recorder = self.recorder
        shown = recorder.last_video_time() if recorder is not None else None
        path = (recorder.recording_path() if recorder is not None else None) or self._session
        taken = shown or self.owner.clock()
        self._snapshot_busy = True

        def take() -> None:
            try:
                assert self.owner.snapshots is not None
                self.owner.snapshots.take(path, taken, annexb)
            finally:
                self._snapshot_busy = False

        self.owner.run(take)

    def _start_recorder(self) -> None:
        hls, mp4 = self._outputs
        recorder = self.owner.recorders.start(
            self.stream,
            target_duration=self.admitted.entry_point.target_duration,
            max_file_duration=self.admitted.entry_point.max_file_duration,
            session_id=self._session.session_id,
            hls=hls,
            mp4=mp4,
            stream_id=self.admitted.stream_id,
        )
        cfg = self._config
        # Mid-publish: what the publisher said at its start, so the recorder can decode.
        if cfg.metadata is not None:
            recorder.on_metadata(cfg.metadata)
        if cfg.video is not None:
            recorder.on_video(*cfg.video)
        if cfg.audio is not None:
            recorder.on_audio(*cfg.audio)
        self.recorder = recorder

    def _note_avc(self, payload: bytes) -> None:
        try:
            self._config.avc = AvcConfig.parse(flv.parse_video(payload).body)
        except (MediaError, LiverecError):
            return
        self._media_changed()

    def _note_aac(self, payload: bytes) -> None:
        try:
            self._config.aac = AacConfig.parse(flv.parse_audio(payload).body)
        except (MediaError, LiverecError):
            return
        self._media_changed()

    def _media_changed(self) -> None:
        """Write the publish's media; once media has arrived, report it (callback 11) if
        it is not what was last reported. Before the first frame a configuration is only
        noted: the frames follow the sequence headers within milliseconds, and one write
        then serves them all (one transaction per publish instead of three); without a
        frame, it is written MEDIA_WAIT later, or at the close."""
        if not self._media_seen:
            self._media_unwritten = True
            if self._media_timer is None:
                loop = asyncio.get_running_loop()
                self._media_timer = loop.call_later(MEDIA_WAIT, self._media_waited)
            return
        self._write_media()

    def _media_waited(self) -> None:
        """No frame came within MEDIA_WAIT of the configuration: written without one."""
        self._media_timer = None  # a configuration after this one waits anew
        if self._media_unwritten and not self._closed:
            self._write_media()

    def _write_media(self) -> None:
        self._media_unwritten = False
        cfg = self._config
        avc, aac = cfg.avc, cfg.aac
        meta = cfg.metadata or {}
        fps = meta.get("framerate")
        fps = float(fps) if isinstance(fps, int | float) and 0 < fps < 1000 else None
        rate = meta.get("videodatarate")  # kbit/s, as onMetaData gives it
        video_rate = (
            round(rate * 1000) if isinstance(rate, int | float) and 0 < rate < 1e7 else None
        )
        video_codec = "H264" if avc else None
        audio_codec = "AAC" if aac else None
        width = (avc.width or None) if avc else None
        height = (avc.height or None) if avc else None
        told = (video_codec, audio_codec, width, height, fps, video_rate)
        notices = []
        if self._media_seen and told != self._media_told and self.owner.notices is not None:
            self._media_told = told
            notices.append(
                media_info_notice(
                    self.stream,
                    domain=self.domain,
                    video_codec=video_codec,
                    audio_codec=audio_codec,
                    fps=fps,
                    video_rate=video_rate,
                    width=width,
                    height=height,
                )
            )
        write = self.owner.run(
            self.owner.catalog.set_publish_media,
            self.publish_id,
            video_codec=video_codec,
            audio_codec=audio_codec,
            width=width,
            height=height,
            fps=fps,
            notices=notices,
        )
        self._media_writes.add(write)
        write.add_done_callback(self._media_writes.discard)

    def _count(self, size: int, video_frame: bool, audio_frame: bool) -> None:
        """A tag of `size` bytes arrived (once per frame: kept to additions)."""
        ingested = self.ingested
        ingested.bytes += size
        ingested.video_frames += video_frame
        ingested.audio_frames += audio_frame
        figures, minute = self._figures, self._minute
        figures.bytes += size
        figures.frames += video_frame
        minute.bytes += size
        minute.frames += video_frame
        now = time.monotonic()
        if now - figures.since >= FIGURES_EVERY or now - minute.since >= MINUTE:
            self._write_figures(now)

    def _write_figures(self, now: float) -> None:
        """The current bitrate and frame rate; at a minute's end, that minute's quality
        point."""
        if now - self._minute.since >= MINUTE:
            rates = self._minute.rates(now)
            if rates is not None:
                self.owner.run(
                    self.owner.catalog.add_quality, self.publish_id, self._minute_start, *rates
                )
            self._minute = _Meter(now)
            self._minute_start = self.owner.clock()
        elif now - self._figures.since >= FIGURES_EVERY:
            rates = self._figures.rates(now)
            if rates is not None:
                self.owner.run(self.owner.catalog.set_publish_rates, self.publish_id, *rates)
        if now - self._figures.since >= FIGURES_EVERY:
            self._figures = _Meter(now)

    def _last_quality(self, now: float) -> QualityAt | None:
        """The quality point of the publish's last minute, if at least 5 s of it passed:
        written with the publish's end (Catalog.end_publish)."""
        if now - self._minute.since < 5.0:
            return None
        rates = self._minute.rates(now)
        return None if rates is None else (self._minute_start, *rates)


class Publishing:
    """This node's live publishes, and the loop that applies bans and recording switches
    to them."""

    def __init__(
        self,
        catalog: Catalog,
        recorders: Recorders,
        *,
        node_id: str,
        region: str,
        clock: Callable[[], datetime],
        executor: Executor | None = None,
        snapshots: PeriodicSnapshots | None = None,
        notices: FlsNotices | None = None,
    ) -> None:
        self.catalog = catalog
        self.recorders = recorders
        self.notices = notices  # callbacks; None: none
        self.node_id = node_id
        self.region = region
        self.snapshots = snapshots
        self.clock = clock
        self.executor = executor
        self.live: dict[StreamRef, LivePublish] = {}
        self.ingested_ended = Ingested()  # what ended publishes received (metrics)
        self._background: set[asyncio.Future[Any]] = set()

    async def start(
        self,
        admitted: Admitted,
        request: PublishRequest,
        on_closed: Callable[[], Awaitable[None]],
    ) -> LivePublish:
        """The publish row (and its publish_start callback), then the sink the RTMP
        session feeds."""
        stream, client_ip, notices = admitted.stream, _address(request.peer), self.notices
        publish_id = await asyncio.to_thread(
            self.catalog.start_publish,
            stream,
            node_id=self.node_id,
            client_ip=client_ip,
            domain=request.host,
            start=self.clock(),
            node_ip=notices.node_ip if notices is not None else "",
            notices=[]
            if notices is None
            else [notices.publish_started(stream, domain=request.host, client_ip=client_ip)],
            stream_id=admitted.stream_id,
        )
        ended = (
            []
            if notices is None
            else [notices.publish_ended(stream, domain=request.host, client_ip=client_ip)]
        )

        async def closed(quality: QualityAt | None) -> None:
            try:
                await asyncio.to_thread(
                    self.catalog.end_publish, publish_id, self.clock(), ended, quality
                )
            finally:
                await on_closed()

        publish = LivePublish(admitted, publish_id, self, closed, request.host)
        self.live[admitted.stream] = publish
        return publish

    def live_segment(self, stream: StreamRef, at: datetime | None) -> LiveSegment | None:
        """A postprocess.LiveSource over this node's own live publishes (callable from any
        thread: it only reads what the loop writes)."""
        publish = self.live.get(stream)
        return None if publish is None else publish.live_segment(at)

    def forget(self, publish: LivePublish) -> None:
        if self.live.get(publish.stream) is publish:
            self.ingested_ended.add(publish.ingested)
            del self.live[publish.stream]

    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        """Blocking work nothing waits on (a catalog write, a snapshot): off the loop, on
        the recorder's pool; failures logged. Returns its future (to wait for it)."""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.executor, lambda: fn(*args, **kwargs))
        self._background.add(future)
        future.add_done_callback(self._done)
        return future

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        """Loop work nothing waits on (closing a replaced recorder); failures logged."""
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._done)

    def _done(self, future: asyncio.Future[Any]) -> None:
        self._background.discard(future)
        if not future.cancelled() and future.exception() is not None:
            log.warning("live publish work failed: %s", future.exception())

    async def apply_controls(self) -> None:
        """One poll: end banned publishes, switch recording on or off."""
        if not self.live:
            return
        controls = await asyncio.to_thread(self.catalog.live_controls, self.node_id, self.region)
        # The live streams by name, once, not once per control (200 x 200); each publish is
        # looked up when its control is applied, as the awaits below may replace it.
        by_name: dict[tuple[str, str, str], list[StreamRef]] = {}
        for stream in self.live:
            key = (stream.app_id, stream.entry_point, stream.stream_name)
            by_name.setdefault(key, []).append(stream)
        for control in controls:
            key = (control.app_id, control.entry_point, control.stream_name)
            for stream in by_name.get(key, []):
                publish = self.live.get(stream)
                if publish is None:
                    continue
                if control.banned_until is not None:
                    publish.end(
                        RefusedError(
                            REJECTED,
                            f"stream {stream} is banned until "
                            f"{control.banned_until.isoformat(timespec='seconds')}",
                        )
                    )
                    continue
                publish.set_snapshots(control.snapshot_interval)
                publish.set_outputs(control.hls, control.mp4)
                if control.record is not None:
                    await publish.set_recording(control.record)

    async def watch(self, every: float = WATCH_EVERY) -> None:
        """Apply the catalog's controls every `every` seconds until cancelled."""
        while True:
            await asyncio.sleep(every)
            try:
                await self.apply_controls()
            except Exception:
                log.exception("applying bans and recording switches failed")


def _address(peer: str) -> str:
    """`1.2.3.4:5678` or `[::1]:5678` -> the address alone."""
    host, sep, port = peer.rpartition(":")
    if not sep or not port.isdigit():
        return peer
    return host.strip("[]")
