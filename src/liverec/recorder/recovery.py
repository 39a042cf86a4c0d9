"""Closing a recording whose node stopped without closing it (a crash, kill -9, power loss).

The catalog holds every durable segment (a segment is catalogued only after its file is
stored), so the recording ends at its last catalogued segment: the playlist is rewritten
from the catalog as VOD with EXT-X-ENDLIST, and the recording is marked closed."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Protocol

from liverec.catalog.models import Recording, Segment
from liverec.layout import file_part
from liverec.media.m3u8 import PLAYLIST_TYPE, SegmentEntry
from liverec.recorder.hls import BlobWriter, render_playlist

log = logging.getLogger(__name__)


class ClosingCatalog(Protocol):
    def segments_of(self, recording_id: int) -> list[Segment]: ...

    def close_recording(self, recording_id: int, end_time: datetime | None = None) -> None: ...

    def delete_recording(self, recording_id: int) -> None: ...


def playlist_for(segments: list[Segment], *, ended: bool) -> str:
    return render_playlist(
        [
            SegmentEntry(
                uri=file_part(seg.key),
                duration=seg.duration,
                program_date_time=seg.start_time,
                discontinuity=seg.discontinuity,
            )
            for seg in segments
        ],
        ended=ended,
    )


def finalize_recording(catalog: ClosingCatalog, store: BlobWriter, rec: Recording) -> None:
    segments = catalog.segments_of(rec.id)
    if not segments:
        catalog.delete_recording(rec.id)
        log.info("dropped recording %s: no segment was stored", rec.playlist_key)
        return
    store.put(
        rec.stream.key(rec.playlist_key),
        playlist_for(segments, ended=True).encode(),
        PLAYLIST_TYPE,
    )
    catalog.close_recording(rec.id, segments[-1].end_time)
    log.info(
        "closed recording %s at its last durable segment (%d segments)",
        rec.playlist_key,
        len(segments),
    )
