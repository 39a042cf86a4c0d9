"""Frozen records the catalog returns, and the epoch-millisecond time helpers.

Times are stored as BIGINT milliseconds since the Unix epoch, UTC, so they index and compare
the same way on SQLite and PostgreSQL; the records carry aware UTC datetimes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from liverec.errors import InvalidValueError
from liverec.layout import StreamRef, file_part

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def to_ms(value: datetime) -> int:
    """An aware datetime -> epoch milliseconds (floored, so a time inside a millisecond
    compares like the start of that millisecond)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidValueError(f"naive datetime {value.isoformat()} given; times must be aware")
    return (value - _EPOCH) // _MS


def from_ms(ms: int) -> datetime:
    """Epoch milliseconds -> an aware UTC datetime."""
    return _EPOCH + timedelta(milliseconds=ms)


def seconds_to_ms(seconds: float) -> int:
    """A duration in seconds -> whole milliseconds, rounded (the catalog's precision)."""
    return round(seconds * 1000)


@dataclass(frozen=True)
class Project:
    id: int
    app_id: str
    name: str
    is_default: bool


@dataclass(frozen=True)
class Credential:
    customer_id: str
    app_ids: tuple[str, ...]
    created_at: datetime
    revoked: bool


@dataclass(frozen=True)
class EntryPoint:
    app_id: str
    name: str
    auth_key: str | None  # unsealed; None when pushes need no signature
    record_enabled: bool
    target_duration: float  # seconds
    max_file_duration: float  # seconds
    retention: int = 0  # seconds media is kept (catalog/retention.py); 0: forever


@dataclass(frozen=True)
class Recording:
    id: int
    app_id: str
    entry_point: str
    stream_name: str
    region: str
    session_id: str
    playlist_key: str
    start_time: datetime
    end_time: datetime
    state: str  # "open" or "closed"
    node_id: str
    segment_count: int

    @property
    def duration(self) -> float:
        """Seconds from start_time to end_time."""
        return (self.end_time - self.start_time).total_seconds()

    @property
    def stream(self) -> StreamRef:
        """The stream it records, in the region its files are under."""
        return StreamRef(self.app_id, self.region, self.entry_point, self.stream_name)

    @property
    def playlist_name(self) -> str:
        """The playlist's file name within its stream folder."""
        return file_part(self.playlist_key)


@dataclass(frozen=True)
class Segment:
    id: int
    recording_id: int
    seq: int
    key: str
    start_time: datetime  # wall clock of its first frame, ms precision
    duration: float  # seconds
    size: int  # bytes
    discontinuity: bool

    @property
    def end_time(self) -> datetime:
        """start_time + duration, at the catalog's millisecond precision."""
        return self.start_time + timedelta(milliseconds=seconds_to_ms(self.duration))
