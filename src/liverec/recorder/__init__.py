"""Recording: one publish's FLV tags in, MPEG-TS segments and HLS playlists out.

Owns: codec checks and track discovery (stream.py), cutting on keyframes and the wall
clock (segmenter.py), storing segments and playlists in order through outages (hls.py),
the events it reports (events.py: its only outward interface), the catalog writer that
journals them (catalog_writer.py), putting a publish's recorder together (factory.py) and
closing a recording a stopped node left open (recovery.py).

May import: catalog (records and the writer's narrow Protocol), layout, media, errors.
Never api, rtmp or postprocess; it learns nothing of who listens to its events."""

from liverec.recorder.events import (
    Listener,
    MediaInfo,
    RecorderEvent,
    RecordingEnded,
    RecordingStarted,
    SegmentDropped,
    SegmentStored,
)
from liverec.recorder.factory import Recorders, new_session_id
from liverec.recorder.recovery import finalize_recording
from liverec.recorder.stream import StreamRecorder

__all__ = [
    "Listener",
    "MediaInfo",
    "RecorderEvent",
    "Recorders",
    "RecordingEnded",
    "RecordingStarted",
    "SegmentDropped",
    "SegmentStored",
    "StreamRecorder",
    "finalize_recording",
    "new_session_id",
]
