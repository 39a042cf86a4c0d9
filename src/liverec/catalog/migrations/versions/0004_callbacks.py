"""callbacks: settings per project and entry point, the publish webhook, the notice outbox
(queues per stream, notices, dead letters); publishes.node_ip

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of the schema at this revision (never import schema.py from a migration).
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("publishes") as batch:
        batch.add_column(
            sa.Column("node_ip", sa.String(64), nullable=False, server_default=sa.text("''"))
        )
    op.create_table(
        "callback_settings",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("entry_point", sa.String(64), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("secret_sealed", sa.Text(), nullable=False),
        sa.Column("event_types", sa.String(255), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name="fk_callback_settings_project_id_projects",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", "entry_point", name="pk_callback_settings"),
    )
    op.create_table(
        "publish_webhooks",
        sa.Column("project_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("secret_sealed", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name="fk_publish_webhooks_project_id_projects",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", name="pk_publish_webhooks"),
    )
    op.create_table(
        "notice_queues",
        sa.Column("stream_id", BigId, autoincrement=False, nullable=False),
        sa.Column("due_ms", sa.BigInteger(), nullable=True),
        sa.Column("lease_node", sa.String(64), nullable=True),
        sa.Column("lease_token", sa.String(32), nullable=True),
        sa.Column("lease_until_ms", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["stream_id"],
            ["streams.id"],
            name="fk_notice_queues_stream_id_streams",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("stream_id", name="pk_notice_queues"),
    )
    op.create_index("ix_notice_queues_due", "notice_queues", ["due_ms"])
    op.create_table(
        "notices",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("stream_id", BigId, nullable=False),
        sa.Column("notice_id", sa.String(64), nullable=False),
        sa.Column("event_type", sa.Integer(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("last_error", sa.String(300), nullable=True),
        sa.ForeignKeyConstraint(
            ["stream_id"],
            ["notice_queues.stream_id"],
            name="fk_notices_stream_id_notice_queues",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_notices"),
    )
    op.create_index("ix_notices_stream_id", "notices", ["stream_id", "id"])
    op.create_table(
        "dead_notices",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("stream_id", BigId, nullable=False),
        sa.Column("notice_id", sa.String(64), nullable=False),
        sa.Column("event_type", sa.Integer(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("failed_ms", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(300), nullable=False),
        sa.ForeignKeyConstraint(
            ["stream_id"],
            ["streams.id"],
            name="fk_dead_notices_stream_id_streams",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_dead_notices"),
    )
    op.create_index("ix_dead_notices_stream_id", "dead_notices", ["stream_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_dead_notices_stream_id", "dead_notices")
    op.drop_table("dead_notices")
    op.drop_index("ix_notices_stream_id", "notices")
    op.drop_table("notices")
    op.drop_index("ix_notice_queues_due", "notice_queues")
    op.drop_table("notice_queues")
    op.drop_table("publish_webhooks")
    op.drop_table("callback_settings")
    with op.batch_alter_table("publishes") as batch:
        batch.drop_column("node_ip")
