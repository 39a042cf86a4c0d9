"""Publishes (one row per admitted push), their quality points, viewers per minute, and
where each node's API is reached.

A publish row is written when a push is admitted and ended when it ends; a node that
crashed leaves rows open, which its restart (or another node's sweep, once the stream's
live lease has run out) ends. Online streams are the open publishes whose stream's live
lease is held; the history is the ended ones. Quality points are written once a minute per
live publish; viewers per minute are counted by each node and added as a set, so two nodes
serving one viewer count it once."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    and_,
    bindparam,
    func,
    insert,
    select,
    update,
)

from liverec.catalog._base import RepoBase, insert_ignore
from liverec.catalog.dbclock import db_now_ms
from liverec.catalog.models import from_ms, to_ms
from liverec.catalog.names import check_node_id
from liverec.catalog.outbox import Notice, insert_notices
from liverec.catalog.schema import (
    nodes,
    play_minutes,
    projects,
    publish_quality,
    publishes,
    streams,
)
from liverec.errors import InvalidValueError
from liverec.layout import StreamRef

MINUTE_MS = 60_000


@dataclass(frozen=True, slots=True)
class Publish:
    """One push of a stream, live (end_time None) or ended."""

    id: int
    app_id: str
    entry_point: str
    stream_name: str
    node_id: str
    client_ip: str
    domain: str
    start_time: datetime
    end_time: datetime | None
    video_codec: str | None
    audio_codec: str | None
    width: int | None
    height: int | None
    fps: float | None
    bitrate: int | None
    node_ip: str = ""  # the address of the node that took it, as callbacks report it


# Builds the callback a publish ended without its node (a crash) is reported by.
EndNotice = Callable[[Publish], Notice | None]


@dataclass(frozen=True, slots=True)
class QualityPoint:
    stream_name: str
    time: datetime  # the minute's start
    bitrate: int  # bits/s
    frame_rate: float
    client_ip: str
    node_id: str


@dataclass(frozen=True, slots=True)
class PlayPoint:
    stream_name: str
    time: datetime  # the minute's start
    viewers: int


def viewer_id(address: str, agent: str) -> str:
    """A viewer as the play statistics count them: its address and user agent, hashed (no
    address is kept)."""
    return hashlib.sha256(f"{address}\n{agent}".encode()).hexdigest()[:32]


def _publish_columns() -> tuple[Any, ...]:
    return (
        publishes.c.id,
        projects.c.app_id,
        streams.c.entry_point,
        streams.c.name.label("stream_name"),
        publishes.c.node_id,
        publishes.c.client_ip,
        publishes.c.domain,
        publishes.c.start_ms,
        publishes.c.end_ms,
        publishes.c.video_codec,
        publishes.c.audio_codec,
        publishes.c.width,
        publishes.c.height,
        publishes.c.fps,
        publishes.c.bitrate,
        publishes.c.node_ip,
    )


def _select_publishes(app_id: str, entry_point: str) -> Select[Any]:
    return (
        select(*_publish_columns())
        .select_from(publishes)
        .join(streams, streams.c.id == publishes.c.stream_id)
        .join(projects, projects.c.id == streams.c.project_id)
        .where(and_(projects.c.app_id == app_id, streams.c.entry_point == entry_point))
    )


def _publish(m: Any) -> Publish:
    return Publish(
        id=int(m["id"]),
        app_id=m["app_id"],
        entry_point=m["entry_point"],
        stream_name=m["stream_name"],
        node_id=m["node_id"],
        client_ip=m["client_ip"],
        domain=m["domain"],
        start_time=from_ms(m["start_ms"]),
        end_time=None if m["end_ms"] is None else from_ms(m["end_ms"]),
        video_codec=m["video_codec"],
        audio_codec=m["audio_codec"],
        width=m["width"],
        height=m["height"],
        fps=m["fps"],
        bitrate=m["bitrate"],
        node_ip=m["node_ip"],
    )


# Statements of every publish (and every 10 s of one), built once (catalog/_base.py says
# why).
_END_PUBLISH = (
    update(publishes)
    .where(and_(publishes.c.id == bindparam("p_id"), publishes.c.end_ms.is_(None)))
    .values(end_ms=bindparam("p_end_ms"))
)
_SET_MEDIA = (
    update(publishes)
    .where(publishes.c.id == bindparam("p_id"))
    .values(
        video_codec=bindparam("p_video_codec"),
        audio_codec=bindparam("p_audio_codec"),
        width=bindparam("p_width"),
        height=bindparam("p_height"),
        fps=bindparam("p_fps"),
    )
)
_SET_RATES = (
    update(publishes)
    .where(publishes.c.id == bindparam("p_id"))
    .values(bitrate=bindparam("p_bitrate"), fps=bindparam("p_fps"))
)
_START_PUBLISH = insert(publishes).values(
    stream_id=bindparam("p_stream_id"),
    node_id=bindparam("p_node_id"),
    region=bindparam("p_region"),
    client_ip=bindparam("p_client_ip"),
    domain=bindparam("p_domain"),
    start_ms=bindparam("p_start_ms"),
    node_ip=bindparam("p_node_ip"),
)
_PUBLISH_STREAM = select(publishes.c.stream_id).where(publishes.c.id == bindparam("p_id"))


def _quality_ok(bitrate: int, frame_rate: float) -> bool:
    return bitrate >= 0 and 0 <= frame_rate < 10_000


class PublishesRepo(RepoBase):
    # -- a publish's life -----------------------------------------------------------------

    def start_publish(
        self,
        stream: StreamRef,
        *,
        node_id: str,
        client_ip: str,
        domain: str,
        start: datetime,
        node_ip: str = "",
        notices: Sequence[Notice] = (),
        stream_id: int | None = None,
    ) -> int:
        """A live publish of `stream` on `node_id`; returns its id. `notices` (its
        callbacks) are enqueued in the same transaction. `stream_id`: the stream's row,
        when the caller knows it (admission does), which saves looking it up."""
        check_node_id(node_id)
        with self._write() as conn:
            sid = self._ensure_stream(conn, stream) if stream_id is None else stream_id
            pk = conn.execute(
                _START_PUBLISH,
                {
                    "p_stream_id": sid,
                    "p_node_id": node_id,
                    "p_region": stream.region,
                    "p_client_ip": client_ip[:64],
                    "p_domain": domain[:253],
                    "p_start_ms": to_ms(start),
                    "p_node_ip": node_ip[:64],
                },
            ).inserted_primary_key
            insert_notices(conn, notices)
        assert pk is not None
        return int(pk[0])

    def end_publish(
        self,
        publish_id: int,
        end: datetime,
        notices: Sequence[Notice] = (),
        quality: tuple[datetime, int, float] | None = None,
    ) -> None:
        """The publish ended at `end` (idempotent: a publish ends once, and its `notices`
        are enqueued, in the same transaction, by the call that ends it). `quality`: its
        last minute's point (add_quality's minute, bitrate, frame_rate), written in the
        same transaction (a point out of range is left out: the end is what matters)."""
        with self._write() as conn:
            ended = conn.execute(
                _END_PUBLISH, {"p_id": publish_id, "p_end_ms": to_ms(end)}
            ).rowcount
            if ended:
                insert_notices(conn, notices)
            if quality is not None and _quality_ok(*quality[1:]):
                self._add_quality(conn, publish_id, *quality)

    def set_publish_media(
        self,
        publish_id: int,
        *,
        video_codec: str | None,
        audio_codec: str | None,
        width: int | None,
        height: int | None,
        fps: float | None,
        notices: Sequence[Notice] = (),
    ) -> None:
        """The media the publisher sends; `notices` enqueued in the same transaction."""
        with self._write() as conn:
            conn.execute(
                _SET_MEDIA,
                {
                    "p_id": publish_id,
                    "p_video_codec": video_codec,
                    "p_audio_codec": audio_codec,
                    "p_width": width,
                    "p_height": height,
                    "p_fps": fps,
                },
            )
            insert_notices(conn, notices)

    def set_publish_rates(self, publish_id: int, bitrate: int, frame_rate: float) -> None:
        """The live publish's current bitrate (bits/s) and frame rate."""
        with self._write() as conn:
            conn.execute(
                _SET_RATES,
                {"p_id": publish_id, "p_bitrate": max(0, bitrate), "p_fps": round(frame_rate, 3)},
            )

    def add_quality(
        self, publish_id: int, minute: datetime, bitrate: int, frame_rate: float
    ) -> None:
        """One minute's point (at most one per publish and minute); also the publish's
        current bitrate and frame rate."""
        if not _quality_ok(bitrate, frame_rate):
            raise InvalidValueError("bitrate or frame rate out of range")
        with self._write() as conn:
            self._add_quality(conn, publish_id, minute, bitrate, frame_rate)

    @staticmethod
    def _add_quality(
        conn: Connection, publish_id: int, minute: datetime, bitrate: int, frame_rate: float
    ) -> None:
        stream_id = conn.execute(_PUBLISH_STREAM, {"p_id": publish_id}).scalar_one_or_none()
        if stream_id is None:
            return  # deleted meanwhile: nothing to attach the point to
        insert_ignore(
            conn,
            publish_quality,
            {
                "publish_id": publish_id,
                "stream_id": stream_id,
                "minute_ms": to_ms(minute) // MINUTE_MS * MINUTE_MS,
                "bitrate": bitrate,
                "frame_rate": frame_rate,
            },
        )
        conn.execute(
            _SET_RATES, {"p_id": publish_id, "p_bitrate": bitrate, "p_fps": round(frame_rate, 3)}
        )

    def end_node_publishes(
        self, node_id: str, end: datetime, notice: EndNotice | None = None
    ) -> int:
        """End every publish a node left open (it restarted: none is still connected);
        each one's `notice` (its publish_end callback) enqueued in the same transaction."""
        where = and_(publishes.c.node_id == node_id, publishes.c.end_ms.is_(None))
        with self._write() as conn:
            if notice is not None:
                self._end_notices(conn, where, notice)
            return int(
                conn.execute(update(publishes).where(where).values(end_ms=to_ms(end))).rowcount
            )

    @staticmethod
    def _end_notices(conn: Connection, where: ColumnElement[bool], notice: EndNotice) -> None:
        """Enqueue the notices of the publishes `where` selects (read before they end)."""
        ids = list(conn.execute(select(publishes.c.id).where(where)).scalars())
        if not ids:
            return
        rows = conn.execute(
            select(*_publish_columns())
            .select_from(publishes)
            .join(streams, streams.c.id == publishes.c.stream_id)
            .join(projects, projects.c.id == streams.c.project_id)
            .where(publishes.c.id.in_(ids))
            .order_by(publishes.c.id)
        ).all()
        made = (notice(_publish(row._mapping)) for row in rows)
        insert_notices(conn, [n for n in made if n is not None])

    def end_orphan_publishes(self, notice: EndNotice | None = None) -> int:
        """End open publishes whose stream no node holds live any more (their node stopped
        and its live lease ran out), at the database's clock; `notice` as for
        end_node_publishes."""
        with self._write() as conn:
            held = (
                select(streams.c.id)
                .where(
                    and_(
                        streams.c.id == publishes.c.stream_id,
                        streams.c.live_node_id == publishes.c.node_id,
                        streams.c.live_expires_ms >= db_now_ms(),
                    )
                )
                .exists()
            )
            where = and_(publishes.c.end_ms.is_(None), ~held)
            if notice is not None:
                self._end_notices(conn, where, notice)
            return int(
                conn.execute(update(publishes).where(where).values(end_ms=db_now_ms())).rowcount
            )

    # -- reports ----------------------------------------------------------------------------

    def online_publishes(self, app_id: str, entry_point: str) -> list[Publish]:
        """The entry point's live publishes (open, their stream's live lease held by their
        node), oldest first."""
        stmt = (
            _select_publishes(app_id, entry_point)
            .where(
                and_(
                    publishes.c.end_ms.is_(None),
                    streams.c.live_node_id == publishes.c.node_id,
                    streams.c.live_expires_ms >= db_now_ms(),
                )
            )
            .order_by(publishes.c.start_ms, publishes.c.id)
        )
        with self._read() as conn:
            return [_publish(row._mapping) for row in conn.execute(stmt)]

    def publish_history(
        self,
        app_id: str,
        entry_point: str,
        start: datetime,
        end: datetime,
        stream_name: str | None = None,
    ) -> list[Publish]:
        """Ended publishes that ended in [start, end], newest end first."""
        stmt = _select_publishes(app_id, entry_point).where(
            and_(publishes.c.end_ms >= to_ms(start), publishes.c.end_ms <= to_ms(end))
        )
        if stream_name is not None:
            stmt = stmt.where(streams.c.name == stream_name)
        stmt = stmt.order_by(publishes.c.end_ms.desc(), publishes.c.id.desc())
        with self._read() as conn:
            return [_publish(row._mapping) for row in conn.execute(stmt)]

    def quality_points(
        self,
        app_id: str,
        entry_point: str,
        start: datetime,
        end: datetime,
        stream_name: str | None = None,
    ) -> list[QualityPoint]:
        """Per-minute points whose minute starts in [start, end], newest first."""
        stmt = (
            select(
                streams.c.name,
                publish_quality.c.minute_ms,
                publish_quality.c.bitrate,
                publish_quality.c.frame_rate,
                publishes.c.client_ip,
                publishes.c.node_id,
            )
            .select_from(publish_quality)
            .join(publishes, publishes.c.id == publish_quality.c.publish_id)
            .join(streams, streams.c.id == publish_quality.c.stream_id)
            .join(projects, projects.c.id == streams.c.project_id)
            .where(
                and_(
                    projects.c.app_id == app_id,
                    streams.c.entry_point == entry_point,
                    publish_quality.c.minute_ms >= to_ms(start),
                    publish_quality.c.minute_ms <= to_ms(end),
                )
            )
        )
        if stream_name is not None:
            stmt = stmt.where(streams.c.name == stream_name)
        stmt = stmt.order_by(publish_quality.c.minute_ms.desc(), streams.c.name)
        with self._read() as conn:
            return [
                QualityPoint(
                    stream_name=row.name,
                    time=from_ms(row.minute_ms),
                    bitrate=int(row.bitrate),
                    frame_rate=float(row.frame_rate),
                    client_ip=row.client_ip,
                    node_id=row.node_id,
                )
                for row in conn.execute(stmt)
            ]

    # -- viewers ----------------------------------------------------------------------------

    def add_viewers(self, stream: StreamRef, minute: datetime, viewers: Iterable[str]) -> None:
        """Count these viewers (viewer_id values) as having watched the stream in `minute`."""
        minute_ms = to_ms(minute) // MINUTE_MS * MINUTE_MS
        with self._write() as conn:
            sid = self._ensure_stream(conn, stream)
            for viewer in sorted(set(viewers)):
                insert_ignore(
                    conn,
                    play_minutes,
                    {"stream_id": sid, "minute_ms": minute_ms, "viewer": viewer[:32]},
                )

    def play_points(
        self,
        app_id: str,
        entry_point: str,
        start: datetime,
        end: datetime,
        stream_name: str | None = None,
    ) -> list[PlayPoint]:
        """Distinct viewers per stream and minute whose minute starts in [start, end],
        newest first."""
        stmt = (
            select(streams.c.name, play_minutes.c.minute_ms, func.count().label("viewers"))
            .select_from(play_minutes)
            .join(streams, streams.c.id == play_minutes.c.stream_id)
            .join(projects, projects.c.id == streams.c.project_id)
            .where(
                and_(
                    projects.c.app_id == app_id,
                    streams.c.entry_point == entry_point,
                    play_minutes.c.minute_ms >= to_ms(start),
                    play_minutes.c.minute_ms <= to_ms(end),
                )
            )
            .group_by(streams.c.name, play_minutes.c.minute_ms)
        )
        if stream_name is not None:
            stmt = stmt.where(streams.c.name == stream_name)
        stmt = stmt.order_by(play_minutes.c.minute_ms.desc(), streams.c.name)
        with self._read() as conn:
            return [
                PlayPoint(row.name, from_ms(row.minute_ms), int(row.viewers))
                for row in conn.execute(stmt)
            ]

    # -- nodes ------------------------------------------------------------------------------

    def register_node(self, node_id: str, api_url: str) -> None:
        """Where other nodes reach this node's API (kept fresh by the heartbeat)."""
        check_node_id(node_id)
        if not api_url.startswith(("http://", "https://")) or len(api_url) > 255:
            raise InvalidValueError(f"not a node API URL: {api_url[:64]!r}")
        with self._write() as conn:
            done = conn.execute(
                update(nodes)
                .where(nodes.c.node_id == node_id)
                .values(api_url=api_url, seen_ms=db_now_ms())
            ).rowcount
            if not done:
                insert_ignore(conn, nodes, {"node_id": node_id, "api_url": api_url, "seen_ms": 0})
                conn.execute(
                    update(nodes).where(nodes.c.node_id == node_id).values(seen_ms=db_now_ms())
                )

    def node_api_url(self, node_id: str) -> str | None:
        with self._read() as conn:
            url = conn.execute(
                select(nodes.c.api_url).where(nodes.c.node_id == node_id)
            ).scalar_one_or_none()
        return None if url is None else str(url)
