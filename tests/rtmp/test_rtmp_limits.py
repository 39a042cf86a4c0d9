"""The RTMP server's connection limits, in-process on loopback: per-address pending
connections, the handshake deadline, the reserve for publishers, refusals counted; and a
refused 10,000-character stream name makes a short log line."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest

from liverec.errors import RefusedError
from liverec.logs import clip
from liverec.media import amf0
from liverec.rtmp import messages as m
from liverec.rtmp.chunk import ChunkReader, ChunkWriter
from liverec.rtmp.server import Limits, RtmpServer
from liverec.rtmp.session import PublishRequest

HANDSHAKE = 0.5


class Sink:
    def on_metadata(self, metadata: dict[str, Any]) -> None: ...

    def on_audio(self, timestamp: int, payload: bytes) -> None: ...

    def on_video(self, timestamp: int, payload: bytes) -> None: ...

    async def close(self) -> None: ...


class Handler:
    async def start_publish(self, request: PublishRequest) -> Sink:
        if len(request.stream_name) > 100:
            raise RefusedError("NetStream.Publish.BadName", f"bad name {request.stream_name}")
        return Sink()


async def open_conn(
    port: int, host: str = "127.0.0.1"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(host, 0))


async def publish(port: int, stream: str = "s", host: str = "127.0.0.1") -> tuple[str, Any]:
    """Handshake, connect, publish; the onStatus code and the open writer."""
    reader, writer = await open_conn(port, host)
    writer.write(b"\x03" + bytes(8) + os.urandom(1528))
    s0s1s2 = await reader.readexactly(1 + 1536 * 2)
    writer.write(s0s1s2[1:1537])
    out = ChunkWriter()
    for msg in (
        m.command("connect", 1.0, {"app": "live", "tcUrl": "rtmp://127.0.0.1/live"}),
        m.command("createStream", 2.0, None),
        m.command("publish", 3.0, None, stream, "live", stream_id=1),
    ):
        writer.write(out.encode(msg, 3))
    chunks = ChunkReader()
    async with asyncio.timeout(5):
        while True:
            data = await reader.read(65536)
            assert data, "closed by the server"
            for msg in chunks.feed(data):
                if msg.type_id == m.COMMAND_AMF0 and m.parse_command(msg)[0] == "onStatus":
                    info = m.parse_command(msg)[2][1]
                    assert isinstance(info, dict)
                    code = info["code"]
                    assert isinstance(code, str)
                    return code, writer


async def closed_within(reader: asyncio.StreamReader, timeout: float) -> bool:
    try:
        async with asyncio.timeout(timeout):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        pass
    return True


class Refusals:
    def __init__(self) -> None:
        self.reasons: list[str] = []

    def __call__(self, reason: str) -> None:
        self.reasons.append(reason)


async def serve(limits: Limits) -> tuple[RtmpServer, Refusals]:
    refusals = Refusals()
    srv = RtmpServer(Handler(), limits, on_refused=refusals)
    await srv.start("127.0.0.1", 0)
    return srv, refusals


@pytest.fixture
async def servers() -> AsyncIterator[list[RtmpServer]]:
    started: list[RtmpServer] = []
    yield started
    for srv in started:
        await srv.close(grace=5)


async def test_pending_connections_are_limited_per_address(servers: list[RtmpServer]) -> None:
    srv, refusals = await serve(Limits(max_pending_per_ip=4, handshake_timeout=30))
    servers.append(srv)
    idle = [await open_conn(srv.port, "127.0.0.2") for _ in range(4)]
    await asyncio.sleep(0.1)
    extra = [await open_conn(srv.port, "127.0.0.2") for _ in range(20)]
    for reader, _ in extra:
        assert await closed_within(reader, 2)
    assert refusals.reasons == ["pending_per_ip"] * 20
    for reader, _ in idle:
        assert not await closed_within(reader, 0.05)  # the first four stay
    # Another address is not affected, nor is a publishing connection counted as pending.
    pubs = [await publish(srv.port, f"s{i}") for i in range(6)]
    assert [code for code, _ in pubs] == ["NetStream.Publish.Start"] * 6
    for _, writer in [*idle, *extra]:
        writer.close()
    for _, writer in pubs:
        writer.close()


async def test_a_connection_without_handshake_is_closed_after_the_deadline(
    servers: list[RtmpServer], caplog: pytest.LogCaptureFixture
) -> None:
    srv, refusals = await serve(Limits(handshake_timeout=HANDSHAKE, idle_timeout=30))
    servers.append(srv)
    caplog.set_level(logging.INFO, "liverec.rtmp")
    loop = asyncio.get_running_loop()
    started = loop.time()
    reader, writer = await open_conn(srv.port)
    writer.write(b"\x03" + bytes(100))  # half a handshake, then nothing
    assert await closed_within(reader, 5)
    assert HANDSHAKE - 0.1 < loop.time() - started < HANDSHAKE + 1.5
    assert refusals.reasons == ["handshake_timeout"]
    assert any("handshake timeout" in r.getMessage() for r in caplog.records)
    # A publisher taking less time is not hurried afterwards.
    code, pub = await publish(srv.port)
    assert code == "NetStream.Publish.Start"
    await asyncio.sleep(HANDSHAKE * 2)
    assert refusals.reasons == ["handshake_timeout"]
    pub.close()
    writer.close()


async def test_idle_connections_filling_the_node_leave_the_reserve_to_publishers(
    servers: list[RtmpServer],
) -> None:
    srv, refusals = await serve(
        Limits(
            max_connections=10,
            reserved=4,
            max_pending_per_ip=100,
            handshake_timeout=HANDSHAKE,
            idle_timeout=30,
        )
    )
    servers.append(srv)
    # A publisher first, then idle connections (handshaken and connected) fill the node.
    code, first = await publish(srv.port, "first")
    assert code == "NetStream.Publish.Start"

    async def idle_connected() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await open_conn(srv.port, "127.0.0.2")
        writer.write(b"\x03" + bytes(8) + os.urandom(1528))
        s0s1s2 = await reader.readexactly(1 + 1536 * 2)
        writer.write(s0s1s2[1:1537])
        writer.write(ChunkWriter().encode(m.command("connect", 1.0, {"app": "live"}), 3))
        return reader, writer

    idle = [await idle_connected() for _ in range(9)]
    await asyncio.sleep(0.2)
    # Six in the pending share (10 - 4 reserved; the publisher is not pending), three in
    # reserved slots: those are closed after the handshake timeout, the others stay.
    assert [await closed_within(r, HANDSHAKE + 1.5) for r, _ in idle[6:]] == [True] * 3
    assert [await closed_within(r, 0.05) for r, _ in idle[:6]] == [False] * 6
    assert refusals.reasons == ["reserve_timeout"] * 3
    # The node is full of idle connections but for the reserve: publishers still get in.
    pubs = [await publish(srv.port, f"p{i}") for i in range(3)]
    assert [code for code, _ in pubs] == ["NetStream.Publish.Start"] * 3
    # Now it is full: one more is refused, and the publishers are not touched.
    reader, _ = await open_conn(srv.port)
    assert await closed_within(reader, 2)
    assert refusals.reasons[-1] == "max_connections"
    first.write(ChunkWriter().encode(m.command("_checkbw", 9.0, None), 3))
    await first.drain()
    for _, writer in [*idle, *pubs]:
        writer.close()
    first.close()


async def test_a_refused_long_stream_name_makes_a_short_log_line(
    servers: list[RtmpServer], caplog: pytest.LogCaptureFixture
) -> None:
    srv, _ = await serve(Limits())
    servers.append(srv)
    caplog.set_level(logging.INFO)
    code, writer = await publish(srv.port, "n" * 10_000 + "?q=" + "x" * 5000)
    assert code == "NetStream.Publish.BadName"
    writer.close()
    await asyncio.sleep(0.1)
    lines = [r.getMessage() for r in caplog.records]
    assert any("publish refused" in line for line in lines)
    assert max(len(line) for line in lines) < 600, max(lines, key=len)


def test_clip_bounds_and_escapes() -> None:
    assert clip("short") == "short"
    assert clip("a" * 100, 10) == "a" * 10 + "...(+90 chars)"
    assert clip("a\nfake line\r") == "a\\x0afake line\\x0d"
    assert amf0  # the module the client uses
