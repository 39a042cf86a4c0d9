"""The one place a publish's recorder is put together: its settings, its store, its
journal (the catalog writer) and the listeners every recorder reports to.

service.py builds one Recorders and starts a recorder per recorded publish; the tests'
in-process recorder and the benches use the same, so what they record is what a real push
records."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor

from liverec.layout import StreamRef
from liverec.recorder.catalog_writer import (
    CatalogWriter,
    CloseNotice,
    RecordingCatalog,
    SegmentBatches,
)
from liverec.recorder.events import Listener
from liverec.recorder.hls import BlobWriter
from liverec.recorder.stream import Clock, StreamRecorder, StreamSettings


def new_session_id() -> str:
    """FLS's sessionid of a publish: random hex (16 digits: unique enough, short names)."""
    return uuid.uuid4().hex[:16]


class Recorders:
    """Starts the recorder of each publish this node records."""

    def __init__(
        self,
        catalog: RecordingCatalog,
        store: BlobWriter,
        *,
        node_id: str,
        lease_seconds: float,
        clock: Clock,
        executor: Executor | None = None,
        listeners: Sequence[Listener] = (),
        close_notice: CloseNotice | None = None,
    ) -> None:
        self.catalog = catalog
        # One group commit for the segments of every publish (recorder/catalog_writer.py).
        self.batches = SegmentBatches(catalog)
        self.close_notice = close_notice  # a closed recording's callback
        self.store = store
        self.node_id = node_id
        self.lease_seconds = lease_seconds
        self.clock = clock
        self.executor = executor
        self.listeners = list(listeners)

    def subscribe(self, listener: Listener) -> None:
        """Tell `listener` every event of the recorders started from now on."""
        self.listeners.append(listener)

    def start(
        self,
        stream: StreamRef,
        *,
        target_duration: float,
        max_file_duration: float,
        on_closed: Callable[[], Awaitable[None]] | None = None,
        session_id: str | None = None,
        hls: bool = True,
        mp4: bool = False,
        stream_id: int | None = None,
    ) -> StreamRecorder:
        """The recorder of a new publish of `stream` (needs a running event loop);
        `stream_id`: its catalog row, when the publish knows it (saves a lookup)."""
        journal = CatalogWriter(
            self.catalog,
            node_id=self.node_id,
            lease_seconds=self.lease_seconds,
            close_notice=self.close_notice,
            batches=self.batches,
            stream_id=stream_id,
        )
        return StreamRecorder(
            StreamSettings(
                stream=stream,
                session_id=session_id or new_session_id(),
                target_duration=target_duration,
                max_file_duration=max_file_duration,
                hls=hls,
                mp4=mp4,
            ),
            store=self.store,
            journal=journal,
            head=journal.head,
            listeners=tuple(self.listeners),
            clock=self.clock,
            on_closed=on_closed,
            executor=self.executor,
        )
