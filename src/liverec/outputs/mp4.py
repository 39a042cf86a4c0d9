"""MP4 record files (FLS standard recording's MP4 output): a recorder listener that remuxes
each recording with `mp4` on into MP4 slices, publishes them and catalogues them.

Remux only: the H.264 and AAC of the recorder's TS segments, as received, into fragmented
MP4 with every timestamp carried over exactly (samples.py: one 90 kHz timeline per
recording, continuous across segments; at a discontinuity the next segment starts where
the previous one ended, as HLS plays it). One fragment per segment, appended to a spool
file as the segment arrives, so a crash loses at most the segment being cut and the last
frame of each track of the one before (a sample's duration is its successor's DTS minus
its own, so the last sample of each track waits for the next segment).

Why not PyAV's mp4 muxer: it gives an audio track the sample rate as timescale (the TS's
90 kHz timestamps would be rounded), cuts fragments on video keyframes only (an audio-only
stream gets one per frame), and needs the ADTS -> AudioSpecificConfig filter's output
before an empty moov can be written. Our writer reads the TS itself (tsread.py: 61 ms of
CPU for 30 s of 720p 3 Mbit/s, where PyAV's demuxer took 84 ms) and writes the boxes
(fmp4.py); bench/mp4.py measures the whole cost.

Slices. A recording's first slice starts at its first segment; a new one starts at a
segment that begins on a keyframe (so every slice plays on its own) once the slice would
otherwise pass `slice_seconds` of media or `slice_bytes`. A slice is longer only when the
stream's keyframes are further apart than that. Its name is `RecordingPath.mp4(slice_id,
created)`, slice ids from 0 per recording; `created` (the name's filedate) and the
catalogue's start_time are the wall clock of the slice's time 0: its first segment's
start_time (earlier by the few ms an audio frame muxed after the keyframe may lead it).
Its end_time is where its media ends on the same clock (the last fragment's prft, fmp4.py).

Publishing. A finished slice (a recording's end, or the next slice begins) is made whole
(durations written, fsynced), then handed to a worker pool of this writer's own, which
puts it in the store as one object (publish.py), catalogues it and tells `on_slice`,
retrying through outages with backoff until it succeeds or `close()`; only then is the
spool file deleted. Whatever a crash or a long outage leaves in the spool,
`recover_spool()` (at start) publishes: every complete fragment of it."""

from __future__ import annotations

import contextlib
import logging
import random
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Protocol, TypeVar

from liverec.errors import ConflictError, InvalidKeyError, InvalidValueError, MediaError
from liverec.layout import RecordingPath, StreamRef
from liverec.media.names import MP4_TYPE
from liverec.outputs.fmp4 import Run, Track, fragment, init_segment, video_sample
from liverec.outputs.publish import Mp4Store, publish_file
from liverec.outputs.samples import (
    PTS_HZ,
    AudioConfig,
    Sample,
    SegmentSamples,
    Timeline,
    VideoConfig,
)
from liverec.outputs.spool import (
    MP4,
    SIDECAR,
    SliceMeta,
    SpoolFile,
    finish_file,
    mp4_path,
    remove,
    sidecar_path,
)
from liverec.recorder.events import (
    RecorderEvent,
    RecordingEnded,
    RecordingStarted,
    SegmentStored,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
SLICE_SECONDS = 3600.0
SLICE_BYTES = 2 * 1024**3
# Retries of a failed publish or catalogue call: from RETRY_FIRST s, doubling, jittered, up
# to RETRY_MAX s between attempts, until it succeeds or the writer closes.
RETRY_FIRST = 0.5
RETRY_MAX = 30.0
# Not outages: retrying cannot help. The spool file stays for an operator (and the next
# start's recover_spool tries again).
_REFUSALS = (InvalidKeyError, InvalidValueError, MediaError)
# A last sample's duration when its track has no other (a one-frame slice): 30 fps.
_DEFAULT_VIDEO_TICKS = PTS_HZ // 30


@dataclass(frozen=True, slots=True)
class Mp4SliceStored:
    """An MP4 slice, stored and catalogued (FLS event 101 reports it)."""

    stream: StreamRef
    name: str  # record/{ep}/{stream}/{sessionid}_{sessiondate}_{sliceid}_{filedate}.mp4
    start_time: datetime
    end_time: datetime
    size: int  # bytes
    slice_id: int


class Mp4Catalog(Protocol):
    """What the MP4 writer needs of the catalog."""

    def add_mp4_file(
        self,
        stream: StreamRef,
        *,
        name: str,
        session_id: str,
        slice_id: int,
        start_time: datetime,
        end_time: datetime,
        size: int,
    ) -> None: ...


@dataclass(slots=True)
class _Slice:
    meta: SliceMeta
    file: SpoolFile
    origin: int  # timeline ticks of the file's time 0
    tracks: dict[bool, Track]  # by "is video"
    configs: dict[bool, VideoConfig | AudioConfig]
    held: dict[bool, Sample] = field(default_factory=dict)  # each track's last sample
    last_duration: dict[bool, int] = field(default_factory=dict)
    duration: float = 0.0  # seconds of segments in it
    sequence: int = 1  # the next fragment's
    anchor: tuple[datetime, int] | None = None  # (wall, media ticks) of the last fragment


@dataclass(slots=True)
class _Recording:
    path: RecordingPath
    timeline: Timeline = field(default_factory=Timeline)
    slice: _Slice | None = None
    next_slice_id: int = 0
    video_config: VideoConfig | None = None  # the latest seen
    audio_config: AudioConfig | None = None


@dataclass(frozen=True, slots=True)
class _Job:
    meta: SliceMeta
    size: int
    end_time: datetime


class _GaveUp(Exception):
    """The writer is closing: a failed publish is left in the spool."""


class Mp4Writer:
    """The recorder listener that makes MP4 record files; one per node, shared by all
    publishes (recorders call it from their pool, in order per publish; it keeps each
    recording's state by its playlist name).

    `spool_dir` (e.g. `{data_dir}/spool/mp4`) must be on local disk and this node's alone.
    `on_slice` callbacks are called in a publishing worker thread, once a slice is stored
    and catalogued (again after a crash that came before its spool file was removed).
    Nothing starts until events arrive or `recover_spool()` is called."""

    def __init__(
        self,
        store: Mp4Store,
        catalog: Mp4Catalog,
        spool_dir: Path,
        *,
        slice_seconds: float = SLICE_SECONDS,
        slice_bytes: int = SLICE_BYTES,
        on_slice: Sequence[Callable[[Mp4SliceStored], None]] = (),
        workers: int = 2,
        retry_first: float = RETRY_FIRST,
        retry_max: float = RETRY_MAX,
    ) -> None:
        if slice_seconds <= 0 or slice_bytes <= 0:
            raise ValueError("MP4 slice limits must be positive")
        self.store = store
        self.catalog = catalog
        self.spool_dir = Path(spool_dir)
        self.slice_seconds = slice_seconds
        self.slice_bytes = slice_bytes
        self.on_slice = list(on_slice)
        self.retry_first = retry_first
        self.retry_max = retry_max
        self._lock = threading.Lock()
        self._recordings: dict[str, _Recording] = {}  # by playlist name
        self._closing = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mp4-publish")

    # -- the listener ------------------------------------------------------------------------

    def __call__(self, event: RecorderEvent) -> None:
        if isinstance(event, RecordingStarted):
            if event.mp4:
                with self._lock:
                    self._recordings[event.recording.playlist] = _Recording(event.recording)
        elif isinstance(event, SegmentStored):
            with self._lock:
                rec = self._recordings.get(event.recording.playlist)
            if rec is not None:
                self._segment(rec, event)
        elif isinstance(event, RecordingEnded):
            with self._lock:
                rec = self._recordings.pop(event.recording.playlist, None)
            if rec is not None and rec.slice is not None:
                self._finish(rec, None)

    def _segment(self, rec: _Recording, event: SegmentStored) -> None:
        try:
            # With its units no TS is read (`data` would read the stored file back).
            data = event.data if event.units is None else b""
            seg = rec.timeline.segment(data, event.duration, event.discontinuity, event.units)
        except MediaError as exc:
            log.error("%s: segment %d not remuxed to MP4: %s", rec.path.playlist, event.seq, exc)
            return
        rec.video_config = seg.video_config or rec.video_config
        rec.audio_config = seg.audio_config or rec.audio_config
        current = rec.slice
        if current is not None and seg.cut_point and self._full(current, event):
            self._finish(rec, seg)
        try:
            if rec.slice is None:
                rec.slice = self._open(rec, event, seg)
            if rec.slice is not None:
                self._append(rec.slice, event, seg)
        except OSError:
            # The spool disk failed: publish what is whole; a later segment starts anew.
            log.exception("%s: writing the MP4 slice failed", rec.path.playlist)
            if rec.slice is not None:
                self._finish(rec, None)

    def _full(self, current: _Slice, event: SegmentStored) -> bool:
        """Whether this segment would take the slice past a limit."""
        return (
            current.duration + event.duration > self.slice_seconds + 1e-6
            or current.file.size + event.size > self.slice_bytes
        )

    def _open(self, rec: _Recording, event: SegmentStored, seg: SegmentSamples) -> _Slice | None:
        # Video before the slice's first IDR cannot be decoded from the file: not kept.
        while seg.video and not seg.video[0].sync:
            seg.video.pop(0)
        configs: dict[bool, VideoConfig | AudioConfig] = {}
        if seg.has_video:
            video = seg.video_config or rec.video_config
            if video is None:
                log.warning(
                    "%s: no SPS/PPS yet, segment %d not in MP4", rec.path.playlist, event.seq
                )
                return None
            configs[True] = video
        if seg.has_audio:
            audio = seg.audio_config or rec.audio_config
            if audio is not None:
                configs[False] = audio
            else:
                log.warning("%s: audio not in MP4 slice (no frame yet)", rec.path.playlist)
        if not configs:
            return None
        tracks: dict[bool, Track] = {}
        for config in (configs.get(True), configs.get(False)):  # video first: track 1
            if isinstance(config, VideoConfig):
                tracks[True] = Track(len(tracks) + 1, video=config)
            elif isinstance(config, AudioConfig):
                tracks[False] = Track(len(tracks) + 1, audio=config)
        origin = seg.first_dts()
        start_time = event.start_time - _ticks(seg.start - origin)
        slice_id = rec.next_slice_id
        rec.next_slice_id += 1
        meta = SliceMeta(
            rec.path.stream,
            rec.path.mp4(slice_id, start_time),
            rec.path.session_id,
            slice_id,
            start_time,
        )
        spooled = SpoolFile.create(self.spool_dir, meta, init_segment(list(tracks.values())))
        return _Slice(meta, spooled, origin, tracks, configs)

    def _append(self, current: _Slice, event: SegmentStored, seg: SegmentSamples) -> None:
        """One fragment: the samples held from before and this segment's, but its last of
        each track (held until the next sample gives its duration)."""
        runs = []
        for video, samples in ((True, seg.video), (False, seg.audio)):
            track = current.tracks.get(video)
            if track is None or not samples:
                continue
            held = current.held.get(video)
            pending = [held, *samples] if held is not None else samples
            run = Run(track.track_id, video, pending[0].dts - current.origin)
            for sample, after in pairwise(pending):
                self._add(current, run, sample, after.dts - sample.dts)
            current.held[video] = pending[-1]
            runs.append(run)
        media_time = seg.start - current.origin
        if any(run.samples for run in runs):
            current.file.append(
                fragment(current.sequence, runs, wall=event.start_time, media_time=media_time)
            )
            current.sequence += 1
        current.anchor = (event.start_time, media_time)
        current.duration += event.duration

    def _add(self, current: _Slice, run: Run, sample: Sample, duration: int) -> None:
        config = current.configs[run.video]
        if isinstance(config, VideoConfig):
            run.samples.append(video_sample(sample, config))
        else:
            run.samples.append(sample.data)
        run.durations.append(duration)
        run.sync.append(sample.sync)
        run.cts.append(sample.pts - sample.dts)
        current.last_duration[run.video] = duration

    def _finish(self, rec: _Recording, following: SegmentSamples | None) -> None:
        """End the recording's slice: its held samples last until `following` begins (the
        next slice's first segment), else for their track's last duration."""
        current, rec.slice = rec.slice, None
        if current is None:
            return
        try:
            runs = []
            for video, held in current.held.items():
                track = current.tracks[video]
                nxt = (following.video if video else following.audio) if following else []
                duration = nxt[0].dts - held.dts if nxt and nxt[0].dts > held.dts else 0
                if duration <= 0:
                    duration = current.last_duration.get(video) or _default_ticks(current, video)
                run = Run(track.track_id, video, held.dts - current.origin)
                self._add(current, run, held, duration)
                runs.append(run)
            if runs and current.anchor is not None:
                wall, media = current.anchor
                at = min(run.base for run in runs)
                current.file.append(
                    fragment(current.sequence, runs, wall=wall + _ticks(at - media), media_time=at)
                )
        except OSError:
            log.exception("%s: the last fragment of a slice was lost", current.meta.name)
        finally:
            current.file.close()
        self._complete(current.meta)

    def _complete(self, meta: SliceMeta) -> bool:
        """Make the spooled slice whole and hand it to a publishing worker; False if it
        holds no whole fragment (it is forgotten) or cannot be finished (it stays)."""
        try:
            found = finish_file(mp4_path(self.spool_dir, meta))
        except (OSError, MediaError):
            log.exception("%s: cannot finish MP4 slice; left in the spool", meta.name)
            return False
        if not found.fragments or found.end_wall is None:
            remove(self.spool_dir, meta)  # not one whole fragment: nothing to publish
            return False
        job = _Job(meta, found.complete, max(found.end_wall, meta.start_time))
        try:
            self._pool.submit(self._publish, job)
        except RuntimeError:  # closed: the next start's recover_spool publishes it
            log.warning("%s: MP4 writer closed; slice left in the spool", meta.name)
            return False
        return True

    # -- publishing (worker threads) --------------------------------------------------------

    def _publish(self, job: _Job) -> None:
        meta = job.meta
        try:
            self._retrying(
                f"storing {meta.name}",
                lambda: publish_file(
                    self.store,
                    meta.stream.key(meta.name),
                    mp4_path(self.spool_dir, meta),
                    MP4_TYPE,
                ),
            )
            self._retrying(f"cataloguing {meta.name}", lambda: self._catalogue(job))
        except _GaveUp:
            log.warning("%s: not published before close; left in the spool", meta.name)
            return
        except _REFUSALS:
            log.exception("%s: refused; left in the spool", meta.name)
            return
        stored = Mp4SliceStored(
            meta.stream, meta.name, meta.start_time, job.end_time, job.size, meta.slice_id
        )
        for callback in self.on_slice:
            try:
                callback(stored)
            except Exception:
                log.exception("%s: an MP4 slice listener failed", meta.name)
        remove(self.spool_dir, meta)
        log.info("MP4 slice stored: %s (%d bytes)", meta.name, job.size)

    def _catalogue(self, job: _Job) -> None:
        meta = job.meta
        # ConflictError: listed before a crash kept the spool file from being removed.
        with contextlib.suppress(ConflictError):
            self.catalog.add_mp4_file(
                meta.stream,
                name=meta.name,
                session_id=meta.session_id,
                slice_id=meta.slice_id,
                start_time=meta.start_time,
                end_time=job.end_time,
                size=job.size,
            )

    def _retrying(self, what: str, fn: Callable[[], T]) -> T:
        delay = self.retry_first
        while True:
            try:
                return fn()
            except _REFUSALS:
                raise
            except Exception as exc:
                if self._closing.is_set():
                    raise _GaveUp from exc
                log.warning("MP4 %s failed, retrying in %.1f s: %s", what, delay, exc)
                if self._closing.wait(delay * (0.5 + random.random())):
                    raise _GaveUp from exc
                delay = min(delay * 2, self.retry_max)

    # -- start and stop ----------------------------------------------------------------------

    def recover_spool(self) -> list[str]:
        """Publish and catalogue every slice a crash (or a close during an outage) left in
        the spool, up to its last complete fragment, and forget those without one; returns
        the names being published (in the background: `close()` waits for them). Call at
        start, before recording."""
        if not self.spool_dir.is_dir():
            return []
        with self._lock:
            active = {
                rec.slice.meta.name for rec in self._recordings.values() if rec.slice is not None
            }
        names = []
        for leftover in self.spool_dir.glob(f"*{SIDECAR}.tmp"):
            leftover.unlink(missing_ok=True)  # a sidecar never completed: its slice has no byte
        for path in sorted(self.spool_dir.glob(f"*{SIDECAR}")):
            try:
                meta = SliceMeta.from_json(path.read_text(encoding="utf-8"))
            except (OSError, ValueError, KeyError, TypeError):
                log.exception("%s: not a slice sidecar; left alone", path)
                continue
            if meta.name in active or sidecar_path(self.spool_dir, meta) != path:
                continue
            if not mp4_path(self.spool_dir, meta).exists():
                path.unlink(missing_ok=True)  # published, or never written
                continue
            if self._complete(meta):
                log.info("recovering MP4 slice %s from the spool", meta.name)
                names.append(meta.name)
        known = {p.stem for p in self.spool_dir.glob(f"*{SIDECAR}")}
        for orphan in self.spool_dir.glob(f"*{MP4}"):
            if orphan.stem not in known:
                log.warning("%s: a spooled MP4 without its sidecar; left alone", orphan)
        return names

    def close(self) -> None:
        """Stop retrying and wait for the publishing workers: each pending slice gets its
        attempt, and what fails stays in the spool for the next start's recover_spool.
        Slices still being recorded stay there too (close the recorders first)."""
        with self._lock:
            open_slices = sum(1 for rec in self._recordings.values() if rec.slice is not None)
        if open_slices:
            log.warning("MP4 writer closing with %d slices still recording", open_slices)
        self._closing.set()
        self._pool.shutdown(wait=True)


def _default_ticks(current: _Slice, video: bool) -> int:
    config = current.configs[video]
    if isinstance(config, AudioConfig):
        return 1024 * PTS_HZ // config.sample_rate
    return _DEFAULT_VIDEO_TICKS


def _ticks(ticks: int) -> timedelta:
    """90 kHz ticks as a timedelta (whole microseconds, rounded toward zero)."""
    return timedelta(microseconds=int(ticks * 100 / 9))
