"""One HTTP POST with a deadline for the whole exchange, blocking (call it in a thread).

A per-read socket timeout alone would let a receiver that trickles its answer a byte at
a time hold a delivery worker for ever; here every read and write gets what is left of the
one deadline (connect, TLS, send, status line, headers, body), so a try takes at most
`timeout` seconds whatever the receiver does. One connection per request (no keep-alive,
no redirects: a 3xx is an answer that is not 2xx); at most 64 KiB of the answer is read.
The standard library only: callbacks need no HTTP client dependency."""

from __future__ import annotations

import http.client
import io
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from liverec import __version__

MAX_ANSWER = 64 * 1024
USER_AGENT = f"liverec/{__version__}"


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status: int
    reason: str
    body: bytes  # its first 64 KiB

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class _DeadlineReader(io.RawIOBase):
    """A socket's reads, each given what is left of the deadline."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the answer took too long")
        self.sock.settimeout(left)
        return self.sock.recv_into(buffer)


class _Answering:
    """What http.client.HTTPResponse reads from: a socket whose reads share a deadline."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self.sock, self.deadline))


def post(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> HttpAnswer:
    """POST `body` to an http(s) URL. Raises TimeoutError past the deadline, OSError
    (ssl.SSLError among them) when the exchange fails, ValueError for a URL it cannot use,
    http.client.HTTPException for an answer that is not HTTP."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http(s) URL with a host")
    host = parts.hostname
    port = parts.port or (443 if scheme == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host_header = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        host_header += f":{parts.port}"
    deadline = time.monotonic() + timeout
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        if scheme == "https":
            sock.settimeout(_left(deadline))
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
        lines = [
            f"POST {target} HTTP/1.1",
            f"Host: {host_header}",
            f"User-Agent: {USER_AGENT}",
            f"Content-Length: {len(body)}",
            "Connection: close",
            *(f"{name}: {value}" for name, value in headers.items()),
        ]
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
        sock.settimeout(_left(deadline))
        sock.sendall(request)
        answer = http.client.HTTPResponse(_Answering(sock, deadline), method="POST")  # type: ignore[arg-type]
        answer.begin()
        data = answer.read(MAX_ANSWER)
        return HttpAnswer(answer.status, answer.reason, data)
    finally:
        sock.close()


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("timed out")
    return left
