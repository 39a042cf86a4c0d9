"""The asyncio RTMP server: the listening socket and the limits across connections; each
connection's read path is rtmp/connection.py."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from liverec.rtmp.batching import BatchReader
from liverec.rtmp.connection import READ_SIZE, Connection, Limits
from liverec.rtmp.session import PublishHandler

__all__ = ["Limits", "RtmpServer"]  # Limits: where callers have always found it

log = logging.getLogger(__name__)

# A refusal of each kind is logged at most once in this many seconds (with how many there
# were since the last line): a flood of connections must not become a flood of log lines.
REFUSAL_LOG_EVERY = 10.0


@dataclass
class _Refusals:
    """Refusals of one kind since its last log line."""

    count: int = 0
    logged_at: float = field(default=-REFUSAL_LOG_EVERY)


class RtmpServer:
    """`on_refused(reason)` is called for each connection refused or closed by a limit:
    `max_connections`, `pending_per_ip`, `handshake_timeout`, `reserve_timeout`."""

    def __init__(
        self,
        handler: PublishHandler,
        limits: Limits | None = None,
        on_refused: Callable[[str], None] | None = None,
    ) -> None:
        self.handler = handler
        self.limits = limits or Limits()
        self.on_refused = on_refused
        interval = self.limits.read_interval
        self.batch = BatchReader(interval) if interval > 0 else None
        self._server: asyncio.Server | None = None
        self._connections: dict[Connection, None] = {}  # insertion-ordered set
        self._closing = False
        self._refusals: dict[str, _Refusals] = {}

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> None:
        """Listen; `reuse_port`: beside other processes on the same port (SO_REUSEPORT),
        the kernel spreading new connections over them (ingest workers, workers.py)."""
        loop = asyncio.get_running_loop()
        # One read buffer for all connections: each read is handled, or copied by the
        # connection, before the loop makes the next.
        buffer = memoryview(bytearray(READ_SIZE))
        self._server = await loop.create_server(
            lambda: Connection(self, buffer), host, port, reuse_port=reuse_port or None
        )
        for sock in self._server.sockets:
            log.info("RTMP listening on %s", sock.getsockname()[:2])

    async def close(self, grace: float = 30.0) -> None:
        """Stop accepting, end every publish cleanly (recordings closed), then return."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        for conn in list(self._connections):
            conn.stop()
        tasks = [conn.task for conn in self._connections if conn.task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
        if self.batch is not None:
            self.batch.close()
        if self._server is not None:
            await self._server.wait_closed()

    def admit(self, conn: Connection) -> bool:
        """Register a new connection, or count and log its refusal and return False."""
        if self._closing:
            return False
        refusal = self._admit(conn)
        if refusal is not None:
            self.refused(refusal, conn.peer)
            return False
        self._connections[conn] = None
        return True

    def forget(self, conn: Connection) -> None:
        self._connections.pop(conn, None)

    def _admit(self, conn: Connection) -> str | None:
        """The reason to refuse a new connection, or None (then `conn.reserve` tells
        whether it takes a reserved slot)."""
        limits = self.limits
        if len(self._connections) >= limits.max_connections:
            return "max_connections"
        pending = 0
        from_ip = 0
        for other in self._connections:
            if not other.publishing:
                pending += 1
                from_ip += other.ip == conn.ip
        if from_ip >= limits.max_pending_per_ip:
            return "pending_per_ip"
        conn.reserve = pending >= limits.max_connections - limits.reserved
        return None

    def refused(self, reason: str, peer: str) -> None:
        """Count a refusal; log the first of a kind, then one line per REFUSAL_LOG_EVERY
        seconds with the number since the last."""
        if self.on_refused is not None:
            self.on_refused(reason)
        kind = self._refusals.setdefault(reason, _Refusals())
        kind.count += 1
        now = time.monotonic()
        if now - kind.logged_at >= REFUSAL_LOG_EVERY:
            log.warning(
                "RTMP connection from %s refused or closed: %s (%d such since the last line)",
                peer,
                _REASONS[reason],
                kind.count,
            )
            kind.count = 0
            kind.logged_at = now


_REASONS = {
    "max_connections": "too many connections",
    "pending_per_ip": "too many connections from its address that do not publish",
    "handshake_timeout": "no handshake and connect within the handshake timeout",
    "reserve_timeout": "in a reserved slot, it did not publish within the handshake timeout",
}
