"""A real RtmpServer on a free port, in-process: limits and failures with real bytes on real
sockets, and the connections next to a misbehaving one keep working."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import socket
import statistics
import struct
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from liverec.errors import RefusedError
from liverec.media import amf0
from liverec.rtmp import messages as m
from liverec.rtmp.batching import BATCH_AFTER, MAX_BATCH_READS
from liverec.rtmp.chunk import ChunkReader, ChunkWriter, Message
from liverec.rtmp.server import Limits, RtmpServer
from liverec.rtmp.session import PublishRequest

MIB = 1024 * 1024
VIDEO_CODECS = {7.0, "avc1"}
IDLE = 0.5  # idle_timeout of the `short_idle` server
REFUSED = "video codec On2 VP6 is not supported: liverec records H.264 video and AAC audio"


class Sink:
    """Records what it is given. Some stream names make it fail the way buggy code does."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.media: list[tuple[int, int, bytes]] = []
        self.closed = 0

    def on_metadata(self, metadata: dict[str, Any]) -> None:
        # As a recorder might: a dict as codec id makes the set lookup raise TypeError.
        if metadata.get("videocodecid") in VIDEO_CODECS:
            self.media.append((18, 0, b""))

    def on_audio(self, timestamp: int, payload: bytes) -> None:
        self.media.append((m.AUDIO, timestamp, payload))

    def on_video(self, timestamp: int, payload: bytes) -> None:
        if self.name == "refuse":  # as the recorder refuses a codec
            raise RefusedError("NetStream.Publish.Rejected", REFUSED)
        self.media.append((m.VIDEO, timestamp, payload))

    async def close(self) -> None:
        self.closed += 1
        if self.name == "badclose":
            raise RuntimeError("the recording could not be closed")


class Handler:
    def __init__(self) -> None:
        self.sinks: dict[str, Sink] = {}

    async def start_publish(self, request: PublishRequest) -> Sink:
        if request.stream_name == "dbdown":
            raise RuntimeError("the catalog is unreachable")
        sink = self.sinks[request.stream_name] = Sink(request.stream_name)
        return sink


class Client:
    """An RTMP client on the test's own loop, so its timings are the server loop's."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.chunks = ChunkReader()
        self.out = ChunkWriter()
        self.received: list[Message] = []
        self._pings = 0

    @classmethod
    async def open(cls, port: int) -> Client:
        client = cls(*await asyncio.open_connection("127.0.0.1", port))
        client.writer.write(b"\x03" + bytes(8) + os.urandom(1528))
        s0s1s2 = await client.reader.readexactly(1 + 1536 * 2)
        client.writer.write(s0s1s2[1:1537])
        return client

    def send(self, msg: Message, csid: int = 3) -> None:
        self.writer.write(self.out.encode(msg, csid))

    def command(self, name: str, txn: float, *args: amf0.Amf0Input, stream_id: int = 0) -> None:
        self.send(m.command(name, txn, *args, stream_id=stream_id))

    async def wait_for(self, pred: Callable[[Message], bool], timeout: float = 5.0) -> Message:
        async with asyncio.timeout(timeout):
            while True:
                for i, msg in enumerate(self.received):
                    if pred(msg):
                        del self.received[: i + 1]
                        return msg
                data = await self.reader.read(65536)
                if not data:
                    raise ConnectionError("closed by the server")
                self.received += self.chunks.feed(data)

    async def status(self) -> dict[str, amf0.Amf0Value]:
        msg = await self.wait_for(
            lambda x: x.type_id == m.COMMAND_AMF0 and m.parse_command(x)[0] == "onStatus"
        )
        info = m.parse_command(msg)[2][1]
        assert isinstance(info, dict)
        return info

    async def publish(self, stream: str) -> dict[str, amf0.Amf0Value]:
        self.command("connect", 1.0, {"app": "live", "tcUrl": "rtmp://127.0.0.1/live"})
        self.command("createStream", 2.0, None)
        self.command("publish", 3.0, None, stream, "live", stream_id=1)
        return await self.status()

    async def ping(self) -> float:
        """One ping request answered; returns the round trip in seconds."""
        self._pings += 1
        stamp = self._pings.to_bytes(4, "big")
        started = time.perf_counter()
        self.send(Message(m.USER_CONTROL, 0, 0, b"\x00\x06" + stamp), 2)
        await self.wait_for(
            lambda x: x.type_id == m.USER_CONTROL and x.payload == b"\x00\x07" + stamp
        )
        return time.perf_counter() - started

    async def closed_by_server(self, timeout: float = 5.0) -> bool:
        async with asyncio.timeout(timeout):
            try:
                while await self.reader.read(65536):
                    pass
            except ConnectionError:
                pass
        return True

    def close(self) -> None:
        self.writer.close()


@pytest.fixture
async def server() -> AsyncIterator[RtmpServer]:
    srv = RtmpServer(Handler())
    await srv.start("127.0.0.1", 0)
    yield srv
    await srv.close(grace=5)


@pytest.fixture
async def short_idle() -> AsyncIterator[RtmpServer]:
    """Connections must publish within IDLE seconds of connecting or of a publish ending."""
    srv = RtmpServer(Handler(), Limits(idle_timeout=IDLE))
    await srv.start("127.0.0.1", 0)
    yield srv
    await srv.close(grace=5)


def sink_of(srv: RtmpServer, name: str) -> Sink:
    handler = srv.handler
    assert isinstance(handler, Handler)
    return handler.sinks[name]


async def honest(srv: RtmpServer, name: str = "honest") -> Client:
    client = await Client.open(srv.port)
    assert (await client.publish(name))["code"] == "NetStream.Publish.Start"
    return client


async def still_records(client: Client, srv: RtmpServer, name: str = "honest") -> None:
    """The publisher is answered and its media, a large frame included, arrives whole."""
    frame = os.urandom(300_000)
    client.send(Message(m.VIDEO, 1, 40, frame), 6)
    await client.ping()
    assert sink_of(srv, name).media[-1] == (m.VIDEO, 40, frame)


def header0(csid: int, length: int, type_id: int, ts: int = 0) -> bytes:
    return (
        bytes((csid,))
        + ts.to_bytes(3, "big")
        + length.to_bytes(3, "big")
        + bytes((type_id,))
        + (1).to_bytes(4, "little")
    )


async def send_media(client: Client, total: int) -> list[Message]:
    """`total` bytes of video, then a ping; returns what the server sent meanwhile (all of
    it: everything before the answer to the ping)."""
    frame = os.urandom(100_000)
    for n in range(total // len(frame)):
        client.send(Message(m.VIDEO, 1, 40 * n, frame), 6)
        await client.writer.drain()
    client.send(Message(m.USER_CONTROL, 0, 0, b"\x00\x06" + b"last"), 2)
    seen: list[Message] = []
    async with asyncio.timeout(5):
        while not any(x.type_id == m.USER_CONTROL and x.payload[2:] == b"last" for x in seen):
            data = await client.reader.read(65536)
            assert data, "closed by the server"
            seen += client.chunks.feed(data)
    return seen


async def test_no_acknowledgements_unless_the_publisher_asks_for_them(
    server: RtmpServer,
) -> None:
    """ffmpeg never sets a window, reads what the server sends only now and then, and
    closes right after its last write: an acknowledgement it has not read makes its close a
    reset, which throws away the media still in flight (the lost ends of pushes, issue 14).
    So, as nginx-rtmp does, acknowledgements go only to a publisher that set a window."""
    client = await honest(server)
    seen = await send_media(client, 3 * MIB)
    assert [msg.type_id for msg in seen] == [m.USER_CONTROL]
    client.close()


async def test_a_publisher_that_sets_a_window_is_acknowledged(server: RtmpServer) -> None:
    client = await honest(server)
    client.send(m.window_ack_size(1_000_000), 2)
    seen = await send_media(client, 3 * MIB)
    acks = [int.from_bytes(msg.payload, "big") for msg in seen if msg.type_id == m.ACK]
    assert len(acks) >= 2
    assert all(b - a >= 1_000_000 for a, b in itertools.pairwise(acks))
    client.close()


async def test_unfinished_messages_over_16_mib_close_only_that_connection(
    server: RtmpServer, caplog: pytest.LogCaptureFixture
) -> None:
    good = await honest(server)
    bad = await Client.open(server.port)
    bad.send(m.set_chunk_size(MIB), 2)
    # Four chunk streams each start an 8 MiB video message and send 4 MiB of it: 16 MiB,
    # the whole budget. The connection stays up until one byte more arrives.
    for csid in range(3, 7):
        bad.writer.write(header0(csid, 8 * MIB - 1, m.VIDEO) + bytes(MIB))
        bad.writer.write((bytes((0xC0 | csid,)) + bytes(MIB)) * 3)
    bad.send(Message(m.USER_CONTROL, 0, 0, b"\x00\x06\x00\x00\x00\x09"), 2)
    await bad.wait_for(lambda x: x.type_id == m.USER_CONTROL)
    bad.writer.write(b"\xc3" + bytes(1))
    assert await bad.closed_by_server()
    assert "more than 16777216 bytes of unfinished messages" in caplog.text
    await still_records(good, server)
    good.close()


async def test_chunk_size_below_64_closes_only_that_connection(
    server: RtmpServer, caplog: pytest.LogCaptureFixture
) -> None:
    good = await honest(server)
    bad = await Client.open(server.port)
    bad.send(m.set_chunk_size(63), 2)
    assert await bad.closed_by_server()
    assert "chunk size 63 out of range" in caplog.text
    await still_records(good, server)
    ok = await Client.open(server.port)
    ok.send(m.set_chunk_size(64), 2)
    ok.out.chunk_size = 64
    await ok.ping()
    good.close()
    ok.close()


async def test_media_before_a_protocol_error_in_the_same_read_is_kept(
    server: RtmpServer, caplog: pytest.LogCaptureFixture
) -> None:
    client = await honest(server, "cut")
    frames = [Message(m.VIDEO, 1, 40 * n, os.urandom(5000)) for n in range(5)]
    # The frames and a Set Chunk Size of 1 in one write: one read for the server, which
    # hands the frames to the sink, then closes the connection without waiting for more.
    client.writer.write(
        b"".join(client.out.encode(msg, 6) for msg in frames)
        + client.out.encode(m.set_chunk_size(1), 2)
    )
    assert await client.closed_by_server()
    assert "chunk size 1 out of range" in caplog.text
    assert sink_of(server, "cut").media == [(m.VIDEO, f.timestamp, f.payload) for f in frames]
    assert sink_of(server, "cut").closed == 1


async def test_a_message_flood_does_not_starve_the_other_connections(server: RtmpServer) -> None:
    # One byte per message: fmt3 headers repeating a zero-length audio message. This is the
    # most parsing work per byte a peer can ask for, whatever the chunk size.
    flood = b"\xc4" * (512 * 1024)
    good = await honest(server)
    bad = await Client.open(server.port)
    bad.writer.write(header0(4, 0, m.AUDIO) + flood)
    bad.send(Message(m.USER_CONTROL, 0, 0, b"\x00\x06\x00\x00\x00\x09"), 2)
    flood_done = asyncio.create_task(bad.wait_for(lambda x: x.type_id == m.USER_CONTROL, 30))
    started = time.perf_counter()
    rtts: list[float] = []
    while not flood_done.done():
        rtts.append(await good.ping())
    await flood_done
    # What one 64 KiB read of the flood costs the server, measured under this run's load.
    per_read = (time.perf_counter() - started) * 64 * 1024 / len(flood)
    # Without the yields the server works through whole reads (more while data is buffered)
    # before anyone else runs: a ping waits one or two reads' worth. With them it waits a
    # turn or two of 256 messages (ChunkReader.feed's limit), a few hundredths of a read.
    assert len(rtts) >= 10, rtts
    assert statistics.median(rtts) < per_read / 2, (per_read, rtts)
    await still_records(good, server)
    good.close()
    bad.close()


async def test_a_sink_error_ends_the_publish_with_a_status(
    server: RtmpServer, caplog: pytest.LogCaptureFixture
) -> None:
    good = await honest(server)
    bad = await honest(server, "badmeta")
    bad.send(m.data_message("@setDataFrame", "onMetaData", {"videocodecid": {}}, stream_id=1), 4)
    status = await bad.status()
    assert (status["code"], status["description"]) == (
        "NetStream.Publish.Rejected",
        "internal error",
    )
    assert await bad.closed_by_server()
    assert sink_of(server, "badmeta").closed == 1
    [record] = [r for r in caplog.records if r.exc_info]
    assert record.exc_info is not None and record.exc_info[0] is TypeError
    assert "badmeta" in record.getMessage()
    await still_records(good, server)
    good.close()


async def test_a_failing_start_publish_is_answered(
    server: RtmpServer, caplog: pytest.LogCaptureFixture
) -> None:
    client = await Client.open(server.port)
    status = await client.publish("dbdown")
    assert (status["code"], status["description"]) == (
        "NetStream.Publish.Rejected",
        "internal error",
    )
    assert await client.closed_by_server()
    assert "the catalog is unreachable" in caplog.text


async def test_an_unexpected_error_closes_only_that_connection(
    server: RtmpServer, caplog: pytest.LogCaptureFixture
) -> None:
    good = await honest(server)
    bad = await honest(server, "badclose")
    bad.command("deleteStream", 4.0, None, 1.0)
    assert await bad.closed_by_server()
    assert sink_of(server, "badclose").closed == 1  # the server did not close it twice
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert record.name == "liverec.rtmp.connection" and "unexpected error" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError
    await still_records(good, server)
    good.close()


async def test_closing_the_server_ends_every_publish(server: RtmpServer) -> None:
    clients = [await honest(server, f"s{i}") for i in range(3)]
    await server.close(grace=5)
    for i, client in enumerate(clients):
        assert await client.closed_by_server()
        assert sink_of(server, f"s{i}").closed == 1


async def publish_past_idle_timeout(srv: RtmpServer, client: Client, name: str) -> None:
    """Publish for twice the idle timeout, then unpublish as ffmpeg does."""
    assert (await client.publish(name))["code"] == "NetStream.Publish.Start"
    await asyncio.sleep(2 * IDLE)
    await still_records(client, srv, name)
    client.command("FCUnpublish", 4.0, None, name)
    client.command("deleteStream", 5.0, None, 1.0)
    await client.ping()  # answered: the server has handled the unpublish and gone round its loop
    assert sink_of(srv, name).closed == 1


async def test_a_long_publish_ends_quietly_and_the_connection_may_publish_again(
    short_idle: RtmpServer, caplog: pytest.LogCaptureFixture
) -> None:
    client = await Client.open(short_idle.port)
    await publish_past_idle_timeout(short_idle, client, "first")
    # More than the idle timeout after connecting, within it of the first publish's end.
    client.command("createStream", 6.0, None)
    client.command("publish", 7.0, None, "second", "live", stream_id=1)
    assert (await client.status())["code"] == "NetStream.Publish.Start"
    await still_records(client, short_idle, "second")
    client.close()
    await short_idle.close(grace=5)  # every connection has ended and said why
    assert sink_of(short_idle, "second").closed == 1
    assert "did not publish" not in caplog.text


async def test_the_idle_timeout_restarts_when_a_publish_ends(
    short_idle: RtmpServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "liverec.rtmp")
    client = await Client.open(short_idle.port)
    await publish_past_idle_timeout(short_idle, client, "once")
    # It does not publish again: closed one idle timeout after the end, and that is no fault.
    assert await client.closed_by_server()
    assert f"no new publish within {IDLE:g} s of the last one ending" in caplog.text
    assert "did not publish" not in caplog.text


async def test_a_connection_that_never_publishes_is_closed_with_a_warning(
    short_idle: RtmpServer, caplog: pytest.LogCaptureFixture
) -> None:
    client = await Client.open(short_idle.port)
    client.command("connect", 1.0, {"app": "live", "tcUrl": "rtmp://127.0.0.1/live"})
    assert await client.closed_by_server()
    [record] = [r for r in caplog.records if "did not publish" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert record.getMessage().endswith(f"did not publish within {IDLE:g} s")


async def test_a_refused_publisher_can_read_the_status_while_it_still_sends_media(
    server: RtmpServer,
) -> None:
    client = await honest(server, "refuse")
    client.send(Message(m.VIDEO, 1, 0, b"\x14" + bytes(100)), 6)  # On2 VP6
    msg = await client.wait_for(
        lambda x: x.type_id == m.COMMAND_AMF0 and m.parse_command(x)[0] == "onStatus"
    )
    info = m.parse_command(msg)[2][1]
    assert isinstance(info, dict)
    assert (info["level"], info["code"], info["description"]) == (
        "error",
        "NetStream.Publish.Rejected",
        REFUSED,
    )
    assert msg.stream_id == 1  # the publish's message stream, where clients look for it
    assert await client.closed_by_server()  # nothing follows the status: the server half-closes
    # A publisher still writes media after the refusal: ffmpeg reads what the server sent
    # only between its writes. The server reads on, so those writes do not fail (a reset
    # would make them fail with "Broken pipe" before the status is read) ...
    for i in range(32):
        client.send(Message(m.VIDEO, 1, 40 * i, bytes(64 * 1024)), 6)
        await client.writer.drain()
        await asyncio.sleep(0.01)  # room for a reset to arrive, were there one
    client.close()  # ... until it hangs up, having read the status
    assert sink_of(server, "refuse").closed == 1


async def test_a_silent_publisher_is_closed_after_the_read_timeout_and_a_talking_one_is_not(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A timeout well above a loaded machine's scheduling delays (the talker must never look
    # silent), the talker talking every 0.2 s for longer than two of them.
    srv = RtmpServer(Handler(), Limits(read_timeout=1.5))
    await srv.start("127.0.0.1", 0)
    try:
        talking = await honest(srv, "talking")
        silent = await honest(srv, "silent")
        # The talker's reads keep moving its deadline on: it outlives several timeouts.
        for _ in range(16):
            await still_records(talking, srv, "talking")
            await asyncio.sleep(0.2)
        assert await silent.closed_by_server()
        assert sink_of(srv, "silent").closed == 1
        assert "silent for 2 s" in caplog.text
        await still_records(talking, srv, "talking")
        assert sink_of(srv, "talking").closed == 0
    finally:
        await srv.close(grace=5)


# -- reading publishers in batches (rtmp/batching.py) --------------------------------------


async def wait_until(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.005)


@pytest.fixture
async def batched() -> AsyncIterator[RtmpServer]:
    """A batch interval long enough to tell a batched read from an immediate one."""
    srv = RtmpServer(Handler(), Limits(read_interval=1.0))
    await srv.start("127.0.0.1", 0)
    yield srv
    await srv.close(grace=5)


async def join_batch(srv: RtmpServer, client: Client, name: str = "honest") -> None:
    """Media for BATCH_AFTER, read as it comes; then the socket is the batch's."""
    assert srv.batch is not None
    sink = sink_of(srv, name)
    client.send(Message(m.VIDEO, 1, 0, b"first"), 6)
    await wait_until(lambda: len(sink.media) == 1)
    assert len(srv.batch) == 0
    await joins_after_batch_after(srv, client)


async def joins_after_batch_after(srv: RtmpServer, client: Client) -> None:
    """A frame was handed over as it came: BATCH_AFTER later, the next read joins the batch."""
    await asyncio.sleep(BATCH_AFTER)
    client.send(Message(m.VIDEO, 1, 20, b"joins"), 6)
    await wait_until(lambda: len(srv.batch or ()) == 1)


async def test_a_publisher_is_read_in_batches_once_media_flows(batched: RtmpServer) -> None:
    batch = batched.batch
    assert batch is not None
    client = await honest(batched)
    sink = sink_of(batched, "honest")
    # The first frame is handed over as it arrives, however it is split over reads: the
    # recording's wall clock starts on it.
    frame = os.urandom(1000)
    data = client.out.encode(Message(m.VIDEO, 1, 0, frame), 6)
    client.writer.write(data[:300])
    await asyncio.sleep(0.05)
    client.writer.write(data[300:])
    await wait_until(lambda: len(sink.media) == 1, 0.5)  # the interval is 1 s
    assert sink.media == [(m.VIDEO, 0, frame)]
    await joins_after_batch_after(batched, client)
    # From then on the socket is read on the batch's timer: what arrives meanwhile waits
    # in the kernel and comes in one read, in order and whole.
    frames = [os.urandom(size) for size in (10, 70_000, 200_000, 3)]
    for i, frame in enumerate(frames, 1):
        client.send(Message(m.VIDEO, 1, 40 * i, frame), 6)
    await client.writer.drain()
    await asyncio.sleep(0.1)
    assert len(sink.media) == 2, "read before the batch's timer"
    await wait_until(lambda: len(sink.media) == 6)
    assert sink.media[2:] == [(m.VIDEO, 40 * i, f) for i, f in enumerate(frames, 1)]
    # Anything but media is the connection task's: the read that brings the ping leaves
    # the batch (the task answers it); media then joins again after BATCH_AFTER.
    await client.ping()
    assert len(batch) == 0
    client.close()
    # The hang-up is seen: the publish ends, the connection is gone.
    await wait_until(lambda: sink.closed == 1)
    await wait_until(lambda: len(batch) == 0 and not batched._connections)


async def test_a_first_frame_slower_than_batch_after_is_still_read_as_it_comes(
    batched: RtmpServer,
) -> None:
    # A slow uplink: the first frame (a large keyframe) takes longer than BATCH_AFTER to
    # arrive. The wait for the batch counts from the read that hands a frame over, so the
    # frame's last bytes are read at once (it anchors the recording's wall clock) and do
    # not wait for the batch's timer.
    batch = batched.batch
    assert batch is not None
    client = await honest(batched)
    sink = sink_of(batched, "honest")
    frame = os.urandom(100_000)
    data = client.out.encode(Message(m.VIDEO, 1, 0, frame), 6)
    for i in range(0, 90_000, 30_000):
        client.writer.write(data[i : i + 30_000])
        await asyncio.sleep(BATCH_AFTER / 2)
    assert sink.media == [] and len(batch) == 0
    client.writer.write(data[90_000:])
    await wait_until(lambda: len(sink.media) == 1, 0.5)  # the interval is 1 s
    assert sink.media == [(m.VIDEO, 0, frame)]
    await joins_after_batch_after(batched, client)
    client.close()


async def test_a_publisher_faster_than_a_tick_reads_leaves_the_batch(batched: RtmpServer) -> None:
    """A push faster than real time must not hold the loop in one tick: after
    MAX_BATCH_READS full reads its transport reads it, as it reads every connection."""
    client = await honest(batched)
    await join_batch(batched, client)
    conn = next(iter(batched._connections))
    sock = conn.transport.get_extra_info("socket") if conn.transport else None
    assert sock is not None
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * MIB)  # all of it waits for us
    frames = [os.urandom(200_000) for _ in range(MAX_BATCH_READS // 2)]
    assert sum(map(len, frames)) > MAX_BATCH_READS * 64 * 1024
    for i, frame in enumerate(frames):
        client.send(Message(m.VIDEO, 1, 40 * (i + 1), frame), 6)
    await client.writer.drain()
    sink = sink_of(batched, "honest")
    await wait_until(lambda: len(sink.media) == 2 + len(frames))
    assert sink.media[2:] == [(m.VIDEO, 40 * (i + 1), f) for i, f in enumerate(frames)]
    assert batched.batch is not None and len(batched.batch) == 0
    await still_records(client, batched)
    client.close()


async def test_a_silent_batched_publisher_is_closed_after_the_read_timeout() -> None:
    srv = RtmpServer(Handler(), Limits(read_timeout=BATCH_AFTER + 1, read_interval=0.1))
    await srv.start("127.0.0.1", 0)
    try:
        client = await honest(srv)
        await join_batch(srv, client)
        await wait_until(lambda: sink_of(srv, "honest").closed == 1)
        await wait_until(lambda: len(srv.batch or ()) == 0 and not srv._connections)
        assert await client.closed_by_server()
    finally:
        await srv.close(grace=5)


async def test_closing_the_server_ends_a_batched_publish() -> None:
    srv = RtmpServer(Handler(), Limits(read_interval=0.1))
    await srv.start("127.0.0.1", 0)
    client = await honest(srv)
    await join_batch(srv, client)
    await srv.close(grace=5)
    assert sink_of(srv, "honest").closed == 1
    assert srv.batch is not None and len(srv.batch) == 0
    assert await client.closed_by_server()


async def test_a_reset_of_a_batched_publisher_ends_its_publish(
    batched: RtmpServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "liverec.rtmp.connection")
    good = await honest(batched)
    client = await honest(batched, "reset")
    await join_batch(batched, client, "reset")
    sock = client.writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.writer.transport.abort()  # RST, not FIN
    await wait_until(lambda: sink_of(batched, "reset").closed == 1)
    assert "connection lost" in caplog.text
    await still_records(good, batched)
    good.close()


async def test_a_read_interval_of_0_reads_every_publisher_at_once() -> None:
    srv = RtmpServer(Handler(), Limits(read_interval=0))
    await srv.start("127.0.0.1", 0)
    try:
        assert srv.batch is None
        client = await honest(srv)
        sink = sink_of(srv, "honest")
        for i in range(3):
            client.send(Message(m.VIDEO, 1, 40 * i, b"frame"), 6)
            await wait_until(lambda: len(sink.media) == i + 1)  # noqa: B023 - awaited here
        client.close()
    finally:
        await srv.close(grace=5)


async def test_a_commands_answer_is_written_in_one_send(server: RtmpServer) -> None:
    client = await Client.open(server.port)
    await wait_until(lambda: bool(server._connections))
    conn = next(iter(server._connections))
    transport = conn.transport
    assert transport is not None
    sends: list[bytes] = []
    write = transport.write

    def counted(data: bytes | bytearray | memoryview) -> None:
        sends.append(bytes(data))
        write(data)

    transport.write = counted  # type: ignore[method-assign]
    client.command("connect", 1.0, {"app": "live", "tcUrl": "rtmp://127.0.0.1/live"})
    await client.wait_for(
        lambda x: x.type_id == m.COMMAND_AMF0 and m.parse_command(x)[0] == "_result"
    )
    answer = ChunkReader().feed(b"".join(sends))
    assert {m.WINDOW_ACK_SIZE, m.SET_PEER_BANDWIDTH, m.COMMAND_AMF0} <= {x.type_id for x in answer}
    assert len(sends) == 1
    client.close()
