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
(two nodes recording one stream) come in catalog order."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, select

from liverec.catalog._base import RepoBase
from liverec.catalog.models import to_ms
from liverec.catalog.recordings import overlapping
from liverec.catalog.schema import projects, recordings, segments, streams
from liverec.layout import StreamRef

# (recording id, start ms, end ms, discontinuity before it, name `record/{ep}/{stream}/{file}`)
# of one segment; times in epoch milliseconds, [start, end).
PlayRow = tuple[int, int, int, bool, str]


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
            # Straight through the driver's cursor: building SQLAlchemy Row objects for
            # 21,600 rows cost more than the database's own reading (bench/play.py).
            compiled = stmt.compile(dialect=conn.dialect)
            params = compiled.construct_params()
            args: Any = (
                tuple(params[name] for name in compiled.positiontup or ())
                if compiled.positional
                else params
            )
            cursor = conn.connection.cursor()
            try:
                cursor.execute(str(compiled), args)
                rows = cursor.fetchall()
            finally:
                cursor.close()
        return [(r[0], r[1], r[2], bool(r[3]), r[4]) for r in rows]

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
