"""Retention's durable list of blobs to delete (`retention_trash`): a batch that drops rows
from the catalog lists their storage keys in the same transaction, and a key leaves the
list only once its blob is gone, so a sweep that dies anywhere leaves only listed keys,
which the next sweep deletes first (liverec/retention.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, delete, func, select

from liverec.catalog._base import RepoBase
from liverec.catalog.models import to_ms
from liverec.catalog.schema import retention_trash


@dataclass(frozen=True, slots=True)
class TrashItem:
    id: int
    key: str
    recording_id: int | None


class TrashRepo(RepoBase):
    def trash_recordings(self, now: datetime) -> list[int]:
        """Recordings (still catalogued or not) with blobs due to go: their playlists are
        rewritten before the blobs are deleted."""
        with self._read() as conn:
            rows = conn.execute(
                select(retention_trash.c.recording_id)
                .where(
                    and_(
                        retention_trash.c.due_ms <= to_ms(now),
                        retention_trash.c.recording_id.is_not(None),
                    )
                )
                .distinct()
            ).all()
        return sorted(int(r[0]) for r in rows)

    def due_trash(self, now: datetime, limit: int = 1000) -> list[TrashItem]:
        with self._read() as conn:
            rows = conn.execute(
                select(retention_trash.c.id, retention_trash.c.key, retention_trash.c.recording_id)
                .where(retention_trash.c.due_ms <= to_ms(now))
                .order_by(retention_trash.c.id)
                .limit(limit)
            ).all()
        return [TrashItem(int(r[0]), r[1], None if r[2] is None else int(r[2])) for r in rows]

    def forget_trash(self, ids: Sequence[int]) -> None:
        """These blobs are gone."""
        if not ids:
            return
        with self._write() as conn:
            conn.execute(delete(retention_trash).where(retention_trash.c.id.in_(list(ids))))

    def trash_count(self) -> int:
        with self._read() as conn:
            return int(conn.execute(select(func.count()).select_from(retention_trash)).scalar_one())
