"""The asyncio RTMP server: sockets, timeouts and limits around the pure state machines."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from liverec.errors import LiverecError
from liverec.rtmp import messages as m
from liverec.rtmp.chunk import ChunkReader, ChunkWriter, Message
from liverec.rtmp.handshake import ServerHandshake
from liverec.rtmp.session import INTERNAL_ERROR, PublishHandler, Session

log = logging.getLogger(__name__)

READ_SIZE = 64 * 1024
# One connection's work between chances for the others to run. Parsing costs per message
# and per chunk, not per byte: the 1-byte header of a zero-length message is a whole message,
# so a 64 KiB read of them takes ~90 ms of CPU, at any chunk size. Feeding the reader 2 KiB
# at a time and yielding to the loop every 256 messages keeps one stall to ~3 ms; a flooding
# peer then gets its share of the loop and no more (meanwhile its socket buffer fills and TCP
# slows it down). Real publishers send ~100 messages a second, so they yield every few
# seconds; the slicing costs them ~0.2% of a core more per 35 Mbit/s. A slice also takes
# the rest of the chunk being read (ChunkReader.payload_due) first: payload is copied, not
# parsed, so the bound stands, and a 4096-byte chunk is fed in one slice, not three.
FEED_SIZE = 2 * 1024
MESSAGES_PER_YIELD = 256
# How long a refused publisher is given to read its error status before we hang up. A
# publisher still sending media reads what the server sent only between writes: ffmpeg
# looks after every 10th message it writes, one message per look (rtmpproto.c rtmp_write,
# flush_interval). That is ~0.15 s at 25 fps with audio, 5 s for 2 fps video alone. Closing
# earlier, with its media unread in our socket, sends a reset: its next write fails with
# "Broken pipe" and the status is never read. It hangs up itself once it has read it.
REFUSAL_LINGER = 5.0


# A refusal of each kind is logged at most once in this many seconds (with how many there
# were since the last line): a flood of connections must not become a flood of log lines.
REFUSAL_LOG_EVERY = 10.0


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


@dataclass(eq=False)
class _Conn:
    """What the server knows of one accepted connection, for its limits."""

    ip: str
    writer: asyncio.StreamWriter
    session: Session | None = None
    reserve: bool = False  # holds a reserved slot: must publish within handshake_timeout

    @property
    def publishing(self) -> bool:
        return self.session is not None and self.session.publishing


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
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], _Conn] = {}
        self._closing = False
        self._refusals: dict[str, _Refusals] = {}

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> None:
        """Listen; `reuse_port`: beside other processes on the same port (SO_REUSEPORT),
        the kernel spreading new connections over them (ingest workers, workers.py)."""
        self._server = await asyncio.start_server(
            self._accept, host, port, limit=READ_SIZE, reuse_port=reuse_port or None
        )
        for sock in self._server.sockets:
            log.info("RTMP listening on %s", sock.getsockname()[:2])

    async def close(self, grace: float = 30.0) -> None:
        """Stop accepting, end every publish cleanly (recordings closed), then return."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        for conn in list(self._connections.values()):
            conn.writer.close()
        tasks = list(self._connections)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer_info = writer.get_extra_info("peername")
        peer = f"{peer_info[0]}:{peer_info[1]}" if peer_info else "?"
        ip = str(peer_info[0]) if peer_info else "?"
        if self._closing:
            writer.close()
            return
        conn = _Conn(ip, writer)
        refusal = self._admit(conn)
        if refusal is not None:
            self._refused(refusal, peer)
            writer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = conn
        try:
            await self._serve(reader, writer, peer, conn)
        finally:
            del self._connections[task]
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _admit(self, conn: _Conn) -> str | None:
        """The reason to refuse a new connection, or None (then `conn.reserve` tells
        whether it takes a reserved slot)."""
        limits = self.limits
        if len(self._connections) >= limits.max_connections:
            return "max_connections"
        pending = 0
        from_ip = 0
        for other in self._connections.values():
            if not other.publishing:
                pending += 1
                from_ip += other.ip == conn.ip
        if from_ip >= limits.max_pending_per_ip:
            return "pending_per_ip"
        conn.reserve = pending >= limits.max_connections - limits.reserved
        return None

    def _refused(self, reason: str, peer: str) -> None:
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

    async def _serve(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: str,
        conn: _Conn,
    ) -> None:
        session = Session(self.handler, peer)
        conn.session = session
        loop = asyncio.get_running_loop()
        accepted = loop.time()
        # Until `connect` (and, in a reserved slot, until publishing): handshake_timeout.
        short_deadline = accepted + self.limits.handshake_timeout
        idle_deadline = accepted + self.limits.idle_timeout
        ended = 0  # session.publishes_ended when idle_deadline was last set
        linger = False  # an error status was sent: the peer gets time to read it
        handshake = ServerHandshake()
        chunks = ChunkReader(
            max_message_size=self.limits.max_message_size, max_buffered=self.limits.max_buffered
        )
        out = ChunkWriter()
        acked = 0
        since_yield = 0  # messages handled since this task last let the others run
        deadline_guard = _ReadDeadline(loop)
        try:
            while True:
                if session.publishes_ended != ended:
                    # A publish ended: the connection may publish again within idle_timeout
                    # of that, however long it has been open.
                    ended = session.publishes_ended
                    idle_deadline = loop.time() + self.limits.idle_timeout
                if conn.reserve and session.publishing:
                    conn.reserve = False  # it proved itself: an ordinary connection now
                short = not session.connected or conn.reserve
                deadline = min(idle_deadline, short_deadline) if short else idle_deadline
                timeout = self.limits.read_timeout if session.publishing else deadline - loop.time()
                if timeout <= 0:
                    self._log_idle(peer, ended, session, short and deadline < idle_deadline)
                    return
                try:
                    data = await deadline_guard.read(reader, timeout)
                except TimeoutError:
                    if session.publishing:
                        log.warning("RTMP %s closed: silent for %.0f s", peer, timeout)
                    else:
                        self._log_idle(peer, ended, session, short and deadline < idle_deadline)
                    return
                if not data:
                    return
                if not handshake.done:
                    reply = handshake.feed(data)
                    if reply:
                        writer.write(reply)
                    if not handshake.done:
                        continue
                    data = handshake.leftover
                    if not data:
                        continue
                replies: list[Message] = []
                end = 0
                while end < len(data):
                    off, end = end, end + chunks.payload_due + FEED_SIZE
                    msgs = chunks.feed(data[off:end])
                    for msg in msgs:
                        replies += await session.handle(msg)
                        if session.closing:
                            break
                    if session.closing:
                        break
                    since_yield += len(msgs)
                    if since_yield >= MESSAGES_PER_YIELD:
                        since_yield = 0
                        await asyncio.sleep(0)
                if session.peer_window and chunks.bytes_received - acked >= session.peer_window:
                    acked = chunks.bytes_received
                    replies.append(m.acknowledgement(acked & 0xFFFFFFFF))
                for reply_msg in replies:
                    writer.write(out.encode(reply_msg, _csid(reply_msg)))
                    if reply_msg.type_id == m.SET_CHUNK_SIZE:
                        out.chunk_size = int.from_bytes(reply_msg.payload[:4], "big")
                if replies:
                    transport = writer.transport
                    if transport.get_write_buffer_size() > self.limits.write_buffer_limit:
                        log.warning("RTMP %s closed: it does not read what we send", peer)
                        return
                if session.closing:
                    linger = True
                    return
        except LiverecError as exc:
            log.warning("RTMP %s closed: %s", peer, exc)
        except (ConnectionError, OSError) as exc:
            log.info("RTMP %s connection lost: %s", peer, exc)
        except Exception:
            # A bug, ours or the handler's: this connection ends, the server goes on.
            log.exception("RTMP %s closed: unexpected error", peer)
            if session.publishing:
                with contextlib.suppress(Exception):
                    writer.write(out.encode(INTERNAL_ERROR, _csid(INTERNAL_ERROR)))
                    linger = True
        finally:
            deadline_guard.close()
            try:
                await session.end_publish()
            except Exception:
                log.exception("RTMP %s: closing the recording failed", peer)
            if linger:  # after the recording is closed: lingering delays only the hang-up
                await _linger(reader, writer)

    def _log_idle(
        self,
        peer: str,
        publishes_ended: int,
        session: Session,
        short: bool,
    ) -> None:
        if short:  # the handshake deadline, not the idle one
            self._refused("reserve_timeout" if session.connected else "handshake_timeout", peer)
            return
        if publishes_ended:
            # A publisher that keeps its connection after unpublishing: normal, not a fault.
            log.info(
                "RTMP %s closed: no new publish within %g s of the last one ending",
                peer,
                self.limits.idle_timeout,
            )
        else:
            log.warning(
                "RTMP %s closed: did not publish within %g s", peer, self.limits.idle_timeout
            )


class _ReadDeadline:
    """A read timeout that costs nothing per read while data keeps coming.

    `asyncio.wait_for` makes a task and a timer for every read (~80 reads a second per
    publisher); here one timer per connection fires at the deadline it was armed for and, if
    the reads have moved the deadline on meanwhile, re-arms itself for the new one: at most
    one timer event per timeout period. It cancels only a read in progress, and that read
    raises TimeoutError; a cancellation from elsewhere stays a CancelledError."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._task = asyncio.current_task()
        self._at = 0.0  # when the read in progress times out
        self._timer: asyncio.TimerHandle | None = None
        self._reading = False
        self._expired = False

    async def read(self, reader: asyncio.StreamReader, seconds: float) -> bytes:
        """The next bytes `reader` has, or TimeoutError after `seconds` without any."""
        self._at = at = self._loop.time() + seconds
        timer = self._timer
        if timer is None or timer.when() > at:
            if timer is not None:
                timer.cancel()
            self._timer = self._loop.call_at(at, self._fire)
        self._reading = True
        try:
            return await reader.read(READ_SIZE)
        except asyncio.CancelledError:
            if not self._expired:
                raise
            assert self._task is not None
            self._task.uncancel()
            raise TimeoutError from None
        finally:
            self._reading = False
            self._expired = False

    def _fire(self) -> None:
        self._timer = None
        if not self._reading:
            return  # armed again by the next read
        if self._loop.time() < self._at:
            self._timer = self._loop.call_at(self._at, self._fire)
            return
        if self._task is not None and not self._expired:
            self._expired = True
            self._task.cancel()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


_REASONS = {
    "max_connections": "too many connections",
    "pending_per_ip": "too many connections from its address that do not publish",
    "handshake_timeout": "no handshake and connect within the handshake timeout",
    "reserve_timeout": "in a reserved slot, it did not publish within the handshake timeout",
}


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Send what is queued (the error status last), then read and drop until the peer hangs
    up or REFUSAL_LINGER passes; the caller then closes.

    The FIN after the status tells a client that waits for an answer (a publish refused at
    once) that none follows; a publisher still sending media keeps writing without errors
    until it has read the status, which is what it then shows its user."""
    with contextlib.suppress(ConnectionError, OSError, TimeoutError):
        async with asyncio.timeout(REFUSAL_LINGER):
            await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
            while await reader.read(READ_SIZE):
                pass
