"""Who watches: the distinct viewers of each stream per minute, as this node serves them.

A viewer is a client address and user agent (hashed, catalog.viewer_id) that fetched a
stream's playlist or segment in that minute. Counting is in memory (a set add per file
served); `drain` hands the counts over to be added to the catalog, where viewers counted by
several nodes are merged, so a viewer load-balanced across nodes counts once."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Protocol

from liverec.catalog import viewer_id
from liverec.layout import StreamRef

log = logging.getLogger(__name__)

MINUTE_S = 60
MAX_VIEWERS = 100_000  # per stream and minute held in memory; more are not counted here


class Viewers:
    """Viewers per (stream, minute) since the last drain. Thread-safe."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self._seen: dict[tuple[StreamRef, int], set[str]] = {}
        self._lock = threading.Lock()

    def saw(self, stream: StreamRef, address: str, agent: str) -> None:
        minute = int(self._clock().timestamp()) // MINUTE_S * MINUTE_S
        viewer = viewer_id(address, agent)
        with self._lock:
            seen = self._seen.setdefault((stream, minute), set())
            if len(seen) < MAX_VIEWERS:
                seen.add(viewer)

    def drain(self) -> list[tuple[StreamRef, datetime, set[str]]]:
        """Everything counted so far (and forget it)."""
        with self._lock:
            seen, self._seen = self._seen, {}
        return [
            (stream, datetime.fromtimestamp(minute, tz=self._clock().tzinfo), viewers)
            for (stream, minute), viewers in seen.items()
        ]


class ViewerCatalog(Protocol):
    def add_viewers(self, stream: StreamRef, minute: datetime, viewers: Iterable[str]) -> None: ...


async def keep_flushing(viewers: Viewers, catalog: ViewerCatalog, every: float = 15.0) -> None:
    """Add what `viewers` counted to the catalog every `every` seconds, until cancelled
    (then once more). A failed write is logged; those counts are lost, not retried."""
    try:
        while True:
            await asyncio.sleep(every)
            await asyncio.to_thread(_flush, viewers, catalog)
    finally:
        await asyncio.to_thread(_flush, viewers, catalog)


def _flush(viewers: Viewers, catalog: ViewerCatalog) -> None:
    for stream, minute, seen in viewers.drain():
        try:
            catalog.add_viewers(stream, minute, seen)
        except Exception as exc:
            log.warning("viewers of %s not counted: %s", stream, exc)
