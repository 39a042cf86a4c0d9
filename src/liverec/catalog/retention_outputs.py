"""Retention of the recording outputs besides HLS: MP4 slices and periodic snapshots older
than their entry point's retention period go the way trimmed segments go (retention.py):
their rows are deleted and their storage keys listed in `retention_trash` in one short
transaction, and the sweeper deletes the blobs after. A file that overlaps a lock of its
stream (an unexpired one, or one a clip or API snapshot holds) is kept, as its segments are.
By age only: the byte cap counts HLS segments (recordings.size_bytes)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, insert, or_, select

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
