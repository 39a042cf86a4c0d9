"""Periodic snapshots (FLS standard snapshots): a JPEG of every live stream every interval,
from live media.

The live publish (publishing.py) hands over one keyframe when a snapshot is due: the first
keyframe at or after each scheduled instant (publish start + k x interval), so each snapshot
is within one GOP of its instant. Only that keyframe is decoded (it carries its SPS and PPS,
media.h264.access_unit_annexb puts them in), never the stream around it; the JPEG is at
the source's size unless `max_width` (the snapshot_max_width setting) asks for smaller,
aspect kept. Its time is the keyframe's presentation instant on the recording's wall clock
(what a snapshot taken through the API at that time would show), or its arrival time when
the publish is not recorded.

Files: `snapshot/{ep}/{stream}/{sessionid}_{sessiondate}_{filedate}.jpg` (layout.py), stored,
then catalogued (listed by the snapshot list call), then each `on_snapshot` callback is
told (the callbacks issue turns that into FLS event 102)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from liverec.errors import MediaError
from liverec.layout import RecordingPath, StreamRef
from liverec.media.names import JPEG_TYPE

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SnapshotStored:
    """A periodic snapshot, stored and catalogued."""

    stream: StreamRef
    name: str  # snapshot/{ep}/{stream}/{sessionid}_{sessiondate}_{filedate}.jpg
    time: datetime  # the wall clock of the frame it shows
    width: int
    height: int


class SnapshotCatalog(Protocol):
    def add_snapshot_file(
        self, stream: StreamRef, name: str, time: datetime, *, size: int = 0
    ) -> None: ...


class SnapshotStore(Protocol):
    def put(self, key: str, data: bytes, content_type: str) -> None: ...


def decode_keyframe(annexb: bytes) -> Any:
    """The picture of one H.264 IDR access unit (Annex B, with its SPS and PPS)."""
    import av  # on first use: PyAV and FFmpeg's libraries are ~17 MB of RSS

    ctx = av.CodecContext.create("h264", "r")
    try:
        frames = ctx.decode(av.Packet(annexb)) + ctx.decode(None)
    except av.FFmpegError as exc:
        raise MediaError(f"the keyframe did not decode: {exc}") from exc
    if not frames:
        raise MediaError("the keyframe did not decode to a picture")
    return frames[-1]


def scaled(frame: Any, max_width: int) -> Any:
    """`frame` at most `max_width` wide, aspect kept, dimensions even (what 4:2:0 JPEG
    needs); unchanged when it is no wider or `max_width` is 0."""
    if not max_width or frame.width <= max_width:
        return frame
    height = max(2, round(frame.height * max_width / frame.width / 2) * 2)
    return frame.reformat(width=max_width, height=height)


class PeriodicSnapshots:
    """Takes the snapshots the live publishes hand over. `take` blocks (decode, encode,
    store, catalogue): call it off the event loop."""

    def __init__(
        self,
        store: SnapshotStore,
        catalog: SnapshotCatalog,
        encode_jpeg: Callable[[Any], bytes],
        on_snapshot: Sequence[Callable[[SnapshotStored], None]] = (),
        max_width: int = 0,
    ) -> None:
        self.max_width = max_width  # 0: the source's size
        self.store = store
        self.catalog = catalog
        self.encode_jpeg = encode_jpeg
        self.on_snapshot = list(on_snapshot)

    def take(self, recording: RecordingPath, time: datetime, annexb: bytes) -> SnapshotStored:
        frame = scaled(decode_keyframe(annexb), self.max_width)
        jpeg = self.encode_jpeg(frame)
        stream = recording.stream
        name = recording.snapshot(time)
        self.store.put(stream.key(name), jpeg, JPEG_TYPE)
        self.catalog.add_snapshot_file(stream, name, time, size=len(jpeg))  # the byte cap
        stored = SnapshotStored(stream, name, time, frame.width, frame.height)
        for callback in self.on_snapshot:
            try:
                callback(stored)
            except Exception:
                log.exception("%s: a snapshot listener failed", stream)
        return stored
