"""Post-processing on demand: clips (a VOD playlist over recorded segments, frame-accurate
boundaries when asked) and snapshots (the JPEG of the frame shown at an instant).

Owns: reading a recorded segment's frames on the wall clock (timing.py), re-encoding
partial GOPs (precise.py), reserving a file name while a file is made (reserve.py).
May import: catalog (records, and the narrow SegmentIndex Protocol it needs of it),
storage, layout, media, errors. PyAV does the decoding and encoding."""

from liverec.postprocess.clip import ClipResult, ClipWriter
from liverec.postprocess.snapshot import LiveSegment, LiveSource, SnapshotResult, SnapshotWriter
from liverec.postprocess.thumbnail import LiveThumbnails

__all__ = [
    "ClipResult",
    "ClipWriter",
    "LiveSegment",
    "LiveSource",
    "LiveThumbnails",
    "SnapshotResult",
    "SnapshotWriter",
]
