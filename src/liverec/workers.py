"""Ingest workers: `liverec serve --workers N` takes publishes on every core.

One event loop in one process saturates one core at about 200 concurrent 3 Mbit/s
pushes. With N > 1 the `serve` process keeps the API (one uvicorn on the `http` address,
the console, callbacks, retention, metrics) and no RTMP, and runs N ingest workers. Each
worker is a node of the kind liverec already runs several of on one catalog (DESIGN.md
section 5), on this host:

- its own node ID, `{node_id}-w{i}` (the API process's persistent one, so stable across
  restarts: a restarted worker finds what its predecessor left open and closes it);
- the RTMP port, shared: each worker listens on it with SO_REUSEPORT and the kernel
  spreads new connections over the workers. The API process binds the port first
  (without listening, so it takes no connection) to resolve `--rtmp HOST:0` to one
  concrete port and to keep it while a worker restarts;
- its own recorders, spool folder and leases; live leases in the catalog refuse a second
  publisher of a stream on whichever worker it lands;
- a private HTTP listener for the signed calls between nodes only (api/internal.py),
  registered as its node URL: the API process takes a live-edge snapshot from it, and
  reads its metrics there, summed into its own /metrics (metrics.WorkerFigures). Bans,
  recording tasks, online streams and the publish history go through the catalog, as they
  do between nodes.

Workers are forked from a fork server (multiprocessing "forkserver") that has imported
liverec once: they share its code and module pages, and a restart forks from a process
with no threads (the API process has many; forking it would copy their locks). Measured
idle on this host, 2 workers (MB, RSS / PSS): API process 110 / 80, fork server 104 / 41,
each worker 82 / 38, multiprocessing's resource tracker 15 / 8; spawned instead, each
worker is 109 / 79. So a worker costs about 40 MB, not 80. With 100 pushes of 720p at
3 Mbit/s (bench/ingest.py 100 --workers 2, on a loaded 2-core host), the workers used 29%
and 32% of a core, the API process 0.5%, and no frame was lost.

A worker that dies is started again (logged); its open recordings are closed at their
last durable segment by the new worker's recovery (or by any node once its lease lapses),
and the other workers' publishes go on. SIGTERM or SIGINT stops every worker (each closes
its recordings with EXT-X-ENDLIST), then the API process, which exits 0. A worker whose
API process is gone stops the same way (it watches the process, and PR_SET_PDEATHSIG
covers the fork server)."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from multiprocessing.process import BaseProcess

from liverec.api.internal import METRICS_PATH, internal_headers
from liverec.bootstrap import persistent_node_id
from liverec.catalog.names import check_node_id
from liverec.config import Settings
from liverec.errors import ConfigError, LiverecError
from liverec.fdlimit import GuardedLoop, raise_nofile_limit
from liverec.logs import configure_logging
from liverec.metrics import WorkerFigures
from liverec.service import Role, Service

__all__ = ["run_with_workers", "worker_main"]

log = logging.getLogger("liverec.workers")

START_TIMEOUT = 60.0  # seconds a worker may take to listen (recovery of a crash included)
STOP_GRACE = 60.0  # seconds a worker may take to close its recordings before SIGKILL
METRICS_TIMEOUT = 2.0  # seconds a worker has to answer the scrape
RESTART_BACKOFF_MAX = 30.0  # seconds between restarts of a worker that keeps dying
STEADY = 10.0  # seconds a worker must live for its next death to restart it at once
_PR_SET_PDEATHSIG = 1


@dataclass
class _Worker:
    index: int
    process: BaseProcess
    url: str  # its node URL: the private listener
    started: float  # monotonic

    @property
    def identity(self) -> str:
        return f"w{self.index}:{self.process.pid}"


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def worker_settings(settings: Settings, base_id: str, index: int, rtmp_port: int) -> Settings:
    """Worker `index`'s settings: its node ID, the RTMP port, a private HTTP port."""
    node_id = f"{base_id}-w{index}"
    try:
        check_node_id(node_id)
    except LiverecError:
        raise ConfigError(
            f"node ID {base_id!r} is too long for worker IDs ({node_id!r}): "
            "at most 64 characters in all"
        ) from None
    return dataclasses.replace(
        settings,
        node_id=node_id,
        rtmp=_address(settings.rtmp_addr[0], rtmp_port),
        http=_address(settings.http_addr[0], 0),
        workers=1,
    )


def reserve_port(host: str, port: int) -> socket.socket:
    """A socket bound to the RTMP address with SO_REUSEPORT and never listening: it takes
    no connection, and it holds the port (`0`: a free one) for the workers to listen on."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if port:
        # SO_REUSEPORT would let us share the port with another server of this user (a
        # second liverec): a plain bind first finds any holder, and we refuse.
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                raise ConfigError(
                    f"cannot bind the RTMP address {_address(host, port)}: {exc}"
                ) from None
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot bind the RTMP address {_address(host, port)}: {exc}") from None
    return sock


class Supervisor:
    """The API process's side: starts the workers, restarts the ones that die, stops them
    all. Needs a running event loop."""

    def __init__(self, service: Service, settings: list[Settings]) -> None:
        self.service = service
        self.settings = settings  # one per worker
        self.context = multiprocessing.get_context("forkserver")
        # Imported once in the fork server: every worker shares those pages.
        self.context.set_forkserver_preload(["liverec.service"])
        self.workers: dict[int, _Worker] = {}
        self._starting: dict[int, BaseProcess] = {}
        self.stopping = False
        self._watchers: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Start every worker; return once all listen (a failure to start raises)."""
        started = await asyncio.gather(
            *(self._start(i) for i in range(len(self.settings))), return_exceptions=True
        )
        failed = [r for r in started if isinstance(r, BaseException)]
        if failed:
            await self.stop()
            raise failed[0]
        self.service.metrics.workers = WorkerFigures(self.fetch_metrics)
        self.service.readiness.add("workers", self.check_workers)
        for i in range(len(self.settings)):
            self._watchers.append(asyncio.create_task(self._watch(i), name=f"worker {i}"))

    async def _start(self, index: int) -> None:
        receive, send = self.context.Pipe(duplex=False)
        process = self.context.Process(
            target=worker_main,
            args=(self.settings[index], index, send),
            name=f"liverec-w{index}",
        )
        self._starting[index] = process  # stop() stops it too
        try:
            # Off the loop: the first start boots the fork server (imports, a second).
            await asyncio.to_thread(process.start)
            send.close()
            url = await asyncio.to_thread(_wait_ready, receive, process)
        finally:
            send.close()
            receive.close()
            del self._starting[index]
        self.workers[index] = _Worker(index, process, url, time.monotonic())
        log.info("ingest worker %d (pid %s) listening, node %s", index, process.pid, url)

    async def _watch(self, index: int) -> None:
        """Wait for worker `index` to end; start it again unless we are stopping."""
        backoff = 1.0
        while True:
            worker = self.workers[index]
            await _exited(worker.process)
            if self.stopping:
                return
            lived = time.monotonic() - worker.started
            log.warning(
                "ingest worker %d (pid %s) ended (exit code %s) after %.0f s: restarting",
                index,
                worker.process.pid,
                worker.process.exitcode,
                lived,
            )
            backoff = 1.0 if lived >= STEADY else min(backoff * 2, RESTART_BACKOFF_MAX)
            while not self.stopping:
                if lived < STEADY:  # one that dies at once is not restarted in a loop
                    await asyncio.sleep(backoff)
                try:
                    await self._start(index)
                    break
                except Exception as exc:
                    log.error("ingest worker %d did not start: %s", index, exc)
                    lived = 0.0
                    backoff = min(backoff * 2, RESTART_BACKOFF_MAX)

    async def stop(self) -> None:
        """SIGTERM to every worker (each closes its recordings), then wait for them all."""
        self.stopping = True
        starting = list(self._starting.items())  # a restart under way: before the cancel
        for task in self._watchers:
            task.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        alive = [(w.index, w.process) for w in self.workers.values()] + starting
        alive = [(i, p) for i, p in alive if p.pid is not None and p.exitcode is None]
        for _, process in alive:
            pid = process.pid
            assert pid is not None  # started (filtered above)
            with contextlib.suppress(ProcessLookupError):  # it ended already
                os.kill(pid, signal.SIGTERM)
        for index, process in alive:
            try:
                await asyncio.wait_for(_exited(process), STOP_GRACE)
            except TimeoutError:
                log.error("ingest worker %d did not stop in time: killed", index)
                process.kill()
                await _exited(process)
            log.info("ingest worker %d stopped (exit code %s)", index, process.exitcode)

    def check_workers(self) -> None:
        """/readyz: every worker runs (one being restarted is not ready yet)."""
        down = [
            str(i)
            for i in range(len(self.settings))
            if i not in self.workers or self.workers[i].process.exitcode is not None
        ]
        if down:
            raise LiverecError(f"ingest worker(s) {', '.join(down)} not running")

    def fetch_metrics(self) -> list[tuple[str, str | None]]:
        """Each worker's Prometheus text (blocking; None for one that did not answer)."""
        key = self.service.node_key
        found: list[tuple[str, str | None]] = []
        for worker in list(self.workers.values()):
            if worker.process.exitcode is not None:
                continue  # gone: WorkerFigures keeps its counts
            request = urllib.request.Request(  # noqa: S310 (our worker's own URL)
                worker.url.rstrip("/") + METRICS_PATH,
                headers=internal_headers(key, "GET", METRICS_PATH),
            )
            try:
                with urllib.request.urlopen(  # noqa: S310
                    request, timeout=METRICS_TIMEOUT, context=self.service.node_tls
                ) as resp:
                    found.append((worker.identity, resp.read().decode("utf-8")))
            except (OSError, ValueError) as exc:
                log.warning("metrics of ingest worker %d: %s", worker.index, exc)
                found.append((worker.identity, None))
        return found


def _wait_ready(receive: multiprocessing.connection.Connection, process: BaseProcess) -> str:
    """The worker's node URL, once it listens (blocking). LiverecError if it ends first."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if receive.poll(0.2):
            try:
                return str(receive.recv())
            except EOFError:
                break
        if process.exitcode is not None:
            break
    if process.exitcode is None:
        process.kill()
        process.join()
    raise LiverecError(f"ingest worker {process.name} did not start (exit code {process.exitcode})")


async def _exited(process: BaseProcess) -> None:
    """Wait, on the loop, for the process to end. Its sentinel (the fork server's socket)
    is readable once it ended, or once the fork server itself died (a signal to the whole
    process group): then the worker may still be closing its recordings, so its pid is
    watched until it is gone."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    fd = process.sentinel

    def readable() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(fd, readable)
    try:
        if process.exitcode is None:
            await done
    finally:
        loop.remove_reader(fd)
    process.join()
    # Not our child (the fork server's): no wait call or event tells its end, so poll.
    while process.pid is not None and _running(process.pid):  # noqa: ASYNC110
        await asyncio.sleep(0.1)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie nobody reaped yet has ended
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return True


async def _supervise(service: Service, supervisor: Supervisor, rtmp_port: int) -> None:
    await service.start()
    try:
        await supervisor.start()
    except BaseException:
        await service.stop()
        raise
    service.print_ready(rtmp_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.remove_signal_handler(sig)
    log.info("shutting down: stopping the ingest workers")
    await supervisor.stop()
    await service.stop()


def run_with_workers(settings: Settings) -> None:
    """`liverec serve` with settings.workers > 1: the API here, ingest in the workers."""
    configure_logging(settings.log_level, settings.log_format)
    soft, _ = raise_nofile_limit()
    log.info("open-file limit: %d; %d ingest workers", soft, settings.workers)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    base_id = settings.node_id or persistent_node_id(settings.data_dir)
    host, port = settings.rtmp_addr
    reserved = reserve_port(host, port)
    rtmp_port = int(reserved.getsockname()[1])
    workers = [worker_settings(settings, base_id, i, rtmp_port) for i in range(settings.workers)]
    # Built (schema, first-start key) before any worker opens the catalog.
    service = Service(
        dataclasses.replace(settings, node_id=base_id, rtmp=_address(host, rtmp_port)),
        role=Role.API,
    )
    try:
        with asyncio.Runner(loop_factory=GuardedLoop) as runner:
            runner.run(_supervise(service, Supervisor(service, workers), rtmp_port))
    finally:
        reserved.close()


# -- in the worker --------------------------------------------------------------------------


def worker_main(
    settings: Settings, index: int, ready: multiprocessing.connection.Connection
) -> None:
    """An ingest worker's process: serve until SIGTERM/SIGINT or the API process ends."""
    _die_with_parent()
    configure_logging(settings.log_level, settings.log_format, worker=f"w{index}")
    raise_nofile_limit()
    service = Service(settings, role=Role.INGEST, spool_name=f"w{index}")
    with asyncio.Runner(loop_factory=GuardedLoop) as runner:
        runner.run(_serve_worker(service, ready))


async def _serve_worker(service: Service, ready: multiprocessing.connection.Connection) -> None:
    await service.start()
    ready.send(service.node_url())
    ready.close()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    parent = multiprocessing.parent_process()
    if parent is not None:  # readable once the API process is gone
        loop.add_reader(parent.sentinel, stop.set)
    await stop.wait()
    if parent is not None:
        loop.remove_reader(parent.sentinel)
    await service.stop()


def _die_with_parent() -> None:
    """SIGTERM when the process that forked us (the fork server) ends: it ends with the
    API process, so no worker outlives it even if it missed the API process's end."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
