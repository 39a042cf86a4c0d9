"""MP4 record files: the CPU they add to recording a stream, and their bytes.

Media: the 720p30 3 Mbit/s H.264 High (B-frames, 2 s GOP) + AAC file of bench/snapshot.py,
30 s by default. It is recorded through the real recorder in-process (Recorders, a LocalStore
and a SQLite catalog, 4 s segments, tags fed as fast as they parse, the recorder's clock
following their timestamps) twice: HLS only, and HLS + MP4 (an Mp4Writer listening, mp4 on,
its slice published and catalogued before the clock stops). Prints process CPU
(time.process_time, all threads) per media second as % of one core, for each, and for the
Mp4Writer alone fed the same SegmentStored events; then the MP4's bytes against the bytes
ingested (FLV file, FLV audio/video tag bodies as RTMP carries them, the TS segments).
Best of --repeat runs.

Run: python bench/mp4.py [--seconds 30] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from bench.snapshot import make_720p  # noqa: E402

from liverec.catalog import Catalog, SecretBox, make_engine, migrate  # noqa: E402
from liverec.layout import StreamRef  # noqa: E402
from liverec.outputs import Mp4Writer  # noqa: E402
from liverec.recorder import Listener, RecorderEvent, Recorders, SegmentStored  # noqa: E402
from liverec.storage import LocalStore  # noqa: E402
from support.mediagen import FlvTag, read_flv_tags  # noqa: E402
from support.recordflv import TagClock  # noqa: E402

APP = "0123456789abcdef0123456789abcdef"
CAM = StreamRef(APP, "na", "live", "cam")
T0 = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)


@dataclass
class Run:
    cpu: float  # seconds of process CPU
    mp4_bytes: int
    ts_bytes: int
    events: list[RecorderEvent]


def fresh(folder: Path) -> tuple[Catalog, LocalStore]:
    engine = make_engine(f"sqlite:///{folder / 'catalog.db'}")
    migrate(engine)
    catalog = Catalog(engine, SecretBox(SecretBox.generate_key()))
    catalog.create_project(APP)
    return catalog, LocalStore(folder / "store")


async def push(tags: list[FlvTag], recorders: Recorders, *, mp4: bool) -> None:
    clock = recorders.clock
    assert isinstance(clock, TagClock)
    recorder = recorders.start(
        CAM, target_duration=4.0, max_file_duration=1e6, session_id="bench", mp4=mp4
    )
    t0 = tags[0].timestamp
    for tag in tags:
        clock.time = T0 + timedelta(milliseconds=tag.timestamp - t0)
        if tag.type == 9:
            recorder.on_video(tag.timestamp, tag.payload)
        else:
            recorder.on_audio(tag.timestamp, tag.payload)
    await recorder.close()


def record(folder: Path, tags: list[FlvTag], *, mp4: bool) -> Run:
    catalog, store = fresh(folder)
    events: list[RecorderEvent] = []
    writer = Mp4Writer(store, catalog, folder / "spool" / "mp4") if mp4 else None

    def collect(event: RecorderEvent) -> None:
        events.append(event)

    listeners: list[Listener] = [collect]
    if writer is not None:
        listeners.append(writer)
    recorders = Recorders(
        catalog, store, node_id="bench", lease_seconds=3600, clock=TagClock(T0), listeners=listeners
    )
    began = time.process_time()
    asyncio.run(push(tags, recorders, mp4=mp4))
    if writer is not None:
        writer.close()  # waits for the slice to be published and catalogued
    cpu = time.process_time() - began
    mp4_bytes = sum(f.size for f in catalog.mp4_files_overlapping(CAM, T0, T0 + timedelta(days=1)))
    ts_bytes = sum(e.size for e in events if isinstance(e, SegmentStored))
    catalog.engine.dispose()
    return Run(cpu, mp4_bytes, ts_bytes, events)


def writer_alone(folder: Path, events: list[RecorderEvent]) -> float:
    """CPU of an Mp4Writer fed a recording's events (remux, spool, publish, catalogue)."""
    catalog, store = fresh(folder)
    writer = Mp4Writer(store, catalog, folder / "spool" / "mp4")
    began = time.process_time()
    for event in events:
        writer(event)
    writer.close()
    cpu = time.process_time() - began
    catalog.engine.dispose()
    return cpu


def best(repeat: int, fn: Callable[[Path], Run]) -> Run:
    runs = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            runs.append(fn(Path(tmp)))
    return min(runs, key=lambda r: r.cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    path = Path(tempfile.gettempdir()) / f"liverec-bench-mp4-720p-3M-{args.seconds:g}s.flv"
    if not path.exists():
        t0 = time.perf_counter()
        make_720p(path, args.seconds)
        print(f"generated {path} in {time.perf_counter() - t0:.1f} s")
    tags = [t for t in read_flv_tags(path) if t.type in (8, 9)]
    media = (tags[-1].timestamp - tags[0].timestamp) / 1000
    payload = sum(len(t.payload) for t in tags)
    rate = payload * 8 / media / 1e6
    print(f"input: {path.name}, {len(tags)} tags, {media:.1f} s, {rate:.2f} Mbit/s")

    hls = best(args.repeat, lambda d: record(d, tags, mp4=False))
    both = best(args.repeat, lambda d: record(d, tags, mp4=True))
    alone = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            alone.append(writer_alone(Path(tmp), both.events))

    def share(cpu: float) -> str:
        return f"{cpu * 1000:7.1f} ms CPU = {cpu / media * 100:.3f} % of a core per stream"

    print(f"HLS only       : {share(hls.cpu)}")
    print(f"HLS + MP4      : {share(both.cpu)}")
    print(f"  difference   : {share(both.cpu - hls.cpu)}")
    print(f"Mp4Writer alone: {share(min(alone))}")
    flv = path.stat().st_size
    mp4 = both.mp4_bytes
    print(
        f"MP4 {mp4} B: / FLV file {flv} B = {mp4 / flv:.4f}; / FLV A/V tag bodies {payload} B = "
        f"{mp4 / payload:.4f}; / TS segments {both.ts_bytes} B = {mp4 / both.ts_bytes:.4f}"
    )


if __name__ == "__main__":
    main()
