"""The catalog: projects, entry points, credentials, per-stream state (recording switch,
live lease, file names), recordings and their segments, on SQLAlchemy Core (SQLite by
default, PostgreSQL by URL), with Alembic migrations.

Owns: what is true. It decides conflicts (unique keys), leases (compare-and-set on the
database's clock; LeaseLostError for a recording another node closed) and validation
(InvalidValueError), and maps SQLAlchemy and psycopg errors into liverec's (db.py): nothing
above it imports a database driver. Rows are read by column name.
May import: layout, media, config, errors."""

from liverec.catalog._base import Clock, utc_now
from liverec.catalog.admit import PublishSettings
from liverec.catalog.callbacks import CallbackSettings, WebhookSettings
from liverec.catalog.db import check_schema, ensure_schema, head_revision, make_engine, migrate
from liverec.catalog.made import MadeFile
from liverec.catalog.models import (
    Credential,
    EntryPoint,
    Project,
    Recording,
    Segment,
    from_ms,
    to_ms,
)
from liverec.catalog.outbox import ClaimedNotice, DeadNotice, DeliveredNotice, Notice
from liverec.catalog.outputs import Mp4File, RecordOutputs, SnapshotFile, SnapshotSettings
from liverec.catalog.projects import DEFAULT_ENTRY_POINT, UNSET
from liverec.catalog.publishes import PlayPoint, Publish, QualityPoint, viewer_id
from liverec.catalog.recordings import NewSegment
from liverec.catalog.repo import Catalog
from liverec.catalog.retention import Trimmed
from liverec.catalog.retention_locks import Lock
from liverec.catalog.secrets import SecretBox
from liverec.catalog.streams import LiveControl

__all__ = [
    "DEFAULT_ENTRY_POINT",
    "UNSET",
    "CallbackSettings",
    "Catalog",
    "ClaimedNotice",
    "Clock",
    "Credential",
    "DeadNotice",
    "DeliveredNotice",
    "EntryPoint",
    "LiveControl",
    "Lock",
    "MadeFile",
    "Mp4File",
    "NewSegment",
    "Notice",
    "PlayPoint",
    "Project",
    "Publish",
    "PublishSettings",
    "QualityPoint",
    "RecordOutputs",
    "Recording",
    "SecretBox",
    "Segment",
    "SnapshotFile",
    "SnapshotSettings",
    "Trimmed",
    "WebhookSettings",
    "check_schema",
    "ensure_schema",
    "from_ms",
    "head_revision",
    "make_engine",
    "migrate",
    "to_ms",
    "utc_now",
    "viewer_id",
]
