"""initial catalog: projects, credentials, entry points, streams, recordings, segments, files

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of the schema at this revision (never import schema.py from a migration).
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("app_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), server_default=sa.text("''"), nullable=False),
        sa.Column("is_default", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_projects"),
        sa.UniqueConstraint("app_id", name="uq_projects_app_id"),
    )
    op.create_index(
        "uq_projects_one_default",
        "projects",
        ["is_default"],
        unique=True,
        sqlite_where=sa.text("is_default"),
        postgresql_where=sa.text("is_default"),
    )
    op.create_table(
        "push_domains",
        sa.Column("domain", sa.String(253), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name="fk_push_domains_project_id_projects",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("domain", name="pk_push_domains"),
    )
    op.create_index("ix_push_domains_project_id", "push_domains", ["project_id"])
    op.create_table(
        "credentials",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("customer_id", sa.String(128), nullable=False),
        sa.Column("secret_sealed", sa.Text(), nullable=False),
        sa.Column("secret_hash", sa.String(255), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("revoked", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_credentials"),
        sa.UniqueConstraint("customer_id", name="uq_credentials_customer_id"),
    )
    op.create_table(
        "grants",
        sa.Column("credential_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["credential_id"],
            ["credentials.id"],
            name="fk_grants_credential_id_credentials",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name="fk_grants_project_id_projects",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("credential_id", "project_id", name="pk_grants"),
    )
    op.create_index("ix_grants_project_id", "grants", ["project_id"])
    op.create_table(
        "entry_points",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("auth_key_sealed", sa.Text(), nullable=True),
        sa.Column("record_enabled", sa.Boolean(), nullable=False),
        sa.Column("target_duration", sa.Float(), nullable=False),
        sa.Column("max_file_duration", sa.Float(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name="fk_entry_points_project_id_projects",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_entry_points"),
        sa.UniqueConstraint("project_id", "name", name="uq_entry_points_project_id_name"),
    )
    op.create_table(
        "streams",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("entry_point", sa.String(64), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("record_enabled", sa.Boolean(), nullable=True),
        sa.Column("max_recording_ms", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("max_segment_ms", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("live_node_id", sa.String(64), nullable=True),
        sa.Column("live_expires_ms", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name="fk_streams_project_id_projects",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_streams"),
        sa.UniqueConstraint(
            "project_id", "entry_point", "name", name="uq_streams_project_id_entry_point_name"
        ),
    )
    op.create_index("ix_streams_live_node_id", "streams", ["live_node_id"])
    op.create_table(
        "recordings",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("stream_id", BigId, nullable=False),
        sa.Column("region", sa.String(8), nullable=False),
        sa.Column("session_id", sa.String(128), nullable=False),
        sa.Column("playlist_key", sa.String(1024), nullable=False),
        sa.Column("start_ms", sa.BigInteger(), nullable=False),
        sa.Column("end_ms", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("node_id", sa.String(64), nullable=False),
        sa.Column("lease_ms", sa.BigInteger(), nullable=False),
        sa.Column("lease_expires_ms", sa.BigInteger(), nullable=False),
        sa.Column("segment_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("state IN ('open', 'closed')", name="ck_recordings_state"),
        sa.ForeignKeyConstraint(
            ["stream_id"], ["streams.id"], name="fk_recordings_stream_id_streams"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_recordings"),
    )
    op.create_index("ix_recordings_stream_start", "recordings", ["stream_id", "start_ms"])
    op.create_index("ix_recordings_state_node", "recordings", ["state", "node_id"])
    op.create_index("ix_recordings_state_lease", "recordings", ["state", "lease_expires_ms"])
    op.create_table(
        "segments",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("recording_id", BigId, nullable=False),
        sa.Column("stream_id", BigId, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(1024), nullable=False),
        sa.Column("start_ms", sa.BigInteger(), nullable=False),
        sa.Column("end_ms", sa.BigInteger(), nullable=False),
        sa.Column("duration", sa.Float(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("discontinuity", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["recording_id"],
            ["recordings.id"],
            name="fk_segments_recording_id_recordings",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["stream_id"], ["streams.id"], name="fk_segments_stream_id_streams"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_segments"),
        sa.UniqueConstraint("recording_id", "seq", name="uq_segments_recording_id_seq"),
    )
    op.create_index("ix_segments_stream_start", "segments", ["stream_id", "start_ms"])
    op.create_table(
        "files",
        sa.Column("stream_id", BigId, nullable=False),
        sa.Column("file_name", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("recording_id", BigId, nullable=True),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("kind IN ('recording', 'clip', 'snapshot')", name="ck_files_kind"),
        sa.ForeignKeyConstraint(
            ["recording_id"],
            ["recordings.id"],
            name="fk_files_recording_id_recordings",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["stream_id"], ["streams.id"], name="fk_files_stream_id_streams"),
        sa.PrimaryKeyConstraint("stream_id", "file_name", name="pk_files"),
    )
    op.create_index("ix_files_recording_id", "files", ["recording_id"])


def downgrade() -> None:
    for table in (
        "files",
        "segments",
        "recordings",
        "streams",
        "entry_points",
        "grants",
        "credentials",
        "push_domains",
        "projects",
    ):
        op.drop_table(table)
