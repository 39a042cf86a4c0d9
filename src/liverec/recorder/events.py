"""What the recorder tells the rest of liverec: its one outward interface.

A publish's writer emits, in order and one at a time, from a worker thread:

    MediaInfo            once the stream's tracks are known (again if they change)
    RecordingStarted     a recording's first segment is about to be stored
    SegmentStored        a segment is durable in the store
    RecordingEnded       the recording is over (the publish ended, or it rolled over)

Every event of an HLS recording goes first to the *journal* (the catalog writer): an event
the journal has not accepted did not happen, so the recorder retries it through an outage, and a
LeaseLostError from it ends the recording (another node closed it; the recorder goes on in
a new one). Then it goes to each *listener* (callbacks, MP4 files, periodic snapshots,
metrics, the lease keeper), which cannot refuse it: a listener's error is logged and the
recording goes on. RecordingEnded reaches the listeners even when the journal failed to
record it: the recording is over all the same. With HLS off for the entry point (`hls`
False on the events) segments are still cut, for the MP4 output, but nothing is stored
or journaled as HLS.

The recorder knows nothing of who listens; service.py wires them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from liverec.layout import RecordingPath, StreamRef
from liverec.media.ts import Segment
from liverec.storage.parts import Part

__all__ = [
    "Listener",
    "MediaInfo",
    "RecorderEvent",
    "RecordingEnded",
    "RecordingStarted",
    "SegmentStored",
]


@dataclass(frozen=True, slots=True)
class MediaInfo:
    """What the publish carries, as far as the recorder knows it."""

    stream: StreamRef
    video_codec: str | None  # "H264", or None for an audio-only stream
    audio_codec: str | None  # "AAC", or None for a video-only stream
    width: int | None
    height: int | None
    fps: float | None  # from the publisher's onMetaData, when it sent one
    video_bitrate: int | None  # bits/s, from onMetaData, when it sent one
    sample_rate: int | None
    channels: int | None


@dataclass(frozen=True, slots=True)
class RecordingStarted:
    recording: RecordingPath  # its stream, session ID and start; its file names
    hls: bool = True  # its segments and playlist are stored (and catalogued)
    mp4: bool = False  # MP4 record files are to be made of it

    @property
    def stream(self) -> StreamRef:
        return self.recording.stream


@dataclass(frozen=True, slots=True)
class SegmentStored:
    recording: RecordingPath
    seq: int  # within the recording, from 0
    name: str  # record/{ep}/{stream}/{sessionid}_{sessiondate}_{seq}.ts
    start_time: datetime  # wall clock of its first frame
    duration: float  # seconds
    size: int  # bytes
    discontinuity: bool
    # The segment itself (`data` reads it), for listeners that remux or decode it; None
    # in the journal's copy, which needs no media.
    part: Part | None
    hls: bool = True  # stored as HLS (False: cut for the other outputs only, not stored)
    # Its PES payloads and timestamps as muxed into `data` (recordings with mp4 only)
    units: Segment | None = None

    @property
    def stream(self) -> StreamRef:
        return self.recording.stream

    @property
    def data(self) -> bytes:
        """Its bytes: read from the file it was stored as (or memory); b"" without part."""
        return b"" if self.part is None else self.part.read()


@dataclass(frozen=True, slots=True)
class RecordingEnded:
    recording: RecordingPath
    end_time: datetime  # the end of its last segment (its start when it has none)
    segments: int  # segments cut (and, with hls, stored and journaled)
    lost: bool = False  # another node closed it (LeaseLostError): it ended there
    hls: bool = True

    @property
    def stream(self) -> StreamRef:
        return self.recording.stream


@dataclass(frozen=True, slots=True)
class SegmentDropped:
    """A segment the recorder gave up on (the store failing past the backlog or the retry
    window): its media is lost and the next stored segment starts a discontinuity."""

    stream: StreamRef
    start_time: datetime  # wall clock of its first frame
    duration: float  # seconds


RecorderEvent = MediaInfo | RecordingStarted | SegmentStored | RecordingEnded | SegmentDropped


class Listener(Protocol):
    """Told every event of every publish, in a worker thread of the recorder's pool; must
    return quickly (hand slow work to a queue of its own)."""

    def __call__(self, event: RecorderEvent) -> None: ...
