"""retention by size counts MP4 slices and periodic snapshots: each snapshot's bytes, and
indexes to find a region's oldest outputs

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Snapshots taken before this revision count 0 bytes (their size was never kept); they
    # still go by age, and with the byte cap in their turn.
    with op.batch_alter_table("snapshot_files") as batch:
        batch.add_column(
            sa.Column("size", sa.BigInteger(), nullable=False, server_default=sa.text("0"))
        )
    op.create_index("ix_mp4_files_region_end", "mp4_files", ["region", "end_ms"])
    op.create_index("ix_snapshot_files_region_time", "snapshot_files", ["region", "time_ms"])


def downgrade() -> None:
    op.drop_index("ix_snapshot_files_region_time", "snapshot_files")
    op.drop_index("ix_mp4_files_region_end", "mp4_files")
    with op.batch_alter_table("snapshot_files") as batch:
        batch.drop_column("size")
