"""What post-processing needs of the catalog: recorded segments by time, and the stream
folder's file names. A narrow Protocol, so post-processing depends on no more."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from liverec.catalog import Recording, Segment
from liverec.layout import StreamRef
from liverec.postprocess.reserve import FileNames


class SegmentIndex(FileNames, Protocol):
    def segments_between(
        self, stream: StreamRef, start: datetime, end: datetime
    ) -> list[tuple[Recording, Segment]]: ...

    def latest_recording(self, stream: StreamRef) -> Recording | None: ...
