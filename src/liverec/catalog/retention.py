"""Retention's catalog side: what to trim, head trimming in batches, and the sweeper's
lease. The locked ranges are retention_locks.py's, the durable list of blobs to delete
retention_trash.py's; the sweeper itself is liverec/retention.py.

- Catalog first, blobs second. `trim_recording` deletes a batch of a recording's segment
  rows and, in the same transaction, lists their storage keys in `retention_trash` (and the
  playlist's, when the whole recording goes). The blobs are deleted from that list
  afterwards, and a row leaves it only once its blob is gone: a sweep that dies between the
  two leaves rows that the next sweep finishes. So no file the catalog lists is ever
  missing, and nothing is walked in storage to find orphans.
- A recording's head moves: `head_seq` (the playlist's EXT-X-MEDIA-SEQUENCE) is the first
  seq kept, `head_discontinuities` (its EXT-X-DISCONTINUITY-SEQUENCE) counts the
  discontinuities that went with the head, start_ms is the first kept segment's start (so
  preview_list answers the new start). A closed recording may also lose segments between
  locked ones; the first segment kept after such a hole is marked a discontinuity.
- An open (live) recording loses only a head, never its newest catalogued segment (the one
  being written is not catalogued yet), and its blobs are listed due `grace_ms` later: its
  writer, which owns the live playlist, learns the new head (`recording_head`) at its next
  segment and drops those entries first.
- Protected, never trimmed: segments overlapping a lock of their stream (`add_lock`, or
  the range a clip references, `hold_clip`, gone with the clip's files row). A trim and a
  new lock of one stream are serialised on the stream's row (FOR UPDATE on PostgreSQL; one
  writer at a time on SQLite), so a clip never lists a segment a concurrent trim deleted.
- Short transactions: a batch is at most `limit` segments of one recording. The rows it
  locks are that recording's (which its writer's next add_segment waits for, a few
  milliseconds) and its stream's row (which a segment insert updates only when the
  stream's longest segment or recording grows)."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, false, func, insert, or_, select, update

from liverec.catalog._base import RepoBase, insert_ignore
from liverec.catalog.dbclock import db_now_ms
from liverec.catalog.models import seconds_to_ms, to_ms
from liverec.catalog.names import check_node_id, check_region
from liverec.catalog.outbox import Notice, insert_notices
from liverec.catalog.retention_locks import lock_stream
from liverec.catalog.schema import (
    entry_points,
    files,
    mp4_files,
    projects,
    recordings,
    retention_leases,
    retention_locks,
    retention_trash,
    segments,
    snapshot_files,
    streams,
)
from liverec.errors import InvalidValueError, NotFoundError
from liverec.layout import StreamRef, file_part

# The notice of a recording deleted whole (events.files' 1003), built by the caller.
DeletedNotice = Callable[[StreamRef, str], Notice]


@dataclass(frozen=True, slots=True)
class Candidate:
    """A recording retention may trim."""

    id: int
    start_ms: int
    state: str
    cutoff_ms: int | None = None  # age: segments ending at or before this go


@dataclass(frozen=True, slots=True)
class Trimmed:
    """What one batch of `trim_recording` did."""

    segments: int
    bytes: int
    recording_deleted: bool
    done: bool  # nothing more of this recording to trim by the same rule
    next_seq: int  # where the next batch of this recording starts looking


def _overlaps_any(start_ms: int, end_ms: int, ranges: Sequence[tuple[int, int]]) -> bool:
    # The one overlap rule (recordings.overlapping): [start, end) meets [t0, t1] when
    # start <= t1 and end > t0.
    return any(start_ms <= t1 and end_ms > t0 for t0, t1 in ranges)


# Asked before every playlist a recorder writes: built once (catalog/_base.py says why).
_HEAD = select(recordings.c.head_seq, recordings.c.head_discontinuities).where(
    recordings.c.id == bindparam("p_id")
)


class RetentionRepo(RepoBase):
    # -- what to trim -----------------------------------------------------------------------

    def expired_recordings(
        self,
        region: str,
        now: datetime,
        *,
        after: tuple[int, int] = (-(2**62), 0),
        limit: int = 500,
    ) -> list[Candidate]:
        """Recordings in `region` that started before their entry point's retention period
        (oldest first, after the (start_ms, id) cursor `after`), each with its cutoff."""
        now_ms = to_ms(now)
        cutoff = now_ms - entry_points.c.retention_s * 1000
        stmt = (
            select(recordings.c.id, recordings.c.start_ms, recordings.c.state, cutoff.label("cut"))
            .join(streams, streams.c.id == recordings.c.stream_id)
            .join(
                entry_points,
                and_(
                    entry_points.c.project_id == streams.c.project_id,
                    entry_points.c.name == streams.c.entry_point,
                ),
            )
            .where(
                and_(
                    recordings.c.region == region,
                    entry_points.c.retention_s > 0,
                    recordings.c.start_ms < cutoff,
                    _after(after),
                )
            )
            .order_by(recordings.c.start_ms, recordings.c.id)
            .limit(limit)
        )
        with self._read() as conn:
            rows = conn.execute(stmt).mappings().all()
        return [
            Candidate(int(m["id"]), int(m["start_ms"]), m["state"], int(m["cut"])) for m in rows
        ]

    def oldest_recordings(
        self,
        region: str,
        *,
        after: tuple[int, int] = (-(2**62), 0),
        before_ms: int | None = None,
        limit: int = 500,
    ) -> list[Candidate]:
        """Recordings in `region`, oldest first, after the (start_ms, id) cursor `after`
        (and, with `before_ms`, starting before it)."""
        where = and_(recordings.c.region == region, _after(after))
        if before_ms is not None:
            where = and_(where, recordings.c.start_ms < before_ms)
        stmt = (
            select(recordings.c.id, recordings.c.start_ms, recordings.c.state)
            .where(where)
            .order_by(recordings.c.start_ms, recordings.c.id)
            .limit(limit)
        )
        with self._read() as conn:
            rows = conn.execute(stmt).mappings().all()
        return [Candidate(int(m["id"]), int(m["start_ms"]), m["state"]) for m in rows]

    def oldest_recording_ms(self, region: str) -> int | None:
        """The start of the oldest recording in `region` (None: there is none)."""
        with self._read() as conn:
            found = conn.execute(
                select(func.min(recordings.c.start_ms)).where(recordings.c.region == region)
            ).scalar()
        return None if found is None else int(found)

    def newest_media_ms(self, region: str) -> int | None:
        """The end of the newest recording, MP4 slice or periodic snapshot in `region`
        (None: none). Media times run ahead of the clock for a push faster than real time,
        so the byte cap's windows go up to this, not to now. (One scan of `recordings`:
        only when the cap is passed.)"""
        with self._read() as conn:
            found = [
                conn.execute(select(func.max(col)).where(table.c.region == region)).scalar()
                for table, col in (
                    (recordings, recordings.c.end_ms),
                    (mp4_files, mp4_files.c.end_ms),
                    (snapshot_files, snapshot_files.c.time_ms),
                )
            ]
        times = [int(x) for x in found if x is not None]
        return max(times) if times else None

    def bytes_used(self, region: str) -> int:
        """Bytes of the recorded media catalogued in `region`: HLS segments, MP4 slices and
        periodic snapshots (the catalog's count: storage is not walked). Playlists, clips
        and API snapshots are not counted (small, and never retention's to delete)."""
        with self._read() as conn:
            total = conn.execute(
                select(func.coalesce(func.sum(recordings.c.size_bytes), 0)).where(
                    recordings.c.region == region
                )
            ).scalar_one()
            for table, size in (
                (mp4_files, mp4_files.c.size),
                (snapshot_files, snapshot_files.c.size),
            ):
                total += conn.execute(
                    select(func.coalesce(func.sum(size), 0)).where(table.c.region == region)
                ).scalar_one()
        return int(total)

    def recording_head(self, recording_id: int) -> tuple[int, int]:
        """(first seq kept, discontinuities trimmed with the head) of a recording."""
        with self._read() as conn:
            row = conn.execute(_HEAD, {"p_id": recording_id}).one_or_none()
        if row is None:
            raise NotFoundError(f"recording {recording_id} does not exist")
        return int(row[0]), int(row[1])

    # -- trimming ---------------------------------------------------------------------------

    def trim_recording(
        self,
        recording_id: int,
        *,
        cutoff: datetime | None = None,
        max_bytes: int | None = None,
        from_seq: int = 0,
        limit: int = 1000,
        grace_seconds: float = 60.0,
        deleted_notice: DeletedNotice | None = None,
        now: datetime | None = None,
    ) -> Trimmed:
        """One batch: delete up to `limit` of the recording's oldest unprotected segments
        (from seq `from_seq` on) that end at or before `cutoff` (age), or until `max_bytes`
        are freed (size), in one transaction; see the module docstring. `now` (default: the
        catalog's clock) is the sweeper's: which locks have expired, when blobs are due."""
        if cutoff is None and max_bytes is None:
            raise InvalidValueError("trim by age (cutoff) or by size (max_bytes)")
        cutoff_ms = None if cutoff is None else to_ms(cutoff)
        with self._write() as conn:
            rec = conn.execute(
                select(
                    recordings.c.stream_id,
                    recordings.c.state,
                    recordings.c.region,
                    recordings.c.playlist_key,
                    recordings.c.head_discontinuities,
                    projects.c.app_id,
                    streams.c.entry_point,
                    streams.c.name,
                )
                .join(streams, streams.c.id == recordings.c.stream_id)
                .join(projects, projects.c.id == streams.c.project_id)
                .where(recordings.c.id == recording_id)
            ).one_or_none()
            if rec is None:
                return Trimmed(0, 0, False, True, from_seq)
            stream = StreamRef(rec.app_id, rec.region, rec.entry_point, rec.name)
            lock_stream(conn, rec.stream_id)
            now_ms = self._now_ms() if now is None else to_ms(now)
            locks = [
                (int(r[0]), int(r[1]))
                for r in conn.execute(
                    select(retention_locks.c.start_ms, retention_locks.c.end_ms).where(
                        and_(
                            retention_locks.c.stream_id == rec.stream_id,
                            or_(
                                retention_locks.c.expires_ms.is_(None),
                                retention_locks.c.expires_ms > now_ms,
                            ),
                        )
                    )
                )
            ]
            is_open = rec.state == "open"
            last_seq = conn.execute(
                select(func.max(segments.c.seq)).where(segments.c.recording_id == recording_id)
            ).scalar_one_or_none()
            rows = conn.execute(
                select(
                    segments.c.id,
                    segments.c.seq,
                    segments.c.key,
                    segments.c.start_ms,
                    segments.c.end_ms,
                    segments.c.size,
                    segments.c.discontinuity,
                )
                .where(and_(segments.c.recording_id == recording_id, segments.c.seq >= from_seq))
                .order_by(segments.c.seq)
                .limit(limit)
            ).all()
            chosen: list[Any] = []
            freed = 0
            done = len(rows) < limit
            next_seq = rows[-1].seq + 1 if rows else from_seq
            for seg in rows:
                if (cutoff_ms is not None and seg.end_ms > cutoff_ms) or (
                    max_bytes is not None and freed >= max_bytes
                ):
                    done, next_seq = True, seg.seq
                    break
                if is_open and seg.seq == last_seq:
                    done, next_seq = True, seg.seq
                    break  # the newest catalogued segment of a live recording stays
                if _overlaps_any(seg.start_ms, seg.end_ms, locks):
                    if is_open:
                        done, next_seq = True, seg.seq
                        break  # a live recording loses only a head
                    continue
                chosen.append(seg)
                freed += int(seg.size)
            if not chosen:
                return Trimmed(0, 0, False, done, next_seq)
            gone = self._forget_segments(
                conn,
                recording_id,
                stream,
                rec,
                chosen,
                due_ms=now_ms + (seconds_to_ms(grace_seconds) if is_open else 0),
                deleted_notice=deleted_notice,
            )
        return Trimmed(len(chosen), freed, gone, done or gone, next_seq)

    @staticmethod
    def _forget_segments(
        conn: Connection,
        recording_id: int,
        stream: StreamRef,
        rec: Any,
        chosen: list[Any],
        *,
        due_ms: int,
        deleted_notice: DeletedNotice | None,
    ) -> bool:
        """Delete `chosen` segment rows, list their blobs, and move the recording's head
        (or delete the recording when nothing is left); True when it was deleted."""
        ids = [int(seg.id) for seg in chosen]
        conn.execute(delete(segments).where(segments.c.id.in_(ids)))
        conn.execute(
            insert(retention_trash),
            [
                {"key": stream.key(seg.key), "recording_id": recording_id, "due_ms": due_ms}
                for seg in chosen
            ],
        )
        head = conn.execute(
            select(segments.c.seq, segments.c.start_ms)
            .where(segments.c.recording_id == recording_id)
            .order_by(segments.c.seq)
            .limit(1)
        ).one_or_none()
        freed = sum(int(seg.size) for seg in chosen)
        if head is None:  # nothing left (only a closed recording gets here)
            conn.execute(delete(files).where(files.c.recording_id == recording_id))
            conn.execute(delete(recordings).where(recordings.c.id == recording_id))
            conn.execute(
                insert(retention_trash).values(
                    key=stream.key(rec.playlist_key), recording_id=None, due_ms=due_ms
                )
            )
            if deleted_notice is not None:
                insert_notices(conn, [deleted_notice(stream, file_part(rec.playlist_key))])
            return True
        head_seq = int(head.seq)
        gone_discontinuities = sum(1 for seg in chosen if seg.discontinuity and seg.seq < head_seq)
        # A hole left between kept segments: the first one after it starts a discontinuity.
        deleted = {int(seg.seq) for seg in chosen}
        for seq in sorted(deleted):
            if seq < head_seq or seq + 1 in deleted:
                continue
            after = conn.execute(
                select(func.min(segments.c.seq)).where(
                    and_(segments.c.recording_id == recording_id, segments.c.seq > seq)
                )
            ).scalar_one_or_none()
            if after is not None:
                conn.execute(
                    update(segments)
                    .where(and_(segments.c.recording_id == recording_id, segments.c.seq == after))
                    .values(discontinuity=True)
                )
        values: dict[str, Any] = {
            "head_seq": head_seq,
            "head_discontinuities": recordings.c.head_discontinuities + gone_discontinuities,
            "start_ms": int(head.start_ms),
            "segment_count": recordings.c.segment_count - len(chosen),
            "size_bytes": recordings.c.size_bytes - freed,
        }
        if rec.state != "open":
            values["end_ms"] = (
                select(func.max(segments.c.end_ms))
                .where(segments.c.recording_id == recording_id)
                .scalar_subquery()
            )
        conn.execute(update(recordings).where(recordings.c.id == recording_id).values(**values))
        return False

    # -- the list of blobs to delete --------------------------------------------------------
    # -- the sweeper's lease ----------------------------------------------------------------

    def take_retention_lease(
        self, region: str, node_id: str, seconds: float, token: str | None = None
    ) -> str | None:
        """Take (or, with the token it gave, renew) the one sweeper lease of `region`, by the
        database's clock; None when another node holds it."""
        check_region(region)
        check_node_id(node_id)
        new = token or secrets.token_hex(16)
        with self._write() as conn:
            insert_ignore(conn, retention_leases, {"region": region})
            mine = retention_leases.c.token == token if token is not None else false()
            done = conn.execute(
                update(retention_leases)
                .where(
                    and_(
                        retention_leases.c.region == region,
                        or_(
                            retention_leases.c.until_ms.is_(None),
                            retention_leases.c.until_ms < db_now_ms(),
                            mine,
                        ),
                    )
                )
                .values(node_id=node_id, token=new, until_ms=db_now_ms() + seconds_to_ms(seconds))
            ).rowcount
        return new if done == 1 else None

    def release_retention_lease(self, region: str, token: str) -> None:
        with self._write() as conn:
            conn.execute(
                update(retention_leases)
                .where(and_(retention_leases.c.region == region, retention_leases.c.token == token))
                .values(node_id=None, token=None, until_ms=None)
            )


def _after(after: tuple[int, int]) -> Any:
    start_ms, rec_id = after
    return or_(
        recordings.c.start_ms > start_ms,
        and_(recordings.c.start_ms == start_ms, recordings.c.id > rec_id),
    )
