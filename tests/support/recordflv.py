"""Recording an FLV file through the real recorder, in-process, at the pace its tags say:
what a real-time push would record, without sockets or waiting."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from liverec.catalog import Catalog
from liverec.layout import StreamRef
from liverec.media import flv
from liverec.recorder import Recorders
from liverec.storage import LocalStore
from support.mediagen import read_flv_tags


class TagClock:
    """The server's clock as the tags arrive: moved by the test, never read from the OS."""

    def __init__(self, start: datetime) -> None:
        self.time = start

    def now(self) -> datetime:
        return self.time


async def record_flv(
    path: Path,
    catalog: Catalog,
    store: LocalStore,
    *,
    app_id: str,
    entry_point: str,
    stream: str,
    region: str,
    start: datetime,
    session_id: str,
    target_duration: float = 2.0,
    max_file_duration: float = 3600.0,
) -> dict[int, datetime]:
    """Record `path` as a push that starts at `start`; returns the wall clock of every frame
    number (frame numbers run in presentation order)."""
    clock = TagClock(start)
    recorder = Recorders(
        catalog, store, node_id="test-node", lease_seconds=3600, clock=clock
    ).start(
        StreamRef(app_id, region, entry_point, stream),
        target_duration=target_duration,
        max_file_duration=max_file_duration,
        session_id=session_id,
    )
    tags = [t for t in read_flv_tags(path) if t.type in (8, 9)]
    t0 = tags[0].timestamp
    shown: list[int] = []
    for tag in tags:
        clock.time = start + timedelta(milliseconds=tag.timestamp - t0)
        if tag.type == 9:
            video = flv.parse_video(tag.payload)
            if video.packet_type == 1:
                shown.append(tag.timestamp + video.cts - t0)
            recorder.on_video(tag.timestamp, tag.payload)
        else:
            recorder.on_audio(tag.timestamp, tag.payload)
    await recorder.close()
    return {n: start + timedelta(milliseconds=ms) for n, ms in enumerate(sorted(shown))}
