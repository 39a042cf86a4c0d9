"""The disk guard: new publishes stop before the local disk is full, and start again by
themselves when there is room.

It watches the free space of the filesystems liverec writes to on this node (the storage
root when storage is local, and the data dir, which holds the spools). Under the threshold
(`storage_min_free`, at least FLOOR) it asks retention to free space at once (`free_up`)
and, if that was not enough, refuses new publishes with NetStream.Publish.Rejected and a
description a person at the encoder can read. Publishes already running stay connected:
their writes fail while the disk is full, the recorder keeps what it can (backlog, spool)
and marks what it had to drop as a discontinuity; every segment already stored stays
intact and listed (writes are atomic renames, so there is never a half segment). Space is
"back" above the threshold plus a margin, so the state does not flap around one value.

The state is reported once per change in the log, in /readyz (not ready while full) and in
metrics (`liverec_storage_full`)."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

log = logging.getLogger(__name__)

FLOOR = 8 * 1024**2  # bytes: below this a segment may not fit, whatever the setting says
RESUME_MARGIN = 32 * 1024**2  # bytes above the threshold before publishes are taken again
RESUME_FRACTION = 0.05  # ... or this much of a small filesystem, if less
CHECK_EVERY = 1.0  # seconds between looks at the free space
FREE_UP_EVERY = 10.0  # seconds between two asks to retention while full


class DiskGuard:
    def __init__(
        self,
        paths: Sequence[Path],
        *,
        min_free: int = 0,
        free_up: Callable[[], object] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.paths = [Path(p) for p in paths]
        self.threshold = max(min_free, FLOOR)
        self.free_up = free_up
        self.clock = clock
        self.full = False
        self.free = -1  # bytes free on the fullest filesystem, at the last look
        self._asked = -FREE_UP_EVERY  # when retention was last asked to free space
        self._lock = threading.Lock()

    def _free(self) -> tuple[int, int]:
        """(bytes free, filesystem size) of the fullest watched filesystem."""
        worst = (-1, 0)
        for path in self.paths:
            try:
                st = os.statvfs(path)
            except OSError:
                continue  # not there (yet): nothing to guard
            free, size = st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize
            if worst[0] < 0 or free < worst[0]:
                worst = (free, size)
        return worst

    def check(self) -> bool:
        """Look at the free space now (blocking: statvfs, and retention when full);
        returns whether publishes are refused."""
        with self._lock:
            free, size = self._free()
            if free < 0:
                return self.full
            if free < self.threshold and self.free_up is not None:
                now = self.clock()
                if now - self._asked >= FREE_UP_EVERY:
                    self._asked = now
                    log.warning("%d bytes free on the disk: asking retention to free space", free)
                    try:
                        self.free_up()
                    except Exception:
                        log.exception("retention could not free space")
                    free, size = self._free()
            self.free = free
            margin = min(RESUME_MARGIN, int(size * RESUME_FRACTION))
            if not self.full and free < self.threshold:
                self.full = True
                log.error(
                    "disk full: %d bytes free, under %d: new publishes are refused until "
                    "space is freed (running ones go on; what cannot be written is marked "
                    "as a gap)",
                    free,
                    self.threshold,
                )
            elif self.full and free >= self.threshold + margin:
                self.full = False
                log.warning("disk has room again (%d bytes free): publishes are taken", free)
            return self.full

    def refusal(self) -> str | None:
        """Why a new publish is refused now, or None (uses the last look)."""
        if not self.full:
            return None
        return (
            f"the recording disk is full ({max(self.free, 0) // 1024**2} MiB free); try again later"
        )

    def ready(self) -> None:
        """A /readyz check: raises while full."""
        if self.full:
            raise RuntimeError(self.refusal())

    async def watch(self, every: float = CHECK_EVERY) -> None:
        """Look every `every` seconds until cancelled."""
        while True:
            await asyncio.to_thread(self.check)
            await asyncio.sleep(every)
