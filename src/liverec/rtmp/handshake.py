"""The server side of the plain RTMP handshake (RTMP spec 5.2), as a byte-in/byte-out machine.

C0+C1 in -> S0+S1+S2 out; then C2 in -> done. S1's bytes 4..8 are zero, which tells
ffmpeg and librtmp (OBS) clients that this server does the plain handshake, not the
digest-based one; S2 echoes C1, and C2 is not checked because clients fill it loosely."""

from __future__ import annotations

import os
from collections.abc import Callable

from liverec.errors import ProtocolError

RTMP_VERSION = 3
HANDSHAKE_SIZE = 1536
_RANDOM_SIZE = HANDSHAKE_SIZE - 8

_WAIT_C0C1 = 0
_WAIT_C2 = 1
_DONE = 2


class ServerHandshake:
    """Feed it what the client sends; send back what `feed` returns."""

    __slots__ = ("_buf", "_leftover", "_random_bytes", "_state", "_time_ms")

    def __init__(self, random_bytes: Callable[[int], bytes] = os.urandom, time_ms: int = 0) -> None:
        self._random_bytes = random_bytes
        self._time_ms = time_ms % 2**32
        self._buf = bytearray()
        self._state = _WAIT_C0C1
        self._leftover = b""

    @property
    def done(self) -> bool:
        """True once C2 has been fully received."""
        return self._state == _DONE

    @property
    def leftover(self) -> bytes:
        """Bytes fed after C2: the start of the chunk stream."""
        return self._leftover

    def feed(self, data: bytes | bytearray | memoryview) -> bytes:
        """Take client bytes; return the bytes to send (S0+S1+S2 once, else empty)."""
        if self._state == _DONE:
            raise ProtocolError("handshake data fed after the handshake completed")
        view = memoryview(data).cast("B")
        pos = 0
        reply = b""
        if self._state == _WAIT_C0C1:
            pos = self._fill(view, 0, 1 + HANDSHAKE_SIZE)
            if self._buf and self._buf[0] != RTMP_VERSION:
                raise ProtocolError(
                    f"RTMP version {self._buf[0]} requested; only plain RTMP (3) is supported"
                )
            if len(self._buf) < 1 + HANDSHAKE_SIZE:
                return b""
            reply = self._s0s1s2(bytes(self._buf[1:]))
            self._buf.clear()
            self._state = _WAIT_C2
        pos = self._fill(view, pos, HANDSHAKE_SIZE)
        if len(self._buf) == HANDSHAKE_SIZE:
            self._buf.clear()
            self._state = _DONE
            self._leftover = bytes(view[pos:])
        return reply

    def _fill(self, view: memoryview, pos: int, size: int) -> int:
        """Move bytes from view[pos:] into the buffer until it holds `size`; return new pos."""
        take = view[pos : pos + size - len(self._buf)]
        self._buf += take
        return pos + len(take)

    def _s0s1s2(self, c1: bytes) -> bytes:
        random = self._random_bytes(_RANDOM_SIZE)
        if len(random) != _RANDOM_SIZE:
            raise ValueError(f"random_bytes returned {len(random)} bytes, not {_RANDOM_SIZE}")
        s1 = self._time_ms.to_bytes(4, "big") + bytes(4) + random
        return bytes((RTMP_VERSION,)) + s1 + c1
