"""Clip latency: plain clips on a 24 h recording of 2 s segments, and precise clips at 720p.

1. Plain: a synthetic catalog holding one 24 h recording of 43,200 segments of 2 s (the
   segment rows bulk-inserted through the catalog's schema tables; plain clips read no
   media, so no segment file exists). Prints the median plain-clip latency (name
   reservation, indexed range query, playlist render, store.put) for 10-minute clips at
   random places in the day.
2. Precise: 720p30 H.264 High (B-frames, 2 s GOP, 3 Mbit/s) + AAC recorded through the real
   recorder (as bench/snapshot.py does); prints the median precise-clip latency
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

from liverec.catalog import Catalog
from liverec.layout import StreamRef
from liverec.postprocess.clip import ClipWriter
from liverec.storage import LocalStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.catalog_data import add_day_recording, open_catalog
from bench.snapshot import APP, EP, REGION, STREAM, T0, make_720p, record

DAY_SEGMENTS = 43_200
SEGMENT_S = 2.0


def day_catalog(url: str) -> Catalog:
    """One closed 24 h recording of 43,200 2 s segments (bulk-inserted: bench/catalog_data.py)."""
    catalog = open_catalog(url)
    catalog.create_project(APP)
    add_day_recording(catalog, APP, EP, STREAM, T0, count=DAY_SEGMENTS, segment_s=SEGMENT_S)
    return catalog


def bench_plain(url: str, store: LocalStore, count: int) -> None:
    began = time.perf_counter()
    catalog = day_catalog(url)
    print(f"catalog of {DAY_SEGMENTS} segments built in {time.perf_counter() - began:.1f} s")
    rng = random.Random(1)
    latencies = []
    for i in range(count + 3):
        start = T0 + timedelta(seconds=rng.uniform(0, 86_400 - 600))
        t = time.perf_counter()
        result = ClipWriter(catalog, store)(
            StreamRef(APP, REGION, EP, STREAM),
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
        result = ClipWriter(setup.catalog, setup.store)(
            StreamRef(APP, REGION, EP, STREAM),
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
