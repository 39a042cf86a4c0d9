"""Per-stream state: the recording switch, the live-publisher lease, and the names taken in
the stream folder `record/{entry_point}/{stream_name}/` (clips, snapshots, playlists)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    and_,
    bindparam,
    case,
    delete,
    exists,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from liverec.catalog._base import STREAM_ID_OF, RepoBase, stream_binds
from liverec.catalog.dbclock import db_now_ms
from liverec.catalog.models import from_ms, seconds_to_ms, to_ms
from liverec.catalog.names import (
    check_entry_point,
    check_file_name,
    check_node_id,
    check_stream_name,
)
from liverec.catalog.schema import (
    entry_points,
    files,
    projects,
    record_settings,
    snapshot_settings,
    streams,
)
from liverec.errors import ConflictError, InvalidValueError, NotFoundError
from liverec.layout import StreamRef
from liverec.media.names import CLIP_EXTENSIONS, SNAPSHOT_EXTENSIONS

# The kinds of file a user names, and the extensions each must have.
FILE_KINDS = {"clip": CLIP_EXTENSIONS, "snapshot": SNAPSHOT_EXTENSIONS}


@dataclass(frozen=True, slots=True)
class LiveControl:
    """What the catalog says of a stream a node is publishing (see live_controls)."""

    app_id: str
    entry_point: str
    stream_name: str
    # True: record it (its own switch or task is on, or it has none and the entry point
    # records); False: its own switch is off; None: nothing says to change what it does (a
    # task ran out while it was live: the live push goes on as it is).
    record: bool | None
    banned_until: datetime | None
    hls: bool = True  # the entry point's outputs in the node's region
    mp4: bool = False
    snapshot_interval: int | None = None  # seconds; None: periodic snapshots off


def own_switch() -> Any:
    """The stream's own recording switch, NULL when it has none or its task has run out."""
    return case(
        (
            or_(streams.c.task_until_ms.is_(None), streams.c.task_until_ms >= db_now_ms()),
            streams.c.record_enabled,
        ),
        else_=None,
    )


# Statements of every publish, built once (catalog/_base.py says why).
_TAKE_LIVE = (
    update(streams)
    .where(
        and_(
            streams.c.id == bindparam("p_sid"),
            or_(streams.c.live_node_id.is_(None), streams.c.live_expires_ms < db_now_ms()),
        )
    )
    .values(
        live_node_id=bindparam("p_node_id"),
        live_expires_ms=db_now_ms() + bindparam("p_lease_ms", type_=BigInteger),
    )
)


def _new_live_stream(insert: Any) -> Any:
    """A stream's row made with its live lease held (none if it exists), in a dialect."""
    return (
        insert(streams)
        .values(
            project_id=bindparam("p_project_id"),
            entry_point=bindparam("p_entry_point"),
            name=bindparam("p_name"),
            live_node_id=bindparam("p_node_id"),
            live_expires_ms=db_now_ms() + bindparam("p_lease_ms", type_=BigInteger),
        )
        .on_conflict_do_nothing()
        .returning(streams.c.id)
    )


_NEW_LIVE_STREAM = {
    "postgresql": _new_live_stream(postgresql.insert),
    "sqlite": _new_live_stream(sqlite.insert),
}
_RELEASE_LIVE = (
    update(streams)
    .where(and_(streams.c.id == STREAM_ID_OF, streams.c.live_node_id == bindparam("p_node_id")))
    .values(live_node_id=None, live_expires_ms=None)
)
_BANNED_UNTIL = select(streams.c.ban_resume_ms).where(
    and_(streams.c.id == STREAM_ID_OF, streams.c.ban_resume_ms > db_now_ms())
)


# Built once: polled every second (StreamsRepo.live_controls).
_LIVE_CONTROLS = (
    select(
        projects.c.app_id,
        streams.c.entry_point,
        streams.c.name,
        entry_points.c.record_enabled,
        own_switch().label("stream_enabled"),
        case((streams.c.ban_resume_ms > db_now_ms(), streams.c.ban_resume_ms)).label("banned_ms"),
        record_settings.c.hls_enabled,
        record_settings.c.mp4_enabled,
        snapshot_settings.c.enabled.label("snapshots"),
        snapshot_settings.c.interval_s,
    )
    .select_from(streams)
    .join(projects, projects.c.id == streams.c.project_id)
    .outerjoin(
        record_settings,
        and_(
            record_settings.c.project_id == streams.c.project_id,
            record_settings.c.entry_point == streams.c.entry_point,
            record_settings.c.region == bindparam("p_region"),
        ),
    )
    .outerjoin(
        snapshot_settings,
        and_(
            snapshot_settings.c.project_id == streams.c.project_id,
            snapshot_settings.c.entry_point == streams.c.entry_point,
            snapshot_settings.c.region == bindparam("p_region"),
        ),
    )
    .outerjoin(
        entry_points,
        and_(
            entry_points.c.project_id == streams.c.project_id,
            entry_points.c.name == streams.c.entry_point,
        ),
    )
    .where(streams.c.live_node_id == bindparam("p_node_id"))
)


class StreamsRepo(RepoBase):
    # -- the recording switch -----------------------------------------------------------------

    def set_stream_recording(
        self, stream: StreamRef, enabled: bool | None, *, until: datetime | None = None
    ) -> None:
        """Turn standard recording on or off for one stream (None: follow the entry point),
        until `until` (a recording task covers pushes that start before then; a push live at
        that moment goes on being recorded) or for good. Per-stream state is the same in
        every region: `stream.region` is not used."""
        with self._write() as conn:
            pid = self._project_id(conn, stream.app_id)
            found = conn.execute(
                select(entry_points.c.id).where(
                    and_(
                        entry_points.c.project_id == pid,
                        entry_points.c.name == stream.entry_point,
                    )
                )
            ).first()
            if found is None:
                raise NotFoundError(f"entry point {stream.entry_point!r} does not exist")
            sid = self._ensure_stream(conn, stream)
            conn.execute(
                update(streams)
                .where(streams.c.id == sid)
                .values(
                    record_enabled=enabled,
                    task_until_ms=None if until is None else to_ms(until),
                )
            )

    def stream_recording_enabled(self, stream: StreamRef) -> bool:
        """The entry point's record_enabled, unless the stream has its own setting (and, for
        a recording task, the task has not run out by the database's clock)."""
        with self._read() as conn:
            row = conn.execute(
                select(
                    entry_points.c.record_enabled,
                    own_switch().label("stream_enabled"),
                )
                .select_from(entry_points)
                .join(projects, projects.c.id == entry_points.c.project_id)
                .outerjoin(
                    streams,
                    and_(
                        streams.c.project_id == entry_points.c.project_id,
                        streams.c.entry_point == entry_points.c.name,
                        streams.c.name == stream.stream_name,
                    ),
                )
                .where(
                    and_(
                        projects.c.app_id == stream.app_id,
                        entry_points.c.name == stream.entry_point,
                    )
                )
            ).one_or_none()
            if row is None:
                self._project_id(conn, stream.app_id)
                raise NotFoundError(f"entry point {stream.entry_point!r} does not exist")
        ep_enabled = row._mapping["record_enabled"]
        stream_enabled = row._mapping["stream_enabled"]
        return bool(ep_enabled if stream_enabled is None else stream_enabled)

    # -- bans -------------------------------------------------------------------------------

    def ban_stream(self, stream: StreamRef, resume: datetime) -> None:
        """Refuse publishes of the stream (and end a live one) until `resume`."""
        with self._write() as conn:
            sid = self._ensure_stream(conn, stream)
            conn.execute(
                update(streams).where(streams.c.id == sid).values(ban_resume_ms=to_ms(resume))
            )

    def unban_stream(self, stream: StreamRef) -> bool:
        """Lift a ban; False if the stream was not banned (or its ban had run out)."""
        with self._write() as conn:
            lifted = conn.execute(
                update(streams)
                .where(
                    and_(
                        streams.c.id == self._stream_id_subquery(stream),
                        streams.c.ban_resume_ms > db_now_ms(),
                    )
                )
                .values(ban_resume_ms=None)
            ).rowcount
            conn.execute(
                update(streams)
                .where(streams.c.id == self._stream_id_subquery(stream))
                .values(ban_resume_ms=None)
            )
        return bool(lifted)

    def banned_until(self, stream: StreamRef) -> datetime | None:
        """When the stream's ban runs out, if it is banned now (by the database's clock)."""
        with self._read() as conn:
            resume = conn.execute(_BANNED_UNTIL, stream_binds(stream)).scalar_one_or_none()
        return None if resume is None else from_ms(resume)

    def banned_streams(self, app_id: str, entry_point: str) -> list[tuple[str, datetime]]:
        """(stream name, resume time) of the entry point's streams banned now, by name."""
        with self._read() as conn:
            rows = conn.execute(
                select(streams.c.name, streams.c.ban_resume_ms)
                .join(projects, projects.c.id == streams.c.project_id)
                .where(
                    and_(
                        projects.c.app_id == app_id,
                        streams.c.entry_point == entry_point,
                        streams.c.ban_resume_ms > db_now_ms(),
                    )
                )
                .order_by(streams.c.name)
            ).all()
        return [(row.name, from_ms(row.ban_resume_ms)) for row in rows]

    def live_controls(self, node_id: str, region: str) -> list[LiveControl]:
        """For each stream this node holds the live lease of: whether it is to be recorded
        now, whether it is banned now, and its entry point's outputs and periodic snapshots
        in `region`. One statement; polled every second or so, so that a ban, a recording
        task or a settings change reaches the live publish on whichever node holds it."""
        with self._read() as conn:
            rows = conn.execute(_LIVE_CONTROLS, {"p_node_id": node_id, "p_region": region}).all()
        out = []
        for row in rows:
            m = row._mapping
            own, ep_on = m["stream_enabled"], m["record_enabled"]
            record = bool(own) if own is not None else (True if ep_on else None)
            out.append(
                LiveControl(
                    app_id=m["app_id"],
                    entry_point=m["entry_point"],
                    stream_name=m["name"],
                    record=record,
                    banned_until=None if m["banned_ms"] is None else from_ms(m["banned_ms"]),
                    hls=m["hls_enabled"] is None or bool(m["hls_enabled"]),
                    mp4=bool(m["mp4_enabled"]),
                    snapshot_interval=int(m["interval_s"]) if m["snapshots"] else None,
                )
            )
        return out

    # -- one live publisher per stream, across nodes --------------------------------------------

    def try_acquire_live(self, stream: StreamRef, node_id: str, lease_seconds: float) -> bool:
        """Take the stream's live lease for this node: False while another publisher (on any
        node, this one included) holds an unexpired lease. Renewed by renew_leases."""
        return self.take_live(stream, node_id, lease_seconds) is not None

    def take_live(
        self,
        stream: StreamRef,
        node_id: str,
        lease_seconds: float,
        stream_id: int | None = None,
        project_id: int | None = None,
    ) -> int | None:
        """try_acquire_live, in one statement when the caller read what the stream's row is
        (publish_settings): by its id, or, for a stream that has none yet, by making it
        with the lease held (`project_id` given). Returns the stream's id if the lease was
        taken, else None."""
        check_node_id(node_id)
        lease = {"p_node_id": node_id, "p_lease_ms": seconds_to_ms(lease_seconds)}
        with self._write() as conn:
            if stream_id is None and project_id is not None:
                made = conn.execute(
                    _NEW_LIVE_STREAM[conn.dialect.name],
                    {
                        "p_project_id": project_id,
                        "p_entry_point": check_entry_point(stream.entry_point),
                        "p_name": check_stream_name(stream.stream_name),
                        **lease,
                    },
                ).scalar_one_or_none()
                if made is not None:
                    return int(made)
                # Made meanwhile (a racing publisher, a ban): taken as any other below.
            sid = self._ensure_stream(conn, stream) if stream_id is None else stream_id
            taken = conn.execute(_TAKE_LIVE, {"p_sid": sid, **lease}).rowcount
        return sid if taken == 1 else None

    def release_live(self, stream: StreamRef, node_id: str) -> None:
        """Give the live lease back (only if this node holds it)."""
        with self._write() as conn:
            conn.execute(_RELEASE_LIVE, {**stream_binds(stream), "p_node_id": node_id})

    def release_node_live(self, node_id: str) -> int:
        """Give back every live lease the node holds (a node restarting under the same
        node_id knows none of its old publishers is still connected). Returns how many."""
        with self._write() as conn:
            return int(
                conn.execute(
                    update(streams)
                    .where(streams.c.live_node_id == node_id)
                    .values(live_node_id=None, live_expires_ms=None)
                ).rowcount
            )

    def live_holder(self, stream: StreamRef) -> str | None:
        """The node holding an unexpired live lease on the stream, if any."""
        with self._read() as conn:
            holder = conn.execute(
                select(streams.c.live_node_id).where(
                    and_(
                        streams.c.id == self._stream_id_subquery(stream),
                        streams.c.live_expires_ms >= db_now_ms(),
                    )
                )
            ).scalar_one_or_none()
        return None if holder is None else str(holder)

    # -- names in the stream folder ---------------------------------------------------------

    def reserve_file(self, stream: StreamRef, file_name: str, kind: str) -> None:
        """Take `file_name` in the stream folder for a clip or snapshot. ConflictError when the
        name is taken (by a clip, a snapshot or a recording's playlist); of two racing
        requests exactly one wins (the database's unique key decides)."""
        if kind not in FILE_KINDS:
            raise InvalidValueError(f"file kind must be one of {tuple(FILE_KINDS)}, not {kind!r}")
        check_file_name(file_name, FILE_KINDS[kind])
        try:
            with self._write() as conn:
                sid = self._ensure_stream(conn, stream)
                conn.execute(
                    insert(files).values(
                        stream_id=sid,
                        file_name=file_name,
                        kind=kind,
                        created_ms=self._now_ms(),
                    )
                )
        except ConflictError:
            raise ConflictError(
                f"fileName {file_name!r} is already used in {stream.folder}"
            ) from None

    def release_file(self, stream: StreamRef, file_name: str) -> None:
        """Free a clip or snapshot name (a recording's playlist name stays taken)."""
        with self._write() as conn:
            conn.execute(
                delete(files).where(
                    and_(
                        files.c.stream_id == self._stream_id_subquery(stream),
                        files.c.file_name == file_name,
                        files.c.kind.in_(tuple(FILE_KINDS)),
                    )
                )
            )

    def file_reserved(self, stream: StreamRef, file_name: str) -> bool:
        with self._read() as conn:
            return bool(
                conn.execute(
                    select(
                        exists().where(
                            and_(
                                files.c.stream_id == self._stream_id_subquery(stream),
                                files.c.file_name == file_name,
                            )
                        )
                    )
                ).scalar_one()
            )
