"""Retention's durable list of blobs to delete (`retention_trash`): a batch that drops rows
from the catalog lists their storage keys in the same transaction, and a key leaves the
list only once its blob is gone, so a sweep that dies anywhere leaves only listed keys,
which the next sweep deletes first (liverec/retention.py).

One blob can still outlive its row: a segment waiting in a node's storage spool (the store
down) when retention trims its recording's head is uploaded after the sweep deleted the
(absent) blob. The spool asks `trimmed_segment` of each key it uploads, and deletes what
retention dropped (storage/spool.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, delete, func, select

from liverec.catalog._base import RepoBase
from liverec.catalog.models import to_ms
from liverec.catalog.schema import files, projects, recordings, retention_trash, segments, streams
from liverec.errors import InvalidKeyError
from liverec.layout import parse_name


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

    def trimmed_segment(self, key: str) -> bool:
        """Whether the segment at storage key `key` was catalogued and retention has since
        dropped it: its recording's head moved past it, or the recording is closed and has
        no such segment. False for anything else, a key that is no segment's included, and
        a recording not catalogued (yet: a recorder whose catalog lags creates it later),
        so no blob the catalog will list is ever taken for an orphan. Three index lookups."""
        region, app_id, name = [*key.split("/", 2), "", ""][:3]
        try:
            parsed = parse_name(name)
        except InvalidKeyError:
            return False
        if parsed.kind != "segment" or parsed.index is None:
            return False
        playlist = parsed.file_name.rsplit("_", 1)[0] + ".m3u8"
        with self._read() as conn:
            rec = conn.execute(
                select(recordings.c.id, recordings.c.state, recordings.c.head_seq)
                .select_from(files)
                .join(streams, streams.c.id == files.c.stream_id)
                .join(projects, projects.c.id == streams.c.project_id)
                .join(recordings, recordings.c.id == files.c.recording_id)
                .where(
                    and_(
                        projects.c.app_id == app_id,
                        streams.c.entry_point == parsed.entry_point,
                        streams.c.name == parsed.stream_name,
                        files.c.file_name == playlist,
                        recordings.c.region == region,
                    )
                )
            ).one_or_none()
            if rec is None:
                return False
            if parsed.index < int(rec.head_seq):
                return True
            if rec.state != "closed":
                return False
            row = conn.execute(
                select(segments.c.id).where(
                    and_(segments.c.recording_id == rec.id, segments.c.seq == parsed.index)
                )
            ).first()
        return row is None
