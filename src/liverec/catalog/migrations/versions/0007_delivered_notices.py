"""delivered_notices: the callbacks receivers took, the newest kept (for the console and
GET .../settings/callback/delivered)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of the schema at this revision (never import schema.py from a migration).
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "delivered_notices",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("stream_id", BigId, nullable=False),
        sa.Column("notice_id", sa.String(64), nullable=False),
        sa.Column("event_type", sa.Integer(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("delivered_ms", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["stream_id"],
            ["streams.id"],
            name="fk_delivered_notices_stream_id_streams",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_delivered_notices_stream_id", "delivered_notices", ["stream_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_delivered_notices_stream_id", table_name="delivered_notices")
    op.drop_table("delivered_notices")
