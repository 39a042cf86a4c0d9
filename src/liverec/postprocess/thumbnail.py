"""Thumbnails of live streams (the console's Streams page): the first frame of the segment a
live recorder is writing (a keyframe: segments start on one), scaled down, as JPEG. Cached a
few seconds per stream and width, so a page of thumbnails that several browsers refresh
decodes each stream once per period, whatever the number of viewers."""

from __future__ import annotations

import io
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from liverec.errors import MediaError
from liverec.layout import StreamRef
from liverec.postprocess.snapshot import LiveSource, encode_jpeg

MIN_WIDTH = 32
MAX_WIDTH = 1280


class LiveThumbnails:
    def __init__(
        self,
        live: LiveSource,
        *,
        ttl: float = 10.0,
        max_entries: int = 512,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.live = live
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._cache: OrderedDict[tuple[StreamRef, int], tuple[float, bytes | None]] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, stream: StreamRef, width: int) -> bytes | None:
        """The JPEG, at most `width` pixels wide, of the stream's live edge; None when the
        stream is not live (or has no video yet)."""
        width = max(MIN_WIDTH, min(width, MAX_WIDTH))
        key = (stream, width)
        now = self.clock()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and now - hit[0] < self.ttl:
                return hit[1]
        segment = self.live.live_segment(stream, None)
        jpeg = None if segment is None else _first_frame_jpeg(segment.data, width)
        with self._lock:
            self._cache[key] = (now, jpeg)
            self._cache.move_to_end(key)
            while len(self._cache) > self.max_entries:
                self._cache.popitem(last=False)
        return jpeg


def _first_frame_jpeg(ts: bytes, width: int) -> bytes | None:
    import av  # only when a thumbnail is asked for: PyAV is heavy to load

    try:
        container: Any = av.open(io.BytesIO(ts), format="mpegts")
    except av.FFmpegError:
        return None
    try:
        if not container.streams.video:
            return None
        frame = next(iter(container.decode(video=0)), None)
    except av.FFmpegError:
        return None
    finally:
        container.close()
    if frame is None:
        return None
    if frame.width > width:
        height = max(2, round(frame.height * width / frame.width / 2) * 2)
        frame = frame.reformat(width=width, height=height)
    try:
        return encode_jpeg(frame)
    except MediaError:
        return None
