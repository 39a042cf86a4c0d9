"""Publishers' sockets read in batches, on one timer, instead of on every readiness event.

A publisher sends a frame every few milliseconds (~75 messages a second at 30 fps with
audio), and each read through the event loop costs a wakeup, a system call and the
transport's Python, whatever it carries: on a 2-core machine that was most of a stream's
CPU. A recorder needs the bytes soon, not at once, so once a publish's media has flowed
for BATCH_AFTER its transport stops reading; instead every `interval` seconds this reads
what each socket holds (`readv` into the server's shared buffer until a short read, at
most MAX_BATCH_READS reads) and hands it to the connection's read callback. Ten reads a
second carry what seventy did.

The bytes wait in the kernel's socket buffer meanwhile: at 3 Mbit/s, 0.1 s is ~37 KB,
inside the receive window, so a sender rarely waits on us (a pusher writing many streams
from one thread, ffmpeg's tee muxer, included: measured at 200 streams). A connection
leaves the batch when anything but media arrives (its task reads it, as before), when it
sends faster than a tick reads (its transport reads it, a read per pass of the loop like
every other connection's, so it cannot hold the loop), and when it ends."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

log = logging.getLogger(__name__)

# Half the interval is the mean delay it adds to a frame on its way to the recorder: well
# under a segment, and invisible next to a publisher's own network jitter.
READ_INTERVAL = 0.1
# Media read at once, from the first read that handed a frame over, before a connection
# joins: that frame anchors its recording's wall clock, and the headers and large first
# keyframe that follow it come as fast as the publisher's uplink allows. Reads before the
# batch cost a wakeup each: with 1 s, the first second of a 20 s push was 5 % of its CPU.
BATCH_AFTER = 0.3
# Reads of one socket per tick: 512 KiB, 42 Mbit/s at the default interval.
MAX_BATCH_READS = 8


class Batched(Protocol):
    def read_batch(self) -> bool:
        """Read and handle what the socket holds; False: leave the batch."""
        ...


class BatchReader:
    """The connections read on the timer; the timer runs while there are any."""

    def __init__(self, interval: float = READ_INTERVAL) -> None:
        self.interval = interval
        self._members: dict[Batched, None] = {}  # insertion-ordered set
        self._timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._members)

    def add(self, member: Batched) -> None:
        self._members[member] = None
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.interval, self._tick)

    def discard(self, member: Batched) -> None:
        self._members.pop(member, None)

    def close(self) -> None:
        self._members.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        self._timer = None
        members = self._members
        try:
            for member in list(members):
                if member not in members:
                    continue
                try:
                    stay = member.read_batch()
                except Exception:  # a bug: that member leaves, the others are read
                    log.exception("batched read failed")
                    stay = False
                if not stay:
                    members.pop(member, None)
        finally:
            if members:
                self._timer = asyncio.get_running_loop().call_later(self.interval, self._tick)
