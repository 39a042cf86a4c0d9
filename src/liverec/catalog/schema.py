"""The catalog's tables, on one MetaData. Migrations (migrations/versions) create the same
schema; a test compares the two so they cannot drift.

Layout, and why:
- `streams` is one row per stream folder `record/{entry_point}/{stream_name}/` of a project.
  It keys everything per stream with one small integer, holds the per-stream recording
  override, the live-publisher lease (one row per stream: a second publisher is refused
  across nodes with a compare-and-set) and the longest recording / segment ever seen, which
  bound the time-range queries so they stay index range scans (see recordings.py).
- `recordings` and `segments` are indexed on (stream_id, start_ms); segments carry the
  stream_id denormalised so "segments of this stream between t0 and t1" needs no join to
  find them.
- `files` is the UNIQUE (stream_id, file_name) namespace of a stream folder: recording
  playlists, clips and snapshots all take their name there, so a race is settled by the
  database, not by check-then-insert.
- `publishes` is one row per publish (admitted push), open while it is live (end_ms NULL):
  online streams, publish history, and the media the publisher sent. `publish_quality`
  keeps one point a minute per live publish; `play_minutes` the distinct viewers of a
  stream per minute, as each node counted them.
- `nodes` is where each node's HTTP API is reached, for requests one node must answer for
  another (a snapshot at the live edge of a stream another node is recording).
- Times are BIGINT epoch milliseconds UTC."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

# Named constraints, so later migrations (batch mode on SQLite) can refer to them.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)

# A 64-bit key that is still SQLite's rowid alias (only INTEGER PRIMARY KEY autoincrements).
BigId = BigInteger().with_variant(Integer(), "sqlite")

projects = Table(
    "projects",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("app_id", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False, server_default=text("''")),
    Column("is_default", Boolean, nullable=False, server_default=text("false")),
    Column("created_ms", BigInteger, nullable=False),
)
# At most one default project.
Index(
    "uq_projects_one_default",
    projects.c.is_default,
    unique=True,
    sqlite_where=text("is_default"),
    postgresql_where=text("is_default"),
)

push_domains = Table(
    "push_domains",
    metadata,
    Column("domain", String(253), primary_key=True),
    Column(
        "project_id",
        Integer,
        ForeignKey("projects.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
)

credentials = Table(
    "credentials",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("customer_id", String(128), nullable=False, unique=True),
    Column("secret_sealed", Text, nullable=False),  # Fernet: the HMAC scheme needs it back
    Column("secret_hash", String(255), nullable=False),  # scrypt: for Basic auth
    Column("created_ms", BigInteger, nullable=False),
    Column("revoked", Boolean, nullable=False, server_default=text("false")),
)

grants = Table(
    "grants",
    metadata,
    Column(
        "credential_id",
        Integer,
        ForeignKey("credentials.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column(
        "project_id",
        Integer,
        ForeignKey("projects.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    PrimaryKeyConstraint("credential_id", "project_id"),
)

entry_points = Table(
    "entry_points",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "project_id",
        Integer,
        ForeignKey("projects.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("name", String(64), nullable=False),
    Column("auth_key_sealed", Text, nullable=True),
    Column("record_enabled", Boolean, nullable=False),
    Column("target_duration", Float, nullable=False),
    Column("max_file_duration", Float, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    # Retention (catalog/retention.py): media older than this many seconds goes; 0: kept.
    Column("retention_s", BigInteger, nullable=False, server_default=text("0")),
    UniqueConstraint("project_id", "name"),
)

streams = Table(
    "streams",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "project_id",
        Integer,
        ForeignKey("projects.id", ondelete="CASCADE"),
        nullable=False,
    ),
    # Names, not a key to entry_points: the folder and its recordings outlive the entry point.
    Column("entry_point", String(64), nullable=False),
    Column("name", String(128), nullable=False),
    Column("record_enabled", Boolean, nullable=True),  # None: the entry point's setting
    Column("max_recording_ms", BigInteger, nullable=False, server_default=text("0")),
    Column("max_segment_ms", BigInteger, nullable=False, server_default=text("0")),
    Column("live_node_id", String(64), nullable=True),
    Column("live_expires_ms", BigInteger, nullable=True),
    # A recording task (PUT tasks) turns record_enabled on until this instant, unless the
    # stream is live by then; None: the switch has no end (DELETE, or the CLI).
    Column("task_until_ms", BigInteger, nullable=True),
    # Banned: publishes are refused, and a live one ended, until this instant.
    Column("ban_resume_ms", BigInteger, nullable=True),
    UniqueConstraint("project_id", "entry_point", "name"),
)
Index("ix_streams_live_node_id", streams.c.live_node_id)

recordings = Table(
    "recordings",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("stream_id", BigId, ForeignKey("streams.id"), nullable=False),
    Column("region", String(8), nullable=False),
    Column("session_id", String(128), nullable=False),
    Column("playlist_key", String(1024), nullable=False),
    Column("start_ms", BigInteger, nullable=False),
    Column("end_ms", BigInteger, nullable=False),
    Column("state", String(8), nullable=False),
    Column("node_id", String(64), nullable=False),
    Column("lease_ms", BigInteger, nullable=False),
    Column("lease_expires_ms", BigInteger, nullable=False),
    Column("segment_count", Integer, nullable=False, server_default=text("0")),
    Column("created_ms", BigInteger, nullable=False),
    # Retention trims the head (catalog/retention.py): the first seq kept (the playlist's
    # EXT-X-MEDIA-SEQUENCE), the discontinuities removed with the head (its
    # EXT-X-DISCONTINUITY-SEQUENCE), and the bytes of the segments kept.
    Column("head_seq", Integer, nullable=False, server_default=text("0")),
    Column("head_discontinuities", Integer, nullable=False, server_default=text("0")),
    Column("size_bytes", BigInteger, nullable=False, server_default=text("0")),
    CheckConstraint("state IN ('open', 'closed')", name="state"),
)
Index("ix_recordings_stream_start", recordings.c.stream_id, recordings.c.start_ms)
Index("ix_recordings_start", recordings.c.start_ms)  # retention: oldest first
Index("ix_recordings_state_node", recordings.c.state, recordings.c.node_id)
Index("ix_recordings_state_lease", recordings.c.state, recordings.c.lease_expires_ms)

segments = Table(
    "segments",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "recording_id",
        BigId,
        ForeignKey("recordings.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("stream_id", BigId, ForeignKey("streams.id"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("key", String(1024), nullable=False),
    Column("start_ms", BigInteger, nullable=False),
    Column("end_ms", BigInteger, nullable=False),
    Column("duration", Float, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("discontinuity", Boolean, nullable=False),
    UniqueConstraint("recording_id", "seq"),
)
Index("ix_segments_stream_start", segments.c.stream_id, segments.c.start_ms)

files = Table(
    "files",
    metadata,
    Column("stream_id", BigId, ForeignKey("streams.id"), nullable=False),
    Column("file_name", String(255), nullable=False),
    Column("kind", String(16), nullable=False),  # recording | clip | snapshot
    Column(
        "recording_id",
        BigId,
        ForeignKey("recordings.id", ondelete="CASCADE"),
        nullable=True,
        index=True,
    ),
    Column("created_ms", BigInteger, nullable=False),
    PrimaryKeyConstraint("stream_id", "file_name"),
    CheckConstraint("kind IN ('recording', 'clip', 'snapshot')", name="kind"),
)

publishes = Table(
    "publishes",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("stream_id", BigId, ForeignKey("streams.id"), nullable=False),
    Column("node_id", String(64), nullable=False),
    Column("region", String(8), nullable=False),
    Column("client_ip", String(64), nullable=False),
    Column("domain", String(253), nullable=False),  # the host the publisher connected to
    Column("start_ms", BigInteger, nullable=False),
    Column("end_ms", BigInteger, nullable=True),  # NULL while live
    Column("video_codec", String(16), nullable=True),
    Column("audio_codec", String(16), nullable=True),
    Column("width", Integer, nullable=True),
    Column("height", Integer, nullable=True),
    Column("fps", Float, nullable=True),
    Column("bitrate", BigInteger, nullable=True),  # bits/s over the last minute
    # The address of the node that took it, as callbacks report it (nodeIp).
    Column("node_ip", String(64), nullable=False, server_default=text("''")),
)
Index("ix_publishes_stream_start", publishes.c.stream_id, publishes.c.start_ms)
Index("ix_publishes_end", publishes.c.end_ms)
Index("ix_publishes_node_live", publishes.c.node_id, publishes.c.end_ms)

publish_quality = Table(
    "publish_quality",
    metadata,
    Column(
        "publish_id",
        BigId,
        ForeignKey("publishes.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("stream_id", BigId, ForeignKey("streams.id"), nullable=False),
    Column("minute_ms", BigInteger, nullable=False),  # the minute's start
    Column("bitrate", BigInteger, nullable=False),  # bits/s, audio and video
    Column("frame_rate", Float, nullable=False),  # video frames/s
    PrimaryKeyConstraint("publish_id", "minute_ms"),
)
Index("ix_publish_quality_minute", publish_quality.c.minute_ms)

play_minutes = Table(
    "play_minutes",
    metadata,
    Column("stream_id", BigId, ForeignKey("streams.id"), nullable=False),
    Column("minute_ms", BigInteger, nullable=False),
    Column("viewer", String(32), nullable=False),  # a hash of the viewer's address and agent
    PrimaryKeyConstraint("stream_id", "minute_ms", "viewer"),
)
Index("ix_play_minutes_minute", play_minutes.c.minute_ms)

nodes = Table(
    "nodes",
    metadata,
    Column("node_id", String(64), primary_key=True),
    Column("api_url", String(255), nullable=False),  # where other nodes reach its API
    Column("seen_ms", BigInteger, nullable=False),  # by the database's clock
)

# Recording outputs per entry point and region (FLS's standard recording configuration);
# no row: HLS on, MP4 off.
record_settings = Table(
    "record_settings",
    metadata,
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("entry_point", String(64), nullable=False),
    Column("region", String(8), nullable=False),
    Column("hls_enabled", Boolean, nullable=False),
    Column("mp4_enabled", Boolean, nullable=False),
    PrimaryKeyConstraint("project_id", "entry_point", "region"),
)

# Periodic snapshots per entry point and region; no row: off.
snapshot_settings = Table(
    "snapshot_settings",
    metadata,
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("entry_point", String(64), nullable=False),
    Column("region", String(8), nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("interval_s", Integer, nullable=False),
    Column("moderation", Boolean, nullable=False),  # stored only: no moderation is done
    PrimaryKeyConstraint("project_id", "entry_point", "region"),
)

# Finished MP4 slices (a slice is listed once it is complete and stored).
mp4_files = Table(
    "mp4_files",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("stream_id", BigId, ForeignKey("streams.id"), nullable=False),
    Column("region", String(8), nullable=False),
    Column("key", String(1024), nullable=False),  # record/{ep}/{stream}/..._{slice}_{date}.mp4
    Column("session_id", String(128), nullable=False),
    Column("slice_id", Integer, nullable=False),
    Column("start_ms", BigInteger, nullable=False),
    Column("end_ms", BigInteger, nullable=False),
    Column("size", BigInteger, nullable=False),
    UniqueConstraint("stream_id", "key"),
)
Index("ix_mp4_files_stream_start", mp4_files.c.stream_id, mp4_files.c.start_ms)
Index("ix_mp4_files_region_end", mp4_files.c.region, mp4_files.c.end_ms)  # retention

# Periodic snapshots taken.
snapshot_files = Table(
    "snapshot_files",
    metadata,
    Column("stream_id", BigId, ForeignKey("streams.id"), nullable=False),
    Column("region", String(8), nullable=False),
    Column("key", String(1024), nullable=False),  # snapshot/{ep}/{stream}/..._{filedate}.jpg
    Column("time_ms", BigInteger, nullable=False),  # the wall clock of the frame it shows
    # Its bytes (retention's byte cap counts them); 0 for those taken before 0006.
    Column("size", BigInteger, nullable=False, server_default=text("0")),
    PrimaryKeyConstraint("stream_id", "key"),
)
Index("ix_snapshot_files_stream_time", snapshot_files.c.stream_id, snapshot_files.c.time_ms)
Index("ix_snapshot_files_region_time", snapshot_files.c.region, snapshot_files.c.time_ms)

# Callbacks (FLS's NCS notifications) of a project (entry_point '') or, overriding the
# project's as a whole, of one of its entry points.
callback_settings = Table(
    "callback_settings",
    metadata,
    Column("project_id", Integer, ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("entry_point", String(64), nullable=False),  # '': the project's own
    Column("url", String(2048), nullable=False),
    Column("secret_sealed", Text, nullable=False),  # Fernet: signing needs it back
    Column("event_types", String(255), nullable=False),  # eventType numbers, comma-separated
    Column("enabled", Boolean, nullable=False),
    PrimaryKeyConstraint("project_id", "entry_point"),
)

# The publish-authentication webhook of a project (FLS's origin "streamauth" webhook).
publish_webhooks = Table(
    "publish_webhooks",
    metadata,
    Column(
        "project_id",
        Integer,
        ForeignKey("projects.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("enabled", Boolean, nullable=False),
    Column("url", String(2048), nullable=False),
    Column("secret_sealed", Text, nullable=True),
)

# The callback outbox (catalog/outbox.py): one queue per stream that ever had a notice, its
# notices in id order, and the notices given up.
notice_queues = Table(
    "notice_queues",
    metadata,
    Column(
        "stream_id",
        BigId,
        ForeignKey("streams.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("due_ms", BigInteger, nullable=True),  # NULL: nothing to send
    Column("lease_node", String(64), nullable=True),
    Column("lease_token", String(32), nullable=True),
    Column("lease_until_ms", BigInteger, nullable=True),  # by the database's clock
)
Index("ix_notice_queues_due", notice_queues.c.due_ms)

notices = Table(
    "notices",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column(
        "stream_id",
        BigId,
        ForeignKey("notice_queues.stream_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("notice_id", String(64), nullable=False),  # the body's noticeId, kept across tries
    Column("event_type", Integer, nullable=False),
    Column("payload", Text, nullable=False),  # JSON
    Column("created_ms", BigInteger, nullable=False),  # by the database's clock
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("last_error", String(300), nullable=True),
)
Index("ix_notices_stream_id", notices.c.stream_id, notices.c.id)

dead_notices = Table(
    "dead_notices",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("stream_id", BigId, ForeignKey("streams.id", ondelete="CASCADE"), nullable=False),
    Column("notice_id", String(64), nullable=False),
    Column("event_type", Integer, nullable=False),
    Column("payload", Text, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("failed_ms", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_error", String(300), nullable=False),
)
Index("ix_dead_notices_stream_id", dead_notices.c.stream_id, dead_notices.c.id)

# The callbacks receivers took, newest kept (catalog/outbox.py prunes to MAX_DELIVERED).
delivered_notices = Table(
    "delivered_notices",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("stream_id", BigId, ForeignKey("streams.id", ondelete="CASCADE"), nullable=False),
    Column("notice_id", String(64), nullable=False),
    Column("event_type", Integer, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("delivered_ms", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False),
)
Index("ix_delivered_notices_stream_id", delivered_notices.c.stream_id, delivered_notices.c.id)

# Retention (catalog/retention.py): ranges of a stream it never deletes, user locks
# (file_name NULL) and the ranges clips reference (their files row; gone with it).
retention_locks = Table(
    "retention_locks",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("stream_id", BigId, ForeignKey("streams.id"), nullable=False),
    Column("start_ms", BigInteger, nullable=False),
    Column("end_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=True),  # NULL: until deleted
    Column("file_name", String(255), nullable=True),
    Column("created_ms", BigInteger, nullable=False),
    ForeignKeyConstraint(
        ["stream_id", "file_name"],
        ["files.stream_id", "files.file_name"],
        name="fk_retention_locks_stream_id_files",
        ondelete="CASCADE",
    ),
)
Index("ix_retention_locks_stream_start", retention_locks.c.stream_id, retention_locks.c.start_ms)

# Blobs to delete, listed in the transaction that dropped them from the catalog (and, for a
# recording trimmed, its playlist to rewrite first): a sweep that dies leaves rows here, and
# the next one finishes them.
retention_trash = Table(
    "retention_trash",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("key", String(1024), nullable=False),  # the storage key
    Column("recording_id", BigInteger, nullable=True),  # whose playlist to rewrite first
    Column("due_ms", BigInteger, nullable=False, index=True),
)

# One sweeper per region at a time, on the database's clock.
retention_leases = Table(
    "retention_leases",
    metadata,
    Column("region", String(8), primary_key=True),
    Column("node_id", String(64), nullable=True),
    Column("token", String(32), nullable=True),
    Column("until_ms", BigInteger, nullable=True),
)
