"""Retention's locked ranges: what the sweeper never deletes (catalog/retention.py trims
around them). A user's lock of a stream's range (`add_lock`, optionally expiring), and the
range each clip references (`hold_clip`, gone with the clip's files row: the foreign key
cascades). Clips cut before migration 0005 have no hold: `unheld_clips` finds them, and the
sweeper gives them theirs from their playlists before it deletes anything
(liverec/retention.py). A trim and a new lock of one stream are serialised on the stream's row
(`lock_stream`), so a clip never lists a segment a concurrent trim deleted."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, and_, delete, insert, or_, select, tuple_

from liverec.catalog._base import RepoBase
from liverec.catalog.models import from_ms, to_ms
from liverec.catalog.schema import files, projects, retention_locks, retention_trash, streams
from liverec.errors import InvalidValueError, NotFoundError
from liverec.layout import StreamRef

# A lock covers at most this much (a typo of a year, not a range anyone means: 10 years).
MAX_LOCK_MS = 10 * 366 * 86_400_000


@dataclass(frozen=True, slots=True)
class Lock:
    """A range of a stream retention never deletes (a user's lock, or a clip's range)."""

    id: int
    stream: StreamRef  # region: the caller's
    start: datetime
    end: datetime
    expires: datetime | None
    file_name: str | None  # the clip holding it; None: a lock


class LocksRepo(RepoBase):
    def add_lock(
        self, stream: StreamRef, start: datetime, end: datetime, expires: datetime | None = None
    ) -> Lock:
        """Lock [start, end] of `stream` against retention, until `expires` (None: until
        deleted)."""
        start_ms, end_ms = to_ms(start), to_ms(end)
        if end_ms < start_ms:
            raise InvalidValueError("a lock's end is before its start")
        if end_ms - start_ms > MAX_LOCK_MS:
            raise InvalidValueError("a lock covers at most 10 years")
        expires_ms = None if expires is None else to_ms(expires)
        with self._write() as conn:
            sid = self._ensure_stream(conn, stream)
            lock_stream(conn, sid)
            pk = conn.execute(
                insert(retention_locks).values(
                    stream_id=sid,
                    start_ms=start_ms,
                    end_ms=end_ms,
                    expires_ms=expires_ms,
                    file_name=None,
                    created_ms=self._now_ms(),
                )
            ).inserted_primary_key
        assert pk is not None
        return Lock(int(pk[0]), stream, from_ms(start_ms), from_ms(end_ms), expires, None)

    def hold_clip(
        self, stream: StreamRef, file_name: str, start: datetime, end: datetime | None
    ) -> None:
        """The clip `file_name` (its name reserved) references [start, end] of `stream`
        (end None: up to whatever is recorded later): retention keeps it while the clip's
        files row exists. Called again, it replaces the range."""
        start_ms = to_ms(start)
        end_ms = start_ms + MAX_LOCK_MS if end is None else max(to_ms(end), start_ms)
        with self._write() as conn:
            sid = self._ensure_stream(conn, stream)
            lock_stream(conn, sid)
            conn.execute(
                delete(retention_locks).where(
                    and_(
                        retention_locks.c.stream_id == sid, retention_locks.c.file_name == file_name
                    )
                )
            )
            conn.execute(
                insert(retention_locks).values(
                    stream_id=sid,
                    start_ms=start_ms,
                    end_ms=end_ms,
                    expires_ms=None,
                    file_name=file_name,
                    created_ms=self._now_ms(),
                )
            )

    def locks(
        self, app_id: str, entry_point: str, region: str, stream_name: str | None = None
    ) -> list[Lock]:
        """The user locks of the entry point's streams (or of `stream_name`'s), expired
        ones left out, by start; their StreamRefs in `region`."""
        now = self._now_ms()
        stmt = (
            select(retention_locks, streams.c.name.label("stream_name"))
            .join(streams, streams.c.id == retention_locks.c.stream_id)
            .join(projects, projects.c.id == streams.c.project_id)
            .where(
                and_(
                    projects.c.app_id == app_id,
                    streams.c.entry_point == entry_point,
                    retention_locks.c.file_name.is_(None),
                    or_(retention_locks.c.expires_ms.is_(None), retention_locks.c.expires_ms > now),
                )
            )
            .order_by(retention_locks.c.start_ms, retention_locks.c.id)
        )
        if stream_name is not None:
            stmt = stmt.where(streams.c.name == stream_name)
        with self._read() as conn:
            rows = conn.execute(stmt).mappings().all()
        return [
            Lock(
                id=int(m["id"]),
                stream=StreamRef(app_id, region, entry_point, m["stream_name"]),
                start=from_ms(m["start_ms"]),
                end=from_ms(m["end_ms"]),
                expires=None if m["expires_ms"] is None else from_ms(m["expires_ms"]),
                file_name=None,
            )
            for m in rows
        ]

    def delete_lock(self, app_id: str, entry_point: str, lock_id: int) -> None:
        """Delete a user lock of the entry point (NotFoundError: none such)."""
        ids = (
            select(streams.c.id)
            .join(projects, projects.c.id == streams.c.project_id)
            .where(
                and_(
                    projects.c.app_id == app_id,
                    streams.c.entry_point == entry_point,
                )
            )
        )
        with self._write() as conn:
            gone = conn.execute(
                delete(retention_locks).where(
                    and_(
                        retention_locks.c.id == lock_id,
                        retention_locks.c.file_name.is_(None),
                        retention_locks.c.stream_id.in_(ids),
                    )
                )
            ).rowcount
        if not gone:
            raise NotFoundError(f"lock {lock_id} does not exist")

    def delete_file(
        self, stream: StreamRef, file_name: str, kind: str, keys: Sequence[str]
    ) -> None:
        """Delete the clip or snapshot `file_name` (of `kind`) from its stream folder: its
        name (and a clip's hold on its range) goes, and its blobs `keys` are listed to
        delete in the same transaction (the caller deletes them, then `forget_trash`).
        NotFoundError when the folder has no such file of that kind."""
        if kind not in ("clip", "snapshot"):
            raise InvalidValueError(f"not a deletable kind: {kind!r}")
        with self._write() as conn:
            sid = conn.execute(select(self._stream_id_subquery(stream))).scalar_one_or_none()
            gone = 0
            if sid is not None:
                gone = conn.execute(
                    delete(files).where(
                        and_(
                            files.c.stream_id == sid,
                            files.c.file_name == file_name,
                            files.c.kind == kind,
                        )
                    )
                ).rowcount
            if not gone:
                raise NotFoundError(f"no {kind} {file_name!r} in {stream.folder}")
            # Explicitly too: SQLite enforces the cascade, but say what is meant.
            conn.execute(
                delete(retention_locks).where(
                    and_(
                        retention_locks.c.stream_id == sid, retention_locks.c.file_name == file_name
                    )
                )
            )
            now = self._now_ms()
            for key in keys:
                conn.execute(insert(retention_trash).values(key=key, recording_id=None, due_ms=now))

    def unheld_clips(
        self, region: str, *, after: tuple[int, str] = (0, ""), limit: int = 500
    ) -> list[tuple[tuple[int, str], StreamRef, str]]:
        """Clips with no hold on their range (cut before retention existed), by (stream
        id, file name) after the cursor `after`: (cursor, stream in `region`, file name)."""
        stmt = (
            select(
                files.c.stream_id,
                files.c.file_name,
                projects.c.app_id,
                streams.c.entry_point,
                streams.c.name,
            )
            .join(streams, streams.c.id == files.c.stream_id)
            .join(projects, projects.c.id == streams.c.project_id)
            .outerjoin(
                retention_locks,
                and_(
                    retention_locks.c.stream_id == files.c.stream_id,
                    retention_locks.c.file_name == files.c.file_name,
                ),
            )
            .where(
                and_(
                    files.c.kind == "clip",
                    retention_locks.c.id.is_(None),
                    tuple_(files.c.stream_id, files.c.file_name) > tuple_(*after),
                )
            )
            .order_by(files.c.stream_id, files.c.file_name)
            .limit(limit)
        )
        with self._read() as conn:
            rows = conn.execute(stmt).all()
        return [
            (
                (int(r.stream_id), str(r.file_name)),
                StreamRef(r.app_id, region, r.entry_point, r.name),
                str(r.file_name),
            )
            for r in rows
        ]


def lock_stream(conn: Connection, stream_id: int) -> None:
    """Serialise trims and new locks of one stream (a row lock until commit on PostgreSQL;
    SQLite has one writer at a time)."""
    conn.execute(select(streams.c.id).where(streams.c.id == stream_id).with_for_update())
