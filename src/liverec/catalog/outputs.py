"""Recording outputs: which outputs an entry point records in a region (HLS, MP4), its
periodic-snapshot settings, and the MP4 slices and periodic snapshots made.

Settings are kept per project, entry point and region, as FLS configures them; no row means
the defaults (HLS on, MP4 off; snapshots off every 10 s). MP4 slices and snapshots are listed
by stream and time, one index range scan each, like recordings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, insert, select, update

from liverec.catalog._base import RepoBase, insert_ignore
from liverec.catalog.models import from_ms, to_ms
from liverec.catalog.names import check_region
from liverec.catalog.outbox import Notice, insert_notices
from liverec.catalog.schema import (
    entry_points,
    mp4_files,
    projects,
    record_settings,
    snapshot_files,
    snapshot_settings,
)
from liverec.errors import ConflictError, InvalidValueError, NotFoundError
from liverec.layout import StreamRef

SNAPSHOT_INTERVAL_RANGE = (5, 300)
SNAPSHOT_INTERVAL_DEFAULT = 10


@dataclass(frozen=True, slots=True)
class RecordOutputs:
    hls: bool = True
    mp4: bool = False


@dataclass(frozen=True, slots=True)
class SnapshotSettings:
    enabled: bool = False
    interval: int = SNAPSHOT_INTERVAL_DEFAULT  # seconds
    moderation: bool = False


@dataclass(frozen=True, slots=True)
class Mp4File:
    name: str  # record/{ep}/{stream}/{sessionid}_{sessiondate}_{sliceid}_{filedate}.mp4
    session_id: str
    slice_id: int
    start_time: datetime
    end_time: datetime
    size: int


@dataclass(frozen=True, slots=True)
class SnapshotFile:
    name: str  # snapshot/{ep}/{stream}/{sessionid}_{sessiondate}_{filedate}.jpg
    time: datetime  # the wall clock of the frame it shows


class OutputsRepo(RepoBase):
    # -- settings -------------------------------------------------------------------------

    def _entry_point_project(self, app_id: str, entry_point: str) -> int:
        with self._read() as conn:
            pid = self._project_id(conn, app_id)
            found = conn.execute(
                select(entry_points.c.id).where(
                    and_(entry_points.c.project_id == pid, entry_points.c.name == entry_point)
                )
            ).first()
        if found is None:
            raise NotFoundError(f"entry point {entry_point!r} does not exist")
        return pid

    def record_outputs(self, app_id: str, entry_point: str, region: str) -> RecordOutputs:
        with self._read() as conn:
            row = conn.execute(
                select(record_settings.c.hls_enabled, record_settings.c.mp4_enabled)
                .join(projects, projects.c.id == record_settings.c.project_id)
                .where(
                    and_(
                        projects.c.app_id == app_id,
                        record_settings.c.entry_point == entry_point,
                        record_settings.c.region == region,
                    )
                )
            ).one_or_none()
        if row is None:
            return RecordOutputs()
        return RecordOutputs(hls=bool(row.hls_enabled), mp4=bool(row.mp4_enabled))

    def set_record_outputs(
        self,
        app_id: str,
        entry_point: str,
        region: str,
        *,
        hls: bool | None = None,
        mp4: bool | None = None,
    ) -> RecordOutputs:
        """Change the given outputs (None: keep); returns the settings now in force."""
        check_region(region)
        pid = self._entry_point_project(app_id, entry_point)
        current = self.record_outputs(app_id, entry_point, region)
        new = RecordOutputs(
            hls=current.hls if hls is None else hls, mp4=current.mp4 if mp4 is None else mp4
        )
        key = {"project_id": pid, "entry_point": entry_point, "region": region}
        with self._write() as conn:
            insert_ignore(
                conn, record_settings, {**key, "hls_enabled": new.hls, "mp4_enabled": new.mp4}
            )
            conn.execute(
                update(record_settings)
                .where(and_(*(record_settings.c[name] == value for name, value in key.items())))
                .values(hls_enabled=new.hls, mp4_enabled=new.mp4)
            )
        return new

    def snapshot_settings(self, app_id: str, entry_point: str, region: str) -> SnapshotSettings:
        with self._read() as conn:
            row = conn.execute(
                select(
                    snapshot_settings.c.enabled,
                    snapshot_settings.c.interval_s,
                    snapshot_settings.c.moderation,
                )
                .join(projects, projects.c.id == snapshot_settings.c.project_id)
                .where(
                    and_(
                        projects.c.app_id == app_id,
                        snapshot_settings.c.entry_point == entry_point,
                        snapshot_settings.c.region == region,
                    )
                )
            ).one_or_none()
        if row is None:
            return SnapshotSettings()
        return SnapshotSettings(bool(row.enabled), int(row.interval_s), bool(row.moderation))

    def set_snapshot_settings(
        self,
        app_id: str,
        entry_point: str,
        region: str,
        *,
        enabled: bool,
        interval: int | None = None,
        moderation: bool | None = None,
    ) -> SnapshotSettings:
        """Set periodic snapshots (None: keep); InvalidValueError for an interval outside
        5-300 s."""
        check_region(region)
        low, high = SNAPSHOT_INTERVAL_RANGE
        if interval is not None and not low <= interval <= high:
            raise InvalidValueError(f"snapshotInterval must be {low}-{high} seconds")
        pid = self._entry_point_project(app_id, entry_point)
        current = self.snapshot_settings(app_id, entry_point, region)
        new = SnapshotSettings(
            enabled=enabled,
            interval=current.interval if interval is None else interval,
            moderation=current.moderation if moderation is None else moderation,
        )
        key = {"project_id": pid, "entry_point": entry_point, "region": region}
        values = {"enabled": new.enabled, "interval_s": new.interval, "moderation": new.moderation}
        with self._write() as conn:
            insert_ignore(conn, snapshot_settings, {**key, **values})
            conn.execute(
                update(snapshot_settings)
                .where(and_(*(snapshot_settings.c[name] == value for name, value in key.items())))
                .values(**values)
            )
        return new

    # -- MP4 slices and periodic snapshots ------------------------------------------------

    def add_mp4_file(
        self,
        stream: StreamRef,
        *,
        name: str,
        session_id: str,
        slice_id: int,
        start_time: datetime,
        end_time: datetime,
        size: int,
        notices: Sequence[Notice] = (),
    ) -> None:
        """Catalogue a finished, stored MP4 slice (ConflictError if its name is listed);
        `notices` (its callbacks) are enqueued in the same transaction."""
        if slice_id < 0 or size < 0 or end_time < start_time or not name.endswith(".mp4"):
            raise InvalidValueError("MP4 slice slice_id, size, times or name out of range")
        try:
            with self._write() as conn:
                sid = self._ensure_stream(conn, stream)
                conn.execute(
                    insert(mp4_files).values(
                        stream_id=sid,
                        region=stream.region,
                        key=name,
                        session_id=session_id,
                        slice_id=slice_id,
                        start_ms=to_ms(start_time),
                        end_ms=to_ms(end_time),
                        size=size,
                    )
                )
                insert_notices(conn, notices)
        except ConflictError:
            raise ConflictError(f"MP4 file {name!r} is listed already") from None

    def mp4_files_overlapping(
        self, stream: StreamRef, start: datetime, end: datetime
    ) -> list[Mp4File]:
        """MP4 slices of `stream` in its region overlapping [start, end], oldest first."""
        with self._read() as conn:
            rows = conn.execute(
                select(
                    mp4_files.c.key,
                    mp4_files.c.session_id,
                    mp4_files.c.slice_id,
                    mp4_files.c.start_ms,
                    mp4_files.c.end_ms,
                    mp4_files.c.size,
                )
                .where(
                    and_(
                        mp4_files.c.stream_id == self._stream_id_subquery(stream),
                        mp4_files.c.region == stream.region,
                        mp4_files.c.start_ms <= to_ms(end),
                        mp4_files.c.end_ms > to_ms(start),
                    )
                )
                .order_by(mp4_files.c.start_ms, mp4_files.c.id)
            ).all()
        return [
            Mp4File(
                row.key,
                row.session_id,
                int(row.slice_id),
                from_ms(row.start_ms),
                from_ms(row.end_ms),
                int(row.size),
            )
            for row in rows
        ]

    def add_snapshot_file(
        self,
        stream: StreamRef,
        name: str,
        time: datetime,
        notices: Sequence[Notice] = (),
        *,
        size: int = 0,
    ) -> None:
        """Catalogue a stored periodic snapshot of `size` bytes (a repeat of the same name
        is no error); `notices` are enqueued in the same transaction, when the name is
        new."""
        with self._write() as conn:
            sid = self._ensure_stream(conn, stream)
            where = and_(snapshot_files.c.stream_id == sid, snapshot_files.c.key == name)
            if notices and conn.execute(select(snapshot_files.c.key).where(where)).first():
                notices = ()  # catalogued already: told already
            insert_ignore(
                conn,
                snapshot_files,
                {
                    "stream_id": sid,
                    "region": stream.region,
                    "key": name,
                    "time_ms": to_ms(time),
                    "size": size,
                },
            )
            insert_notices(conn, notices)

    def snapshot_files_between(
        self, stream: StreamRef, start: datetime, end: datetime
    ) -> list[SnapshotFile]:
        """Periodic snapshots of `stream` in its region whose frame time is in [start, end],
        oldest first."""
        with self._read() as conn:
            rows = conn.execute(
                select(snapshot_files.c.key, snapshot_files.c.time_ms)
                .where(
                    and_(
                        snapshot_files.c.stream_id == self._stream_id_subquery(stream),
                        snapshot_files.c.region == stream.region,
                        snapshot_files.c.time_ms >= to_ms(start),
                        snapshot_files.c.time_ms <= to_ms(end),
                    )
                )
                .order_by(snapshot_files.c.time_ms)
            ).all()
        return [SnapshotFile(row.key, from_ms(row.time_ms)) for row in rows]
