"""Notices of files made outside the recorder's journal, each enqueued so that it cannot be
lost once the file is there:

- periodic snapshots (102): `SnapshotFileNotices` is the catalog PeriodicSnapshots writes
  to; the notice goes in the transaction that catalogues the snapshot;
- MP4 slices (101): `Mp4FileNotices` is the catalog the MP4 writer (outputs/mp4.py)
  writes to; the notice goes in the transaction that catalogues the complete slice;
- clips and snapshots made through the API (1001, 1002): `ClipNotices` and
  `SnapshotNotices` wrap the makers; the notice is enqueued before the API answers;
- recordings deleted by retention (1003): `enqueue_record_deleted`, for the retention
  sweeper to call in its own deletion (or to pass as notices)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from liverec.catalog import Notice
from liverec.events.notices import (
    api_snapshot_notice,
    clip_file_notice,
    record_deleted_notice,
    record_file_notice,
    snapshot_file_notice,
)
from liverec.layout import StreamRef


class NoticeQueue(Protocol):
    def enqueue_notices(self, items: Iterable[Notice]) -> int: ...


class SnapshotFileCatalog(Protocol):
    def add_snapshot_file(
        self,
        stream: StreamRef,
        name: str,
        time: datetime,
        notices: Sequence[Notice] = (),
        *,
        size: int = 0,
    ) -> None: ...


class SnapshotFileNotices:
    """outputs.snapshots' SnapshotCatalog: catalogues each periodic snapshot with its 102
    notice, in one transaction."""

    def __init__(self, catalog: SnapshotFileCatalog) -> None:
        self.catalog = catalog

    def add_snapshot_file(
        self, stream: StreamRef, name: str, time: datetime, *, size: int = 0
    ) -> None:
        self.catalog.add_snapshot_file(
            stream, name, time, [snapshot_file_notice(stream, name)], size=size
        )


class Mp4FileCatalog(Protocol):
    def add_mp4_file(
        self,
        stream: StreamRef,
        *,
        name: str,
        session_id: str,
        slice_id: int,
        start_time: datetime,
        end_time: datetime,
        size: int,
        notices: Sequence[Notice] = (),
    ) -> None: ...


class Mp4FileNotices:
    """outputs.mp4's Mp4Catalog: catalogues each complete MP4 slice with its 101 notice, in
    one transaction (a slice catalogued again after a crash is a ConflictError: told once)."""

    def __init__(self, catalog: Mp4FileCatalog) -> None:
        self.catalog = catalog

    def add_mp4_file(
        self,
        stream: StreamRef,
        *,
        name: str,
        session_id: str,
        slice_id: int,
        start_time: datetime,
        end_time: datetime,
        size: int,
    ) -> None:
        self.catalog.add_mp4_file(
            stream,
            name=name,
            session_id=session_id,
            slice_id=slice_id,
            start_time=start_time,
            end_time=end_time,
            size=size,
            notices=[record_file_notice(stream, name)],
        )


def enqueue_record_deleted(queue: NoticeQueue, stream: StreamRef, file_name: str) -> int:
    """1003: a recording (its playlist name) was deleted by retention."""
    return queue.enqueue_notices([record_deleted_notice(stream, file_name, "retention")])


class MadeClip(Protocol):
    @property
    def file_name(self) -> str: ...
    @property
    def start(self) -> datetime: ...
    @property
    def end(self) -> datetime: ...


class MadeSnapshot(Protocol):
    @property
    def file_name(self) -> str: ...
    @property
    def time(self) -> datetime: ...


C = TypeVar("C", bound=MadeClip, covariant=True)
S = TypeVar("S", bound=MadeSnapshot, covariant=True)


class MakeClip(Protocol[C]):
    def __call__(
        self,
        stream: StreamRef,
        *,
        file_name: str,
        start: datetime,
        end: datetime | None,
        precise: bool = False,
    ) -> C: ...


class MakeSnapshot(Protocol[S]):
    def __call__(self, stream: StreamRef, *, file_name: str, time: datetime | None) -> S: ...


class ClipNotices(Generic[C]):
    """A clip maker (postprocess.ClipWriter) that enqueues 1001 for each clip it made."""

    def __init__(self, make: MakeClip[C], queue: NoticeQueue) -> None:
        self.make = make
        self.queue = queue

    def __call__(
        self,
        stream: StreamRef,
        *,
        file_name: str,
        start: datetime,
        end: datetime | None,
        precise: bool = False,
    ) -> C:
        clip = self.make(stream, file_name=file_name, start=start, end=end, precise=precise)
        self.queue.enqueue_notices([clip_file_notice(stream, clip.file_name, clip.start, clip.end)])
        return clip


class SnapshotNotices(Generic[S]):
    """A snapshot maker (postprocess.SnapshotWriter) that enqueues 1002 for each one."""

    def __init__(self, make: MakeSnapshot[S], queue: NoticeQueue) -> None:
        self.make = make
        self.queue = queue

    def __call__(self, stream: StreamRef, *, file_name: str, time: datetime | None) -> S:
        shot = self.make(stream, file_name=file_name, time=time)
        self.queue.enqueue_notices([api_snapshot_notice(stream, shot.file_name, shot.time)])
        return shot
