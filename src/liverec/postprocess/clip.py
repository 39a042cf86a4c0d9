"""Clips: a VOD playlist over the recorded segments between two instants.

A plain clip copies no media: it lists the existing segments, from the one holding `start` to
the one holding `end`, by relative URI (the clip lives in the same folder), across
recordings, with EXT-X-DISCONTINUITY where it crosses into another recording or where the
recording itself marked one, and EXT-X-PROGRAM-DATE-TIME on every segment. The catalog query
is one index range scan returning only the segments in range.

A precise clip replaces the boundary segments with new ones cut to the frame (precise.py):
`{clipbase}_head.ts` and `{clipbase}_tail.ts` beside the playlist (one `_head.ts` when both
ends fall in one segment). A boundary segment that the cut would not change stays
referenced as it is. The clip's first EXT-X-PROGRAM-DATE-TIME is its first frame's wall clock
(its PTS, not the earlier DTS a B-frame stream has), its first segment holds nothing shown
before that frame, and its EXTINFs add up to the time from that frame to the end of the last
frame's display: endTime - startTime of the answer plus the last frame's own display time."""

from __future__ import annotations

import logging
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

from liverec.catalog import Recording, Segment
from liverec.errors import NotFoundError
from liverec.layout import StreamRef, file_part
from liverec.media.m3u8 import PLAYLIST_TYPE, MediaPlaylist, SegmentEntry, format_time, render
from liverec.media.ts import TS_TYPE
from liverec.postprocess.index import SegmentIndex
from liverec.postprocess.precise import Cut, cut_segment, shown_until
from liverec.postprocess.reserve import reserved_file
from liverec.postprocess.timing import PTS_HZ, SegmentMedia, open_segment
from liverec.storage import BlobStore

log = logging.getLogger(__name__)

_MS = timedelta(milliseconds=1)


@dataclass(frozen=True)
class ClipResult:
    file_name: str  # record/{entry_point}/{stream_name}/{fileName}
    start: datetime  # plain: the first segment's start; precise: the first frame's time
    end: datetime  # plain: the last segment's end; precise: the last frame's time
    # Seconds of media the playlist plays (the sum of its EXTINFs); precise: from the first
    # frame to the end of the last one's display, end - start + one frame (within a recording).
    duration: float
    segments: int  # entries in the playlist
    precise: bool


class ClipHolds(Protocol):
    """Retention's holds on what a clip references (catalog/retention.py)."""

    def hold_clip(
        self, stream: StreamRef, file_name: str, start: datetime, end: datetime | None
    ) -> None: ...


class ClipWriter:
    """Makes clips of recorded streams (api/context.py's ClipMaker).

    With `holds`, retention keeps what each clip references: the range asked is held
    before any segment is read (so a sweep running meanwhile cannot delete one the clip
    then lists), and narrowed to what the clip covers once it is written; the hold goes
    with the clip's name (its DELETE, or a failure)."""

    def __init__(
        self, catalog: SegmentIndex, store: BlobStore, holds: ClipHolds | None = None
    ) -> None:
        self.catalog = catalog
        self.store = store
        self.holds = holds

    def __call__(
        self,
        stream: StreamRef,
        *,
        file_name: str,
        start: datetime,
        end: datetime | None,
        precise: bool = False,
    ) -> ClipResult:
        """Write the clip playlist record/{entry_point}/{stream_name}/{file_name} covering
        [start, end] (end None: up to the end of the stream's latest recorded media, also
        while it is live).

        The name is reserved first (ConflictError when it is taken) and released again,
        with any segment written for it, if anything fails afterwards. NotFoundError when
        no recorded segment overlaps the range."""
        with reserved_file(self.catalog, stream, file_name, "clip"):
            job = _Job(self.catalog, self.store, stream, file_name)
            try:
                if self.holds is not None:
                    self.holds.hold_clip(stream, file_name, start, end)
                result = job.run(start, end, precise)
                if self.holds is not None:
                    # A plain clip ends where its last segment ends (exclusive); a precise
                    # one at its last frame (inside the last segment it references).
                    end = result.end if precise else result.end - _MS
                    self.holds.hold_clip(stream, file_name, result.start, end)
                return result
            except BaseException:
                job.delete_written()
                raise


@dataclass
class _Job:
    catalog: SegmentIndex
    store: BlobStore
    stream: StreamRef
    file_name: str

    def __post_init__(self) -> None:
        self.written: list[str] = []

    def run(self, start: datetime, end: datetime | None, precise: bool) -> ClipResult:
        if end is None:
            end = self._latest_end(start)
        pairs = self.catalog.segments_between(self.stream, start, end)
        if not pairs:
            raise NotFoundError(
                f"no recording of {self.stream.stream_name} at {format_time(start)}"
            )
        if precise:
            entries, first, last = self._precise(pairs, start, end)
        else:
            entries = _entries(pairs)
            first, last = pairs[0][1].start_time, pairs[-1][1].end_time
        text = render(MediaPlaylist(segments=entries, playlist_type="VOD", endlist=True))
        self._put(self.file_name, text.encode(), PLAYLIST_TYPE)
        return ClipResult(
            file_name=self.stream.file(self.file_name),
            start=first,
            end=last,
            duration=round(sum(e.duration for e in entries), 6),
            segments=len(entries),
            precise=precise,
        )

    def delete_written(self) -> None:
        for key in self.written:
            try:
                self.store.delete(key)
            except Exception:
                log.exception("could not delete %s", key)

    def _put(self, name: str, data: bytes, content_type: str) -> None:
        key = self.stream.key(self.stream.file(name))
        self.written.append(key)
        self.store.put(key, data, content_type)

    def _latest_end(self, start: datetime) -> datetime:
        rec = self.catalog.latest_recording(self.stream)
        if rec is None:
            raise NotFoundError(
                f"no recording of {self.stream.stream_name} at {format_time(start)}"
            )
        return rec.end_time

    # -- precise ----------------------------------------------------------------------------

    def _precise(
        self, pairs: list[tuple[Recording, Segment]], start: datetime, end: datetime
    ) -> tuple[list[SegmentEntry], datetime, datetime]:
        with ExitStack() as stack:
            opened: dict[int, SegmentMedia] = {}

            def load(seg: Segment) -> SegmentMedia:
                if seg.id not in opened:
                    opened[seg.id] = stack.enter_context(open_segment(self.store, self.stream, seg))
                return opened[seg.id]

            pairs = list(pairs)
            head_media = load(pairs[0][1])
            head = head_media.last_shown(start)
            if head is None:
                # With B-frames the screen shows the previous segment's last frames for a
                # moment after a segment starts; otherwise start is before the first frame.
                previous = self._previous(pairs[0])
                if previous is not None:
                    prev_media = load(previous[1])
                    head = prev_media.last_shown(start)
                    if head is not None:
                        pairs.insert(0, previous)
                        head_media = prev_media
                head = head if head is not None else 0
            tail_media = load(pairs[-1][1])
            tail = tail_media.last_shown(end)
            if tail is None and len(pairs) > 1:
                pairs.pop()  # end is before this segment's first frame is shown
                tail_media = load(pairs[-1][1])
                tail = tail_media.last_shown(end)
            if tail is None or (len(pairs) == 1 and tail < head):
                raise NotFoundError(
                    f"no video frame of {self.stream.stream_name} between "
                    f"{format_time(start)} and {format_time(end)}"
                )
            first = head_media.clock.time_of(head_media.frames()[head].pts)
            lead: tuple[SegmentMedia, int] | None = None
            if len(pairs) > 1 and _after_end(head_media, head):
                # The first frame is shown only once the next segment has started (B-frame
                # reorder): a head cut of its own segment would have no playlist time (its
                # EXTINF would be <= 0) and the next segment's audio would play before it.
                # So it leads a cut of the next segment (precise.py).
                lead = (head_media, head)
                pairs.pop(0)
                head_media = load(pairs[0][1])
            return self._cut(
                pairs, head_media, head if lead is None else None, lead, tail_media, tail, first
            )

    def _cut(
        self,
        pairs: list[tuple[Recording, Segment]],
        head_media: SegmentMedia,
        head: int | None,
        lead: tuple[SegmentMedia, int] | None,
        tail_media: SegmentMedia,
        tail: int,
        first: datetime,
    ) -> tuple[list[SegmentEntry], datetime, datetime]:
        """Entries for `pairs` with the boundary segments cut where the cut changes them.

        Their EXTINFs add up to the time from the first frame's start to the end of the last
        frame's display: one frame (the last one's display time) more than last - first, the
        answer's endTime - startTime. The first EXT-X-PROGRAM-DATE-TIME is `first`, the first
        frame's wall clock, and nothing of the first segment plays before that frame."""
        base = self.file_name.removesuffix(".m3u8")
        entries = _entries(pairs)
        tail_frames = tail_media.frames()
        last = tail_media.clock.time_of(tail_frames[tail].pts)
        # Not cut only when the segment starts with the first frame (nothing before it).
        cut_head = lead is not None or (
            head is not None and head_media.clock.offset(head_media.frames()[head].pts) > 0
        )
        cut_tail = tail < len(tail_frames) - 1
        if not cut_tail:
            # A whole recorded segment ends the clip: it plays on until its last frame stops
            # being shown, which with B-frames is after its (DTS-based) end, and at a
            # recording's end is before the audio muxed after that frame ends.
            until = shown_until(tail_media, tail_frames, tail) / PTS_HZ
            entries[-1] = replace(entries[-1], duration=until)
        if len(pairs) == 1:
            if cut_head or cut_tail:
                # One segment cut at both ends: it ends with the last frame's display even
                # when that is its last frame (no recorded segment follows it in the clip).
                cut = cut_segment(head_media, head if cut_head else None, tail, lead=lead)
                entries[0] = self._store_cut(f"{base}_head.ts", cut, entries[0])
            return entries, first, last
        if cut_head:
            cut = cut_segment(head_media, head, None, lead=lead)
            entries[0] = self._store_cut(f"{base}_head.ts", cut, entries[0])
        if cut_tail:
            cut = cut_segment(tail_media, None, tail)
            entries[-1] = self._store_cut(f"{base}_tail.ts", cut, entries[-1])
        return entries, first, last

    def _store_cut(self, name: str, cut: Cut, entry: SegmentEntry) -> SegmentEntry:
        self._put(name, cut.data, TS_TYPE)
        return SegmentEntry(
            uri=name,
            duration=cut.duration,
            program_date_time=cut.start_time,
            discontinuity=entry.discontinuity,
        )

    def _previous(self, pair: tuple[Recording, Segment]) -> tuple[Recording, Segment] | None:
        rec, seg = pair
        if seg.seq == 0 or seg.discontinuity:
            return None
        before = seg.start_time - _MS
        for other in self.catalog.segments_between(self.stream, before, before):
            if other[0].id == rec.id and other[1].seq == seg.seq - 1:
                return other
        return None


def _after_end(media: SegmentMedia, index: int) -> bool:
    """Whether frames()[index] is shown only at or after the segment's end (the next
    segment's start): with B-frames, one of the frames after the next segment's keyframe in
    decode order but before it in presentation order."""
    return media.clock.offset(media.frames()[index].pts) >= media.end_offset()


def _entries(pairs: list[tuple[Recording, Segment]]) -> list[SegmentEntry]:
    """Playlist entries for recorded segments, by relative URI (same folder)."""
    entries: list[SegmentEntry] = []
    previous: int | None = None
    for rec, seg in pairs:
        crossing = previous is not None and (rec.id != previous or seg.discontinuity)
        entries.append(
            SegmentEntry(
                uri=file_part(seg.key),
                duration=seg.duration,
                program_date_time=seg.start_time,
                discontinuity=crossing,
            )
        )
        previous = rec.id
    return entries
