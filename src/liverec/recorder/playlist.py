"""A recording's playlist text, written by the HLS writer (recorder/hls.py) after every
segment and by crash recovery (recorder/recovery.py) when it closes a recording."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from liverec.media.m3u8 import MediaPlaylist, SegmentEntry, render, target_duration_for

log = logging.getLogger(__name__)


def render_playlist(
    entries: list[SegmentEntry],
    *,
    ended: bool,
    target_duration: int | None,
    media_sequence: int = 0,
    discontinuity_sequence: int = 0,
    rendered: Sequence[str] | None = None,
    fits: int | None = None,
) -> str:
    """A recording's playlist: live EVENT while it grows, VOD with EXT-X-ENDLIST at the end.

    A live recording whose head retention trimmed (`media_sequence` > 0, the first seq
    kept; `discontinuity_sequence`, the discontinuities trimmed with it) is a plain live
    playlist, no longer EVENT (an EVENT playlist may only grow, RFC 8216 4.3.3.5).

    Every version declares the same EXT-X-TARGETDURATION, `target_duration`: the segmenter's
    limit (recorder/segmenter.py), which no segment exceeds, because RFC 8216 6.2.1 forbids
    changing it. Should a segment exceed it all the same, the target is raised to fit and
    the breach logged: an EXTINF past the target breaks players worse than a changed target.
    None (a recording whose limit is unknown): the smallest target that fits the segments.

    A writer that keeps each entry's segment_lines() (`rendered`) and the target that fits
    them (`fits`) passes them: each version then costs a join, not a render per entry."""
    if fits is None:
        fits = target_duration_for(e.duration for e in entries)
    if target_duration is not None and fits > target_duration:
        log.error(
            "a segment of %.3f s exceeds the target duration %d s",
            max(e.duration for e in entries),
            target_duration,
        )
    return render(
        MediaPlaylist(
            segments=entries,
            target_duration=fits if target_duration is None else max(target_duration, fits),
            media_sequence=media_sequence,
            discontinuity_sequence=discontinuity_sequence,
            playlist_type="VOD" if ended else ("EVENT" if media_sequence == 0 else None),
            endlist=ended,
        ),
        rendered,
    )
