"""Recordings, their segments, time-range queries and the leases on open recordings.

Recordings and segments cover half-open ranges [start, end). Time-range queries stay index
range scans on (stream_id, start_ms). "Overlaps [t0, t1]" is `start <= t1 AND end > t0`
(`overlapping`, the one rule); only the first bound is on the indexed column, and alone it
would read every earlier row of the stream. Each stream row keeps the longest recording and
the longest segment it ever had (max_recording_ms / max_segment_ms, raised as segments
arrive), so a row that ends after t0 must also start after t0 - max: the scan is bounded on
both sides, [t0 - max, t1]. The bound is exact, never a guess, and costs one
conditional UPDATE per segment on a row no other writer touches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    RowMapping,
    Select,
    and_,
    bindparam,
    case,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from liverec.catalog._base import RepoBase
from liverec.catalog.dbclock import db_now_ms
from liverec.catalog.models import Recording, Segment, from_ms, seconds_to_ms, to_ms
from liverec.catalog.names import check_node_id, check_region
from liverec.catalog.schema import files, projects, recordings, segments, streams
from liverec.errors import ConflictError, InvalidValueError, LeaseLostError, NotFoundError
from liverec.layout import StreamRef, file_part

# Recording and segment columns under their own labels, so a row of a join of both is read
# by name.
_REC_COLUMNS = (
    recordings.c.id.label("rec_id"),
    projects.c.app_id.label("rec_app_id"),
    streams.c.entry_point.label("rec_entry_point"),
    streams.c.name.label("rec_stream_name"),
    recordings.c.region.label("rec_region"),
    recordings.c.session_id.label("rec_session_id"),
    recordings.c.playlist_key.label("rec_playlist_key"),
    recordings.c.start_ms.label("rec_start_ms"),
    recordings.c.end_ms.label("rec_end_ms"),
    recordings.c.state.label("rec_state"),
    recordings.c.node_id.label("rec_node_id"),
    recordings.c.segment_count.label("rec_segment_count"),
)
_SEG_COLUMNS = (
    segments.c.id.label("seg_id"),
    segments.c.recording_id.label("seg_recording_id"),
    segments.c.seq.label("seg_seq"),
    segments.c.key.label("seg_key"),
    segments.c.start_ms.label("seg_start_ms"),
    segments.c.duration.label("seg_duration"),
    segments.c.size.label("seg_size"),
    segments.c.discontinuity.label("seg_discontinuity"),
)


def select_recordings() -> Select[Any]:
    return (
        select(*_REC_COLUMNS)
        .select_from(recordings)
        .join(streams, streams.c.id == recordings.c.stream_id)
        .join(projects, projects.c.id == streams.c.project_id)
    )


def recording_of(m: RowMapping) -> Recording:
    return Recording(
        id=int(m["rec_id"]),
        app_id=m["rec_app_id"],
        entry_point=m["rec_entry_point"],
        stream_name=m["rec_stream_name"],
        region=m["rec_region"],
        session_id=m["rec_session_id"],
        playlist_key=m["rec_playlist_key"],
        start_time=from_ms(m["rec_start_ms"]),
        end_time=from_ms(m["rec_end_ms"]),
        state=m["rec_state"],
        node_id=m["rec_node_id"],
        segment_count=int(m["rec_segment_count"]),
    )


def _segment(m: RowMapping) -> Segment:
    return Segment(
        id=int(m["seg_id"]),
        recording_id=int(m["seg_recording_id"]),
        seq=int(m["seg_seq"]),
        key=m["seg_key"],
        start_time=from_ms(m["seg_start_ms"]),
        duration=float(m["seg_duration"]),
        size=int(m["seg_size"]),
        discontinuity=bool(m["seg_discontinuity"]),
    )


def _stream_is(stream: StreamRef) -> ColumnElement[bool]:
    return and_(
        projects.c.app_id == stream.app_id,
        streams.c.entry_point == stream.entry_point,
        streams.c.name == stream.stream_name,
    )


def overlapping(start: Any, end: Any, longest: Any, t0_ms: int, t1_ms: int) -> ColumnElement[bool]:
    """The one overlap rule: a row covering the half-open [start, end) overlaps the query
    [t0, t1] when start <= t1 and end > t0 (so a point query t0 == t1 finds the row that
    holds that instant, and a row that ends at t0 does not overlap). `longest` (the
    longest such row of the stream) bounds the scan on the indexed `start` from below:
    end > t0 implies start > t0 - longest."""
    return and_(start <= t1_ms, start >= t0_ms - longest, end > t0_ms)


def overlapping_statement(stream: StreamRef, start_ms: int, end_ms: int) -> Select[Any]:
    """Recordings with a segment that overlap [start_ms, end_ms], ascending by start.
    One statement: project -> stream (unique keys) -> a range of ix_recordings_stream_start."""
    return (
        select_recordings()
        .where(
            and_(
                _stream_is(stream),
                overlapping(
                    recordings.c.start_ms,
                    recordings.c.end_ms,
                    streams.c.max_recording_ms,
                    start_ms,
                    end_ms,
                ),
                recordings.c.segment_count > 0,
                recordings.c.region == stream.region,
            )
        )
        .order_by(recordings.c.start_ms, recordings.c.id)
    )


def segments_between_statement(stream: StreamRef, start_ms: int, end_ms: int) -> Select[Any]:
    """(recording columns, segment columns) of every segment that overlaps [start_ms,
    end_ms], in time order: project -> stream -> a range of ix_segments_stream_start ->
    each segment's recording by primary key."""
    return (
        select(*_REC_COLUMNS, *_SEG_COLUMNS)
        .select_from(segments)
        .join(streams, streams.c.id == segments.c.stream_id)
        .join(projects, projects.c.id == streams.c.project_id)
        .join(recordings, recordings.c.id == segments.c.recording_id)
        .where(
            and_(
                _stream_is(stream),
                overlapping(
                    segments.c.start_ms,
                    segments.c.end_ms,
                    streams.c.max_segment_ms,
                    start_ms,
                    end_ms,
                ),
                recordings.c.region == stream.region,
            )
        )
        .order_by(segments.c.start_ms, recordings.c.start_ms, segments.c.seq)
    )


@dataclass(frozen=True, slots=True)
class NewSegment:
    """A segment to catalogue (add_segments): add_segment's arguments."""

    recording_id: int
    seq: int
    key: str
    start_time: datetime
    duration: float
    size: int
    discontinuity: bool


def _check_segment(seq: int, key: str, duration: float, size: int) -> None:
    if seq < 0 or size < 0 or not 0 <= duration < 1e7 or not key or len(key) > 1024:
        raise InvalidValueError("segment seq, size, duration or key out of range")


def _raise_bound(column: Any, value: Any) -> Any:
    return case((column < value, value), else_=column)


# The statements of every recording and segment, built once (catalog/_base.py says why).
_ADVANCE = (
    update(recordings)
    .where(and_(recordings.c.id == bindparam("p_id"), recordings.c.state == "open"))
    .values(
        end_ms=_raise_bound(recordings.c.end_ms, bindparam("p_end_ms", type_=BigInteger)),
        segment_count=recordings.c.segment_count + 1,
        size_bytes=recordings.c.size_bytes + bindparam("p_size", type_=BigInteger),
        lease_expires_ms=db_now_ms() + recordings.c.lease_ms,
    )
    .returning(recordings.c.stream_id, recordings.c.start_ms, recordings.c.end_ms)
)
_STATE = select(recordings.c.state).where(recordings.c.id == bindparam("p_id"))
_INSERT_SEGMENT = insert(segments).values(
    recording_id=bindparam("p_id"),
    stream_id=bindparam("p_stream_id"),
    seq=bindparam("p_seq"),
    key=bindparam("p_key"),
    start_ms=bindparam("p_start_ms"),
    end_ms=bindparam("p_end_ms"),
    duration=bindparam("p_duration"),
    size=bindparam("p_size"),
    discontinuity=bindparam("p_discontinuity"),
)
_CREATE_RECORDING = insert(recordings).values(
    stream_id=bindparam("p_stream_id"),
    region=bindparam("p_region"),
    session_id=bindparam("p_session_id"),
    playlist_key=bindparam("p_playlist_key"),
    start_ms=bindparam("p_start_ms"),
    end_ms=bindparam("p_start_ms"),
    state="open",
    node_id=bindparam("p_node_id"),
    lease_ms=bindparam("p_lease_ms"),
    lease_expires_ms=db_now_ms() + bindparam("p_lease_ms", type_=BigInteger),
    segment_count=0,
    created_ms=bindparam("p_created_ms"),
)
_TAKE_PLAYLIST_NAME = insert(files).values(
    stream_id=bindparam("p_stream_id"),
    file_name=bindparam("p_file_name"),
    kind="recording",
    recording_id=bindparam("p_recording_id"),
    created_ms=bindparam("p_created_ms"),
)
_RAISE_STREAM_BOUNDS = (
    update(streams)
    .where(
        and_(
            streams.c.id == bindparam("p_stream_id"),
            (streams.c.max_recording_ms < bindparam("p_recording_ms", type_=BigInteger))
            | (streams.c.max_segment_ms < bindparam("p_segment_ms", type_=BigInteger)),
        )
    )
    .values(
        max_recording_ms=_raise_bound(
            streams.c.max_recording_ms, bindparam("p_recording_ms", type_=BigInteger)
        ),
        max_segment_ms=_raise_bound(
            streams.c.max_segment_ms, bindparam("p_segment_ms", type_=BigInteger)
        ),
    )
)


def raise_stream_bounds(
    conn: Connection, stream_id: int, recording_ms: int, segment_ms: int
) -> None:
    """The stream's longest recording and segment are at least these (the module's
    docstring says why)."""
    conn.execute(
        _RAISE_STREAM_BOUNDS,
        {"p_stream_id": stream_id, "p_recording_ms": recording_ms, "p_segment_ms": segment_ms},
    )


class RecordingsRepo(RepoBase):
    def create_recording(
        self,
        stream: StreamRef,
        *,
        session_id: str,
        playlist_key: str,
        start_time: datetime,
        node_id: str,
        lease_seconds: float,
        stream_id: int | None = None,
    ) -> Recording:
        """An open recording of `stream` (in its region) held by node_id, its playlist name
        taken in the stream folder (ConflictError if a clip or snapshot has it).
        `stream_id`: the stream's row, when the caller knows it."""
        region = stream.region
        check_region(region)
        check_node_id(node_id)
        if not session_id or len(session_id) > 128:
            raise InvalidValueError("a session ID is 1-128 characters")
        playlist_name = file_part(playlist_key)
        if not playlist_name or len(playlist_key) > 1024:
            raise InvalidValueError(f"not a playlist key: {playlist_key!r}")
        start_ms = to_ms(start_time)
        lease_ms = seconds_to_ms(lease_seconds)
        try:
            with self._write() as conn:
                sid = self._ensure_stream(conn, stream) if stream_id is None else stream_id
                now = self._now_ms()
                pk = conn.execute(
                    _CREATE_RECORDING,
                    {
                        "p_stream_id": sid,
                        "p_region": region,
                        "p_session_id": session_id,
                        "p_playlist_key": playlist_key,
                        "p_start_ms": start_ms,
                        "p_node_id": node_id,
                        "p_lease_ms": lease_ms,
                        "p_created_ms": now,
                    },
                ).inserted_primary_key
                assert pk is not None
                conn.execute(
                    _TAKE_PLAYLIST_NAME,
                    {
                        "p_stream_id": sid,
                        "p_file_name": playlist_name,
                        "p_recording_id": pk[0],
                        "p_created_ms": now,
                    },
                )
        except ConflictError:
            raise ConflictError(
                f"playlist name {playlist_name!r} is already used in {stream.folder}"
            ) from None
        return Recording(
            id=int(pk[0]),
            app_id=stream.app_id,
            entry_point=stream.entry_point,
            stream_name=stream.stream_name,
            region=region,
            session_id=session_id,
            playlist_key=playlist_key,
            start_time=from_ms(start_ms),
            end_time=from_ms(start_ms),
            state="open",
            node_id=node_id,
            segment_count=0,
        )

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
    ) -> Segment:
        """Catalogue a durable segment of an open recording: advances the recording's
        end_time and renews its lease. LeaseLostError if the recording is closed (another
        node closed it after this node's lease expired), ConflictError for a repeated seq."""
        _check_segment(seq, key, duration, size)
        with self._write() as conn:
            return self._add_segment(
                conn, recording_id, seq, key, start_time, duration, size, discontinuity
            )

    def add_segments(self, batch: Sequence[NewSegment]) -> list[Segment | Exception]:
        """Catalogue the segments of several recordings in one transaction (one commit,
        one fsync: recorder/catalog_writer.py's group commit). Each is what add_segment
        would make of it, in a savepoint of its own: a refusal (LeaseLostError,
        ConflictError, NotFoundError, InvalidValueError) is that one's result and leaves the
        others be. Any other failure (the catalog is down or busy) raises for the batch."""
        results: list[Segment | Exception] = []
        with self._write() as conn:
            for s in batch:
                try:
                    _check_segment(s.seq, s.key, s.duration, s.size)
                    with conn.begin_nested():
                        results.append(
                            self._add_segment(
                                conn,
                                s.recording_id,
                                s.seq,
                                s.key,
                                s.start_time,
                                s.duration,
                                s.size,
                                s.discontinuity,
                            )
                        )
                except (LeaseLostError, ConflictError, NotFoundError, InvalidValueError) as exc:
                    results.append(exc)
        return results

    def _add_segment(
        self,
        conn: Connection,
        recording_id: int,
        seq: int,
        key: str,
        start_time: datetime,
        duration: float,
        size: int,
        discontinuity: bool,
    ) -> Segment:
        start_ms = to_ms(start_time)
        end_ms = start_ms + seconds_to_ms(duration)
        row = conn.execute(
            _ADVANCE, {"p_id": recording_id, "p_end_ms": end_ms, "p_size": size}
        ).one_or_none()
        if row is None:
            state = conn.execute(_STATE, {"p_id": recording_id}).scalar_one_or_none()
            if state is None:
                raise NotFoundError(f"recording {recording_id} does not exist")
            raise LeaseLostError(f"recording {recording_id} is {state}, not open")
        stream_id, rec_start, rec_end = row
        try:
            pk = conn.execute(
                _INSERT_SEGMENT,
                {
                    "p_id": recording_id,
                    "p_stream_id": stream_id,
                    "p_seq": seq,
                    "p_key": key,
                    "p_start_ms": start_ms,
                    "p_end_ms": end_ms,
                    "p_duration": duration,
                    "p_size": size,
                    "p_discontinuity": discontinuity,
                },
            ).inserted_primary_key
        except IntegrityError:
            raise ConflictError(f"recording {recording_id} has a segment {seq} already") from None
        assert pk is not None
        raise_stream_bounds(conn, stream_id, rec_end - rec_start, end_ms - start_ms)
        return Segment(
            id=int(pk[0]),
            recording_id=recording_id,
            seq=seq,
            key=key,
            start_time=from_ms(start_ms),
            duration=duration,
            size=size,
            discontinuity=discontinuity,
        )

    def get_recording(self, recording_id: int) -> Recording:
        with self._read() as conn:
            row = conn.execute(
                select_recordings().where(recordings.c.id == recording_id)
            ).one_or_none()
        if row is None:
            raise NotFoundError(f"recording {recording_id} does not exist")
        return recording_of(row._mapping)

    def segments_of(self, recording_id: int) -> list[Segment]:
        with self._read() as conn:
            rows = conn.execute(
                select(*_SEG_COLUMNS)
                .where(segments.c.recording_id == recording_id)
                .order_by(segments.c.seq)
            ).all()
        return [_segment(row._mapping) for row in rows]

    # -- time-range queries -----------------------------------------------------------------

    def recordings_overlapping(
        self, stream: StreamRef, start: datetime, end: datetime
    ) -> list[Recording]:
        """Recordings of `stream` in its region with at least one segment, overlapping
        [start, end] (`overlapping`), ascending by start_time. Unknown names: []."""
        stmt = overlapping_statement(stream, to_ms(start), to_ms(end))
        with self._read() as conn:
            rows = conn.execute(stmt).all()
        return [recording_of(row._mapping) for row in rows]

    def latest_recording(self, stream: StreamRef) -> Recording | None:
        """The latest-starting recording of `stream` in its region that has a segment."""
        stmt = (
            select_recordings()
            .where(
                and_(
                    recordings.c.stream_id == self._stream_id_subquery(stream),
                    recordings.c.segment_count > 0,
                    recordings.c.region == stream.region,
                )
            )
            .order_by(recordings.c.start_ms.desc(), recordings.c.id.desc())
            .limit(1)
        )
        with self._read() as conn:
            row = conn.execute(stmt).one_or_none()
        return None if row is None else recording_of(row._mapping)

    def segments_between(
        self, stream: StreamRef, start: datetime, end: datetime
    ) -> list[tuple[Recording, Segment]]:
        """Every segment of `stream` in its region that overlaps [start, end]
        (`overlapping`), in time order, with its recording (one Recording object per
        recording)."""
        stmt = segments_between_statement(stream, to_ms(start), to_ms(end))
        with self._read() as conn:
            rows = conn.execute(stmt).all()
        seen: dict[int, Recording] = {}
        out: list[tuple[Recording, Segment]] = []
        for row in rows:
            rec_id = int(row._mapping["rec_id"])
            recording = seen.get(rec_id)
            if recording is None:
                recording = seen[rec_id] = recording_of(row._mapping)
            out.append((recording, _segment(row._mapping)))
        return out

    # -- leases -------------------------------------------------------------------------------

    def open_recordings(self, node_id: str | None = None) -> list[Recording]:
        stmt = select_recordings().where(recordings.c.state == "open")
        if node_id is not None:
            stmt = stmt.where(recordings.c.node_id == node_id)
        with self._read() as conn:
            rows = conn.execute(stmt.order_by(recordings.c.id)).all()
        return [recording_of(row._mapping) for row in rows]

    def renew_leases(self, node_id: str, lease_seconds: float) -> None:
        """The node's heartbeat: extend the leases on its open recordings and live streams."""
        lease_ms = seconds_to_ms(lease_seconds)
        with self._write() as conn:
            conn.execute(
                update(recordings)
                .where(and_(recordings.c.state == "open", recordings.c.node_id == node_id))
                .values(lease_ms=lease_ms, lease_expires_ms=db_now_ms() + lease_ms)
            )
            conn.execute(
                update(streams)
                .where(streams.c.live_node_id == node_id)
                .values(live_expires_ms=db_now_ms() + lease_ms)
            )

    def expired_open_recordings(self) -> list[Recording]:
        """Open recordings whose holder stopped renewing its lease, by the database's clock
        (the one that wrote the leases)."""
        stmt = select_recordings().where(
            and_(recordings.c.state == "open", recordings.c.lease_expires_ms < db_now_ms())
        )
        with self._read() as conn:
            rows = conn.execute(stmt.order_by(recordings.c.id)).all()
        return [recording_of(row._mapping) for row in rows]

    def claim_recording(
        self, recording_id: int, node_id: str, lease_seconds: float, *, force: bool = False
    ) -> bool:
        """Take over an open recording whose lease has expired (or that this node_id already
        holds): an atomic compare-and-set, so of two nodes racing exactly one gets True and
        may close it. force=True ignores a live lease: only for a lone node recovering at
        start, when no other process can be holding it."""
        check_node_id(node_id)
        lease_ms = seconds_to_ms(lease_seconds)
        with self._write() as conn:
            cond = and_(recordings.c.id == recording_id, recordings.c.state == "open")
            if not force:
                cond = and_(
                    cond,
                    (recordings.c.lease_expires_ms < db_now_ms())
                    | (recordings.c.node_id == node_id),
                )
            done = conn.execute(
                update(recordings)
                .where(cond)
                .values(node_id=node_id, lease_ms=lease_ms, lease_expires_ms=db_now_ms() + lease_ms)
            ).rowcount
        return done == 1
