"""How a recording ends in the catalog: closed at its last segment, with its callback, or,
if it never had a segment, forgotten.

`end_recording` is the writer's end of a recording (recorder/catalog_writer.py) in one
transaction: it used to be a read (get_recording, to know whether it had a segment and to
build its callback) and then a second transaction (close_recording or delete_recording)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, select, update

from liverec.catalog._base import RepoBase
from liverec.catalog.models import Recording, to_ms
from liverec.catalog.outbox import Notice, insert_notices
from liverec.catalog.recordings import raise_stream_bounds, recording_of, select_recordings
from liverec.catalog.schema import files, recordings, segments
from liverec.errors import NotFoundError

# A closed recording's callback, made from the recording as it was before it closed.
CloseNotice = Callable[[Recording], Notice]

# Built once (catalog/_base.py says why). The row is locked until commit on PostgreSQL (of
# the recording only: the stream's and project's rows are joined for its names).
_RECORDING_FOR_UPDATE = (
    select_recordings().where(recordings.c.id == bindparam("p_id")).with_for_update(of=recordings)
)
_DELETE_FILES = delete(files).where(files.c.recording_id == bindparam("p_id"))
_DELETE_SEGMENTS = delete(segments).where(segments.c.recording_id == bindparam("p_id"))
_DELETE_RECORDING = delete(recordings).where(recordings.c.id == bindparam("p_id"))
_CLOSE = (
    update(recordings)
    .where(recordings.c.id == bindparam("p_id"))
    .values(state="closed", end_ms=bindparam("p_end_ms"))
    .returning(recordings.c.stream_id, recordings.c.start_ms, recordings.c.end_ms)
)


def _closed(conn: Connection, recording_id: int, row: Sequence[Any] | None) -> None:
    """After the closing UPDATE (`row` what it returned): the stream's bounds are raised to
    the recording's length."""
    if row is None:
        raise NotFoundError(f"recording {recording_id} does not exist")
    stream_id, rec_start, rec_end = row
    raise_stream_bounds(conn, stream_id, rec_end - rec_start, 0)


def _is_open(conn: Connection, recording_id: int) -> bool:
    """Whether the recording is open (its row locked until commit on PostgreSQL)."""
    state = conn.execute(
        select(recordings.c.state).where(recordings.c.id == recording_id).with_for_update()
    ).scalar_one_or_none()
    return state == "open"


class RecordingEndRepo(RepoBase):
    def end_recording(
        self, recording_id: int, end_time: datetime, notice: CloseNotice | None = None
    ) -> bool:
        """The writer's end of a recording, in one transaction: if it has a segment, closed
        at `end_time` with its callback (`notice` of it, enqueued only by the call that
        closes it) and True; if it has none, forgotten (delete_recording) and False.
        NotFoundError if it does not exist."""
        with self._write() as conn:
            row = conn.execute(_RECORDING_FOR_UPDATE, {"p_id": recording_id}).one_or_none()
            if row is None:
                raise NotFoundError(f"recording {recording_id} does not exist")
            rec = recording_of(row._mapping)
            if rec.segment_count == 0:
                self._delete(conn, recording_id)
                return False
            if notice is not None and rec.state == "open":
                insert_notices(conn, [notice(rec)])
            row = conn.execute(
                _CLOSE, {"p_id": recording_id, "p_end_ms": to_ms(end_time)}
            ).one_or_none()
            _closed(conn, recording_id, row)
        return True

    def close_recording(
        self,
        recording_id: int,
        end_time: datetime | None = None,
        notices: Sequence[Notice] = (),
    ) -> None:
        """Mark the recording closed (idempotent); end_time, if given, replaces its end.
        `notices` (its callbacks) are enqueued in the same transaction, once: only by the
        call that closes it."""
        with self._write() as conn:
            if notices and _is_open(conn, recording_id):
                insert_notices(conn, notices)
            values: dict[str, Any] = {"state": "closed"}
            if end_time is not None:
                values["end_ms"] = to_ms(end_time)
            row = conn.execute(
                update(recordings)
                .where(recordings.c.id == recording_id)
                .values(**values)
                .returning(recordings.c.stream_id, recordings.c.start_ms, recordings.c.end_ms)
            ).one_or_none()
            _closed(conn, recording_id, row)

    def delete_recording(self, recording_id: int) -> None:
        """Forget a recording, its segments and its playlist name (for a recording that
        ended with no segment; the blobs are the caller's)."""
        with self._write() as conn:
            self._delete(conn, recording_id)

    @staticmethod
    def _delete(conn: Connection, recording_id: int) -> None:
        binds = {"p_id": recording_id}
        conn.execute(_DELETE_FILES, binds)
        conn.execute(_DELETE_SEGMENTS, binds)
        if not conn.execute(_DELETE_RECORDING, binds).rowcount:
            raise NotFoundError(f"recording {recording_id} does not exist")
