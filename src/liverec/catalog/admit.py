"""What admitting a publish reads, in one statement (`publish_settings`): the answers of
project_for_host, get_entry_point, banned_until, publish_webhook, stream_recording_enabled,
record_outputs and snapshot_settings, which cost a transaction each before (issue 14). With
the stream's row id it returns, taking the live lease is one UPDATE (streams.take_live)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    RowMapping,
    Table,
    and_,
    bindparam,
    case,
    or_,
    select,
)

from liverec.catalog._base import RepoBase
from liverec.catalog.callbacks import WebhookSettings
from liverec.catalog.dbclock import db_now_ms
from liverec.catalog.models import EntryPoint, Project, from_ms
from liverec.catalog.names import normalise_host
from liverec.catalog.outputs import RecordOutputs, SnapshotSettings
from liverec.catalog.projects import entry_point_of
from liverec.catalog.schema import (
    entry_points,
    projects,
    publish_webhooks,
    push_domains,
    record_settings,
    snapshot_settings,
    streams,
)
from liverec.catalog.streams import own_switch


@dataclass(frozen=True, slots=True)
class PublishSettings:
    """What the catalog says of a publish to `entry_point/stream_name` on a host."""

    project: Project
    entry_point: EntryPoint | None  # None: the project has no such entry point
    stream_id: int | None  # None: the stream has never had a row
    banned_until: datetime | None  # banned now, by the database's clock, until then
    record: bool  # standard recording is on for the stream (stream_recording_enabled)
    webhook: WebhookSettings = field(default_factory=WebhookSettings)
    outputs: RecordOutputs = field(default_factory=RecordOutputs)
    snapshots: SnapshotSettings = field(default_factory=SnapshotSettings)


_EP: BindParameter[str] = bindparam("p_entry_point")


def _per_entry_point(table: Table) -> ColumnElement[bool]:
    """The join of a settings table keyed by project, entry point and region."""
    return and_(
        table.c.project_id == projects.c.id,
        table.c.entry_point == _EP,
        table.c.region == bindparam("p_region"),
    )


# The project (the one the push domain is mapped to, else the default), and beside it the
# entry point, stream, webhook, outputs and snapshot settings of the publish: each joined on
# its key, so there is one row per candidate project. Built once (catalog/_base.py says why).
_SETTINGS = (
    select(
        projects.c.id,
        projects.c.app_id,
        projects.c.name.label("project_name"),
        projects.c.is_default,
        entry_points.c.id.label("ep_id"),
        entry_points.c.name,
        entry_points.c.auth_key_sealed,
        entry_points.c.record_enabled,
        entry_points.c.target_duration,
        entry_points.c.max_file_duration,
        entry_points.c.retention_s,
        streams.c.id.label("stream_id"),
        case((streams.c.ban_resume_ms > db_now_ms(), streams.c.ban_resume_ms)).label("banned_ms"),
        own_switch().label("stream_enabled"),
        publish_webhooks.c.enabled.label("hook_enabled"),
        publish_webhooks.c.url.label("hook_url"),
        publish_webhooks.c.secret_sealed.label("hook_secret"),
        record_settings.c.hls_enabled,
        record_settings.c.mp4_enabled,
        snapshot_settings.c.enabled.label("snapshots"),
        snapshot_settings.c.interval_s,
        snapshot_settings.c.moderation,
    )
    .select_from(projects)
    .outerjoin(
        push_domains,
        and_(
            push_domains.c.project_id == projects.c.id,
            push_domains.c.domain == bindparam("p_domain"),
        ),
    )
    .outerjoin(
        entry_points,
        and_(entry_points.c.project_id == projects.c.id, entry_points.c.name == _EP),
    )
    .outerjoin(
        streams,
        and_(
            streams.c.project_id == projects.c.id,
            streams.c.entry_point == _EP,
            streams.c.name == bindparam("p_stream_name"),
        ),
    )
    .outerjoin(publish_webhooks, publish_webhooks.c.project_id == projects.c.id)
    .outerjoin(record_settings, _per_entry_point(record_settings))
    .outerjoin(snapshot_settings, _per_entry_point(snapshot_settings))
    .where(or_(push_domains.c.domain.is_not(None), projects.c.is_default))
    # The mapped project before the default one.
    .order_by(case((push_domains.c.domain.is_(None), 1), else_=0))
    .limit(1)
)


class AdmitRepo(RepoBase):
    def publish_settings(
        self, host: str, entry_point: str, stream_name: str, region: str
    ) -> PublishSettings | None:
        """Everything admission checks, in one statement; None when no project takes
        pushes for `host`."""
        with self._read() as conn:
            row = conn.execute(
                _SETTINGS,
                {
                    "p_domain": normalise_host(host),
                    "p_entry_point": entry_point,
                    "p_stream_name": stream_name,
                    "p_region": region,
                },
            ).one_or_none()
        if row is None:
            return None
        m = row._mapping
        project = Project(m["id"], m["app_id"], m["project_name"], bool(m["is_default"]))
        if m["ep_id"] is None:
            return PublishSettings(project, None, None, None, False)
        ep = entry_point_of(self._box, project.app_id, m)
        own = m["stream_enabled"]
        return PublishSettings(
            project,
            ep,
            m["stream_id"],
            None if m["banned_ms"] is None else from_ms(m["banned_ms"]),
            ep.record_enabled if own is None else bool(own),
            self._webhook(m),
            _outputs(m),
            _snapshots(m),
        )

    def _webhook(self, m: RowMapping) -> WebhookSettings:
        enabled, url, sealed = m["hook_enabled"], m["hook_url"], m["hook_secret"]
        if enabled is None:
            return WebhookSettings()
        # Unsealed only when it is to be used.
        secret = "" if sealed is None or not (enabled and url) else self._box.open(sealed)
        return WebhookSettings(bool(enabled), url, secret)


def _outputs(m: RowMapping) -> RecordOutputs:
    if m["hls_enabled"] is None:
        return RecordOutputs()
    return RecordOutputs(hls=bool(m["hls_enabled"]), mp4=bool(m["mp4_enabled"]))


def _snapshots(m: RowMapping) -> SnapshotSettings:
    if m["snapshots"] is None:
        return SnapshotSettings()
    return SnapshotSettings(bool(m["snapshots"]), int(m["interval_s"]), bool(m["moderation"]))
