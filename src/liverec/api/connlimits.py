"""HTTP connection limits, below the ASGI app: a cap on open connections in all and per
client address, and a deadline for a request line and its headers (slowloris).

uvicorn has `timeout_keep_alive` (service.py passes http_keepalive_timeout) and
`limit_concurrency` (which answers 503 only once a request has been read, so a connection
that never finishes its headers still holds its socket), but no header deadline and no
per-address cap; hypercorn and granian have no per-address cap either. So this is a small
subclass of uvicorn's h11 protocol (the one uvicorn uses without httptools, and the one
this project installs):

- on connect: past `max_connections` in all the connection is answered 503, past
  `max_per_ip` from its address 429 (both JSON, `Connection: close`) and closed at once,
  before any byte of it is read;
- from connect, and again after each response on a kept-alive connection, the request line
  and headers must arrive within `header_timeout` seconds (however slowly the bytes come),
  else 408 and closed. The timer stops when the app is called (a body upload is the app's
  business: api/limits.py).

Refusals are counted (`on_refusal(reason)`: metrics) and logged once per minute at most,
with the counts since the last line."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

log = logging.getLogger(__name__)

LOG_INTERVAL = 60.0


def _raw_answer(status: int, phrase: str, reason: str, message: str, retry: int = 0) -> bytes:
    body = json.dumps({"message": message, "reason": reason}).encode()
    head = [
        f"HTTP/1.1 {status} {phrase}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    if retry:
        head.append(f"Retry-After: {retry}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


BUSY = _raw_answer(503, "Service Unavailable", "unavailable", "too many connections", 1)
PER_IP = _raw_answer(
    429, "Too Many Requests", "too_many_requests", "too many connections from this address", 1
)
HEADER_TIMEOUT = _raw_answer(
    408, "Request Timeout", "timeout", "the request line and headers took too long"
)


class ConnectionLimits:
    """The open connections, in all and per address; shared by a server's connections."""

    def __init__(
        self,
        *,
        max_connections: int,
        max_per_ip: int,
        header_timeout: float,
        on_refusal: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_connections = max_connections
        self.max_per_ip = max_per_ip
        self.header_timeout = header_timeout
        self.on_refusal = on_refusal
        self.clock = clock
        self.open = 0
        self.per_ip: dict[str, int] = {}
        self.unlogged: dict[str, int] = {}
        self.logged_at = -LOG_INTERVAL

    def admit(self, ip: str) -> bytes | None:
        """None: admitted (call `release` when it closes); else the answer to refuse with."""
        if self.open >= self.max_connections:
            self.refused("http_max_connections")
            return BUSY
        if self.per_ip.get(ip, 0) >= self.max_per_ip:
            self.refused("http_max_per_ip")
            return PER_IP
        self.open += 1
        self.per_ip[ip] = self.per_ip.get(ip, 0) + 1
        return None

    def release(self, ip: str) -> None:
        self.open -= 1
        left = self.per_ip.get(ip, 0) - 1
        if left > 0:
            self.per_ip[ip] = left
        else:
            self.per_ip.pop(ip, None)

    def refused(self, reason: str) -> None:
        if self.on_refusal is not None:
            self.on_refusal(reason)
        self.unlogged[reason] = self.unlogged.get(reason, 0) + 1
        now = self.clock()
        if now - self.logged_at >= LOG_INTERVAL:
            counts = ", ".join(f"{n} {why}" for why, n in sorted(self.unlogged.items()))
            log.warning(
                "HTTP connections refused or cut by a limit (%s; %d open); "
                "at most one such line a minute",
                counts,
                self.open,
            )
            self.unlogged.clear()
            self.logged_at = now


def limited_protocol(limits: ConnectionLimits) -> type[H11Protocol]:
    """uvicorn's h11 protocol under `limits`: pass as `uvicorn.Config(http=...)`."""

    class LimitedH11Protocol(H11Protocol):
        def __init__(
            self,
            config: Config,
            server_state: ServerState,
            app_state: dict[str, Any],
            _loop: asyncio.AbstractEventLoop | None = None,
        ) -> None:
            super().__init__(config, server_state, app_state, _loop)
            self.peer_ip = ""
            self.admitted = False
            self.header_timer: asyncio.TimerHandle | None = None
            inner = self.app

            async def app(scope: Any, receive: Any, send: Any) -> None:
                self.stop_header_timer()  # the request line and headers are in
                await inner(scope, receive, send)

            self.app = app

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            peer = transport.get_extra_info("peername")
            self.peer_ip = str(peer[0]) if isinstance(peer, tuple) and peer else ""
            refusal = limits.admit(self.peer_ip)
            if refusal is not None:
                assert isinstance(transport, asyncio.Transport)
                transport.write(refusal)
                transport.close()
                return
            self.admitted = True
            super().connection_made(transport)  # type: ignore[arg-type]
            self.start_header_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            if not self.admitted:
                return
            self.admitted = False
            limits.release(self.peer_ip)
            self.stop_header_timer()
            super().connection_lost(exc)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and self.admitted:
                self.start_header_timer()  # the next request's headers, same deadline

        def start_header_timer(self) -> None:
            self.stop_header_timer()
            self.header_timer = self.loop.call_later(limits.header_timeout, self.header_late)

        def stop_header_timer(self) -> None:
            if self.header_timer is not None:
                self.header_timer.cancel()
                self.header_timer = None

        def header_late(self) -> None:
            self.header_timer = None
            if self.transport.is_closing():
                return
            limits.refused("http_header_timeout")
            self.transport.write(HEADER_TIMEOUT)
            self.transport.close()

    return LimitedH11Protocol
