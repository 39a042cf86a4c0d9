"""recording outputs and periodic snapshots: settings per entry point and region, MP4
slices, snapshot files

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of the schema at this revision (never import schema.py from a migration).
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _settings_table(name: str, *columns: sa.Column[object]) -> None:
    op.create_table(
        name,
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("entry_point", sa.String(64), nullable=False),
        sa.Column("region", sa.String(8), nullable=False),
        *columns,
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=f"fk_{name}_project_id_projects",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", "entry_point", "region", name=f"pk_{name}"),
    )


def upgrade() -> None:
    _settings_table(
        "record_settings",
        sa.Column("hls_enabled", sa.Boolean(), nullable=False),
        sa.Column("mp4_enabled", sa.Boolean(), nullable=False),
    )
    _settings_table(
        "snapshot_settings",
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("interval_s", sa.Integer(), nullable=False),
        sa.Column("moderation", sa.Boolean(), nullable=False),
    )
    op.create_table(
        "mp4_files",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("stream_id", BigId, nullable=False),
        sa.Column("region", sa.String(8), nullable=False),
        sa.Column("key", sa.String(1024), nullable=False),
        sa.Column("session_id", sa.String(128), nullable=False),
        sa.Column("slice_id", sa.Integer(), nullable=False),
        sa.Column("start_ms", sa.BigInteger(), nullable=False),
        sa.Column("end_ms", sa.BigInteger(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["stream_id"], ["streams.id"], name="fk_mp4_files_stream_id_streams"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_mp4_files"),
        sa.UniqueConstraint("stream_id", "key", name="uq_mp4_files_stream_id_key"),
    )
    op.create_index("ix_mp4_files_stream_start", "mp4_files", ["stream_id", "start_ms"])
    op.create_table(
        "snapshot_files",
        sa.Column("stream_id", BigId, nullable=False),
        sa.Column("region", sa.String(8), nullable=False),
        sa.Column("key", sa.String(1024), nullable=False),
        sa.Column("time_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["stream_id"], ["streams.id"], name="fk_snapshot_files_stream_id_streams"
        ),
        sa.PrimaryKeyConstraint("stream_id", "key", name="pk_snapshot_files"),
    )
    op.create_index("ix_snapshot_files_stream_time", "snapshot_files", ["stream_id", "time_ms"])


def downgrade() -> None:
    op.drop_index("ix_snapshot_files_stream_time", "snapshot_files")
    op.drop_table("snapshot_files")
    op.drop_index("ix_mp4_files_stream_start", "mp4_files")
    op.drop_table("mp4_files")
    op.drop_table("snapshot_settings")
    op.drop_table("record_settings")
