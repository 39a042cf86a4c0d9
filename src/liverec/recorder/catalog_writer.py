"""The journal of one publish: the recorder's events written to the catalog.

The catalog decides what happened: a recording exists once its row does, a segment once it
is catalogued (after its file is durable), and a recording that another node closed after
this node's lease ran out raises LeaseLostError from the catalog, which the writer passes
on to the recorder as it is. A recording's callback (`close_notice`, given by service.py)
is enqueued in the transaction that closes it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from liverec.catalog import Notice, Recording
from liverec.layout import StreamRef
from liverec.recorder.events import (
    MediaInfo,
    RecorderEvent,
    RecordingEnded,
    RecordingStarted,
    SegmentDropped,
    SegmentStored,
)


class RecordingCatalog(Protocol):
    """What the catalog writer needs of the catalog."""

    def create_recording(
        self,
        stream: StreamRef,
        *,
        session_id: str,
        playlist_key: str,
        start_time: datetime,
        node_id: str,
        lease_seconds: float,
    ) -> Recording: ...

    def add_segment(
        self,
        recording_id: int,
        *,
        seq: int,
        key: str,
        start_time: datetime,
        duration: float,
        size: int,
        discontinuity: bool,
    ) -> object: ...

    def get_recording(self, recording_id: int) -> Recording: ...

    def close_recording(
        self,
        recording_id: int,
        end_time: datetime | None = None,
        notices: Sequence[Notice] = (),
    ) -> None: ...

    def delete_recording(self, recording_id: int) -> None: ...

    def recording_head(self, recording_id: int) -> tuple[int, int]: ...


# The callback that reports a closed recording (events.FlsNotices.recording_closed).
CloseNotice = Callable[[Recording], Notice]


class CatalogWriter:
    """The journal (recorder/events.py) of one publish's writer: called in its worker
    threads, in order, one call at a time."""

    def __init__(
        self,
        catalog: RecordingCatalog,
        *,
        node_id: str,
        lease_seconds: float,
        close_notice: CloseNotice | None = None,
    ) -> None:
        self.catalog = catalog
        self.node_id = node_id
        self.lease_seconds = lease_seconds
        self.close_notice = close_notice
        self._ids: dict[str, int] = {}  # playlist name -> catalog id, while open

    def __call__(self, event: RecorderEvent) -> None:
        if isinstance(event, RecordingStarted):
            self._started(event)
        elif isinstance(event, SegmentStored):
            self._stored(event)
        elif isinstance(event, RecordingEnded):
            self._ended(event)
        elif not isinstance(event, MediaInfo | SegmentDropped):  # not catalogued
            raise TypeError(f"not a recorder event: {event!r}")

    def head(self, playlist: str) -> tuple[int, int] | None:
        """Where retention trimmed the head of this publish's recording `playlist` (the
        writer's HeadSource; any thread); None before it is catalogued."""
        rec_id = self._ids.get(playlist)
        return None if rec_id is None else self.catalog.recording_head(rec_id)

    def _started(self, event: RecordingStarted) -> None:
        path = event.recording
        rec = self.catalog.create_recording(
            path.stream,
            session_id=path.session_id,
            playlist_key=path.playlist,
            start_time=path.start,
            node_id=self.node_id,
            lease_seconds=self.lease_seconds,
        )
        self._ids[path.playlist] = rec.id

    def _stored(self, event: SegmentStored) -> None:
        self.catalog.add_segment(
            self._ids[event.recording.playlist],
            seq=event.seq,
            key=event.name,
            start_time=event.start_time,
            duration=event.duration,
            size=event.size,
            discontinuity=event.discontinuity,
        )

    def _ended(self, event: RecordingEnded) -> None:
        rec_id = self._ids.get(event.recording.playlist)
        if rec_id is None or event.lost:
            self._ids.pop(event.recording.playlist, None)
            return
        # A recording that ended before its first segment was stored is not kept.
        rec = self.catalog.get_recording(rec_id)
        if rec.segment_count == 0:
            self.catalog.delete_recording(rec_id)
        else:
            notices = [self.close_notice(rec)] if self.close_notice is not None else []
            self.catalog.close_recording(rec_id, event.end_time, notices)
        del self._ids[event.recording.playlist]
