"""The recorder's events written to the catalog: one publish's recordings and segments."""

from __future__ import annotations

from datetime import datetime

from liverec.catalog import Catalog
from liverec.recorder.hls import RecordingEvents, RecordingStarted, SegmentStored


class CatalogEvents(RecordingEvents):
    """Called by one publish's HlsWriter, in worker threads, one call at a time."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        app_id: str,
        entry_point: str,
        stream_name: str,
        region: str,
        node_id: str,
        lease_seconds: float,
    ) -> None:
        self.catalog = catalog
        self.app_id = app_id
        self.entry_point = entry_point
        self.stream_name = stream_name
        self.region = region
        self.node_id = node_id
        self.lease_seconds = lease_seconds

    def recording_started(self, rec: RecordingStarted) -> int:
        return self.catalog.create_recording(
            app_id=self.app_id,
            entry_point=self.entry_point,
            stream_name=self.stream_name,
            region=self.region,
            session_id=rec.session_id,
            playlist_key=rec.playlist_name,
            start_time=rec.start_time,
            node_id=self.node_id,
            lease_seconds=self.lease_seconds,
        ).id

    def segment_stored(self, recording_id: int, seg: SegmentStored) -> None:
        self.catalog.add_segment(
            recording_id,
            seq=seg.seq,
            key=seg.name,
            start_time=seg.start_time,
            duration=seg.duration,
            size=seg.size,
            discontinuity=seg.discontinuity,
        )

    def recording_ended(self, recording_id: int, end_time: datetime) -> None:
        # A recording that ended before its first segment was stored is not kept.
        if self.catalog.get_recording(recording_id).segment_count == 0:
            self.catalog.delete_recording(recording_id)
        else:
            self.catalog.close_recording(recording_id, end_time)
