"""The MP4 tests' rig (the fixtures are in conftest.py): generated media (every picture
shows its frame number) pushed tag by tag through the real recorder in-process
(Recorders(..., listeners=[an Mp4Writer]) with mp4 on), a real catalog (SQLite;
PostgreSQL for the variant) and a real store (a local directory; moto's S3 server for the
variant). The recorder's clock runs with the tags' timestamps, so every frame's wall clock
is known exactly."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from liverec.catalog import Catalog, Mp4File
from liverec.layout import StreamRef
from liverec.outputs import Mp4SliceStored, Mp4Store, Mp4Writer
from liverec.recorder import Listener, RecorderEvent, Recorders, SegmentStored
from liverec.storage import BlobStore
from support.mediagen import libav_warnings, read_flv_tags, read_frame_number
from support.recordflv import TagClock

APP = "0123456789abcdef0123456789abcdef"
REGION = "na"
EP = "live"
CAM = StreamRef(APP, REGION, EP, "cam")
BUCKET = "media"  # in the tests' S3 server
T0 = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)

# A tag's (timestamp given to the recorder, arrival in ms after the first tag) from its
# timestamp in the file: how a test makes a publisher pause or reset its clock.
Timing = Callable[[int], tuple[int, int]]


@dataclass(frozen=True)
class Played:
    """What PyAV reads from an MP4 file."""

    frames: list[int]  # frame numbers, in presentation order
    video: list[tuple[int, int, bool]]  # (pts, dts, keyframe) per video packet, 90 kHz
    audio: list[tuple[int, int]]  # (pts, dts) per audio packet
    duration: float | None  # the container's, seconds
    warnings: list[tuple[int, str, str]]


def av_open(data: bytes, fmt: str) -> Any:
    """PyAV's container for these bytes (untyped, as the rest of the tests use it)."""
    return av.open(io.BytesIO(data), format=fmt)


def play(data: bytes) -> Played:
    """Decode a whole MP4 with PyAV from its bytes, collecting FFmpeg's complaints."""
    video: list[tuple[int, int, bool]] = []
    audio: list[tuple[int, int]] = []
    frames: list[int] = []
    with libav_warnings() as logs, av_open(data, "mp4") as container:
        streams = list(container.streams)
        duration = None if container.duration is None else container.duration / 1e6
        for packet in container.demux(streams):
            if packet.size == 0:
                continue
            if packet.stream.type == "video":
                assert packet.time_base == Fraction(1, 90_000)
                video.append((packet.pts, packet.dts, packet.is_keyframe))
                frames += [read_frame_number(f) for f in packet.decode()]
            else:
                audio.append((packet.pts, packet.dts))
        if container.streams.video:
            frames += [read_frame_number(f) for f in container.streams.video[0].decode(None)]
    return Played(frames, video, audio, duration, list(logs))


@dataclass
class Rig:
    catalog: Catalog
    store: BlobStore
    spool: Path
    tmp: Path
    stored: list[Mp4SliceStored] = field(default_factory=list)  # what on_slice was told
    writers: list[Mp4Writer] = field(default_factory=list)

    def writer(self, store: Mp4Store | None = None, **kw: Any) -> Mp4Writer:
        writer = Mp4Writer(
            self.store if store is None else store,
            self.catalog,
            self.spool,
            on_slice=[self.stored.append],
            retry_first=0.05,
            **kw,
        )
        self.writers.append(writer)
        return writer

    async def push(
        self,
        src: Path,
        listeners: list[Listener],
        *,
        stream: StreamRef = CAM,
        start: datetime = T0,
        session_id: str = "s1",
        target_duration: float = 1.0,
        timing: Timing | None = None,
        hls: bool = True,
    ) -> list[SegmentStored]:
        """Record `src` as one publish with MP4 on; returns the SegmentStored events."""
        segments: list[SegmentStored] = []

        def collect(event: RecorderEvent) -> None:
            if isinstance(event, SegmentStored):
                segments.append(event)

        clock = TagClock(start)
        recorder = Recorders(
            self.catalog,
            self.store,
            node_id="test-node",
            lease_seconds=3600,
            clock=clock,
            listeners=[collect, *listeners],
        ).start(
            stream,
            target_duration=target_duration,
            max_file_duration=3600.0,
            session_id=session_id,
            hls=hls,
            mp4=True,
        )
        tags = [t for t in read_flv_tags(src) if t.type in (8, 9)]
        t0 = tags[0].timestamp
        for tag in tags:
            ts, arrival = timing(tag.timestamp) if timing else (tag.timestamp, tag.timestamp - t0)
            clock.time = start + timedelta(milliseconds=arrival)
            if tag.type == 9:
                recorder.on_video(ts, tag.payload)
            else:
                recorder.on_audio(ts, tag.payload)
        await recorder.close()
        return segments

    def slices(self, stream: StreamRef = CAM) -> list[Mp4File]:
        return self.catalog.mp4_files_overlapping(
            stream, T0 - timedelta(days=1), T0 + timedelta(days=1)
        )

    def read(self, name: str, stream: StreamRef = CAM) -> bytes:
        return self.store.get(stream.key(name))

    def close(self) -> None:
        for writer in self.writers:
            writer.close()


def make_rig(catalog: Catalog, store: BlobStore, tmp: Path) -> Rig:
    catalog.create_project(APP)
    return Rig(catalog, store, tmp / "spool" / "mp4", tmp)
