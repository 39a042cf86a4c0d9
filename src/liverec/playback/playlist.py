"""A time-shift playlist from catalog rows: pure, no I/O, no clock.

What it writes, for the rows of one stream that overlap the asked range (the segment that
holds `start` first, as a clip begins):
- VOD (a range with an end): `EXT-X-PLAYLIST-TYPE:VOD`, `EXT-X-ENDLIST`, the smallest
  `EXT-X-TARGETDURATION` that fits its EXTINFs.
- EVENT (no end): `EXT-X-PLAYLIST-TYPE:EVENT`, growing at the end only, so its
  `EXT-X-MEDIA-SEQUENCE` stays 0 and its first entries never change; `EXT-X-ENDLIST` once the
  stream is no longer recorded. Its target cannot change between refreshes (RFC 8216 6.2.1),
  so it is the recorder's own bound for the entry point (`event_target`), which no segment
  exceeds; raised to fit should one do so all the same, as the recorder does.
- `EXT-X-DISCONTINUITY` where the rows cross into another recording or the recorder marked
  one (the rule clips follow, postprocess/clip.py).
- `EXT-X-PROGRAM-DATE-TIME` on the first entry and on every entry whose start is not where
  the previous one ended, to the millisecond (after a gap, a discontinuity or any drift).
  Elsewhere the time follows from the EXTINFs exactly, since both are whole milliseconds:
  hls.js and Safari count it on from the last tag. Writing it on every one of the 21,600
  entries of a day cost more than the rest of the rendering (bench/play.py).

Each URI is `segment_prefix` + the segment's file name: the caller passes a signed
`/files/s/...` prefix of the stream's folder, signed once per playlist (one HMAC, not one
per entry)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from liverec.catalog.playback import PlayRow
from liverec.media.m3u8 import target_duration_for
from liverec.recorder.segmenter import playlist_target_duration

# The longest range one playlist may cover: 7 days of 2 s segments is ~300,000 entries
# (~50 MB of playlist), past which players give up anyway.
MAX_SPAN = timedelta(days=7)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DAY_MS = 86_400_000


def event_target(entry_point_target: float) -> int:
    """The EXT-X-TARGETDURATION of an EVENT playlist of an entry point whose segments are
    cut for `entry_point_target` seconds: the recorder's bound (recorder/segmenter.py)."""
    return playlist_target_duration(entry_point_target)


@dataclass(frozen=True, slots=True)
class TimeShift:
    """What a time-shift playlist says besides its rows."""

    segment_prefix: str  # prepended to each segment's file name
    event: bool  # EVENT (no end asked) or VOD
    ended: bool = True  # EVENT only: the stream is no longer recorded -> EXT-X-ENDLIST
    target: int | None = None  # EVENT only: event_target(...)


DISCONTINUITY = "#EXT-X-DISCONTINUITY\n"


@lru_cache(maxsize=64)
def _date(day: int) -> str:
    return (_EPOCH + timedelta(days=day)).strftime("%Y-%m-%d")


def program_date_time(start_ms: int) -> str:
    """The EXT-X-PROGRAM-DATE-TIME line of an entry starting at `start_ms`."""
    day, ms = divmod(start_ms, _DAY_MS)
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    seconds, ms = divmod(ms, 1000)
    return (
        f"#EXT-X-PROGRAM-DATE-TIME:{_date(day)}T{hours:02d}:{minutes:02d}:{seconds:02d}.{ms:03d}Z\n"
    )


def extinf_line(duration_ms: int) -> str:
    return f"#EXTINF:{duration_ms / 1000:.3f},\n"


def header(spec: TimeShift, fits: int) -> str:
    """The playlist's first lines, `fits` the target its longest EXTINF needs."""
    target = max(spec.target or 0, fits) if spec.event else fits
    kind = "EVENT" if spec.event else "VOD"
    return (
        f"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{target}\n"
        f"#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:{kind}\n"
    )


def render_time_shift(rows: Sequence[PlayRow], spec: TimeShift) -> str:
    """The playlist text for `rows` (catalog/playback.py, in time order). The same rows
    from playback/cache.py's entries give the same text (render_plan)."""
    out = [""]  # the header, once the longest segment is known
    add = out.append
    prefix = spec.segment_prefix
    extinfs: dict[int, str] = {}
    previous_rec = -1
    expected = -1
    for rec_id, start, end, discontinuity, key in rows:
        if previous_rec != -1 and (rec_id != previous_rec or discontinuity):
            add(DISCONTINUITY)
            expected = -1
        if start != expected:
            add(program_date_time(start))
        duration = end - start
        extinf = extinfs.get(duration)
        if extinf is None:
            extinf = extinfs[duration] = extinf_line(duration) + prefix
        add(f"{extinf}{key.rpartition('/')[2]}\n")
        previous_rec = rec_id
        expected = end
    if not spec.event or spec.ended:
        add("#EXT-X-ENDLIST\n")
    # The longest segment's EXTINF is the one the target must fit (rounding is monotonic).
    out[0] = header(spec, target_duration_for(d / 1000 for d in extinfs))
    return "".join(out)
