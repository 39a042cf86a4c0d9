"""One accepted RTMP connection: its bytes in, messages through the session, answers out.

Bytes are received into one buffer that all of a server's connections share (a
`BufferedProtocol`: no allocation and no stream buffer per read; the chunk reader copies what
it keeps). While the connection publishes, its audio and video are parsed and handed to the
recorder right in the read callback, so the per-frame path makes no task switch. Everything
else (the handshake, commands, metadata, a failing sink, a flood that must yield to the other
connections) is left to the connection's task, which runs the session's async steps in
order. Reading pauses while the task holds a read's worth of bytes it has not handled yet.
Once a publish's media has flowed for a second, its socket is read in batches on one timer
(rtmp/batching.py) instead of by the transport."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import deque
from dataclasses import dataclass
from typing import Protocol, cast

from liverec.errors import LiverecError
from liverec.rtmp import messages as m
from liverec.rtmp.batching import BATCH_AFTER, MAX_BATCH_READS, READ_INTERVAL, BatchReader
from liverec.rtmp.chunk import ChunkReader, ChunkWriter, Message
from liverec.rtmp.handshake import ServerHandshake
from liverec.rtmp.session import INTERNAL_ERROR, PublishHandler, Session

log = logging.getLogger(__name__)

READ_SIZE = 64 * 1024
# One connection's work between chances for the others to run. Parsing costs per message
# and per chunk, not per byte: the 1-byte header of a zero-length message is a whole message,
# so a 64 KiB read of them takes ~90 ms of CPU, at any chunk size. The reader stops after
# 256 messages (ChunkReader.feed's limit) and the rest waits for the next turn, which keeps
# one stall to ~3 ms (chunk headers without a message are bounded by the 64-byte minimum
# chunk size: ~1,000 in a read); a flooding peer then gets its share of the loop and no
# more (meanwhile its socket buffer fills and TCP slows it down). Real publishers send ~100
# messages a second: a read is fed whole, in one call.
MESSAGES_PER_YIELD = 256
# How long a refused publisher is given to read its error status before we hang up. A
# publisher still sending media reads what the server sent only between writes: ffmpeg
# looks after every 10th message it writes, one message per look (rtmpproto.c rtmp_write,
# flush_interval). That is ~0.15 s at 25 fps with audio, 5 s for 2 fps video alone. Closing
# earlier, with its media unread in our socket, sends a reset: its next write fails with
# "Broken pipe" and the status is never read. It hangs up itself once it has read it.
REFUSAL_LINGER = 5.0
_MEDIA = (m.AUDIO, m.VIDEO)


@dataclass(frozen=True)
class Limits:
    idle_timeout: float = 15.0  # from accept, or from a publish's end, until publishing
    handshake_timeout: float = 5.0  # from accept until the handshake and `connect` are done
    read_timeout: float = 30.0  # silence from a publisher
    max_connections: int = 1000
    # Connections of one address that are not publishing (handshaking, connected, idle).
    max_pending_per_ip: int = 16
    # Slots of max_connections that connections not publishing may not fill: once they
    # hold the rest, a new connection takes one of these and must start publishing (its
    # push signature checked) within handshake_timeout. So idle connections, from however
    # many addresses, never leave a publisher without a slot for long, and never touch the
    # connections that are publishing.
    reserved: int = 0
    max_message_size: int = 8 * 1024 * 1024
    max_buffered: int = 16 * 1024 * 1024  # unfinished messages' bytes, all chunk streams
    write_buffer_limit: int = 256 * 1024  # a peer that does not read its answers is dropped
    # Publishers' sockets are read this often, in batches (rtmp/batching.py); 0: on every
    # readiness event, as other connections are.
    read_interval: float = READ_INTERVAL


class Owner(Protocol):
    """What a connection needs of its server (rtmp/server.py)."""

    handler: PublishHandler
    limits: Limits
    batch: BatchReader | None

    def admit(self, conn: Connection) -> bool:
        """Register a new connection, or refuse it (the caller then closes it)."""
        ...

    def forget(self, conn: Connection) -> None: ...

    def refused(self, reason: str, peer: str) -> None:
        """Count and log a connection closed by a limit."""
        ...


def _csid(msg: Message) -> int:
    if msg.type_id in (
        m.SET_CHUNK_SIZE,
        m.ABORT,
        m.ACK,
        m.USER_CONTROL,
        m.WINDOW_ACK_SIZE,
        m.SET_PEER_BANDWIDTH,
    ):
        return 2
    return 3 if msg.stream_id == 0 else 5


class Connection(asyncio.BufferedProtocol):
    """One connection; `buffer` is the server's shared read buffer."""

    def __init__(self, owner: Owner, buffer: memoryview) -> None:
        self._owner = owner
        self._limits = limits = owner.limits
        self._buffer = buffer
        self._batch = owner.batch
        self._fd = -1  # the socket, read directly while in the batch
        self._loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.ip = "?"
        self.session: Session | None = None
        self.reserve = False  # holds a reserved slot: must publish within handshake_timeout
        self.task: asyncio.Task[None] | None = None
        self._chunks = ChunkReader(
            max_message_size=limits.max_message_size, max_buffered=limits.max_buffered
        )
        self._out = ChunkWriter()
        self._acked = 0  # bytes_received when we last acknowledged
        self._fast = False  # media is handled in the read callback
        self._batched = False  # in the batch: read on its timer, not by the transport
        # Loop time of the first read in the fast path that handed media over.
        self._fast_since: float | None = None
        self._inbox = bytearray()  # bytes received for the task
        self._queued: deque[Message] = deque()  # messages parsed in the callback, for the task
        self._failure: Exception | None = None  # the sink failed in the callback
        self._error: Exception | None = None  # parsing failed in the callback
        self._since_yield = 0  # messages the task handled since it last let the others run
        self._ended = False  # the peer closed its side, or the connection is gone
        self._discard = False  # lingering or ending: what arrives is dropped
        self._last_read = self._loop.time()
        self._waiter: asyncio.Future[None] | None = None

    @property
    def publishing(self) -> bool:
        return self.session is not None and self.session.publishing

    # -- the protocol's callbacks ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self.transport = transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            self._fd = sock.fileno()
        info = transport.get_extra_info("peername")
        if info:
            self.peer = f"{info[0]}:{info[1]}"
            self.ip = str(info[0])
        if not self._owner.admit(self):
            self._discard = True
            transport.close()
            return
        self.session = Session(self._owner.handler, self.peer)
        self.task = self._loop.create_task(self._run(), name=f"rtmp {self.peer}")

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        now = self._last_read = self._loop.time()
        if self._discard:
            return
        if self._fast:
            self._feed_fast(self._buffer[:nbytes])
            if self._fast and not self._batched:
                self._maybe_join_batch(now, nbytes)
            return
        self._inbox += self._buffer[:nbytes]
        if len(self._inbox) >= READ_SIZE:
            self._pause()
        self._wake()

    def eof_received(self) -> bool:
        self._ended = True
        self._wake()
        return True  # half-open: the task still answers and closes

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended = True
        self._discard = True
        self._wake()

    def _maybe_join_batch(self, now: float, nbytes: int) -> None:
        """Hand the socket to the batch once media has flowed for BATCH_AFTER seconds
        since a read first handed a frame over (the recording's wall clock is anchored on
        the arrival of its first frame, which must not wait for the timer, however it is
        split over reads) and a read has drained it."""
        if self._batch is None or self._fd < 0 or self._fast_since is None:
            return
        if now - self._fast_since >= BATCH_AFTER and nbytes < len(self._buffer):
            assert self.transport is not None
            self._batched = True
            self.transport.pause_reading()
            self._batch.add(self)

    def read_batch(self) -> bool:
        """Read what the socket holds (rtmp/batching.py): as the transport would, read by
        read, until a short read. False: leave the batch."""
        transport = self.transport
        if not self._batched or transport is None or transport.is_closing() or self._discard:
            self._batched = False
            return False
        if not self._fast:  # the task took over without a read (a publish stopped from outside)
            self._batched = False
            self._resume()
            return False
        buffer = self._buffer
        try:
            for _ in range(MAX_BATCH_READS):
                try:
                    nbytes = os.readv(self._fd, (buffer,))
                except (BlockingIOError, InterruptedError):
                    return True
                except OSError as exc:
                    log.info("RTMP %s connection lost: %s", self.peer, exc)
                    self._batched = False
                    self.connection_lost(exc)
                    return False
                if not nbytes:
                    self._batched = False
                    self.eof_received()
                    return False
                self.buffer_updated(nbytes)
                if not self._batched:  # the task has the rest
                    return False
                if nbytes < len(buffer):
                    return True
        except Exception as exc:  # a bug: raised again in the task, which ends the connection
            self._error = exc
            self._to_task(b"")
            return False
        # It sends faster than one tick reads (a push faster than real time): the transport
        # reads it, one read per pass of the loop as for every other connection, until it
        # has kept up for BATCH_AFTER again.
        self._batched = False
        self._fast_since = None
        self._resume()
        return False

    def stop(self) -> None:
        """End this connection as if the peer had hung up (the server is closing)."""
        self._ended = True
        self._wake()
        if self.transport is not None:
            self.transport.close()

    # -- the fast path: media, in the read callback ------------------------------------

    def _feed_fast(self, data: memoryview) -> None:
        """Parse `data` and hand its media to the sink; at the first message of another
        kind, a sink failure or a yield due, hand that and the rest to the task."""
        chunks = self._chunks
        session = self.session
        assert session is not None
        try:
            msgs = chunks.feed(data, MESSAGES_PER_YIELD)
            end = chunks.consumed
            for i, msg in enumerate(msgs):
                kind = msg.type_id
                if kind not in _MEDIA:
                    self._queued.extend(msgs[i:])
                    self._to_task(data[end:])
                    return
                failure = session.media(kind, msg.timestamp, msg.payload)
                if failure is not None:
                    self._failure = failure
                    self._to_task(b"")
                    return
            chunks.check()
        except Exception as exc:  # raised again in the task, which ends the connection
            self._error = exc
            self._to_task(b"")
            return
        if end < len(data):  # a yield is due: the task has the rest
            self._to_task(data[end:])
            return
        if msgs and self._fast_since is None:
            self._fast_since = self._last_read  # media flows from this read on
        self._ack()

    def _to_task(self, rest: memoryview | bytes) -> None:
        self._fast = self._batched = False
        self._fast_since = None
        self._inbox += rest
        if len(self._inbox) >= READ_SIZE:
            self._pause()
        self._wake()

    def _ack(self) -> None:
        due = self._ack_due()
        if due:
            self._send(due)
            if self._send_overflow():
                self._to_task(b"")  # the task sees it and hangs up

    def _ack_due(self) -> list[Message]:
        """The acknowledgement owed to a publisher that set a window, if one is due."""
        window = self.session.peer_window if self.session is not None else 0
        if window and self._chunks.bytes_received - self._acked >= window:
            self._acked = self._chunks.bytes_received
            return [m.acknowledgement(self._acked & 0xFFFFFFFF)]
        return []

    # -- the task: everything else, in order -------------------------------------------

    async def _run(self) -> None:
        session = self.session
        transport = self.transport
        assert session is not None and transport is not None and self.task is not None
        try:
            await self._serve(session, transport)
        finally:
            if self._batch is not None:
                self._batch.discard(self)
            self._owner.forget(self)
            transport.close()

    async def _serve(self, session: Session, transport: asyncio.Transport) -> None:
        limits = self._limits
        loop = self._loop
        accepted = loop.time()
        # Until `connect` (and, in a reserved slot, until publishing): handshake_timeout.
        short_deadline = accepted + limits.handshake_timeout
        idle_deadline = accepted + limits.idle_timeout
        ended = 0  # session.publishes_ended when idle_deadline was last set
        linger = False  # an error status was sent: the peer gets time to read it
        handshake = ServerHandshake()
        try:
            while True:
                if session.publishes_ended != ended:
                    # A publish ended: the connection may publish again within idle_timeout
                    # of that, however long it has been open.
                    ended = session.publishes_ended
                    idle_deadline = loop.time() + limits.idle_timeout
                if self.reserve and session.publishing:
                    self.reserve = False  # it proved itself: an ordinary connection now
                if self._send_overflow():
                    log.warning("RTMP %s closed: it does not read what we send", self.peer)
                    return
                if self._failure or self._error or self._queued or self._inbox:
                    self._send(await self._work(session, handshake))
                    if self._send_overflow():
                        log.warning("RTMP %s closed: it does not read what we send", self.peer)
                        return
                    if session.closing:
                        linger = True
                        return
                    continue
                if self._ended:
                    return
                short = not session.connected or self.reserve
                deadline = min(idle_deadline, short_deadline) if short else idle_deadline
                if session.publishing:
                    deadline = self._last_read + limits.read_timeout
                if loop.time() >= deadline:
                    if session.publishing:
                        log.warning(
                            "RTMP %s closed: silent for %.0f s", self.peer, limits.read_timeout
                        )
                    else:
                        self._log_idle(ended, session, short and deadline < idle_deadline)
                    return
                self._fast = session.publishing and handshake.done
                self._resume()
                await self._sleep_until(deadline)
        except LiverecError as exc:
            log.warning("RTMP %s closed: %s", self.peer, exc)
        except (ConnectionError, OSError) as exc:
            log.info("RTMP %s connection lost: %s", self.peer, exc)
        except Exception:
            # A bug, ours or the handler's: this connection ends, the server goes on.
            log.exception("RTMP %s closed: unexpected error", self.peer)
            if session.publishing:
                with contextlib.suppress(Exception):
                    self._send([INTERNAL_ERROR])
                    linger = True
        finally:
            self._fast = self._batched = False
            self._discard = True
            self._inbox = bytearray()
            self._queued.clear()
            try:
                await session.end_publish()
            except Exception:
                log.exception("RTMP %s: closing the recording failed", self.peer)
            if linger:  # after the recording is closed: lingering delays only the hang-up
                await self._linger(transport)

    async def _work(self, session: Session, handshake: ServerHandshake) -> list[Message]:
        """Handle what the callback left: its error or sink failure, the messages it
        parsed, then the bytes received since. Returns the answers to send."""
        replies: list[Message] = []
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        if self._failure is not None:
            failure, self._failure = self._failure, None
            return await session.sink_failed(failure)
        while self._queued:
            replies += await session.handle(self._queued.popleft())
            if session.closing:
                return replies
            await self._maybe_yield(1)
        data: bytes | bytearray = self._inbox
        self._inbox = bytearray()
        self._resume()
        if not handshake.done:
            reply = handshake.feed(data)
            if reply:
                self._write(reply)
            if not handshake.done:
                return replies
            data = handshake.leftover
        chunks = self._chunks
        view = memoryview(data)
        end = 0
        while end < len(view):
            msgs = chunks.feed(view[end:], MESSAGES_PER_YIELD)
            end += chunks.consumed
            for msg in msgs:
                replies += await session.handle(msg)
                if session.closing:
                    return replies
            await self._maybe_yield(len(msgs))
        chunks.check()  # an error after the messages handled above
        return replies + self._ack_due()

    async def _maybe_yield(self, handled: int) -> None:
        self._since_yield += handled
        if self._since_yield >= MESSAGES_PER_YIELD:
            self._since_yield = 0
            await asyncio.sleep(0)

    def _send(self, replies: list[Message]) -> None:
        """Encode the replies in order (a Set Chunk Size among them applies to those after
        it) and write them at once: one send for a command's answer (connect's is four
        messages), not one each."""
        if not replies:
            return
        chunks = []
        for msg in replies:
            chunks.append(self._out.encode(msg, _csid(msg)))
            if msg.type_id == m.SET_CHUNK_SIZE:
                self._out.chunk_size = int.from_bytes(msg.payload[:4], "big")
        self._write(b"".join(chunks))

    def _write(self, data: bytes) -> None:
        assert self.transport is not None
        if not self.transport.is_closing():
            self.transport.write(data)

    def _send_overflow(self) -> bool:
        assert self.transport is not None
        return self.transport.get_write_buffer_size() > self._limits.write_buffer_limit

    def _pause(self) -> None:
        if self.transport is not None and self.transport.is_reading():
            self.transport.pause_reading()

    def _resume(self) -> None:
        transport = self.transport
        if self._batched or transport is None or transport.is_closing():
            return  # the batch reads it
        if not transport.is_reading():
            transport.resume_reading()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _sleep_until(self, when: float) -> None:
        """Until woken by the callbacks or `when` (loop time), whichever comes first: one
        timer per sleep, and a publishing connection sleeps until it needs the task."""
        waiter = self._waiter = self._loop.create_future()
        timer = self._loop.call_at(when, self._wake)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    async def _linger(self, transport: asyncio.Transport) -> None:
        """Send what is queued (the error status last), then drop what arrives until the
        peer hangs up or REFUSAL_LINGER passes; the caller then closes.

        The FIN after the status tells a client that waits for an answer (a publish refused
        at once) that none follows; a publisher still sending media keeps writing without
        errors until it has read the status, which is what it then shows its user."""
        self._resume()
        with contextlib.suppress(ConnectionError, OSError):
            if transport.can_write_eof() and not transport.is_closing():
                transport.write_eof()  # after the buffered answers are sent
        until = self._loop.time() + REFUSAL_LINGER
        while not self._ended and self._loop.time() < until:
            await self._sleep_until(until)

    def _log_idle(self, publishes_ended: int, session: Session, short: bool) -> None:
        if short:  # the handshake deadline, not the idle one
            reason = "reserve_timeout" if session.connected else "handshake_timeout"
            self._owner.refused(reason, self.peer)
            return
        if publishes_ended:
            # A publisher that keeps its connection after unpublishing: normal, not a fault.
            log.info(
                "RTMP %s closed: no new publish within %g s of the last one ending",
                self.peer,
                self._limits.idle_timeout,
            )
        else:
            log.warning(
                "RTMP %s closed: did not publish within %g s",
                self.peer,
                self._limits.idle_timeout,
            )
