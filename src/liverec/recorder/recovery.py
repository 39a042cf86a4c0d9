"""Closing a recording whose node stopped without closing it (a crash, kill -9, power loss).

The catalog holds every durable segment (a segment is catalogued only after its file is
stored), so the recording ends at its last catalogued segment: the playlist is rewritten
from the catalog as VOD with EXT-X-ENDLIST, and the recording is marked closed.

The rewritten playlist declares the EXT-X-TARGETDURATION its live versions declared (RFC
8216 6.2.1: it must not change), recomputed by the segmenter's rule
(`playlist_target_duration`) from the entry point's target duration, as the catalog keeps no
copy of it. It can differ from the live value only if the entry point's target was changed
while the recording ran, or the entry point is gone (then the smallest target that fits the
segments is declared); it is never less than a segment's EXTINF."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from liverec.catalog.models import EntryPoint, Recording, Segment
from liverec.catalog.outbox import Notice
from liverec.errors import NotFoundError
from liverec.layout import file_part
from liverec.media.m3u8 import PLAYLIST_TYPE, SegmentEntry, target_duration_for
from liverec.recorder.hls import BlobWriter
from liverec.recorder.playlist import render_playlist
from liverec.recorder.segmenter import playlist_target_duration

log = logging.getLogger(__name__)


class ClosingCatalog(Protocol):
    def segments_of(self, recording_id: int) -> list[Segment]: ...

    def close_recording(
        self,
        recording_id: int,
        end_time: datetime | None = None,
        notices: Sequence[Notice] = (),
    ) -> None: ...

    def delete_recording(self, recording_id: int) -> None: ...

    def get_entry_point(self, app_id: str, name: str) -> EntryPoint: ...

    def recording_head(self, recording_id: int) -> tuple[int, int]: ...


def playlist_for(
    segments: list[Segment],
    *,
    ended: bool,
    target_duration: int | None,
    discontinuity_sequence: int = 0,
) -> str:
    """The playlist of these catalogued segments, declaring `target_duration` (None: the
    smallest that fits them). Its EXT-X-MEDIA-SEQUENCE is the first one's seq (retention
    may have trimmed the head; `discontinuity_sequence`: the discontinuities it took)."""
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
        target_duration=target_duration,
        media_sequence=segments[0].seq if segments else 0,
        discontinuity_sequence=discontinuity_sequence,
    )


def recorded_target_duration(
    catalog: ClosingCatalog, rec: Recording, segments: list[Segment]
) -> int:
    """The EXT-X-TARGETDURATION the recording's live playlists declared, as far as the
    catalog can tell (see the module docstring)."""
    fits = target_duration_for(seg.duration for seg in segments)
    try:
        ep = catalog.get_entry_point(rec.app_id, rec.entry_point)
    except NotFoundError:
        return fits
    return max(playlist_target_duration(ep.target_duration), fits)


def finalize_recording(
    catalog: ClosingCatalog,
    store: BlobWriter,
    rec: Recording,
    close_notice: Callable[[Recording], Notice] | None = None,
) -> None:
    """Close `rec` at its last catalogued segment (its callback, `close_notice`, enqueued
    in the same transaction), or forget it if it has none."""
    segments = catalog.segments_of(rec.id)
    if not segments:
        catalog.delete_recording(rec.id)
        log.info("dropped recording %s: no segment was stored", rec.playlist_key)
        return
    target = recorded_target_duration(catalog, rec, segments)
    store.put(
        rec.stream.key(rec.playlist_key),
        playlist_for(
            segments,
            ended=True,
            target_duration=target,
            discontinuity_sequence=catalog.recording_head(rec.id)[1],
        ).encode(),
        PLAYLIST_TYPE,
    )
    notices = [close_notice(rec)] if close_notice is not None else []
    catalog.close_recording(rec.id, segments[-1].end_time, notices)
    log.info(
        "closed recording %s at its last durable segment (%d segments)",
        rec.playlist_key,
        len(segments),
    )
