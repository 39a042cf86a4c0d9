"""Retention of the recording outputs besides HLS: MP4 slices and periodic snapshots older
than their entry point's retention period go the way trimmed segments go (retention.py):
their rows are deleted and their storage keys listed in `retention_trash` in one short
transaction, and the sweeper deletes the blobs after. A file that overlaps a lock of its
stream (an unexpired one, or one a clip or API snapshot holds) is kept, as its segments are.

By age (`expire_outputs`), and by size: the byte cap counts their bytes with the segments'
(`outputs_bytes`), and `trim_outputs` deletes the oldest of them before a cutoff, an MP4
slice by its end and a snapshot by its frame's time, so that the sweeper deletes segments
and outputs window by window in time order (liverec/retention.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, or_, select

from liverec.catalog._base import RepoBase
from liverec.catalog.models import to_ms
from liverec.catalog.schema import (
    entry_points,
    mp4_files,
    projects,
    retention_locks,
    retention_trash,
    snapshot_files,
    streams,
)
from liverec.layout import StreamRef

# A cursor past which `trim_outputs` looks: (time_ms, key) of the last MP4 slice and of the
# last snapshot it examined, so locked files are not examined again and again.
OutputsCursor = tuple[tuple[int, str], tuple[int, str]]
OUTPUTS_START: OutputsCursor = ((-(2**62), ""), (-(2**62), ""))


@dataclass(frozen=True, slots=True)
class OutputsTrimmed:
    """What one batch of `trim_outputs` did."""

    files: int
    bytes: int
    done: bool  # nothing more before the cutoff
    after: OutputsCursor


def _locked(conn: Connection, stream_id: int, start_ms: int, end_ms: int, now_ms: int) -> bool:
    """Whether an unexpired lock of the stream overlaps [start_ms, end_ms]."""
    row = conn.execute(
        select(retention_locks.c.id)
        .where(
            and_(
                retention_locks.c.stream_id == stream_id,
                retention_locks.c.start_ms <= end_ms,
                retention_locks.c.end_ms >= start_ms,
                or_(retention_locks.c.expires_ms.is_(None), retention_locks.c.expires_ms > now_ms),
            )
        )
        .limit(1)
    ).first()
    return row is not None


class OutputsRetentionRepo(RepoBase):
    def expire_outputs(self, region: str, now: datetime, limit: int = 500) -> tuple[int, int]:
        """One batch: MP4 slices (by their end) and periodic snapshots (by the time of their
        frame) in `region` older than their entry point's retention, not locked: rows
        deleted, blobs listed for deletion. Returns (files, MP4 bytes); call again while
        it finds `limit` of either."""
        now_ms = to_ms(now)
        cutoff = now_ms - entry_points.c.retention_s * 1000
        found = freed = 0
        with self._write() as conn:
            for table, start, end, size in (
                (mp4_files, mp4_files.c.start_ms, mp4_files.c.end_ms, mp4_files.c.size),
                (snapshot_files, snapshot_files.c.time_ms, snapshot_files.c.time_ms, None),
            ):
                rows = conn.execute(
                    select(
                        table.c.stream_id,
                        table.c.key,
                        start.label("start_ms"),
                        end.label("end_ms"),
                        (size if size is not None else start).label("size"),
                        projects.c.app_id,
                        streams.c.entry_point,
                        streams.c.name,
                    )
                    .join(streams, streams.c.id == table.c.stream_id)
                    .join(projects, projects.c.id == streams.c.project_id)
                    .join(
                        entry_points,
                        and_(
                            entry_points.c.project_id == streams.c.project_id,
                            entry_points.c.name == streams.c.entry_point,
                        ),
                    )
                    .where(
                        and_(
                            table.c.region == region,
                            entry_points.c.retention_s > 0,
                            end < cutoff,
                        )
                    )
                    .order_by(end)
                    .limit(limit)
                ).all()
                for r in rows:
                    if _locked(conn, int(r.stream_id), int(r.start_ms), int(r.end_ms), now_ms):
                        continue
                    self._forget_output(conn, table, r, region, now_ms)
                    found += 1
                    freed += int(r.size) if size is not None else 0
        return found, freed

    @staticmethod
    def _forget_output(conn: Connection, table: Any, row: Any, region: str, now_ms: int) -> None:
        stream = StreamRef(row.app_id, region, row.entry_point, row.name)
        conn.execute(
            delete(table).where(and_(table.c.stream_id == row.stream_id, table.c.key == row.key))
        )
        conn.execute(
            insert(retention_trash).values(
                key=stream.key(row.key), recording_id=None, due_ms=now_ms
            )
        )

    def outputs_bytes(self, region: str) -> int:
        """Bytes of the catalogued MP4 slices and periodic snapshots in `region`."""
        with self._read() as conn:
            mp4 = conn.execute(
                select(func.coalesce(func.sum(mp4_files.c.size), 0)).where(
                    mp4_files.c.region == region
                )
            ).scalar_one()
            jpeg = conn.execute(
                select(func.coalesce(func.sum(snapshot_files.c.size), 0)).where(
                    snapshot_files.c.region == region
                )
            ).scalar_one()
        return int(mp4) + int(jpeg)

    def oldest_output_ms(self, region: str) -> int | None:
        """The end of the oldest MP4 slice or the time of the oldest periodic snapshot in
        `region` (None: there is neither)."""
        with self._read() as conn:
            found = [
                conn.execute(select(func.min(col)).where(table.c.region == region)).scalar()
                for table, col in (
                    (mp4_files, mp4_files.c.end_ms),
                    (snapshot_files, snapshot_files.c.time_ms),
                )
            ]
        times = [int(x) for x in found if x is not None]
        return min(times) if times else None

    def trim_outputs(
        self,
        region: str,
        cutoff: datetime,
        max_bytes: int,
        now: datetime,
        *,
        after: OutputsCursor = OUTPUTS_START,
        limit: int = 500,
    ) -> OutputsTrimmed:
        """One batch for the byte cap: delete the oldest unlocked MP4 slices (ending at or
        before `cutoff`) and periodic snapshots (taken at or before it) in `region`, in
        time order, until `max_bytes` are freed; rows deleted and blobs listed in one
        transaction. Call again with the cursor it returns while not done."""
        cut, now_ms = to_ms(cutoff), to_ms(now)
        with self._write() as conn:
            mp4_rows = self._outputs_before(conn, mp4_files, region, cut, after[0], limit)
            jpeg_rows = self._outputs_before(conn, snapshot_files, region, cut, after[1], limit)
            merged = sorted(
                [(r.time_ms, r.key, mp4_files, r) for r in mp4_rows]
                + [(r.time_ms, r.key, snapshot_files, r) for r in jpeg_rows],
                key=lambda item: (item[0], item[1]),
            )
            # Up to the newer of the two pages' last rows, each table's rows are all here:
            # past it, one table may have more that were not fetched.
            full = [rows[-1].time_ms for rows in (mp4_rows, jpeg_rows) if len(rows) == limit]
            horizon = min(full) if full else None
            cursors = list(after)
            found = freed = 0
            done = horizon is None
            for time_ms, key, table, row in merged:
                if freed >= max_bytes:
                    done = True
                    break
                if horizon is not None and time_ms > horizon:
                    break
                cursors[0 if table is mp4_files else 1] = (int(time_ms), str(key))
                if _locked(conn, int(row.stream_id), int(row.start_ms), int(row.end_ms), now_ms):
                    continue
                self._forget_output(conn, table, row, region, now_ms)
                found += 1
                freed += int(row.size)
        return OutputsTrimmed(found, freed, done, (cursors[0], cursors[1]))

    @staticmethod
    def _outputs_before(
        conn: Connection, table: Any, region: str, cut: int, after: tuple[int, str], limit: int
    ) -> list[Any]:
        time = table.c.end_ms if table is mp4_files else table.c.time_ms
        start = table.c.start_ms if table is mp4_files else table.c.time_ms
        after_ms, after_key = after
        return list(
            conn.execute(
                select(
                    table.c.stream_id,
                    table.c.key,
                    table.c.size,
                    start.label("start_ms"),
                    time.label("end_ms"),
                    time.label("time_ms"),
                    projects.c.app_id,
                    streams.c.entry_point,
                    streams.c.name,
                )
                .join(streams, streams.c.id == table.c.stream_id)
                .join(projects, projects.c.id == streams.c.project_id)
                .where(
                    and_(
                        table.c.region == region,
                        time <= cut,
                        or_(time > after_ms, and_(time == after_ms, table.c.key > after_key)),
                    )
                )
                .order_by(time, table.c.key)
                .limit(limit)
            ).all()
        )
