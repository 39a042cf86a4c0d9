"""The catalog: projects, entry points, credentials, recordings, segments, clips and
snapshots, on SQLAlchemy Core (SQLite by default, PostgreSQL by URL), with Alembic
migrations."""

from liverec.catalog._base import Clock, utc_now
from liverec.catalog.db import check_schema, ensure_schema, head_revision, make_engine, migrate
from liverec.catalog.models import (
    Credential,
    EntryPoint,
    Project,
    Recording,
    Segment,
    from_ms,
    to_ms,
)
from liverec.catalog.projects import DEFAULT_ENTRY_POINT, UNSET
from liverec.catalog.repo import Catalog
from liverec.catalog.secrets import SecretBox

__all__ = [
    "DEFAULT_ENTRY_POINT",
    "UNSET",
    "Catalog",
    "Clock",
    "Credential",
    "EntryPoint",
    "Project",
    "Recording",
    "SecretBox",
    "Segment",
    "check_schema",
    "ensure_schema",
    "from_ms",
    "head_revision",
    "make_engine",
    "migrate",
    "to_ms",
    "utc_now",
]
