"""The composition root: builds the parts, wires them together, runs them. It does no work of
its own.

    catalog + store        the catalog (SQLite or PostgreSQL) and the blob store
    Admission              who may publish; this node's leases (admission.py)
    Recorders              a recorder per recorded publish; its listeners (recorder/)
    Publishing             this node's live publishes: figures, bans, recording switches,
                           periodic snapshots (outputs/snapshots.py)
    RtmpServer             ingest; asks `start_publish` below for each publish
    ClipWriter, SnapshotWriter, the FastAPI app on uvicorn
    callbacks              FLS callbacks: notices built here (events.FlsNotices) and
                           enqueued by the catalog calls above; CallbackDelivery sends
                           them; PublishWebhook is admission's gate (events/)

A new consumer of recorder events (callbacks, MP4 files, snapshots, metrics) is built here
and passed to `Recorders(listeners=...)`.

A Service plays one of three roles (`Role`): everything (one process, the default), or, with
ingest workers (workers.py), the API process (no RTMP) or an ingest worker (RTMP and
recording, and a private HTTP listener for the calls between nodes only)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import signal
import socket
import ssl
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import uvicorn
from prometheus_client import Gauge

from liverec.admission import Admission
from liverec.api.app import create_app, create_internal_app
from liverec.api.connlimits import ConnectionLimits, limited_protocol
from liverec.api.context import ApiContext
from liverec.api.guard import Guard, GuardSettings
from liverec.api.viewers import Viewers, keep_flushing
from liverec.bootstrap import bootstrap, migrate_apart, persistent_node_id
from liverec.catalog import Catalog, SecretBox, ensure_schema, make_engine
from liverec.config import Settings, check_tls_files, parse_cors_origins
from liverec.console import routes as console
from liverec.diskguard import DiskGuard
from liverec.events import (
    CallbackDelivery,
    ClipNotices,
    FlsNotices,
    Mp4FileNotices,
    PublishWebhook,
    RetryPolicy,
    SnapshotFileNotices,
    SnapshotNotices,
    guess_node_ip,
)
from liverec.events.notices import record_deleted_notice
from liverec.fdlimit import GuardedLoop, raise_nofile_limit
from liverec.livemedia import LiveMedia
from liverec.logs import bind_stream, clip, configure_logging
from liverec.malloc import tune_malloc
from liverec.metrics import Metrics, StorageUsage
from liverec.outputs import Mp4Writer
from liverec.outputs.snapshots import PeriodicSnapshots
from liverec.postprocess import ClipWriter, LiveThumbnails, SnapshotWriter
from liverec.postprocess.snapshot import encode_jpeg
from liverec.publishing import Publishing
from liverec.readiness import Readiness, disk_check, storage_check
from liverec.recorder import Recorders
from liverec.retention import Sweeper, SweepReport, disk_free
from liverec.rtmp.server import Limits, RtmpServer
from liverec.rtmp.session import MediaSink, PublishRequest
from liverec.storage import BlobStore, LocalStore, open_store
from liverec.storage.spool import SpooledWriter

log = logging.getLogger("liverec")


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def node_tls_context(settings: Settings) -> ssl.SSLContext | None:
    """How this node checks other nodes' HTTPS (their node URLs): the system's trust store
    and this node's own certificate, so that nodes sharing a self-signed one (the ingest
    workers of one server: workers.py) trust each other; host names are checked."""
    if not settings.tls:
        return None
    context = ssl.create_default_context()
    context.load_verify_locations(cafile=settings.tls_cert)
    # Our certificate may be a leaf or an intermediate, not a root: trust it as it is.
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    return context


class Role(Enum):
    ALL = "all"  # one process: RTMP, recording, the API and the periodic work
    API = "api"  # the API, callbacks, retention, metrics; no RTMP (its workers ingest)
    INGEST = "ingest"  # an ingest worker: RTMP and recording, node-to-node HTTP only


class Service:
    """Everything one `liverec serve` runs (or its `role`'s share). Building it opens the
    catalog and the store; `start()` (on a running loop) starts serving. `spool_name`: a
    worker's own subfolder of the data dir's spool (two processes never share one)."""

    def __init__(
        self,
        settings: Settings,
        clock: SystemClock | None = None,
        *,
        role: Role = Role.ALL,
        spool_name: str = "",
    ) -> None:
        self.settings = settings
        self.role = role
        self.clock = clock or SystemClock()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        durable = settings.fsync == "full"  # or "off": see storage/local.py
        self.engine = make_engine(settings.effective_database_url, fsync=durable)
        # Alembic, and on a first start the sealing of its credential, never load here.
        first_start = functools.partial(
            migrate_apart, settings=None if role is Role.INGEST else settings
        )
        ensure_schema(self.engine, first_start)
        self.box = SecretBox.from_settings(settings)
        self.catalog = Catalog(self.engine, self.box)
        self.store: BlobStore = open_store(
            settings.effective_storage_url,
            endpoint_url=settings.s3_endpoint_url or None,
            timeout=settings.storage_timeout,
            fsync=durable,
        )
        self.node_id = settings.node_id or persistent_node_id(settings.data_dir)
        # Counters first: the recorders write through them (the scrape's sources: below).
        self.metrics = Metrics(stream_labels=settings.metrics_stream_labels)
        self.guard = Guard(
            GuardSettings(
                ip_failures=settings.auth_max_failures_per_ip,
                customer_failures=settings.auth_max_failures_per_customer,
                window=settings.auth_fail_window,
                lockout=settings.auth_lockout,
                lockout_max=settings.auth_lockout_max,
                replay_entries=settings.hmac_replay_cache,
            ),
            on_refusal=self.metrics.refused,
        )
        # -- callbacks and the publish webhook (events/) ---------------------------------
        node_ip = settings.node_ip or guess_node_ip(settings.rtmp_addr[0])
        self.notices = FlsNotices(node_ip, settings.region)
        self.callbacks = CallbackDelivery(
            self.catalog,
            node_id=self.node_id,
            policy=RetryPolicy(
                timeout=settings.callback_timeout,
                keep_for=settings.callback_retry_hours * 3600,
                max_backoff=settings.callback_max_backoff,
            ),
        )
        webhook = PublishWebhook(
            self.catalog,
            timeout=settings.webhook_timeout,
            fail_open=settings.webhook_fail_open,
            cache_seconds=settings.webhook_cache_seconds,
            node_ip=node_ip,
        )
        # ---------------------------------------------------------------------------------
        # Recording's own threads: API work (snapshots, clips, auth) cannot starve the
        # storage and catalog calls that keep media and leases safe.
        self.io_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="recorder")
        # New publishes stop before the local disk is full (diskguard.py).
        local_root = self.store.root if isinstance(self.store, LocalStore) else None
        self.disk = DiskGuard(
            [settings.data_dir, *([local_root] if local_root is not None else [])],
            min_free=settings.storage_min_free,
            free_up=lambda: self.retention.sweep_now(),  # built below; called only later
        )
        # Retention (retention.py): one sweeper per region across nodes, every
        # retention_interval seconds, and at once on sweep_now().
        self.retention = Sweeper(
            self.catalog,
            self.store,
            region=settings.region,
            node_id=self.node_id,
            clock=self.clock.now,
            max_bytes=settings.storage_max_bytes,
            min_free=settings.storage_min_free if local_root is not None else 0,
            free_bytes=None if local_root is None else functools.partial(disk_free, local_root),
            deleted_notice=record_deleted_notice,
            on_deleted=self.metrics.retention_deleted,
        )
        self.admission = Admission(
            self.catalog,
            self.store,
            node_id=self.node_id,
            region=settings.region,
            lease_seconds=settings.lease_seconds,
            clock=self.clock.now,
            gate=webhook,
            notices=self.notices,
            disk_full=self.disk.refusal,
        )
        self.admission.push_guard = self.guard  # bad push signatures: api/guard.py
        # MP4 record files: a listener of every recorder; slices being written live in a
        # spool on this node's disk until whole (outputs/mp4.py).
        self.mp4 = Mp4Writer(
            self.store,
            Mp4FileNotices(self.catalog),
            settings.data_dir / "spool" / spool_name / "mp4",
            slice_seconds=settings.mp4_slice_seconds,
            slice_bytes=settings.mp4_slice_bytes,
        )
        # The recorder writes through a local spool that rides out a storage outage.
        self.spool = SpooledWriter(
            self.store,
            settings.data_dir / "spool" / spool_name / "storage",
            max_bytes=settings.storage_spool_max_bytes,
            orphan=self.catalog.trimmed_segment,  # retention trimmed it while spooled
        )
        self.recorders = Recorders(
            self.catalog,
            self.metrics.timed(self.spool),
            node_id=self.node_id,
            lease_seconds=settings.lease_seconds,
            clock=self.clock,
            executor=self.io_pool,
            listeners=[self.admission, self.mp4, self.metrics],
            close_notice=self.notices.recording_closed,
        )
        self.viewers = Viewers(self.clock.now)
        self.publishing = Publishing(
            self.catalog,
            self.recorders,
            node_id=self.node_id,
            region=settings.region,
            clock=self.clock.now,
            executor=self.io_pool,
            snapshots=PeriodicSnapshots(
                self.store,
                SnapshotFileNotices(self.catalog),
                encode_jpeg,
                max_width=settings.snapshot_max_width,
            ),
            notices=self.notices,
        )
        self.readiness = self._observe()
        self.node_key = self.box.derive("node-rpc")
        self.node_tls = node_tls_context(settings)
        self.live_media = LiveMedia(
            self.publishing,
            self.catalog,
            node_id=self.node_id,
            key=self.node_key,
            tls=self.node_tls,
        )
        self.rtmp = RtmpServer(
            self,
            Limits(
                idle_timeout=settings.rtmp_idle_timeout,
                read_timeout=settings.rtmp_read_timeout,
                read_interval=settings.rtmp_read_interval,
                max_connections=settings.rtmp_max_connections,
                max_message_size=settings.rtmp_max_message_size,
                handshake_timeout=settings.rtmp_handshake_timeout,
                max_pending_per_ip=settings.rtmp_max_pending_per_ip,
                reserved=settings.rtmp_reserved_connections,
            ),
            on_refused=self.metrics.rtmp_refused_one,
        )
        self.http: uvicorn.Server | None = None
        self.http_port = 0
        self._tasks: list[asyncio.Task[Any]] = []

    # -- publishing (the RTMP server's PublishHandler) -------------------------------------

    async def start_publish(self, request: PublishRequest) -> MediaSink:
        # The session's task logs with the stream from here on, and so do the recorder's.
        bind_stream(f"{clip(request.app)}/{clip(request.stream_name)}")
        with self.metrics.publish_attempt():
            admitted = await asyncio.to_thread(self.admission.admit, request)
            bind_stream(str(admitted.stream), admitted.stream.app_id)

            async def on_closed() -> None:
                await asyncio.to_thread(self.admission.release, admitted.stream)

            try:
                return await self.publishing.start(admitted, request, on_closed)
            except BaseException:
                await on_closed()
                raise

    def _observe(self) -> Readiness:
        """What /metrics reads at scrape time, and what /readyz checks."""
        settings = self.settings
        root = self.store.root if isinstance(self.store, LocalStore) else None
        if self.role is Role.INGEST:  # the rest is the API process's to report
            self.metrics.watch(publishing=self.publishing)
        else:
            self.metrics.watch(
                publishing=self.publishing,
                storage=None if root is None else StorageUsage(root),
                min_free=settings.storage_min_free,
                callback_queue=self.catalog.pending_notices,
                catalog_used=functools.partial(self.catalog.bytes_used, settings.region),
            )
        readiness = Readiness()
        readiness.add("catalog", self.catalog.list_projects)
        readiness.add("storage", storage_check(self.store, root))
        if root is not None and settings.storage_min_free > 0:
            readiness.add("disk", disk_check(root, settings.storage_min_free))
        readiness.add("disk_full", self.disk.ready)
        Gauge(
            "liverec_storage_full",
            "1 while the local disk is too full to take new publishes",
            registry=self.metrics.registry,
        ).set_function(lambda: 1.0 if self.disk.full else 0.0)
        return readiness

    def sweep_now(self) -> SweepReport:
        """Run a retention sweep now (blocking; any thread, also while the periodic one
        runs: it waits for it, then sweeps again)."""
        return self.retention.sweep_now()

    async def _keep_sweeping(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.retention.sweep)
            except Exception:
                log.exception("retention sweep failed; trying again later")
            await asyncio.sleep(self.settings.retention_interval)

    def node_url(self) -> str:
        """Where other nodes reach this node's API (a live-edge snapshot of a stream this
        node records is answered here)."""
        host = self.settings.http_addr[0]
        if host in ("", "0.0.0.0", "::"):  # noqa: S104 (a wildcard is not an address)
            host = socket.gethostname()
        if ":" in host:
            host = f"[{host}]"
        scheme = "https" if self.settings.tls else "http"
        return f"{scheme}://{host}:{self.http_port}"

    def api_context(self) -> ApiContext:
        return ApiContext(
            catalog=self.catalog,
            store=self.store,
            region=self.settings.region,
            url_key=self.box.derive("file-urls"),
            clock=self.clock.now,
            make_clip=ClipNotices(
                ClipWriter(self.catalog, self.store, holds=self.catalog), self.catalog
            ),
            make_snapshot=SnapshotNotices(
                SnapshotWriter(self.catalog, self.store, self.live_media), self.catalog
            ),
            node_id=self.node_id,
            redirect_downloads=self.settings.s3_redirect,
            public_url=self.settings.public_url,
            viewers=self.viewers,
            local_live=self.publishing,
            node_key=self.node_key,
            probes=self.readiness,
            metrics=self.metrics,
            metrics_token=self.settings.metrics_token,
            rtmp_url=self.settings.public_rtmp_url or self._rtmp_listen_url(),
            url_ttl=self.settings.link_lifetime,
            guard=self.guard,
            cors_origins=parse_cors_origins(self.settings.cors_origins),
            thumbnails=LiveThumbnails(self.live_media),
        )

    def _rtmp_listen_url(self) -> str:
        host = self.settings.rtmp_addr[0]
        port = self.rtmp.port if self.role is not Role.API else self.settings.rtmp_addr[1]
        return f"rtmp://{f'[{host}]' if ':' in host else host}:{port}"

    # -- running -------------------------------------------------------------------------

    async def start(self) -> None:
        if self.role is not Role.INGEST:  # a worker's API process has bootstrapped
            await asyncio.to_thread(bootstrap, self.catalog, self.settings)
        await asyncio.to_thread(self.admission.recover)
        if self.role is not Role.INGEST:
            await asyncio.to_thread(self.callbacks.recover)
        # Before recording: what a crash left half-written is published first. (The API
        # process of workers too: a single process's run before may have left some.)
        await asyncio.to_thread(self.mp4.recover_spool)
        await asyncio.to_thread(self.spool.start)
        if self.role is not Role.API:
            host, port = self.settings.rtmp_addr
            await self.rtmp.start(host, port, reuse_port=self.role is Role.INGEST)
        await self._start_http()
        await asyncio.to_thread(self.catalog.register_node, self.node_id, self.node_url())
        if self.role is not Role.API:
            self._tasks.append(
                asyncio.create_task(self.admission.keep_leases(self.io_pool), name="heartbeat")
            )
            self._tasks.append(asyncio.create_task(self.publishing.watch(), name="live controls"))
        # Workers refuse publishes on a full disk; the API process reports it (/readyz,
        # liverec_storage_full) and has retention free space.
        self._tasks.append(asyncio.create_task(self.disk.watch(), name="disk guard"))
        if self.role is not Role.INGEST:
            self._tasks.append(
                asyncio.create_task(keep_flushing(self.viewers, self.catalog), name="viewers")
            )
            self._tasks.append(asyncio.create_task(self.callbacks.run(), name="callbacks"))
            self._tasks.append(asyncio.create_task(self._keep_sweeping(), name="retention"))
        if self.role is Role.ALL:
            self.print_ready(self.rtmp.port)

    def print_ready(self, rtmp_port: int) -> None:
        """Always shown, whatever the log level: scripts and tests wait for this line. New
        fields go last, so parsers of the older line keep working."""
        print(
            f"liverec ready: rtmp={self.settings.rtmp_addr[0]}:{rtmp_port} "
            f"http={self.settings.http_addr[0]}:{self.http_port} "
            f"region={self.settings.region} data={self.settings.data_dir} "
            f"tls={'on' if self.settings.tls else 'off'}",
            flush=True,
        )

    async def _start_http(self) -> None:
        """Serve the API and the files on the `http` address: HTTPS only when a certificate
        is configured (one server, one port, no plain-HTTP fallback), else plain HTTP."""
        host, port = self.settings.http_addr
        if self.settings.tls:
            # Before binding: a bad pair is a ConfigError naming the file (`serve` checked
            # it already; this guards a Service started some other way).
            check_tls_files(self.settings.tls_cert, self.settings.tls_key)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
        sock.setblocking(False)
        self.http_port = sock.getsockname()[1]
        if self.role is Role.INGEST:
            # A worker's listener answers other nodes only (its live media, its metrics).
            app = create_internal_app(self.api_context())
        else:
            app = create_app(self.api_context())
            # The web console sits above the API (it only calls it): installed here, so
            # that the API never imports it.
            console.install(app)
        config = uvicorn.Config(
            app,
            log_level="warning",
            log_config=None,  # uvicorn's lines go through ours (logs.py): text or JSON
            access_log=False,
            lifespan="off",
            ssl_certfile=self.settings.tls_cert or None,
            ssl_keyfile=self.settings.tls_key or None,
            # Connection caps and the header deadline (api/connlimits.py), keep-alive.
            http=limited_protocol(
                ConnectionLimits(
                    max_connections=self.settings.http_max_connections,
                    max_per_ip=self.settings.http_max_per_ip,
                    header_timeout=self.settings.http_header_timeout,
                    on_refusal=self.metrics.refused,
                )
            ),
            timeout_keep_alive=math.ceil(self.settings.http_keepalive_timeout),
        )
        # Loaded here rather than in the serving task, where a failure (the TLS files
        # changed since the check) would leave a node that is "ready" without HTTP.
        config.load()
        self.http = _EmbeddedServer(config)
        self._tasks.append(asyncio.create_task(self.http.serve(sockets=[sock]), name="http"))
        log.info(
            "%s listening on %s:%d", "HTTPS" if self.settings.tls else "HTTP", host, self.http_port
        )

    async def stop(self) -> None:
        """Close every open recording (playlists get EXT-X-ENDLIST), then stop serving."""
        log.info("shutting down: closing open recordings")
        if self.role is not Role.API:
            await self.rtmp.close()
        # After the recorders closed: their last slices are whole and being published.
        await asyncio.to_thread(self.mp4.close)
        await asyncio.to_thread(self.spool.close)
        self.callbacks.stop()
        self.retention.stopping.set()
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


class _QuietUpgrades(logging.Filter):
    """Java 11+'s HTTP client asks every plain-HTTP request to upgrade to h2c; uvicorn
    answers it rightly (no upgrade) but logs two warnings each time, one wrongly telling the
    operator to install a WebSocket library. Those lines say nothing useful here."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not (
            text.startswith("Unsupported upgrade request")
            or text.startswith("No supported WebSocket library detected")
        )


class _EmbeddedServer(uvicorn.Server):
    """uvicorn on our loop; liverec handles the signals itself."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def run(settings: Settings) -> None:
    tune_malloc()  # big buffers go back to the system when freed (malloc.py)
    logging.getLogger("uvicorn.error").addFilter(_QuietUpgrades())
    configure_logging(settings.log_level, settings.log_format)
    soft, _ = raise_nofile_limit()
    log.info("open-file limit: %d", soft)
    service = Service(settings)
    # The loop that pauses accepting when out of file descriptors, quietly (fdlimit.py).
    with asyncio.Runner(loop_factory=GuardedLoop) as runner:
        runner.run(service.serve_forever())
