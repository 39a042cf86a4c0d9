"""The Catalog: one object over the catalog database, in parts (projects, credentials,
streams, recordings). All calls are synchronous; async callers run them in a thread."""

from __future__ import annotations

from sqlalchemy import Engine

from liverec.catalog._base import Clock, utc_now
from liverec.catalog.admit import AdmitRepo
from liverec.catalog.callbacks import CallbacksRepo
from liverec.catalog.credentials import CredentialsRepo
from liverec.catalog.made import MadeFilesRepo
from liverec.catalog.outbox import OutboxRepo
from liverec.catalog.outputs import OutputsRepo
from liverec.catalog.playback import PlaybackRepo
from liverec.catalog.projects import ProjectsRepo
from liverec.catalog.publishes import PublishesRepo
from liverec.catalog.recording_end import RecordingEndRepo
from liverec.catalog.recordings import RecordingsRepo
from liverec.catalog.retention import RetentionRepo
from liverec.catalog.retention_locks import LocksRepo
from liverec.catalog.retention_outputs import OutputsRetentionRepo
from liverec.catalog.retention_trash import TrashRepo
from liverec.catalog.secrets import SecretBox
from liverec.catalog.streams import StreamsRepo


class Catalog(
    ProjectsRepo,
    CredentialsRepo,
    StreamsRepo,
    RecordingsRepo,
    RecordingEndRepo,
    PublishesRepo,
    OutputsRepo,
    CallbacksRepo,
    OutboxRepo,
    RetentionRepo,
    LocksRepo,
    TrashRepo,
    OutputsRetentionRepo,
    PlaybackRepo,
    MadeFilesRepo,
    AdmitRepo,
):
    """Projects, credentials, entry points, streams, recordings, segments, file names,
    publishes and their reports, callback settings and the callback outbox.

    `clock` gives the current UTC time for creation times; tests pass their own. Leases
    are written and compared by the database's clock (catalog/dbclock.py), so that nodes
    whose clocks disagree agree on when a lease runs out."""

    def __init__(self, engine: Engine, box: SecretBox, clock: Clock = utc_now) -> None:
        super().__init__(engine, box, clock)
