"""Clip latency: plain clips on a 24 h recording of 2 s segments, and precise clips at 720p.

1. Plain: a synthetic catalog holding one 24 h recording of 43,200 segments of 2 s (the
   segment rows bulk-inserted through the catalog's schema tables; plain clips read no
   media, so no segment file exists). Prints the median make_clip latency (name
   reservation, indexed range query, playlist render, store.put) for 10-minute clips at
   random places in the day.
2. Precise: 720p30 H.264 High (B-frames, 2 s GOP, 3 Mbit/s) + AAC recorded through the real
   recorder (as bench/snapshot.py does); prints the median make_clip(precise=True) latency
   for ~10 s clips starting and ending at random frames (two partial GOPs re-encoded).

Run: python bench/clip.py [--count 50] [--precise-count 10] [--database-url URL]
(default: a SQLite file in a temporary folder; a PostgreSQL URL must name an empty, migrated
or migratable database).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import insert, update

from liverec.catalog import Catalog, SecretBox, make_engine, migrate, to_ms
from liverec.catalog.schema import recordings, segments
from liverec.postprocess.clip import make_clip
from liverec.storage import LocalStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.snapshot import APP, EP, REGION, STREAM, T0, make_720p, record

DAY_SEGMENTS = 43_200
SEGMENT_S = 2.0


def day_catalog(url: str) -> Catalog:
    """One closed 24 h recording of 43,200 2 s segments."""
    engine = make_engine(url)
    migrate(engine)
    catalog = Catalog(engine, SecretBox(SecretBox.generate_key()))
    catalog.create_project(APP)
    rec = catalog.create_recording(
        app_id=APP,
        entry_point=EP,
        stream_name=STREAM,
        region=REGION,
        session_id="day",
        playlist_key=f"record/{EP}/{STREAM}/day_20261123120000000.m3u8",
        start_time=T0,
        node_id="bench",
        lease_seconds=3600,
    )
    # The first through the API, so the stream's bounds (max_segment_ms) are kept as the
    # recorder keeps them; the rest in bulk.
    first = catalog.add_segment(
        rec.id,
        seq=0,
        key=f"record/{EP}/{STREAM}/day_20261123120000000_0.ts",
        start_time=T0,
        duration=SEGMENT_S,
        size=750_000,
        discontinuity=False,
    )
    stream_id = _stream_id(catalog, first.id)
    step = round(SEGMENT_S * 1000)
    t0 = to_ms(T0)
    rows = [
        {
            "recording_id": rec.id,
            "stream_id": stream_id,
            "seq": n,
            "key": f"record/{EP}/{STREAM}/day_20261123120000000_{n}.ts",
            "start_ms": t0 + n * step,
            "end_ms": t0 + (n + 1) * step,
            "duration": SEGMENT_S,
            "size": 750_000,
            "discontinuity": False,
        }
        for n in range(1, DAY_SEGMENTS)
    ]
    with engine.begin() as conn:
        conn.execute(insert(segments), rows)
        conn.execute(
            update(recordings)
            .where(recordings.c.id == rec.id)
            .values(segment_count=DAY_SEGMENTS, end_ms=t0 + DAY_SEGMENTS * step)
        )
    catalog.close_recording(rec.id, T0 + timedelta(seconds=DAY_SEGMENTS * SEGMENT_S))
    return catalog


def _stream_id(catalog: Catalog, segment_id: int) -> int:
    with catalog.engine.begin() as conn:
        value = conn.execute(
            segments.select()
            .with_only_columns(segments.c.stream_id)
            .where(segments.c.id == segment_id)
        ).scalar_one()
    return int(value)


def bench_plain(url: str, store: LocalStore, count: int) -> None:
    began = time.perf_counter()
    catalog = day_catalog(url)
    print(f"catalog of {DAY_SEGMENTS} segments built in {time.perf_counter() - began:.1f} s")
    rng = random.Random(1)
    latencies = []
    for i in range(count + 3):
        start = T0 + timedelta(seconds=rng.uniform(0, 86_400 - 600))
        t = time.perf_counter()
        result = make_clip(
            catalog,
            store,
            app_id=APP,
            region=REGION,
            entry_point=EP,
            stream_name=STREAM,
            file_name=f"plain{i}.m3u8",
            start=start,
            end=start + timedelta(minutes=10),
        )
        if i >= 3:  # the first few warm the connection pool and caches
            latencies.append(time.perf_counter() - t)
        assert result.segments in (300, 301), result
    med = statistics.median(latencies)
    p90 = statistics.quantiles(latencies, n=10)[-1]
    print(f"plain clip, 10 min of a 24 h recording ({count} runs): median {med * 1000:.1f} ms,")
    print(f"  p90 {p90 * 1000:.1f} ms (target <= 50 ms median)")


def bench_precise(folder: Path, count: int) -> None:
    setup = record(folder, make_720p(folder / "in.flv", 30))
    span = (setup.end - setup.start).total_seconds()
    rng = random.Random(2)
    latencies = []
    for i in range(count + 1):
        start = setup.start + timedelta(seconds=rng.uniform(0.5, span - 12))
        t = time.perf_counter()
        result = make_clip(
            setup.catalog,
            setup.store,
            app_id=APP,
            region=REGION,
            entry_point=EP,
            stream_name=STREAM,
            file_name=f"precise{i}.m3u8",
            start=start,
            end=start + timedelta(seconds=rng.uniform(8, 11)),
            precise=True,
        )
        if i:  # the first warms codecs
            latencies.append(time.perf_counter() - t)
        assert result.precise
    med = statistics.median(latencies)
    print(f"precise clip, 720p30 High+B-frames, 2 s GOP, ~10 s ({count} runs): ", end="")
    print(f"median {med * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=50, help="plain clips to time")
    parser.add_argument("--precise-count", type=int, default=10, help="precise clips to time")
    parser.add_argument("--database-url", default="", help="default: SQLite in a temp folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url = args.database_url or f"sqlite:///{folder / 'day.db'}"
        bench_plain(url, LocalStore(folder / "day-store"), args.count)
        if args.precise_count > 0:
            (folder / "precise").mkdir()
            bench_precise(folder / "precise", args.precise_count)


if __name__ == "__main__":
    main()
