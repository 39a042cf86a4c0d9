"""What the API made for a stream: its clips and snapshots (the `files` rows of those kinds,
with the range a clip holds from retention), newest first, for the listings of the API and
the console."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, select

from liverec.catalog._base import RepoBase
from liverec.catalog.models import from_ms, to_ms
from liverec.catalog.retention_locks import MAX_LOCK_MS
from liverec.catalog.schema import files, retention_locks
from liverec.layout import StreamRef

MAX_LISTED = 1000


@dataclass(frozen=True)
class MadeFile:
    file_name: str  # in the stream's folder, as the API was given it
    kind: str  # clip | snapshot
    created: datetime
    # A clip's range as retention holds it (None for snapshots, and for clips made before
    # clips held their range).
    start: datetime | None = None
    end: datetime | None = None


class MadeFilesRepo(RepoBase):
    def made_files(
        self,
        stream: StreamRef,
        kind: str,
        since: datetime,
        until: datetime,
        limit: int = MAX_LISTED,
    ) -> list[MadeFile]:
        """The `kind` files of `stream` created in [since, until], newest first, at most
        `limit` of them."""
        held = and_(
            retention_locks.c.stream_id == files.c.stream_id,
            retention_locks.c.file_name == files.c.file_name,
        )
        query = (
            select(
                files.c.file_name,
                files.c.created_ms,
                retention_locks.c.start_ms,
                retention_locks.c.end_ms,
            )
            .select_from(files.outerjoin(retention_locks, held))
            .where(
                and_(
                    files.c.stream_id == self._stream_id_subquery(stream),
                    files.c.kind == kind,
                    files.c.created_ms >= to_ms(since),
                    files.c.created_ms <= to_ms(until),
                )
            )
            .order_by(files.c.created_ms.desc(), files.c.file_name)
            .limit(max(1, min(limit, MAX_LISTED)))
        )
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [
            MadeFile(
                file_name=row.file_name,
                kind=kind,
                created=from_ms(row.created_ms),
                start=None if row.start_ms is None else from_ms(row.start_ms),
                end=None
                # a clip cut up to whatever is recorded later holds MAX_LOCK_MS ahead
                if row.end_ms is None or row.end_ms - row.start_ms >= MAX_LOCK_MS
                else from_ms(row.end_ms),
            )
            for row in rows
        ]
