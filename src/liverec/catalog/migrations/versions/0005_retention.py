"""retention: a retention period per entry point, each recording's trimmed head and bytes,
locked ranges (also the ranges clips reference), the durable list of blobs to delete, and
the sweeper's lease per region

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-15
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of the schema at this revision (never import schema.py from a migration).
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("entry_points") as batch:
        batch.add_column(
            sa.Column("retention_s", sa.BigInteger(), nullable=False, server_default=sa.text("0"))
        )
    with op.batch_alter_table("recordings") as batch:
        batch.add_column(
            sa.Column("head_seq", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )
        batch.add_column(
            sa.Column(
                "head_discontinuities", sa.Integer(), nullable=False, server_default=sa.text("0")
            )
        )
        batch.add_column(
            sa.Column("size_bytes", sa.BigInteger(), nullable=False, server_default=sa.text("0"))
        )
    op.execute(
        "UPDATE recordings SET size_bytes = (SELECT COALESCE(SUM(segments.size), 0) "
        "FROM segments WHERE segments.recording_id = recordings.id)"
    )
    op.create_index("ix_recordings_start", "recordings", ["start_ms"])
    op.create_table(
        "retention_locks",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("stream_id", BigId, nullable=False),
        sa.Column("start_ms", sa.BigInteger(), nullable=False),
        sa.Column("end_ms", sa.BigInteger(), nullable=False),
        sa.Column("expires_ms", sa.BigInteger(), nullable=True),
        sa.Column("file_name", sa.String(255), nullable=True),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["stream_id"], ["streams.id"], name="fk_retention_locks_stream_id_streams"
        ),
        sa.ForeignKeyConstraint(
            ["stream_id", "file_name"],
            ["files.stream_id", "files.file_name"],
            name="fk_retention_locks_stream_id_files",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_retention_locks"),
    )
    op.create_index("ix_retention_locks_stream_start", "retention_locks", ["stream_id", "start_ms"])
    op.create_table(
        "retention_trash",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("key", sa.String(1024), nullable=False),
        sa.Column("recording_id", sa.BigInteger(), nullable=True),
        sa.Column("due_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_retention_trash"),
    )
    op.create_index("ix_retention_trash_due_ms", "retention_trash", ["due_ms"])
    op.create_table(
        "retention_leases",
        sa.Column("region", sa.String(8), nullable=False),
        sa.Column("node_id", sa.String(64), nullable=True),
        sa.Column("token", sa.String(32), nullable=True),
        sa.Column("until_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("region", name="pk_retention_leases"),
    )


def downgrade() -> None:
    op.drop_table("retention_leases")
    op.drop_index("ix_retention_trash_due_ms", "retention_trash")
    op.drop_table("retention_trash")
    op.drop_index("ix_retention_locks_stream_start", "retention_locks")
    op.drop_table("retention_locks")
    op.drop_index("ix_recordings_start", "recordings")
    with op.batch_alter_table("recordings") as batch:
        batch.drop_column("size_bytes")
        batch.drop_column("head_discontinuities")
        batch.drop_column("head_seq")
    with op.batch_alter_table("entry_points") as batch:
        batch.drop_column("retention_s")
