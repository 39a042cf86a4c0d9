"""What a time-shift playlist (playback/) reads: the segments of a range as bare tuples, and
whether the stream is still being recorded.

The range query keeps the one overlap rule (recordings.py `overlapping`, bounded on both
sides by the stream's longest segment) and walks ix_segments_stream_start in order, as
`segments_between` does, but reads only the five columns a playlist needs, takes the
region's recordings as a small `IN` list instead of joining each segment's recording, and
orders by the index alone (no sort). A 24-hour range of a 24/7 stream of 4 s segments is
21,600 rows: a Recording and a Segment per row, as `segments_between` builds them for clips,
took ~240 ms; this takes ~15 ms on SQLite, nearly all of it the database's own row reads
(bench/play.py). Two recordings of one stream starting a segment at the same millisecond
(two nodes recording one stream) come in catalog order.

Those ~15 ms are too much for every request, so playback/cache.py keeps closed recordings'
entries and asks here only `play_index` (the recordings' rows and an index-only count of the
range's segments, ~1 ms) and, for the recordings it lacks, `play_recording_rows`;
`play_rows` remains for what the cache cannot vouch for."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Select, and_, bindparam, func, select

from liverec.catalog._base import RepoBase
from liverec.catalog.models import to_ms
from liverec.catalog.recordings import overlapping
from liverec.catalog.schema import projects, recordings, segments, streams
from liverec.layout import StreamRef

# (recording id, start ms, end ms, discontinuity before it, name `record/{ep}/{stream}/{file}`)
# of one segment; times in epoch milliseconds, [start, end).
PlayRow = tuple[int, int, int, bool, str]

# What a recording's segments are known by: (closed, segment_count, start_ms, end_ms,
# size_bytes, head_seq). A closed recording's segments change only when retention deletes
# some, which moves all but start_ms and head_seq (catalog/retention.py); an open one's
# also when add_segment adds one (segment_count, size_bytes).
PlayVersion = tuple[bool, int, int, int, int, int]


@dataclass(frozen=True, slots=True)
class PlayRecording:
    """A recording of the stream (any region) whose row overlaps the asked range."""

    id: int
    region: str
    version: PlayVersion


@dataclass(frozen=True, slots=True)
class PlayIndex:
    """What a cached time-shift playlist is checked against, read in one statement (so one
    snapshot, on PostgreSQL's READ COMMITTED too)."""

    recordings: list[PlayRecording]  # rows overlapping the range, any region
    segments: int  # at least the number of the stream's segments (any region) in range
    longest: int  # the stream's max_segment_ms, the overlap rule's lower bound


_VERSION_COLUMNS = (
    recordings.c.state,
    recordings.c.segment_count,
    recordings.c.start_ms,
    recordings.c.end_ms,
    recordings.c.size_bytes,
    recordings.c.head_seq,
)


def _version(row: Sequence[Any]) -> PlayVersion:
    state, count, start, end, size, head = row
    return (state == "closed", int(count), int(start), int(end), int(size), int(head))


def _cursor_rows(conn: Any, stmt: Select[Any]) -> list[Any]:
    """`stmt`'s rows straight through the driver's cursor: building SQLAlchemy Row objects
    for 21,600 rows cost more than the database's own reading (bench/play.py)."""
    compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    params = compiled.construct_params()
    args: Any = (
        tuple(params[name] for name in compiled.positiontup or ())
        if compiled.positional
        else params
    )
    cursor = conn.connection.cursor()
    try:
        cursor.execute(str(compiled), args)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def _play_index_statement() -> Select[Any]:
    """Catalog.play_index's statement, built once: building it on each request took longer
    than SQLite runs it (~0.5 ms of SQLAlchemy's coercions)."""
    t0, t1 = bindparam("t0", type_=BigInteger), bindparam("t1", type_=BigInteger)
    stream_id = (
        select(streams.c.id)
        .join(projects, projects.c.id == streams.c.project_id)
        .where(
            and_(
                projects.c.app_id == bindparam("app_id"),
                streams.c.entry_point == bindparam("entry_point"),
                streams.c.name == bindparam("name"),
            )
        )
        .scalar_subquery()
    )
    longest_ms = select(streams.c.max_segment_ms).where(streams.c.id == stream_id).scalar_subquery()
    after_t0 = (
        select(func.count())
        .select_from(segments)
        .where(
            and_(
                segments.c.stream_id == stream_id,
                segments.c.start_ms > t0,
                segments.c.start_ms <= t1,
            )
        )
        .scalar_subquery()
    )
    at_t0 = (
        select(func.count())
        .select_from(segments)
        .where(
            and_(
                segments.c.stream_id == stream_id,
                segments.c.start_ms >= t0 - longest_ms,
                segments.c.start_ms <= bindparam("upto"),
                segments.c.end_ms > t0,
            )
        )
        .scalar_subquery()
    )
    return (
        select(
            recordings.c.id,
            recordings.c.region,
            *_VERSION_COLUMNS,
            (after_t0 + at_t0).label("in_range"),
            streams.c.max_segment_ms,
        )
        .join(streams, streams.c.id == recordings.c.stream_id)
        .join(projects, projects.c.id == streams.c.project_id)
        .where(
            and_(
                projects.c.app_id == bindparam("app_id"),
                streams.c.entry_point == bindparam("entry_point"),
                streams.c.name == bindparam("name"),
                recordings.c.start_ms <= t1,
                recordings.c.start_ms >= t0 - streams.c.max_recording_ms,
                recordings.c.end_ms > t0,  # overlapping(), on the recordings' rows
                recordings.c.segment_count > 0,
            )
        )
        .order_by(recordings.c.start_ms, recordings.c.id)
    )


_PLAY_INDEX = _play_index_statement()
_COMPILED: dict[tuple[int, str], tuple[str, tuple[str, ...] | None, dict[str, Any]]] = {}


def _run_compiled(conn: Any, stmt: Select[Any], values: dict[str, Any]) -> list[Any]:
    """A module-level statement through the driver's cursor, compiled once per dialect."""
    key = (id(stmt), conn.dialect.name)
    got = _COMPILED.get(key)
    if got is None:
        compiled = stmt.compile(dialect=conn.dialect)
        got = _COMPILED[key] = (
            str(compiled),
            tuple(compiled.positiontup or ()) if compiled.positional else None,
            # The statement's own literals (segment_count > 0), without the values asked.
            {k: v for k, v in compiled.construct_params(values).items() if k not in values},
        )
    sql, order, literals = got
    values = {**literals, **values}
    args: Any = values if order is None else tuple(values[name] for name in order)
    cursor = conn.connection.cursor()
    try:
        cursor.execute(sql, args)
        return list(cursor.fetchall())
    finally:
        cursor.close()


class PlaybackRepo(RepoBase):
    def play_rows(self, stream: StreamRef, start: datetime, end: datetime) -> list[PlayRow]:
        """Every segment of `stream` in its region that overlaps [start, end] (the
        `overlapping` rule), ascending by start."""
        t0, t1 = to_ms(start), to_ms(end)
        stream_id = self._stream_id_subquery(stream)
        in_region = select(recordings.c.id).where(
            and_(recordings.c.stream_id == stream_id, recordings.c.region == stream.region)
        )
        stmt = (
            select(
                segments.c.recording_id,
                segments.c.start_ms,
                segments.c.end_ms,
                segments.c.discontinuity,
                segments.c.key,
            )
            .select_from(segments)
            .join(streams, streams.c.id == segments.c.stream_id)
            .join(projects, projects.c.id == streams.c.project_id)
            .where(
                and_(
                    projects.c.app_id == stream.app_id,
                    streams.c.entry_point == stream.entry_point,
                    streams.c.name == stream.stream_name,
                    overlapping(
                        segments.c.start_ms, segments.c.end_ms, streams.c.max_segment_ms, t0, t1
                    ),
                    segments.c.recording_id.in_(in_region),
                )
            )
            .order_by(segments.c.start_ms)
        )
        with self._read() as conn:
            rows = _cursor_rows(conn, stmt)
        return [(r[0], r[1], r[2], bool(r[3]), r[4]) for r in rows]

    def play_index(self, stream: StreamRef, start: datetime, end: datetime) -> PlayIndex | None:
        """The recordings of `stream` (every region) whose rows overlap [start, end] with
        a segment, and a count of its segments that do (the `overlapping` rule, every
        region): a range of ix_recordings_stream_start, and one of ix_segments_stream_start
        that reads the index only (~1 ms for 21,600 entries on SQLite, against ~15 ms for
        their rows). None when no recording row overlaps.

        The count is exact for the segments starting at or before t0 and counts every one
        starting in (t0, t1] (end >= start, so each of those overlaps): a playlist whose
        cached recordings hold exactly that many segments in range holds all of them."""
        t0, t1 = to_ms(start), to_ms(end)
        values = {
            "app_id": stream.app_id,
            "entry_point": stream.entry_point,
            "name": stream.stream_name,
            "t0": t0,
            "t1": t1,
            "upto": min(t0, t1),
        }
        with self._read() as conn:
            rows = _run_compiled(conn, _PLAY_INDEX, values)
        if not rows:
            return None
        found = [PlayRecording(int(r[0]), str(r[1]), _version(r[2:8])) for r in rows]
        return PlayIndex(found, int(rows[0][8]), int(rows[0][9]))

    def play_recording_rows(
        self, ids: Sequence[int]
    ) -> dict[int, tuple[PlayVersion, list[PlayRow]]]:
        """Every segment of these recordings as play_rows reads them (the discontinuity as
        the driver gives it: 0 or 1 on SQLite), by recording in seq order, with the
        recording's version as of the same snapshot: one transaction, REPEATABLE READ on
        PostgreSQL (SQLite's reads in one transaction share one). Joining each segment to
        its recording instead took twice as long."""
        if not ids:
            return {}
        wanted = list(ids)
        versions = select(recordings.c.id, *_VERSION_COLUMNS).where(recordings.c.id.in_(wanted))
        # In the unique (recording_id, seq) index's order: no sort. RecordingEntries.build
        # refuses rows whose starts do not increase with it.
        rows_stmt = (
            select(
                segments.c.recording_id,
                segments.c.start_ms,
                segments.c.end_ms,
                segments.c.discontinuity,
                segments.c.key,
            )
            .where(segments.c.recording_id.in_(wanted))
            .order_by(segments.c.recording_id, segments.c.seq)
        )
        with self._read() as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            found = {int(r[0]): _version(r[1:7]) for r in conn.execute(versions)}
            rows = _cursor_rows(conn, rows_stmt)
        out: dict[int, tuple[PlayVersion, list[PlayRow]]] = {}
        begin = 0
        for end in range(1, len(rows) + 1):
            if end == len(rows) or rows[end][0] != rows[begin][0]:
                rec_id = int(rows[begin][0])
                out[rec_id] = (found[rec_id], rows[begin:end])
                begin = end
        return out

    def recording_open(self, stream: StreamRef) -> bool:
        """Whether `stream` has an open recording in its region (a push being recorded,
        or one whose node died and whose lease has not yet been taken over)."""
        stmt = (
            select(recordings.c.id)
            .where(
                and_(
                    recordings.c.stream_id == self._stream_id_subquery(stream),
                    recordings.c.region == stream.region,
                    recordings.c.state == "open",
                )
            )
            .limit(1)
        )
        with self._read() as conn:
            return conn.execute(stmt).first() is not None
