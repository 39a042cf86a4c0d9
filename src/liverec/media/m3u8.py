"""HLS media playlists (RFC 8216): a model, a renderer, a tolerant parser, and the RFC 3339
time format shared with the API."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

from liverec.errors import MediaError

PLAYLIST_TYPES = ("EVENT", "VOD")

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"  # the content type of M3U8 files

# RFC 3339, and the looser forms FLS's own docs show (`2019-01-07T12:00+08`): seconds
# optional, an offset of hours only or without its colon. An offset is always required.
_TIME_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?"
    r"(?:([Zz])|([+-])(\d{2})(?::?(\d{2}))?)"
)


@dataclass(frozen=True, slots=True)
class SegmentEntry:
    uri: str
    duration: float
    program_date_time: datetime | None = None
    discontinuity: bool = False


@dataclass
class MediaPlaylist:
    segments: list[SegmentEntry] = field(default_factory=list)
    # None: the smallest that fits the segments, for a playlist that never changes (a clip);
    # a growing playlist must keep one value (RFC 8216 6.2.1), so it passes it (recorder/hls.py)
    target_duration: int | None = None
    media_sequence: int = 0
    discontinuity_sequence: int = 0
    playlist_type: str | None = None  # 'EVENT' | 'VOD'
    endlist: bool = False
    version: int = 3

    def effective_target_duration(self) -> int:
        if self.target_duration is not None:
            return self.target_duration
        return target_duration_for(s.duration for s in self.segments)


def _rounded(duration: float) -> int:
    # RFC 8216 4.3.3.1: each EXTINF duration rounded to the nearest integer must be <= the
    # target; rounded as rendered (3 decimals), half up.
    return math.floor(round(duration, 3) + 0.5)


def target_duration_for(durations: Iterable[float]) -> int:
    """The smallest valid EXT-X-TARGETDURATION for these segment durations (at least 1)."""
    return max(1, max((_rounded(d) for d in durations), default=1))


def format_time(dt: datetime) -> str:
    """UTC with milliseconds and a Z: `2026-11-23T12:00:00.040Z`.

    Sub-millisecond parts round *up*, so a time given for a frame is never before the frame:
    sent back for a snapshot or a cut, it selects that frame and not the one before."""
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError("format_time needs an aware datetime")
    utc = dt.astimezone(UTC)
    if utc.microsecond % 1000:
        utc += timedelta(microseconds=1000 - utc.microsecond % 1000)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_time(s: str) -> datetime:
    """An RFC 3339 time with a Z or an offset, fractions optional (also without seconds, and
    with an offset of `+HH` or `+HHMM`) -> an aware UTC datetime. MediaError otherwise."""
    m = _TIME_RE.fullmatch(s.strip())
    if m is None:
        raise MediaError(f"not an RFC 3339 time with an offset: {s[:64]!r}")
    year, month, day, hour, minute = (int(m.group(i)) for i in range(1, 6))
    second = int(m.group(6) or 0)
    micro = int(((m.group(7) or "") + "000000")[:6])  # finer than microseconds: truncated
    if m.group(8):
        tz: timezone = UTC
    else:
        off_h, off_m = int(m.group(10)), int(m.group(11) or 0)
        if off_h > 23 or off_m > 59:
            raise MediaError(f"bad offset in time {s[:64]!r}")
        offset = timedelta(hours=off_h, minutes=off_m)
        tz = timezone(-offset if m.group(9) == "-" else offset)
    try:
        dt = datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
    except ValueError as exc:
        raise MediaError(f"not a valid time {s[:64]!r}: {exc}") from None
    return dt.astimezone(UTC)


def render(pl: MediaPlaylist, rendered: Sequence[str] | None = None) -> str:
    """The playlist's text. `rendered`: segment_lines() of each of its segments, for a
    caller that keeps them (a growing playlist renders each segment once, not once per
    version: an hour of 4 s segments took 4.6 ms a version)."""
    lines = [
        "#EXTM3U",
        f"#EXT-X-VERSION:{pl.version}",
        f"#EXT-X-TARGETDURATION:{pl.effective_target_duration()}",
        f"#EXT-X-MEDIA-SEQUENCE:{pl.media_sequence}",
    ]
    if pl.discontinuity_sequence:
        lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{pl.discontinuity_sequence}")
    if pl.playlist_type is not None:
        lines.append(f"#EXT-X-PLAYLIST-TYPE:{pl.playlist_type}")
    lines += map(segment_lines, pl.segments) if rendered is None else rendered
    if pl.endlist:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def segment_lines(seg: SegmentEntry) -> str:
    """One segment's lines in a playlist, without the last newline."""
    head = "#EXT-X-DISCONTINUITY\n" if seg.discontinuity else ""
    if seg.program_date_time is not None:
        head += f"#EXT-X-PROGRAM-DATE-TIME:{format_time(seg.program_date_time)}\n"
    return f"{head}#EXTINF:{seg.duration:.3f},\n{seg.uri}"


def _int(tag: str, value: str) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        raise MediaError(f"{tag}: not an integer: {value!r}") from None
    if number < 0:
        raise MediaError(f"{tag}: negative")
    return number


def parse(text: str) -> MediaPlaylist:
    """Parse a media playlist. Unknown tags and comments are skipped."""
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    if not lines or lines[0].lstrip("\ufeff") != "#EXTM3U":
        raise MediaError("playlist does not start with #EXTM3U")
    pl = MediaPlaylist(segments=[])
    duration: float | None = None
    pdt: datetime | None = None
    discontinuity = False
    for line in lines[1:]:
        if not line.startswith("#"):
            if duration is None:
                raise MediaError(f"segment {line!r} without #EXTINF")
            pl.segments.append(SegmentEntry(line, duration, pdt, discontinuity))
            duration, pdt, discontinuity = None, None, False
            continue
        tag, _, value = line.partition(":")
        if tag == "#EXTINF":
            try:
                duration = float(value.partition(",")[0])
            except ValueError:
                raise MediaError(f"bad #EXTINF: {line!r}") from None
            if not math.isfinite(duration) or duration < 0:
                raise MediaError(f"bad #EXTINF: {line!r}")
        elif tag == "#EXT-X-PROGRAM-DATE-TIME":
            pdt = parse_time(value)
        elif tag == "#EXT-X-DISCONTINUITY":
            discontinuity = True
        elif tag == "#EXT-X-VERSION":
            pl.version = _int(tag, value)
        elif tag == "#EXT-X-TARGETDURATION":
            pl.target_duration = _int(tag, value)
        elif tag == "#EXT-X-MEDIA-SEQUENCE":
            pl.media_sequence = _int(tag, value)
        elif tag == "#EXT-X-DISCONTINUITY-SEQUENCE":
            pl.discontinuity_sequence = _int(tag, value)
        elif tag == "#EXT-X-PLAYLIST-TYPE":
            if value not in PLAYLIST_TYPES:
                raise MediaError(f"bad #EXT-X-PLAYLIST-TYPE: {value!r}")
            pl.playlist_type = value
        elif tag == "#EXT-X-ENDLIST":
            pl.endlist = True
    if duration is not None:
        raise MediaError("#EXTINF without a segment URI")
    if pl.target_duration is None:
        raise MediaError("playlist without #EXT-X-TARGETDURATION")
    return pl
