"""A real HTTP receiver of callbacks and webhook calls, on 127.0.0.1 in a thread, checking
signatures as the FLS documentation says a receiver should (raw body, HMAC keyed with the
secret, hex)."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int  # the status the receiver answered (0: it hung up without one)

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def signed_with(self, secret: str) -> bool:
        """Both signatures are the documented HMACs of the raw body."""
        key = secret.encode()
        sha1 = hmac.new(key, self.body, hashlib.sha1).hexdigest()
        sha256 = hmac.new(key, self.body, hashlib.sha256).hexdigest()
        return (
            self.headers.get("agora-signature") == sha1
            and self.headers.get("agora-signature-v2") == sha256
        )


# What to do with the n-th request (from 0): (status, hang): wait `hang` seconds (cut short
# when the receiver stops), then answer `status`, or with status 0 hang up without an answer.
# `Receiver.behaviour` may be replaced while it runs.
Behaviour = Callable[[int, Received], tuple[int, float]]


def always(status: int = 200) -> Behaviour:
    return lambda _n, _r: (status, 0.0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Receiver:
    """Start, stop and start again on the same port; `received` lists every request,
    answered or not, in arrival order."""

    def __init__(self, behaviour: Behaviour | None = None, port: int | None = None) -> None:
        self.behaviour = behaviour or always(200)
        self.port = port or free_port()
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._released = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook?token=t1"

    def start(self) -> Receiver:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                with owner._lock:
                    n = len(owner.received)
                    got = Received(self.path, headers, body, 0)
                    owner.received.append(got)
                status, hang = owner.behaviour(n, got)
                if hang:
                    owner._released.wait(hang)
                with owner._lock:
                    owner.received[n] = Received(self.path, headers, body, status)
                if status == 0:  # no answer at all: the client sees its connection closed
                    self.close_connection = True
                    return
                try:
                    payload = b'{"ok":true}'
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client gave up (its timeout)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self._server = server
        self._released.clear()
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening (requests being handled are let go)."""
        self._released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def answered(self, status: int = 200) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.answered == status]

    def wait_for(
        self, predicate: Callable[[list[Received]], bool], timeout: float = 60.0
    ) -> list[Received]:
        """Wait until `predicate(received)` holds; AssertionError with what came if not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                got = list(self.received)
            if predicate(got):
                return got
            time.sleep(0.05)
        with self._lock:
            got = list(self.received)
        raise AssertionError(
            "the receiver did not get what was expected; it got:\n"
            + "\n".join(f"{r.answered} {r.body[:300]!r}" for r in got)
        )


def delivered(received: list[Received]) -> list[dict[str, Any]]:
    """The bodies answered 2xx, in arrival order, one per noticeId (the first)."""
    seen: set[str] = set()
    out = []
    for r in received:
        if 200 <= r.answered < 300:
            body = r.json
            if body["noticeId"] not in seen:
                seen.add(body["noticeId"])
                out.append(body)
    return out
