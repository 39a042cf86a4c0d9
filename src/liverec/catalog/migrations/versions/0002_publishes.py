"""publishes, quality points, viewers per minute, nodes; bans and recording tasks

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of the schema at this revision (never import schema.py from a migration).
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("streams") as batch:
        batch.add_column(sa.Column("task_until_ms", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("ban_resume_ms", sa.BigInteger(), nullable=True))
    op.create_table(
        "publishes",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("stream_id", BigId, nullable=False),
        sa.Column("node_id", sa.String(64), nullable=False),
        sa.Column("region", sa.String(8), nullable=False),
        sa.Column("client_ip", sa.String(64), nullable=False),
        sa.Column("domain", sa.String(253), nullable=False),
        sa.Column("start_ms", sa.BigInteger(), nullable=False),
        sa.Column("end_ms", sa.BigInteger(), nullable=True),
        sa.Column("video_codec", sa.String(16), nullable=True),
        sa.Column("audio_codec", sa.String(16), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("fps", sa.Float(), nullable=True),
        sa.Column("bitrate", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["stream_id"], ["streams.id"], name="fk_publishes_stream_id_streams"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_publishes"),
    )
    op.create_index("ix_publishes_stream_start", "publishes", ["stream_id", "start_ms"])
    op.create_index("ix_publishes_end", "publishes", ["end_ms"])
    op.create_index("ix_publishes_node_live", "publishes", ["node_id", "end_ms"])
    op.create_table(
        "publish_quality",
        sa.Column("publish_id", BigId, nullable=False),
        sa.Column("stream_id", BigId, nullable=False),
        sa.Column("minute_ms", sa.BigInteger(), nullable=False),
        sa.Column("bitrate", sa.BigInteger(), nullable=False),
        sa.Column("frame_rate", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["publish_id"],
            ["publishes.id"],
            name="fk_publish_quality_publish_id_publishes",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["stream_id"], ["streams.id"], name="fk_publish_quality_stream_id_streams"
        ),
        sa.PrimaryKeyConstraint("publish_id", "minute_ms", name="pk_publish_quality"),
    )
    op.create_index("ix_publish_quality_minute", "publish_quality", ["minute_ms"])
    op.create_table(
        "play_minutes",
        sa.Column("stream_id", BigId, nullable=False),
        sa.Column("minute_ms", sa.BigInteger(), nullable=False),
        sa.Column("viewer", sa.String(32), nullable=False),
        sa.ForeignKeyConstraint(
            ["stream_id"], ["streams.id"], name="fk_play_minutes_stream_id_streams"
        ),
        sa.PrimaryKeyConstraint("stream_id", "minute_ms", "viewer", name="pk_play_minutes"),
    )
    op.create_index("ix_play_minutes_minute", "play_minutes", ["minute_ms"])
    op.create_table(
        "nodes",
        sa.Column("node_id", sa.String(64), nullable=False),
        sa.Column("api_url", sa.String(255), nullable=False),
        sa.Column("seen_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("node_id", name="pk_nodes"),
    )


def downgrade() -> None:
    op.drop_table("nodes")
    op.drop_index("ix_play_minutes_minute", "play_minutes")
    op.drop_table("play_minutes")
    op.drop_index("ix_publish_quality_minute", "publish_quality")
    op.drop_table("publish_quality")
    op.drop_index("ix_publishes_node_live", "publishes")
    op.drop_index("ix_publishes_end", "publishes")
    op.drop_index("ix_publishes_stream_start", "publishes")
    op.drop_table("publishes")
    with op.batch_alter_table("streams") as batch:
        batch.drop_column("ban_resume_ms")
        batch.drop_column("task_until_ms")
