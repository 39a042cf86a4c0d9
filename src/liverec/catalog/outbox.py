"""The callback outbox: every notice (an FLS callback to send) is kept in the catalog until
its receiver took it, so that none is lost to a crash, a restart, a dead node or a receiver
that is down. Delivery (events/delivery.py) is at least once.

- Enqueued in the transaction of the change it reports (`insert_notices(conn, ...)`, which
  close_recording, start_publish, end_publish, set_publish_media, add_snapshot_file and
  add_mp4_file call with the notices they are given), or alone (`enqueue_notices`) before
  the action it reports is acknowledged. Only notices that the stream's callback
  configuration subscribes to are kept (catalog/callbacks.py): with callbacks off, the
  cost is one indexed read.
- In order per stream: each stream has a queue row (`notice_queues`), and its notices go
  out one at a time in id order; a notice is not sent before the earlier ones of its
  stream are delivered or given up. An enqueue updates the queue row before it inserts
  the notice, which on PostgreSQL locks the row until commit, so a stream's ids are given
  in commit order (SQLite has one writer at a time).
- Claimed per queue, with a lease on the database's clock: a worker claims due queues
  (`FOR UPDATE SKIP LOCKED` on PostgreSQL; on SQLite the claim's `BEGIN IMMEDIATE` makes
  claims one at a time), sends each queue's head, and on success deletes it and takes the
  next one in the same transaction, lease renewed. On a failure the queue is due again
  after the backoff the worker asks for, and the lease is given back. A worker that dies
  keeps its lease until it runs out; then any node's worker claims the queue, and the
  notice it was sending goes out again: receivers must expect duplicates (same noticeId).
- Given up: a notice whose try failed and that is older than the retry window moves to
  `dead_notices` (the stream's next notice goes on at once). A dead notice can be
  redelivered: it goes to the end of its stream's queue with its noticeId and a new
  window."""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    RowMapping,
    Select,
    Table,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from liverec.catalog._base import STREAM_ID_OF, RepoBase, stream_binds
from liverec.catalog.callbacks import callback_row, subscribed
from liverec.catalog.dbclock import db_now_ms
from liverec.catalog.models import from_ms, seconds_to_ms, to_ms
from liverec.catalog.names import check_node_id
from liverec.catalog.schema import (
    dead_notices,
    delivered_notices,
    notice_queues,
    notices,
    projects,
    streams,
)
from liverec.errors import NotFoundError
from liverec.layout import StreamRef

MAX_ERROR_LEN = 300


@dataclass(frozen=True, slots=True)
class Notice:
    """A callback to send: the stream it is about (which orders it), its FLS eventType and
    its payload (JSON-serialisable)."""

    stream: StreamRef
    event_type: int
    payload: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ClaimedNotice:
    """The head of a stream's queue, claimed by a worker (`token` is its lease)."""

    id: int
    stream_id: int
    token: str
    notice_id: str
    app_id: str
    entry_point: str
    stream_name: str
    event_type: int
    payload: str  # JSON, as enqueued
    attempts: int  # tries made before this one
    created_at: datetime


@dataclass(frozen=True, slots=True)
class DeliveredNotice:
    id: int
    notice_id: str
    entry_point: str
    stream_name: str
    event_type: int
    created_at: datetime
    delivered_at: datetime
    attempts: int


@dataclass(frozen=True, slots=True)
class DeadNotice:
    """A notice given up (dead letter)."""

    id: int
    notice_id: str
    app_id: str
    entry_point: str
    stream_name: str
    event_type: int
    payload: str
    created_at: datetime
    failed_at: datetime
    attempts: int
    last_error: str


def _payload_json(payload: Mapping[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


# The statements of every enqueue (each publish makes several), built once
# (catalog/_base.py says why).
_NEW_QUEUE = {
    "postgresql": postgresql.insert(notice_queues)
    .values(stream_id=bindparam("p_stream_id"))
    .on_conflict_do_nothing(),
    "sqlite": sqlite.insert(notice_queues)
    .values(stream_id=bindparam("p_stream_id"))
    .on_conflict_do_nothing(),
}
_QUEUE_DUE = (
    update(notice_queues)
    .where(notice_queues.c.stream_id == bindparam("p_stream_id"))
    .values(due_ms=func.coalesce(notice_queues.c.due_ms, db_now_ms()))
)
_INSERT_NOTICE = insert(notices).values(
    stream_id=bindparam("p_stream_id"),
    notice_id=bindparam("p_notice_id"),
    event_type=bindparam("p_event_type"),
    payload=bindparam("p_payload"),
    created_ms=db_now_ms(),
    attempts=0,
)
_STREAM_ID = select(STREAM_ID_OF)


def _queue(conn: Connection, stream_id: int) -> None:
    """The stream's queue exists and is due (unless it is due later already, in backoff):
    locks its row until commit on PostgreSQL."""
    binds = {"p_stream_id": stream_id}
    conn.execute(_NEW_QUEUE[conn.dialect.name], binds)
    conn.execute(_QUEUE_DUE, binds)


def _stream_id(conn: Connection, stream: StreamRef) -> int:
    """The stream's row id: one statement when it exists (a publish's stream does)."""
    sid = conn.execute(_STREAM_ID, stream_binds(stream)).scalar_one_or_none()
    return RepoBase._ensure_stream(conn, stream) if sid is None else int(sid)


def insert_notices(conn: Connection, items: Iterable[Notice]) -> int:
    """Enqueue, in the caller's transaction, the notices their stream's callback
    configuration subscribes to; returns how many."""
    configs: dict[tuple[str, str], RowMapping | None] = {}
    count = 0
    for item in items:
        key = (item.stream.app_id, item.stream.entry_point)
        if key not in configs:
            configs[key] = callback_row(conn, *key)
        if not subscribed(configs[key], item.event_type):
            continue
        stream_id = _stream_id(conn, item.stream)
        _queue(conn, stream_id)
        conn.execute(
            _INSERT_NOTICE,
            {
                "p_stream_id": stream_id,
                "p_notice_id": uuid.uuid4().hex,
                "p_event_type": item.event_type,
                "p_payload": _payload_json(item.payload),
            },
        )
        count += 1
    return count


_NOTICE_COLUMNS = (
    notices.c.id,
    notices.c.stream_id,
    notices.c.notice_id,
    projects.c.app_id,
    streams.c.entry_point,
    streams.c.name.label("stream_name"),
    notices.c.event_type,
    notices.c.payload,
    notices.c.attempts,
    notices.c.created_ms,
)


def _heads(conn: Connection, stream_ids: Sequence[int]) -> dict[int, RowMapping]:
    """The first (lowest id) notice of each of these queues that has one."""
    earlier = notices.alias("earlier")
    first = (
        select(func.min(earlier.c.id))
        .where(earlier.c.stream_id == notices.c.stream_id)
        .scalar_subquery()
    )
    rows = conn.execute(
        select(*_NOTICE_COLUMNS)
        .join(streams, streams.c.id == notices.c.stream_id)
        .join(projects, projects.c.id == streams.c.project_id)
        .where(and_(notices.c.stream_id.in_(stream_ids), notices.c.id == first))
    ).mappings()
    return {int(row["stream_id"]): row for row in rows}


def _claimed(row: RowMapping, token: str) -> ClaimedNotice:
    return ClaimedNotice(
        id=int(row["id"]),
        stream_id=int(row["stream_id"]),
        token=token,
        notice_id=row["notice_id"],
        app_id=row["app_id"],
        entry_point=row["entry_point"],
        stream_name=row["stream_name"],
        event_type=int(row["event_type"]),
        payload=row["payload"],
        attempts=int(row["attempts"]),
        created_at=from_ms(row["created_ms"]),
    )


def _now(conn: Connection) -> int:
    return int(conn.execute(select(db_now_ms())).scalar_one())


_NO_LEASE = {"lease_node": None, "lease_token": None, "lease_until_ms": None}
_ANY_DUE = (
    select(notice_queues.c.stream_id)
    .where(
        and_(
            notice_queues.c.due_ms <= db_now_ms(),
            or_(
                notice_queues.c.lease_until_ms.is_(None),
                notice_queues.c.lease_until_ms < db_now_ms(),
            ),
        )
    )
    .limit(1)
)


def _newest_of_project(table: Table, app_id: str, limit: int, before_id: int | None) -> Select[Any]:
    """A project's rows of a per-stream notice table (dead or delivered) with their app,
    entry point and stream names, newest first, at most `limit` (1-1000), below
    `before_id` when paging."""
    stmt = (
        select(
            table,
            projects.c.app_id,
            streams.c.entry_point,
            streams.c.name.label("stream_name"),
        )
        .join(streams, streams.c.id == table.c.stream_id)
        .join(projects, projects.c.id == streams.c.project_id)
        .where(projects.c.app_id == app_id)
        .order_by(table.c.id.desc())
        .limit(max(1, min(limit, 1000)))
    )
    if before_id is not None:
        stmt = stmt.where(table.c.id < before_id)
    return stmt


# Delivered notices kept for the record (the console's "recent deliveries"), all projects.
MAX_DELIVERED = 10_000
_PRUNE_EVERY = 100


def _keep_delivered(conn: Connection, claim: ClaimedNotice) -> None:
    row_id = conn.execute(
        insert(delivered_notices)
        .values(
            stream_id=claim.stream_id,
            notice_id=claim.notice_id,
            event_type=claim.event_type,
            created_ms=to_ms(claim.created_at),
            delivered_ms=db_now_ms(),
            attempts=claim.attempts + 1,
        )
        .returning(delivered_notices.c.id)
    ).scalar_one()
    if row_id % _PRUNE_EVERY == 0:  # now and then, not on every delivery
        conn.execute(
            delete(delivered_notices).where(delivered_notices.c.id <= row_id - MAX_DELIVERED)
        )


class OutboxRepo(RepoBase):
    def enqueue_notices(self, items: Iterable[Notice]) -> int:
        """Enqueue notices that report no catalog change of their own (a test notice, a
        clip made); returns how many the callback configuration kept."""
        with self._write() as conn:
            return insert_notices(conn, items)

    def claim_notices(self, node_id: str, limit: int, lease_seconds: float) -> list[ClaimedNotice]:
        """Claim up to `limit` due queues for `node_id` and return their heads, oldest
        notice first. A queue found empty is marked idle."""
        check_node_id(node_id)
        token = secrets.token_hex(8)
        lease_ms = seconds_to_ms(lease_seconds)
        # Most polls find nothing due: a read says so without a write transaction (which
        # takes SQLite's write lock and, on both databases, costs several statements).
        with self._read() as conn:
            if conn.execute(_ANY_DUE).first() is None:
                return []
        with self._write() as conn:
            now = _now(conn)
            due = (
                select(notice_queues.c.stream_id)
                .where(
                    and_(
                        notice_queues.c.due_ms <= now,
                        or_(
                            notice_queues.c.lease_until_ms.is_(None),
                            notice_queues.c.lease_until_ms < now,
                        ),
                    )
                )
                .order_by(notice_queues.c.due_ms)
                .limit(max(1, limit))
                .with_for_update(skip_locked=True)
            )
            ids = [int(i) for i in conn.execute(due).scalars()]
            if not ids:
                return []
            heads = _heads(conn, ids)
            empty = [i for i in ids if i not in heads]
            if empty:
                conn.execute(
                    update(notice_queues)
                    .where(notice_queues.c.stream_id.in_(empty))
                    .values(due_ms=None, **_NO_LEASE)
                )
            if heads:
                conn.execute(
                    update(notice_queues)
                    .where(notice_queues.c.stream_id.in_(list(heads)))
                    .values(lease_node=node_id, lease_token=token, lease_until_ms=now + lease_ms)
                )
        return sorted((_claimed(row, token) for row in heads.values()), key=lambda c: c.id)

    @staticmethod
    def _hold(conn: Connection, claim: ClaimedNotice) -> bool:
        """Lock the claim's queue row; whether the claim still holds its lease (no other
        worker claimed the queue since)."""
        row = conn.execute(
            select(notice_queues.c.stream_id)
            .where(
                and_(
                    notice_queues.c.stream_id == claim.stream_id,
                    notice_queues.c.lease_token == claim.token,
                )
            )
            .with_for_update()
        ).first()
        return row is not None

    @staticmethod
    def _next(conn: Connection, claim: ClaimedNotice, lease_ms: int) -> ClaimedNotice | None:
        """The queue's next notice under the same lease (renewed), or the queue idle."""
        head = _heads(conn, [claim.stream_id]).get(claim.stream_id)
        where = notice_queues.c.stream_id == claim.stream_id
        if head is None:
            conn.execute(update(notice_queues).where(where).values(due_ms=None, **_NO_LEASE))
            return None
        conn.execute(
            update(notice_queues).where(where).values(lease_until_ms=db_now_ms() + lease_ms)
        )
        return _claimed(head, claim.token)

    def notice_delivered(self, claim: ClaimedNotice, lease_seconds: float) -> ClaimedNotice | None:
        """The receiver took the notice: forget it, and return the stream's next notice,
        claimed under the same lease (None: none, or the lease was lost meanwhile)."""
        with self._write() as conn:
            held = self._hold(conn, claim)
            gone = conn.execute(delete(notices).where(notices.c.id == claim.id)).rowcount
            if gone:
                _keep_delivered(conn, claim)
            if not held:
                return None
            return self._next(conn, claim, seconds_to_ms(lease_seconds))

    def notice_failed(
        self,
        claim: ClaimedNotice,
        error: str,
        *,
        retry_in: float,
        keep_for: float,
        lease_seconds: float,
    ) -> tuple[bool, ClaimedNotice | None]:
        """A try failed with `error`. If the notice is older than `keep_for` seconds it is
        given up (a dead notice) and the stream's next notice is returned, claimed;
        otherwise the queue is due again in `retry_in` seconds and the lease given back.
        Returns (given up, next claim). Nothing changes if the lease was lost meanwhile."""
        with self._write() as conn:
            if not self._hold(conn, claim):
                return False, None
            row = conn.execute(
                update(notices)
                .where(notices.c.id == claim.id)
                .values(attempts=notices.c.attempts + 1, last_error=error[:MAX_ERROR_LEN])
                .returning(
                    notices.c.notice_id,
                    notices.c.event_type,
                    notices.c.payload,
                    notices.c.created_ms,
                    notices.c.attempts,
                )
            ).first()
            lease_ms = seconds_to_ms(lease_seconds)
            if row is None:  # a late worker of an older lease delivered it
                return False, self._next(conn, claim, lease_ms)
            now = _now(conn)
            if row.created_ms + seconds_to_ms(keep_for) <= now:
                conn.execute(
                    insert(dead_notices).values(
                        stream_id=claim.stream_id,
                        notice_id=row.notice_id,
                        event_type=row.event_type,
                        payload=row.payload,
                        created_ms=row.created_ms,
                        failed_ms=now,
                        attempts=row.attempts,
                        last_error=error[:MAX_ERROR_LEN] or "failed",
                    )
                )
                conn.execute(delete(notices).where(notices.c.id == claim.id))
                return True, self._next(conn, claim, lease_ms)
            conn.execute(
                update(notice_queues)
                .where(notice_queues.c.stream_id == claim.stream_id)
                .values(due_ms=now + seconds_to_ms(retry_in), **_NO_LEASE)
            )
            return False, None

    def release_notice_claim(self, claim: ClaimedNotice) -> None:
        """Give a claimed queue back, due now (a worker that sent its share, or stops)."""
        with self._write() as conn:
            conn.execute(
                update(notice_queues)
                .where(
                    and_(
                        notice_queues.c.stream_id == claim.stream_id,
                        notice_queues.c.lease_token == claim.token,
                    )
                )
                .values(**_NO_LEASE)
            )

    def release_notice_leases(self, node_id: str) -> int:
        """Give back every queue `node_id` holds (at its start: nothing of a previous run
        of this node is still sending)."""
        with self._write() as conn:
            return int(
                conn.execute(
                    update(notice_queues)
                    .where(notice_queues.c.lease_node == node_id)
                    .values(**_NO_LEASE)
                ).rowcount
            )

    def pending_notices(self, app_id: str | None = None) -> int:
        """How many notices wait in the outbox (of one project, or of all)."""
        stmt = select(func.count()).select_from(notices)
        if app_id is not None:
            stmt = (
                stmt.join(streams, streams.c.id == notices.c.stream_id)
                .join(projects, projects.c.id == streams.c.project_id)
                .where(projects.c.app_id == app_id)
            )
        with self._read() as conn:
            return int(conn.execute(stmt).scalar_one())

    # -- dead letters -------------------------------------------------------------------

    def dead_notices(
        self, app_id: str, *, limit: int = 100, before_id: int | None = None
    ) -> list[DeadNotice]:
        """The project's given-up notices, newest first (`before_id` pages on)."""
        stmt = _newest_of_project(dead_notices, app_id, limit, before_id)
        with self._read() as conn:
            rows = conn.execute(stmt).all()
        return [
            DeadNotice(
                id=int(row.id),
                notice_id=row.notice_id,
                app_id=row.app_id,
                entry_point=row.entry_point,
                stream_name=row.stream_name,
                event_type=int(row.event_type),
                payload=row.payload,
                created_at=from_ms(row.created_ms),
                failed_at=from_ms(row.failed_ms),
                attempts=int(row.attempts),
                last_error=row.last_error,
            )
            for row in rows
        ]

    def delivered_notices(
        self, app_id: str, *, limit: int = 100, before_id: int | None = None
    ) -> list[DeliveredNotice]:
        """The project's notices its receivers took, newest first (`before_id` pages on;
        the newest MAX_DELIVERED of all projects are kept)."""
        stmt = _newest_of_project(delivered_notices, app_id, limit, before_id)
        with self._read() as conn:
            rows = conn.execute(stmt).all()
        return [
            DeliveredNotice(
                id=int(row.id),
                notice_id=row.notice_id,
                entry_point=row.entry_point,
                stream_name=row.stream_name,
                event_type=int(row.event_type),
                created_at=from_ms(row.created_ms),
                delivered_at=from_ms(row.delivered_ms),
                attempts=int(row.attempts),
            )
            for row in rows
        ]

    def redeliver_notice(self, app_id: str, dead_id: int) -> None:
        """Put a given-up notice back at the end of its stream's queue (same noticeId, a
        new retry window). NotFoundError if the project has no such dead notice."""
        with self._write() as conn:
            row = conn.execute(
                select(dead_notices)
                .join(streams, streams.c.id == dead_notices.c.stream_id)
                .join(projects, projects.c.id == streams.c.project_id)
                .where(and_(dead_notices.c.id == dead_id, projects.c.app_id == app_id))
                .with_for_update(of=dead_notices)
            ).first()
            if row is None:
                raise NotFoundError(f"no failed callback {dead_id} in project {app_id!r}")
            _queue(conn, row.stream_id)
            conn.execute(
                insert(notices).values(
                    stream_id=row.stream_id,
                    notice_id=row.notice_id,
                    event_type=row.event_type,
                    payload=row.payload,
                    created_ms=db_now_ms(),
                    attempts=0,
                )
            )
            conn.execute(delete(dead_notices).where(dead_notices.c.id == dead_id))
