"""Who may publish, and the leases that keep each stream's publish and each open recording
on one node at a time, across nodes.

- `admit`: the project by push host, the entry point, FLS's push signature, a ban, the
  project's publish webhook (the `gate`, events/webhook.py), then the stream's live lease
  (a second publisher is refused on any node, recorded or not), and whether the stream is
  recorded. `release` gives the live lease back.
- Leases on open recordings: `Admission` is a recorder listener (recorder/events.py), so
  it knows which open recordings this node's writers hold. `renew` is the heartbeat: it
  extends this node's leases, then sweeps: it closes other nodes' recordings whose lease
  ran out (claimed with a compare-and-set first), and this node's own that no writer holds
  and that have had no segment for a lease period (their close failed).
- `recover`, at start: close what a crash of this node left open (recordings, publishes),
  with their callbacks (`notices`), as the sweep does for other nodes'.
  The sweep also ends the publishes of nodes whose live lease ran out.

The catalog decides: leases are compared and set on the database's clock, and a writer
whose recording was taken over learns it from the catalog (LeaseLostError)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from liverec.catalog import (
    Catalog,
    EntryPoint,
    Notice,
    Publish,
    Recording,
    RecordOutputs,
    SnapshotSettings,
    WebhookSettings,
)
from liverec.errors import RefusedError
from liverec.layout import StreamRef
from liverec.logs import clip
from liverec.recorder import RecorderEvent, RecordingEnded, RecordingStarted, finalize_recording
from liverec.recorder.hls import BlobWriter
from liverec.rtmp.pushauth import BAD_NAME, UNAUTHORIZED, check_push_signature, check_stream_name
from liverec.rtmp.session import PublishRequest

REJECTED = "NetStream.Publish.Rejected"

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Admitted:
    """A publish that may go ahead; its stream's live lease is held until `release`."""

    stream: StreamRef
    entry_point: EntryPoint
    record: bool  # standard recording is on for the stream
    outputs: RecordOutputs = field(default_factory=RecordOutputs)  # HLS, MP4 in this region
    snapshots: SnapshotSettings = field(default_factory=SnapshotSettings)  # periodic ones
    stream_id: int | None = None  # its catalog row, once known: later writes skip the lookup


class PushGuard(Protocol):
    """Limits bad push signatures per address (api/guard.Guard); called from a thread."""

    def push_allowed(self, ip: str) -> float: ...  # seconds still locked out; 0: allowed
    def push_failed(self, ip: str) -> None: ...


class PublishGate(Protocol):
    """Asks outside whether a publish may go ahead (events.PublishWebhook): None if it may,
    else why not. Blocking: admission runs in a worker thread."""

    def check(
        self,
        app_id: str,
        attempt: PublishRequest,
        entry_point: str,
        stream_name: str,
        hook: WebhookSettings | None = None,  # the project's, read with the rest
    ) -> str | None: ...


class CrashNotices(Protocol):
    """The callbacks of what the lease keeper ends for a stopped node (events.FlsNotices)."""

    def recording_closed(self, rec: Recording) -> Notice: ...

    def publish_ended_of(self, publish: Publish) -> Notice: ...


class Admission:
    """Publish admission and this node's leases. Its calls are synchronous (the catalog's
    are); `keep_leases` runs the heartbeat on a running loop."""

    def __init__(
        self,
        catalog: Catalog,
        store: BlobWriter,
        *,
        node_id: str,
        region: str,
        lease_seconds: float,
        clock: Callable[[], datetime],
        gate: PublishGate | None = None,
        notices: CrashNotices | None = None,
        disk_full: Callable[[], str | None] | None = None,
    ) -> None:
        self.catalog = catalog
        self.disk_full = disk_full  # why new publishes are refused now (diskguard.py)
        self.push_guard: PushGuard | None = None  # set by service.py
        self.gate = gate
        self.notices = notices
        self.store = store
        self.node_id = node_id
        self.region = region
        self.lease_seconds = lease_seconds
        self.clock = clock
        self._held: set[tuple[str, str]] = set()  # (app_id, playlist name) being written
        self._lock = threading.Lock()

    # -- admission ------------------------------------------------------------------------

    def _check_signature(
        self, auth_key: str, entry_point: str, name: str, request: PublishRequest
    ) -> None:
        """FLS's push signature; with push_guard, bad ones lock the address out a while."""
        guard = self.push_guard
        if guard is None:
            check_push_signature(auth_key, entry_point, name, request.query)
            return
        ip = request.peer.rsplit(":", 1)[0]
        wait = guard.push_allowed(ip)
        if wait:
            raise RefusedError(
                UNAUTHORIZED, f"too many bad push signatures from {clip(ip)}: retry later"
            )
        try:
            check_push_signature(auth_key, entry_point, name, request.query)
        except RefusedError:
            guard.push_failed(ip)
            raise

    def admit(self, request: PublishRequest) -> Admitted:
        """Check the publish against the catalog and take the stream's live lease; raise
        RefusedError (with the RTMP status to send) if it may not go ahead. Two catalog
        statements: what the checks read, in one (catalog.publish_settings), and the
        lease (catalog.take_live)."""
        name = check_stream_name(request.stream_name)
        found = self.catalog.publish_settings(request.host, request.app, name, self.region)
        if found is None:
            raise RefusedError(BAD_NAME, f"no project takes pushes for host {clip(request.host)!r}")
        ep = found.entry_point
        if ep is None:
            raise RefusedError(BAD_NAME, f"unknown entry point {request.app[:64]!r}")
        if ep.auth_key:
            self._check_signature(ep.auth_key, ep.name, name, request)
        full = self.disk_full() if self.disk_full is not None else None
        if full is not None:
            raise RefusedError(REJECTED, full)
        stream = StreamRef(found.project.app_id, self.region, ep.name, name)
        banned = found.banned_until
        if banned is not None:
            raise RefusedError(
                REJECTED, f"stream {stream} is banned until {banned.isoformat(timespec='seconds')}"
            )
        if self.gate is not None:
            refusal = self.gate.check(stream.app_id, request, ep.name, name, found.webhook)
            if refusal is not None:
                raise RefusedError(UNAUTHORIZED, refusal)
        # A second publisher is refused whether or not the stream is recorded.
        stream_id = self.catalog.take_live(
            stream, self.node_id, self.lease_seconds, found.stream_id, found.project.id
        )
        if stream_id is None:
            raise RefusedError(BAD_NAME, f"stream {stream} is already being published")
        if not found.record:
            log.info("publish %s: recording is off for it", stream)
        return Admitted(stream, ep, found.record, found.outputs, found.snapshots, stream_id)

    def release(self, stream: StreamRef) -> None:
        """The publish of `stream` ended: its live lease is free for the next publisher."""
        self.catalog.release_live(stream, self.node_id)

    # -- which recordings this node's writers hold (a recorder listener) ------------------

    def __call__(self, event: RecorderEvent) -> None:
        if isinstance(event, RecordingStarted | RecordingEnded):
            key = (event.stream.app_id, event.recording.playlist)
            with self._lock:
                if isinstance(event, RecordingStarted):
                    self._held.add(key)
                else:
                    self._held.discard(key)

    def holds(self, rec: Recording) -> bool:
        """Whether a writer of this node is writing `rec`."""
        with self._lock:
            return (rec.app_id, rec.playlist_key) in self._held

    # -- leases ---------------------------------------------------------------------------

    def recover(self) -> int:
        """At start: close the recordings a crash left open (ours, and any whose lease has
        expired) at their last catalogued segment, and give back our live leases."""
        self.catalog.release_node_live(self.node_id)
        ended = self.notices.publish_ended_of if self.notices is not None else None
        self.catalog.end_node_publishes(self.node_id, self.clock(), ended)
        candidates: dict[int, Recording] = {
            rec.id: rec for rec in self.catalog.open_recordings(self.node_id)
        }
        for rec in self.catalog.expired_open_recordings():
            if self.catalog.claim_recording(rec.id, self.node_id, self.lease_seconds):
                candidates[rec.id] = rec
        for rec in candidates.values():
            self._finalize(rec)
        if candidates:
            log.info("closed %d recording(s) left open by a stopped node", len(candidates))
        return len(candidates)

    def renew(self) -> int:
        """The heartbeat: extend this node's leases, then sweep. Returns how many
        recordings the sweep closed."""
        self.catalog.renew_leases(self.node_id, self.lease_seconds)
        return self.sweep()

    def sweep(self) -> int:
        """Close recordings nobody writes any more: other nodes' whose lease expired, and
        this node's own that no writer holds (their close failed) and that have had no new
        segment for a lease period (a recording just being opened is not yet held)."""
        closed = 0
        for rec in self.catalog.expired_open_recordings():
            if rec.node_id != self.node_id and self.catalog.claim_recording(
                rec.id, self.node_id, self.lease_seconds
            ):
                self._finalize(rec)
                log.info("closed recording %s of stopped node %s", rec.playlist_key, rec.node_id)
                closed += 1
        self.catalog.end_orphan_publishes(
            self.notices.publish_ended_of if self.notices is not None else None
        )
        stale = self.clock() - timedelta(seconds=self.lease_seconds)
        for rec in self.catalog.open_recordings(self.node_id):
            if not self.holds(rec) and rec.end_time < stale:
                self._finalize(rec)
                log.info("closed recording %s that no writer held", rec.playlist_key)
                closed += 1
        return closed

    def _finalize(self, rec: Recording) -> None:
        closed = self.notices.recording_closed if self.notices is not None else None
        finalize_recording(self.catalog, self.store, rec, closed)

    async def keep_leases(self, executor: Executor | None = None) -> None:
        """Renew every third of a lease until cancelled; a failure is logged, not fatal."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                await loop.run_in_executor(executor, self.renew)
            except Exception:
                log.exception("lease renewal failed")
