"""The one place that builds and wires the parts: catalog, storage, RTMP, recorder, HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
import socket
import sys
import uuid
from collections.abc import Awaitable, Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import uvicorn

from liverec.api.app import create_app
from liverec.api.context import ApiContext
from liverec.catalog import Catalog, SecretBox, ensure_schema, make_engine
from liverec.catalog.models import EntryPoint, Recording
from liverec.config import Settings
from liverec.errors import ConflictError, NotFoundError, RefusedError
from liverec.postprocess.clip import make_clip
from liverec.postprocess.snapshot import make_snapshot
from liverec.recorder.catalog_events import CatalogEvents
from liverec.recorder.hls import HlsWriter
from liverec.recorder.recovery import finalize_recording
from liverec.recorder.stream import StreamRecorder, StreamSettings
from liverec.rtmp.pushauth import BAD_NAME, check_push_signature, check_stream_name
from liverec.rtmp.server import Limits, RtmpServer
from liverec.rtmp.session import MediaSink, PublishRequest
from liverec.storage import BlobStore, open_store, project_prefix

log = logging.getLogger("liverec")


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class DiscardSink:
    """A publish whose recording is switched off: accepted, nothing stored."""

    def __init__(self, on_closed: Callable[[], Awaitable[None]]) -> None:
        self.on_closed = on_closed

    def on_metadata(self, metadata: dict[str, Any]) -> None:
        pass

    def on_audio(self, timestamp: int, payload: bytes) -> None:
        pass

    def on_video(self, timestamp: int, payload: bytes) -> None:
        pass

    async def close(self) -> None:
        await self.on_closed()


class Service:
    def __init__(self, settings: Settings, clock: SystemClock | None = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.engine = make_engine(settings.effective_database_url)
        ensure_schema(self.engine)
        self.box = SecretBox.from_settings(settings)
        self.catalog = Catalog(self.engine, self.box)
        self.store: BlobStore = open_store(
            settings.effective_storage_url, endpoint_url=settings.s3_endpoint_url or None
        )
        self.node_id = settings.node_id or self._persistent_node_id(settings.data_dir)
        self.lease = settings.lease_seconds
        self.rtmp = RtmpServer(
            self,
            Limits(
                idle_timeout=settings.rtmp_idle_timeout,
                read_timeout=settings.rtmp_read_timeout,
                max_connections=settings.rtmp_max_connections,
                max_message_size=settings.rtmp_max_message_size,
            ),
        )
        self.recorders: dict[tuple[str, str, str], StreamRecorder] = {}
        self.writers: set[HlsWriter] = set()  # until each has written all it was given
        # Recording's own threads: API work (snapshots, clips, auth) cannot starve the
        # storage and catalog calls that keep media and leases safe.
        self.io_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="recorder")
        self.http: uvicorn.Server | None = None
        self.http_port = 0
        self._tasks: list[asyncio.Task[Any]] = []

    @staticmethod
    def _persistent_node_id(data_dir: Path) -> str:
        # Kept on disk so that a restart after a crash knows its own open recordings.
        path = data_dir / "node-id"
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            node_id = uuid.uuid4().hex
            path.write_text(node_id + "\n")
            return node_id

    # -- bootstrap -----------------------------------------------------------------------

    def bootstrap(self) -> None:
        """First start: a default project, its `live` entry point and a credential.

        Each step is checked on every start, so a first start that was interrupted half-way
        is completed by the next one instead of leaving a catalog without them."""
        s = self.settings
        projects = self.catalog.list_projects()
        if not projects:
            app_id = s.app_id or secrets.token_hex(16)
            try:
                self.catalog.create_project(app_id, name="default", is_default=True)
                print(f"liverec: created project {app_id}", flush=True)
            except ConflictError:
                log.info("another node bootstrapped the catalog first")
            projects = self.catalog.list_projects()
        default = next((p for p in projects if p.is_default), projects[0])
        try:
            self.catalog.get_entry_point(default.app_id, "live")
        except NotFoundError:
            with contextlib.suppress(ConflictError):
                self.catalog.create_entry_point(default.app_id, "live", record_enabled=True)
                print(f"liverec: created entry point 'live' in {default.app_id}", flush=True)
        if self.catalog.list_credentials():
            return
        try:
            cred, secret = self.catalog.create_credential(
                s.customer_id or None, s.customer_secret or None, [default.app_id]
            )
        except ConflictError:
            return  # another node made it
        print(f"liverec: customer ID: {cred.customer_id}", flush=True)
        if not s.customer_secret:
            # Printed once, on stdout, never logged; only its encrypted form is kept.
            print(f"liverec: customer secret (shown once): {secret}", flush=True)

    # -- recovery and leases ---------------------------------------------------------------

    def recover(self) -> int:
        """Close recordings a crash left open: ours, and any whose lease has expired."""
        closed = 0
        self.catalog.release_node_live(self.node_id)
        candidates: dict[int, Recording] = {}
        for rec in self.catalog.open_recordings(self.node_id):
            candidates[rec.id] = rec
        for rec in self.catalog.expired_open_recordings():
            if self.catalog.claim_recording(rec.id, self.node_id, self.lease):
                candidates[rec.id] = rec
        for rec in candidates.values():
            finalize_recording(self.catalog, self.store, rec)
            closed += 1
        if closed:
            log.info("closed %d recording(s) left open by a stopped node", closed)
        return closed

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            loop = asyncio.get_running_loop()
            writing = {w.recording_id for w in self.writers} - {None}
            try:
                await loop.run_in_executor(
                    self.io_pool, self.catalog.renew_leases, self.node_id, self.lease
                )
                await loop.run_in_executor(self.io_pool, self._sweep, writing)
            except Exception:
                log.exception("lease renewal failed")

    def _sweep(self, writing: set[int | None]) -> None:
        """Close recordings nobody writes any more: other nodes' whose lease expired, and
        this node's own that no writer holds (their close failed) and that have had no new
        segment for a lease period (a recording just being opened is not yet held)."""
        for rec in self.catalog.expired_open_recordings():
            if rec.node_id != self.node_id and self.catalog.claim_recording(
                rec.id, self.node_id, self.lease
            ):
                finalize_recording(self.catalog, self.store, rec)
                log.info("closed recording %s of stopped node %s", rec.playlist_key, rec.node_id)
        stale = self.clock.now() - timedelta(seconds=self.lease)
        for rec in self.catalog.open_recordings(self.node_id):
            if rec.id not in writing and rec.end_time < stale:
                finalize_recording(self.catalog, self.store, rec)
                log.info("closed recording %s that no writer held", rec.playlist_key)

    # -- publishing (the RTMP server's PublishHandler) -------------------------------------

    async def start_publish(self, request: PublishRequest) -> MediaSink:
        name = check_stream_name(request.stream_name)
        key, ep, record = await asyncio.to_thread(self._admit, request, name)
        app_id, ep_name, _ = key

        async def on_closed() -> None:
            self.recorders.pop(key, None)
            await asyncio.to_thread(self.catalog.release_live, *key, self.node_id)

        if not record:
            return DiscardSink(on_closed)
        recorder = StreamRecorder(
            StreamSettings(
                folder=f"record/{ep_name}/{name}",
                key_prefix=project_prefix(self.settings.region, app_id),
                session_id=uuid.uuid4().hex[:16],
                target_duration=ep.target_duration,
                max_file_duration=ep.max_file_duration,
            ),
            store=self.store,
            events=CatalogEvents(
                self.catalog,
                app_id=app_id,
                entry_point=ep_name,
                stream_name=name,
                region=self.settings.region,
                node_id=self.node_id,
                lease_seconds=self.lease,
            ),
            clock=self.clock,
            on_closed=on_closed,
            executor=self.io_pool,
        )
        self.recorders[key] = recorder
        self.writers.add(recorder.writer)
        recorder.writer.when_done(lambda: self.writers.discard(recorder.writer))
        return recorder

    def _admit(
        self, request: PublishRequest, name: str
    ) -> tuple[tuple[str, str, str], EntryPoint, bool]:
        """Check the publish against the catalog and take the stream's live lease.

        Returns the stream's key, its entry point, and whether it is to be recorded."""
        project = self.catalog.project_for_host(request.host)
        if project is None:
            raise RefusedError(BAD_NAME, f"no project takes pushes for host {request.host!r}")
        try:
            ep = self.catalog.get_entry_point(project.app_id, request.app)
        except NotFoundError:
            raise RefusedError(BAD_NAME, f"unknown entry point {request.app[:64]!r}") from None
        if ep.auth_key:
            check_push_signature(ep.auth_key, ep.name, name, request.query)
        # A second publisher is refused whether or not the stream is recorded.
        if not self.catalog.try_acquire_live(
            project.app_id, ep.name, name, self.node_id, self.lease
        ):
            raise RefusedError(BAD_NAME, f"stream {ep.name}/{name} is already being published")
        record = self.catalog.stream_recording_enabled(project.app_id, ep.name, name)
        if not record:
            log.info("publish %s/%s: recording is off for it", ep.name, name)
        return (project.app_id, ep.name, name), ep, record

    def api_context(self) -> ApiContext:
        return ApiContext(
            catalog=self.catalog,
            store=self.store,
            region=self.settings.region,
            url_key=self.box.derive("file-urls"),
            clock=self.clock.now,
            make_clip=make_clip,
            make_snapshot=make_snapshot,
            node_id=self.node_id,
            redirect_downloads=self.settings.s3_redirect,
        )

    # -- running -------------------------------------------------------------------------

    async def start(self) -> None:
        await asyncio.to_thread(self.bootstrap)
        await asyncio.to_thread(self.recover)
        host, port = self.settings.rtmp_addr
        await self.rtmp.start(host, port)
        await self._start_http()
        self._tasks.append(asyncio.create_task(self._heartbeat(), name="heartbeat"))
        # Always shown, whatever the log level: scripts and tests wait for this line.
        print(
            f"liverec ready: rtmp={host}:{self.rtmp.port} "
            f"http={self.settings.http_addr[0]}:{self.http_port} "
            f"region={self.settings.region} data={self.settings.data_dir}",
            flush=True,
        )

    async def _start_http(self) -> None:
        host, port = self.settings.http_addr
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
        sock.setblocking(False)
        self.http_port = sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(self.api_context()),
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
        self.http = _EmbeddedServer(config)
        self._tasks.append(asyncio.create_task(self.http.serve(sockets=[sock]), name="http"))
        log.info("HTTP listening on %s:%d", host, self.http_port)

    async def stop(self) -> None:
        """Close every open recording (playlists get EXT-X-ENDLIST), then stop serving."""
        log.info("shutting down: closing open recordings")
        await self.rtmp.close()
        if self.http is not None:
            self.http.should_exit = True
        for task in self._tasks:
            if task.get_name() != "http":
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.io_pool.shutdown(wait=True)
        self.engine.dispose()
        log.info("stopped")

    async def serve_forever(self) -> None:
        await self.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await self.stop()


class _EmbeddedServer(uvicorn.Server):
    """uvicorn on our loop; liverec handles the signals itself."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def run(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    service = Service(settings)
    asyncio.run(service.serve_forever())
