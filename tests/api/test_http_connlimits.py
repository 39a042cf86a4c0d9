"""HTTP connection limits (api/connlimits.py) on a real uvicorn on loopback, with raw
sockets: the header deadline cuts slowloris clients while an honest one is served, the
per-address cap refuses one address and serves another, the node-wide cap answers 503."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn

from liverec.api.connlimits import ConnectionLimits, limited_protocol

HEADER_TIMEOUT = 0.6


async def hello(scope: Any, receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


@contextlib.asynccontextmanager
async def serving(
    *, max_connections: int = 100, max_per_ip: int = 100
) -> AsyncIterator[tuple[int, list[str]]]:
    refusals: list[str] = []
    limits = ConnectionLimits(
        max_connections=max_connections,
        max_per_ip=max_per_ip,
        header_timeout=HEADER_TIMEOUT,
        on_refusal=refusals.append,
    )
    config = uvicorn.Config(
        hello,
        log_config=None,
        access_log=False,
        lifespan="off",
        http=limited_protocol(limits),
        timeout_keep_alive=1,
    )
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("0.0.0.0", 0))
    sock.listen(128)
    sock.setblocking(False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield sock.getsockname()[1], refusals
    finally:
        server.should_exit = True
        server.force_exit = True
        await asyncio.wait_for(task, 10)
        assert limits.open == 0 and not limits.per_ip


async def connect(
    port: int, source: str = "127.0.0.1"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def honest_get(port: int, source: str = "127.0.0.1") -> bytes:
    reader, writer = await connect(port, source)
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


def answered(reader: asyncio.StreamReader) -> bool:
    """The server sent something (the 408) or closed."""
    return reader.at_eof() or bool(getattr(reader, "_buffer", b""))


async def test_slow_headers_are_cut_at_the_deadline_while_honest_clients_are_served() -> None:
    async with serving() as (port, refusals):
        slow = [await connect(port) for _ in range(20)]
        request = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200 + b"\r\n\r\n"
        started = time.monotonic()
        cut_at: dict[int, float] = {}

        async def dribble(n: int, reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            for byte in request:
                if reader.at_eof():
                    break
                try:
                    w.write(bytes([byte]))
                    await w.drain()
                except ConnectionError:
                    break
                await asyncio.sleep(0.05)
                if answered(reader):
                    break
            try:
                answer = await asyncio.wait_for(reader.read(), 5)
            except ConnectionResetError:
                answer = b""
            cut_at[n] = time.monotonic() - started
            # a byte sent after the server closed may reset the connection and lose the
            # 408 on the client's side: cut either way
            assert answer.startswith(b"HTTP/1.1 408 ") or answer == b"", answer

        dribblers = [asyncio.create_task(dribble(n, r, w)) for n, (r, w) in enumerate(slow)]
        for _ in range(5):  # meanwhile, an honest client is answered at once
            t0 = time.monotonic()
            answer = await honest_get(port)
            assert answer.startswith(b"HTTP/1.1 200 ") and b"hello" in answer
            assert time.monotonic() - t0 < 0.5
            await asyncio.sleep(0.05)
        await asyncio.wait_for(asyncio.gather(*dribblers), 10)
        assert len(cut_at) == 20
        assert all(HEADER_TIMEOUT - 0.1 < t < HEADER_TIMEOUT + 1.5 for t in cut_at.values())
        for _, w in slow:
            w.close()
        assert refusals.count("http_header_timeout") == 20


async def test_a_kept_alive_connection_gets_the_same_deadline_for_its_next_request() -> None:
    async with serving() as (port, refusals):
        reader, writer = await connect(port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        first = await asyncio.wait_for(reader.readuntil(b"hello\r\n0\r\n\r\n"), 5)
        assert first.startswith(b"HTTP/1.1 200 ")
        t0 = time.monotonic()
        for byte in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaa":
            if answered(reader):
                break
            writer.write(bytes([byte]))  # each byte restarts uvicorn's keep-alive timer
            await asyncio.sleep(0.05)
        rest = await asyncio.wait_for(reader.read(), 5)
        assert rest.startswith(b"HTTP/1.1 408 ")
        assert time.monotonic() - t0 < HEADER_TIMEOUT + 1.0
        writer.close()
        assert refusals == ["http_header_timeout"]


async def test_connections_past_the_per_address_cap_are_refused_another_address_served() -> None:
    async with serving(max_per_ip=4) as (port, refusals):
        idle = [await connect(port) for _ in range(4)]
        await asyncio.sleep(0.1)
        for _ in range(3):
            answer = await honest_get(port)
            assert answer.startswith(b"HTTP/1.1 429 "), answer
            assert b"Retry-After: 1" in answer and b'"reason": "too_many_requests"' in answer
        answer = await honest_get(port, "127.0.0.2")
        assert answer.startswith(b"HTTP/1.1 200 "), answer
        for _, w in idle:
            w.close()
        await asyncio.sleep(0.2)
        assert (await honest_get(port)).startswith(b"HTTP/1.1 200 ")  # slots freed
        assert refusals == ["http_max_per_ip"] * 3


async def test_connections_past_the_node_cap_get_503() -> None:
    async with serving(max_connections=3) as (port, refusals):
        idle = [await connect(port, f"127.0.0.{n + 1}") for n in range(3)]
        await asyncio.sleep(0.1)
        answer = await honest_get(port, "127.0.0.9")
        assert answer.startswith(b"HTTP/1.1 503 "), answer
        for _, w in idle:
            w.close()
        await asyncio.sleep(0.2)
        assert (await honest_get(port, "127.0.0.9")).startswith(b"HTTP/1.1 200 ")
        assert refusals == ["http_max_connections"]


@pytest.mark.parametrize("reason", ["http_max_per_ip"])
def test_refusals_are_logged_at_most_once_a_minute(
    reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    now = [0.0]
    limits = ConnectionLimits(
        max_connections=10, max_per_ip=1, header_timeout=1, clock=lambda: now[0]
    )
    assert limits.admit("a") is None
    for _ in range(100):
        assert limits.admit("a") is not None
    now[0] = 61
    limits.admit("a")
    lines = [r.getMessage() for r in caplog.records if "HTTP connections" in r.getMessage()]
    assert len(lines) == 2 and f"100 {reason}" in lines[1]
    limits.release("a")
    assert limits.open == 0 and limits.per_ip == {}
