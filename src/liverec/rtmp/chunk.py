"""The RTMP chunk stream (RTMP spec 5.3): bytes <-> messages, incremental and bounded.

The reader is a state machine fed arbitrary slices of the TCP stream. Payload bytes are
copied into their message as they arrive (never allocated up front from the announced
length), so between calls the reader holds the bytes actually received for unfinished
messages, capped in total, plus an incomplete chunk header (at most 18 bytes)."""

from __future__ import annotations

import struct
from typing import NamedTuple

from liverec.errors import ProtocolError

SET_CHUNK_SIZE = 1
ABORT = 2

DEFAULT_CHUNK_SIZE = 128
# The spec allows 1, but each chunk costs a header parse: at size 1 a big message parses at
# ~4 MB/s per core. Publishers keep the default 128 or raise it (typically to 4096).
MIN_CHUNK_SIZE = 64
MAX_CSID = 65599
_EXTENDED = 0xFFFFFF
_U32 = 0xFFFFFFFF
_TS_LENGTH_TYPE = struct.Struct(">IHB")  # a fmt 0/1 message header's first 7 bytes
# Bytes of message header after the basic header, by fmt.
_HEADER_SIZE = (11, 7, 3, 0)
# Chunk streams whose header state is remembered. Real clients use a handful; the cap keeps a
# peer from making us hold state for all 65599 ids.
MAX_KNOWN_CHUNK_STREAMS = 1024


class Message(NamedTuple):
    """One RTMP message. `timestamp` is the absolute 32-bit RTMP timestamp (mod 2**32).

    A NamedTuple, not a frozen dataclass: one is made per audio and video frame, and a
    frozen dataclass's __init__ costs four object.__setattr__ calls."""

    type_id: int
    stream_id: int
    timestamp: int
    payload: bytes


class _ChunkStream:
    """What one chunk stream id remembers: the last header and any partial message."""

    __slots__ = (
        "cont_first",
        "cont_rest",
        "delta",
        "extended",
        "length",
        "payload",
        "remaining",
        "stream_id",
        "timestamp",
        "type_id",
    )

    def __init__(self, csid: int) -> None:
        # What starts each continuation chunk: its basic header's first byte, and the
        # rest of it (empty but for chunk stream ids of 64 and up).
        cont = basic_header(3, csid)
        self.cont_first, self.cont_rest = cont[0], cont[1:]
        self.timestamp = 0
        self.delta = 0
        self.length = 0
        self.type_id = 0
        self.stream_id = 0
        self.extended = False  # the last fmt0/1/2 header used the extended timestamp
        self.payload: bytearray | None = None  # None: no message in progress
        self.remaining = 0


class ChunkReader:
    """Turns the client's chunk stream (after the handshake) into messages.

    Set Chunk Size and Abort are applied by the reader itself and also returned. After a
    ProtocolError the reader's state is undefined: close the connection.

    Limits on what a peer can make us hold: `max_message_size` per message,
    `max_chunk_streams` messages in progress at once, the one being read included
    (publishers interleave 2-3: audio, video, data), and `max_buffered` bytes received for
    unfinished messages in total (a message whose chunks all arrive in one feed is returned
    by it, never held, and does not count). The default total, twice the default message
    limit, lets a maximal message be in flight next to another large one, and keeps one
    connection at 16 MiB where 64 chunk streams of 8 MiB messages used to allow 512 MiB."""

    def __init__(
        self,
        max_message_size: int = 8 * 1024 * 1024,
        max_chunk_size: int = 16 * 1024 * 1024,
        max_chunk_streams: int = 8,
        max_buffered: int = 16 * 1024 * 1024,
    ) -> None:
        self.max_message_size = max_message_size
        self.max_chunk_size = max_chunk_size
        self.max_chunk_streams = max_chunk_streams
        self.max_buffered = max_buffered
        self.bytes_received = 0
        self._chunk_size = DEFAULT_CHUNK_SIZE
        self._streams: dict[int, _ChunkStream] = {}
        self._partials = 0  # chunk streams with a message in progress
        self._buffered = 0  # payload bytes held by those partial messages
        self._pending = b""  # an incomplete chunk header
        self._current: _ChunkStream | None = None  # whose chunk payload is being read
        self._chunk_left = 0  # payload bytes still due in the current chunk
        self._error: ProtocolError | None = None  # raised by the next feed
        self.consumed = 0  # bytes of the last feed's data it used

    @property
    def chunk_size(self) -> int:
        """The peer's current chunk size."""
        return self._chunk_size

    @property
    def buffered_bytes(self) -> int:
        """Bytes held for later: an incomplete header plus the partial messages' payloads."""
        return len(self._pending) + self._buffered

    def feed(self, data: bytes | bytearray | memoryview, limit: int = 0) -> list[Message]:
        """Consume bytes; return the messages they complete, in order.

        With a `limit`, stop once that many messages are complete: `consumed` then tells
        how many bytes of `data` were used, and the caller feeds the rest later. (Parsing
        costs per message, not per byte; the limit bounds one call's work.) A protocol
        error after some messages returns those first, so the media before it is kept;
        `check()`, or the next feed, raises it."""
        self.check()
        self.bytes_received += len(data)
        skip = len(self._pending)
        if skip:
            data = self._pending + bytes(data)
            self._pending = b""
        view = memoryview(data).cast("B")
        end = len(view)
        pos = 0
        out: list[Message] = []
        try:
            while True:
                st = self._current
                if st is not None:
                    n = min(self._chunk_left, end - pos)
                    assert st.payload is not None
                    if not st.payload:
                        if n == st.remaining:
                            # The whole message is in this chunk: one copy, no accumulation.
                            whole: bytes | None = bytes(view[pos : pos + n])
                            new_pos = pos + n
                        else:
                            whole, new_pos = self._whole(st, view, pos, end)
                        if whole is not None:
                            self._chunk_left = st.remaining = 0
                            self._current = None
                            out.append(self._complete(st, whole))
                            pos = new_pos
                            if len(out) == limit:
                                break
                            continue
                    if self._buffered + n > self.max_buffered:
                        raise ProtocolError(
                            f"more than {self.max_buffered} bytes of unfinished messages"
                        )
                    st.payload += view[pos : pos + n]
                    self._buffered += n
                    pos += n
                    st.remaining -= n
                    self._chunk_left -= n
                    if self._chunk_left:
                        break  # the data ended inside this chunk
                    self._current = None
                    if st.remaining == 0:
                        out.append(self._complete(st, bytes(st.payload)))
                        if len(out) == limit:
                            break
                    continue
                if pos >= end:
                    break
                new_pos = self._header(view, pos, end)
                if new_pos < 0:
                    self._pending = bytes(view[pos:])
                    pos = end
                    break
                pos = new_pos
        except ProtocolError as exc:
            if not out:
                raise
            self._error = exc
        self.consumed = pos - skip
        if pos < end:
            self.bytes_received -= end - pos  # counted when fed again
        return out

    def _whole(
        self, st: _ChunkStream, view: memoryview, pos: int, end: int
    ) -> tuple[bytes | None, int]:
        """A message of several chunks read at its first chunk's payload, when all of its
        chunks are in `view` back to back (ffmpeg, OBS and librtmp write a message's
        chunks so): its payload, joined in one copy, and where it ends. (None, pos) when
        they are not (the data ends first, or another chunk stream's chunk comes between):
        the chunk-by-chunk path reads it."""
        size = self._chunk_size
        length = st.remaining
        first, rest = st.cont_first, st.cont_rest
        # Each continuation's header: its basic header, then the extended timestamp again
        # if the message's header had one (its value is not used within a message).
        step = 1 + len(rest) + (4 if st.extended else 0)
        chunks = (length - 1) // size + 1
        if end - pos < length + (chunks - 1) * step:
            return None, pos
        parts = []
        p = pos
        for _ in range(chunks - 1):
            parts.append(view[p : p + size])
            p += size
            if view[p] != first or (rest and view[p + 1 : p + 1 + len(rest)] != rest):
                return None, pos
            p += step
        last = length - (chunks - 1) * size
        parts.append(view[p : p + last])
        return b"".join(parts), p + last

    def check(self) -> None:
        """Raise the protocol error the last feed found after the messages it returned."""
        if self._error is not None:
            raise self._error

    def _header(self, view: memoryview, pos: int, end: int) -> int:
        """Parse one chunk header at pos; return the payload offset, or -1 if incomplete.

        Nothing is changed unless the whole header is there, so a retry with more bytes
        sees the same state."""
        b0 = view[pos]
        fmt = b0 >> 6
        csid = b0 & 0x3F
        p = pos + 1
        if csid == 0:
            if end - p < 1:
                return -1
            csid = 64 + view[p]
            p += 1
        elif csid == 1:
            if end - p < 2:
                return -1
            csid = 64 + view[p] + (view[p + 1] << 8)
            p += 2
        size = _HEADER_SIZE[fmt]
        if end - p < size:
            return -1
        st = self._streams.get(csid)
        if st is None and fmt != 0:
            raise ProtocolError(f"chunk fmt {fmt} on chunk stream {csid} before any fmt 0")

        if fmt == 3:
            assert st is not None
            ts_field = -1
            if st.extended:
                # Present on every fmt3 chunk after an extended header (ffmpeg, librtmp and
                # nginx-rtmp all agree, although the first spec text did not say so).
                if end - p < 4:
                    return -1
                ts_field = int.from_bytes(view[p : p + 4], "big")
                p += 4
            if st.payload is None:  # a new message reusing the whole previous header
                if ts_field >= 0:
                    st.delta = ts_field
                st.timestamp = (st.timestamp + st.delta) & _U32
                return self._begin(st, p)
            return self._enter_chunk(st, p)

        length = type_id = stream_id = 0
        if fmt <= 1:
            # timestamp (3 bytes), length (3), type id (1), in one unpack
            head, low, type_id = _TS_LENGTH_TYPE.unpack_from(view, p)
            ts_field = head >> 8
            length = (head & 0xFF) << 16 | low
            if length > self.max_message_size:
                raise ProtocolError(
                    f"message of {length} bytes exceeds the limit of {self.max_message_size}"
                )
        else:
            ts_field = view[p] << 16 | view[p + 1] << 8 | view[p + 2]
        if fmt == 0:
            stream_id = int.from_bytes(view[p + 7 : p + 11], "little")
        p += size
        extended = ts_field == _EXTENDED
        if extended:
            if end - p < 4:
                return -1
            ts_field = int.from_bytes(view[p : p + 4], "big")
            p += 4

        if st is None:
            if len(self._streams) >= MAX_KNOWN_CHUNK_STREAMS:
                raise ProtocolError(f"more than {MAX_KNOWN_CHUNK_STREAMS} chunk streams")
            st = self._streams[csid] = _ChunkStream(csid)
        if st.payload is not None:
            # A full header in the middle of a message: the sender gave up on it. Drop it
            # rather than the connection, as ffmpeg does.
            self._drop(st)
        if fmt == 0:
            st.timestamp = ts_field
            # Spec 5.3.1.2.4: a fmt3 message after a fmt0 one takes the fmt0 timestamp as its
            # delta. ffmpeg writes fmt3 headers relying on exactly this.
            st.delta = ts_field
            st.stream_id = stream_id
        else:
            st.delta = ts_field
            st.timestamp = (st.timestamp + ts_field) & _U32
        if fmt <= 1:
            st.length = length
            st.type_id = type_id
        st.extended = extended
        return self._begin(st, p)

    def _begin(self, st: _ChunkStream, pos: int) -> int:
        """A new message on `st`, its first chunk's payload at pos (once per message: the
        chunk is entered here too, not by another call)."""
        if self._partials >= self.max_chunk_streams:
            raise ProtocolError(
                f"more than {self.max_chunk_streams} chunk streams with partial messages"
            )
        self._partials += 1
        st.payload = bytearray()  # grows with the bytes received, whatever length is announced
        st.remaining = length = st.length
        self._current = st
        self._chunk_left = min(self._chunk_size, length)
        return pos

    def _drop(self, st: _ChunkStream) -> None:
        assert st.payload is not None
        self._buffered -= len(st.payload)
        st.payload = None
        self._partials -= 1

    def _enter_chunk(self, st: _ChunkStream, pos: int) -> int:
        self._current = st
        self._chunk_left = min(self._chunk_size, st.remaining)
        return pos

    def _complete(self, st: _ChunkStream, payload: bytes) -> Message:
        self._drop(st)
        type_id = st.type_id
        msg = Message(type_id, st.stream_id, st.timestamp, payload)
        if type_id > ABORT:  # neither control message the reader applies itself
            return msg
        if type_id == SET_CHUNK_SIZE:
            self._chunk_size = self._checked_chunk_size(payload)
        elif type_id == ABORT:
            if len(payload) < 4:
                raise ProtocolError(f"Abort message of {len(payload)} bytes")
            aborted = self._streams.get(int.from_bytes(payload[:4], "big"))
            if aborted is not None and aborted.payload is not None:
                self._drop(aborted)
        return msg

    def _checked_chunk_size(self, payload: bytes) -> int:
        if len(payload) < 4:
            raise ProtocolError(f"Set Chunk Size message of {len(payload)} bytes")
        size = int.from_bytes(payload[:4], "big")
        # The top bit must be zero (spec 5.4.1); a size with it set is not a huge size.
        if not MIN_CHUNK_SIZE <= size <= min(self.max_chunk_size, 0x7FFFFFFF):
            raise ProtocolError(
                f"chunk size {size} out of range {MIN_CHUNK_SIZE}..{self.max_chunk_size}"
            )
        return size


def basic_header(fmt: int, csid: int) -> bytes:
    """The 1-, 2- or 3-byte basic header for a chunk stream id in 2..65599."""
    if 2 <= csid <= 63:
        return bytes(((fmt << 6) | csid,))
    if 64 <= csid <= 319:
        return bytes((fmt << 6, csid - 64))
    if 320 <= csid <= MAX_CSID:
        rel = csid - 64
        return bytes(((fmt << 6) | 1, rel & 0xFF, rel >> 8))
    raise ValueError(f"chunk stream id {csid} out of range 2..{MAX_CSID}")


class ChunkWriter:
    """Turns messages into chunks: a fmt0 header, then fmt3 continuation headers."""

    def __init__(self, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
        self.chunk_size = chunk_size

    @property
    def chunk_size(self) -> int:
        return self._chunk_size

    @chunk_size.setter
    def chunk_size(self, value: int) -> None:
        if not 1 <= value <= 0x7FFFFFFF:
            raise ValueError(f"chunk size {value} out of range 1..{0x7FFFFFFF}")
        self._chunk_size = value

    def encode(self, msg: Message, csid: int) -> bytes:
        payload = memoryview(msg.payload).cast("B")
        length = len(payload)
        if length > 0xFFFFFF:
            raise ValueError(f"message of {length} bytes does not fit a chunk header")
        if not 0 <= msg.type_id <= 0xFF or not 0 <= msg.stream_id <= _U32:
            raise ValueError(f"bad type id {msg.type_id} or stream id {msg.stream_id}")
        ts = msg.timestamp & _U32
        extended = ts >= _EXTENDED
        ext = ts.to_bytes(4, "big") if extended else b""
        first = b"".join(
            (
                basic_header(0, csid),
                (_EXTENDED if extended else ts).to_bytes(3, "big"),
                length.to_bytes(3, "big"),
                bytes((msg.type_id,)),
                msg.stream_id.to_bytes(4, "little"),
                ext,
            )
        )
        size = self._chunk_size
        parts: list[bytes | memoryview] = [first, payload[:size]]
        if length > size:
            # Continuations repeat the extended timestamp, as ffmpeg and librtmp expect.
            cont = basic_header(3, csid) + ext
            for off in range(size, length, size):
                parts.append(cont)
                parts.append(payload[off : off + size])
        return b"".join(parts)
