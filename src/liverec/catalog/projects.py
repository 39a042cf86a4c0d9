"""Projects, their push domains, and their entry points."""

from __future__ import annotations

import enum
import math

from sqlalchemy import Connection, RowMapping, and_, delete, exists, insert, select, update

from liverec.catalog._base import RepoBase
from liverec.catalog.models import EntryPoint, Project
from liverec.catalog.names import (
    check_app_id,
    check_domain,
    check_entry_point,
    normalise_host,
)
from liverec.catalog.schema import entry_points, projects, push_domains, streams
from liverec.catalog.secrets import SecretBox
from liverec.errors import ConflictError, InvalidValueError, NotFoundError

DEFAULT_ENTRY_POINT = "live"
MAX_TARGET_DURATION = 600.0  # seconds
MAX_FILE_DURATION = 7 * 24 * 3600.0  # seconds
MAX_AUTH_KEY_LEN = 256


class _Unset(enum.Enum):
    UNSET = 0


UNSET = _Unset.UNSET


def _project(m: RowMapping) -> Project:
    return Project(id=m["id"], app_id=m["app_id"], name=m["name"], is_default=bool(m["is_default"]))


_PROJECT_COLUMNS = (projects.c.id, projects.c.app_id, projects.c.name, projects.c.is_default)


def _check_durations(target_duration: float, max_file_duration: float) -> None:
    if not (math.isfinite(target_duration) and 0 < target_duration <= MAX_TARGET_DURATION):
        raise InvalidValueError(
            f"target duration must be more than 0 and at most {MAX_TARGET_DURATION:g} s"
        )
    if not (
        math.isfinite(max_file_duration)
        and target_duration <= max_file_duration <= MAX_FILE_DURATION
    ):
        raise InvalidValueError(
            f"max file duration must be between the target duration and {MAX_FILE_DURATION:g} s"
        )


# Retention periods: whole seconds, at most 100 years (0: forever).
MAX_RETENTION = 100 * 366 * 86400


def _check_retention(retention: int) -> None:
    if isinstance(retention, bool) or not isinstance(retention, int):
        raise InvalidValueError("retention is a whole number of seconds")
    if not 0 <= retention <= MAX_RETENTION:
        raise InvalidValueError(f"retention must be 0 (forever) to {MAX_RETENTION} seconds")


def _check_auth_key(auth_key: str | None) -> str | None:
    if auth_key is None or auth_key == "":
        return None
    if len(auth_key) > MAX_AUTH_KEY_LEN or not auth_key.isprintable():
        raise InvalidValueError(f"an auth key must be 1-{MAX_AUTH_KEY_LEN} printable characters")
    return auth_key


class ProjectsRepo(RepoBase):
    # -- projects ---------------------------------------------------------------------------

    def create_project(self, app_id: str, name: str = "", is_default: bool = False) -> Project:
        """A new project. is_default makes it the default project (the one any push host
        reaches), taking that role from the previous default."""
        check_app_id(app_id)
        if len(name) > 200:
            raise InvalidValueError("a project name is at most 200 characters")
        try:
            with self._write() as conn:
                if is_default:
                    conn.execute(
                        update(projects).where(projects.c.is_default).values(is_default=False)
                    )
                pid = conn.execute(
                    insert(projects).values(
                        app_id=app_id,
                        name=name,
                        is_default=is_default,
                        created_ms=self._now_ms(),
                    )
                ).inserted_primary_key
        except ConflictError:
            detail = " (or another default project was made at the same moment)"
            raise ConflictError(
                f"project {app_id!r} exists already{detail if is_default else ''}"
            ) from None
        assert pid is not None
        return Project(id=int(pid[0]), app_id=app_id, name=name, is_default=is_default)

    def list_projects(self) -> list[Project]:
        with self._read() as conn:
            rows = conn.execute(select(*_PROJECT_COLUMNS).order_by(projects.c.id)).all()
        return [_project(row._mapping) for row in rows]

    def get_project(self, app_id: str) -> Project:
        with self._read() as conn:
            row = conn.execute(
                select(*_PROJECT_COLUMNS).where(projects.c.app_id == app_id)
            ).one_or_none()
        if row is None:
            raise NotFoundError(f"project {app_id!r} does not exist")
        return _project(row._mapping)

    def is_empty(self) -> bool:
        """True when there is no project at all (a fresh catalog, to bootstrap)."""
        with self._read() as conn:
            return not conn.execute(select(exists().select_from(projects))).scalar_one()

    def add_push_domain(self, app_id: str, domain: str) -> None:
        """Map a push domain (the RTMP tcUrl host) to the project."""
        domain = check_domain(domain)
        try:
            with self._write() as conn:
                pid = self._project_id(conn, app_id)
                conn.execute(insert(push_domains).values(domain=domain, project_id=pid))
        except ConflictError:
            raise ConflictError(f"push domain {domain!r} is mapped already") from None

    def push_domains(self, app_id: str) -> list[str]:
        with self._read() as conn:
            pid = self._project_id(conn, app_id)
            rows = conn.execute(
                select(push_domains.c.domain)
                .where(push_domains.c.project_id == pid)
                .order_by(push_domains.c.domain)
            ).scalars()
            return list(rows)

    def project_for_host(self, host: str) -> Project | None:
        """The project a push to `host` belongs to: the one the domain is mapped to, else the
        default project, else None."""
        domain = normalise_host(host)
        with self._read() as conn:
            row = conn.execute(
                select(*_PROJECT_COLUMNS)
                .join(push_domains, push_domains.c.project_id == projects.c.id)
                .where(push_domains.c.domain == domain)
            ).one_or_none()
            if row is None:
                row = conn.execute(
                    select(*_PROJECT_COLUMNS).where(projects.c.is_default)
                ).one_or_none()
        return None if row is None else _project(row._mapping)

    # -- entry points -----------------------------------------------------------------------

    def create_entry_point(
        self,
        app_id: str,
        name: str,
        *,
        auth_key: str | None = None,
        record_enabled: bool = True,
        target_duration: float = 4.0,
        max_file_duration: float = 21600.0,
        retention: int = 0,
    ) -> EntryPoint:
        check_entry_point(name)
        auth_key = _check_auth_key(auth_key)
        _check_durations(target_duration, max_file_duration)
        _check_retention(retention)
        try:
            with self._write() as conn:
                pid = self._project_id(conn, app_id)
                conn.execute(
                    insert(entry_points).values(
                        project_id=pid,
                        name=name,
                        auth_key_sealed=None if auth_key is None else self._box.seal(auth_key),
                        record_enabled=record_enabled,
                        target_duration=target_duration,
                        max_file_duration=max_file_duration,
                        created_ms=self._now_ms(),
                        retention_s=retention,
                    )
                )
        except ConflictError:
            raise ConflictError(f"entry point {name!r} exists already") from None
        return EntryPoint(
            app_id=app_id,
            name=name,
            auth_key=auth_key,
            record_enabled=record_enabled,
            target_duration=target_duration,
            max_file_duration=max_file_duration,
            retention=retention,
        )

    def get_entry_point(self, app_id: str, name: str) -> EntryPoint:
        with self._read() as conn:
            return self._get_entry_point(conn, app_id, name)

    def list_entry_points(self, app_id: str) -> list[EntryPoint]:
        with self._read() as conn:
            pid = self._project_id(conn, app_id)
            rows = conn.execute(
                select(*_EP_COLUMNS)
                .where(entry_points.c.project_id == pid)
                .order_by(entry_points.c.name)
            ).all()
        return [self._entry_point(app_id, row._mapping) for row in rows]

    def update_entry_point(
        self,
        app_id: str,
        name: str,
        *,
        auth_key: str | _Unset | None = UNSET,
        record_enabled: bool | None = None,
        target_duration: float | None = None,
        max_file_duration: float | None = None,
        retention: int | None = None,
    ) -> EntryPoint:
        """Change the given fields; auth_key=None or "" removes the push signature rule;
        retention=0 keeps media forever."""
        with self._write() as conn:
            current = self._get_entry_point(conn, app_id, name)
            values: dict[str, object] = {}
            if not isinstance(auth_key, _Unset):
                key = _check_auth_key(auth_key)
                values["auth_key_sealed"] = None if key is None else self._box.seal(key)
            if record_enabled is not None:
                values["record_enabled"] = record_enabled
            if retention is not None:
                _check_retention(retention)
                values["retention_s"] = retention
            target = current.target_duration if target_duration is None else target_duration
            maximum = current.max_file_duration if max_file_duration is None else max_file_duration
            _check_durations(target, maximum)
            values["target_duration"] = target
            values["max_file_duration"] = maximum
            pid = self._project_id(conn, app_id)
            conn.execute(
                update(entry_points)
                .where(and_(entry_points.c.project_id == pid, entry_points.c.name == name))
                .values(**values)
            )
            return self._get_entry_point(conn, app_id, name)

    def delete_entry_point(self, app_id: str, name: str) -> None:
        """Delete an entry point (not `live`). Its recordings and files stay; its per-stream
        recording switches are forgotten."""
        if name == DEFAULT_ENTRY_POINT:
            raise InvalidValueError(
                f"the default entry point {DEFAULT_ENTRY_POINT!r} cannot be deleted"
            )
        with self._write() as conn:
            pid = self._project_id(conn, app_id)
            deleted = conn.execute(
                delete(entry_points).where(
                    and_(entry_points.c.project_id == pid, entry_points.c.name == name)
                )
            ).rowcount
            if not deleted:
                raise NotFoundError(f"entry point {name!r} does not exist")
            conn.execute(
                update(streams)
                .where(and_(streams.c.project_id == pid, streams.c.entry_point == name))
                .values(record_enabled=None)
            )

    def _get_entry_point(self, conn: Connection, app_id: str, name: str) -> EntryPoint:
        row = conn.execute(
            select(*_EP_COLUMNS)
            .join(projects, projects.c.id == entry_points.c.project_id)
            .where(and_(projects.c.app_id == app_id, entry_points.c.name == name))
        ).one_or_none()
        if row is None:
            self._project_id(conn, app_id)  # NotFoundError naming the project, if that is it
            raise NotFoundError(f"entry point {name!r} does not exist")
        return self._entry_point(app_id, row._mapping)

    def _entry_point(self, app_id: str, m: RowMapping) -> EntryPoint:
        return entry_point_of(self._box, app_id, m)


def entry_point_of(box: SecretBox, app_id: str, m: RowMapping) -> EntryPoint:
    """An entry point from a row with _EP_COLUMNS (its auth key unsealed)."""
    sealed = m["auth_key_sealed"]
    return EntryPoint(
        app_id=app_id,
        name=m["name"],
        auth_key=None if sealed is None else box.open(sealed),
        record_enabled=bool(m["record_enabled"]),
        target_duration=float(m["target_duration"]),
        max_file_duration=float(m["max_file_duration"]),
        retention=int(m["retention_s"]),
    )


_EP_COLUMNS = (
    entry_points.c.name,
    entry_points.c.auth_key_sealed,
    entry_points.c.record_enabled,
    entry_points.c.target_duration,
    entry_points.c.max_file_duration,
    entry_points.c.retention_s,
)
