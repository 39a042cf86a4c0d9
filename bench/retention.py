"""A retention sweep over a month of a 24/7 stream and 10,000 whole recordings.

The catalog (bench/catalog_data.py, bulk inserts) holds:
- one live (open) recording of a 24/7 stream: MONTH_SEGMENTS segments of 4 s (31 days);
  the entry point keeps 1 day, so ~650,000 segments go from its head;
- 10,000 closed recordings of another stream, each with one segment, all older than the
  retention period: deleted whole (with their playlists).
Every segment and playlist exists as a (small) file in a real LocalStore, so the sweep
deletes real blobs. The open recording's blobs are normally deleted a grace period later
(its writer rewrites the live playlist first); here the grace is 0 so that one sweep does
everything.

Meanwhile a writer thread catalogues a segment of another live recording every 100 ms,
as the recorder does, and the latency of each add_segment is reported: the sweep must
never stall segment inserts for more than a batch.

    python -m bench.retention [--database-url postgresql+psycopg://postgres@127.0.0.1/postgres]
        [--month-segments 669600] [--recordings 10000]"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.catalog_data import (
    APP,
    REGION,
    add_day_recording,
    add_many_recordings,
    open_catalog,
    scratch_database,
)
from sqlalchemy import select, update

from liverec.catalog import Catalog
from liverec.catalog.db import write_transaction
from liverec.catalog.schema import recordings, segments
from liverec.layout import StreamRef
from liverec.retention import Sweeper
from liverec.storage import LocalStore

NOW = datetime(2026, 12, 1, tzinfo=UTC)
MONTH_SEGMENTS = 31 * 86400 // 4  # 669,600


def touch_blobs(catalog: Catalog, store: LocalStore) -> int:
    """An empty file for every catalogued segment and playlist."""
    made = 0
    folders: set[Path] = set()
    with catalog.engine.connect() as conn:
        keys = [str(k) for (k,) in conn.execute(select(segments.c.key)).yield_per(50_000)] + [
            str(k) for (k,) in conn.execute(select(recordings.c.playlist_key))
        ]
    root = StreamRef(APP, REGION, "x", "y").root
    for key in keys:
        path = store.root / (root + key)
        if path.parent not in folders:
            path.parent.mkdir(parents=True, exist_ok=True)
            folders.add(path.parent)
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))
        made += 1
    return made


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", default="")
    parser.add_argument("--month-segments", type=int, default=MONTH_SEGMENTS)
    parser.add_argument("--recordings", type=int, default=10_000)
    args = parser.parse_args()
    with scratch_database(args.database_url) as url, tempfile.TemporaryDirectory() as tmp:
        catalog = open_catalog(url)
        catalog.create_project(APP)
        catalog.create_entry_point(APP, "live", retention=86400)
        t = time.perf_counter()
        month_start = NOW - timedelta(seconds=4 * args.month_segments)
        rid = add_day_recording(
            catalog, APP, "live", "tv", month_start, count=args.month_segments, segment_s=4.0
        )
        add_many_recordings(
            catalog,
            APP,
            "live",
            "shows",
            month_start - timedelta(days=400),
            count=args.recordings,
        )
        with write_transaction(catalog.engine) as conn:  # the 24/7 stream is live
            conn.execute(update(recordings).where(recordings.c.id == rid).values(state="open"))
        store = LocalStore(Path(tmp) / "store")
        blobs = touch_blobs(catalog, store)
        print(f"catalog and {blobs:,} blobs built in {time.perf_counter() - t:.0f} s")

        # A live recording on another stream, catalogued meanwhile.
        live = StreamRef(APP, REGION, "live", "other")
        path = live.recording("w", NOW)
        rec = catalog.create_recording(
            live,
            session_id="w",
            playlist_key=path.playlist,
            start_time=NOW,
            node_id="n",
            lease_seconds=3600,
        )
        latencies: list[float] = []
        stop = threading.Event()

        def writer() -> None:
            seq = 0
            while not stop.is_set():
                t0 = time.perf_counter()
                catalog.add_segment(
                    rec.id,
                    seq=seq,
                    key=path.segment(seq),
                    start_time=NOW + timedelta(seconds=4 * seq),
                    duration=4.0,
                    size=1_500_000,
                    discontinuity=False,
                )
                latencies.append(time.perf_counter() - t0)
                seq += 1
                time.sleep(0.1)

        sweeper = Sweeper(
            catalog, store, region=REGION, node_id="bench", clock=lambda: NOW, grace_seconds=0
        )
        thread = threading.Thread(target=writer)
        thread.start()
        t = time.perf_counter()
        report = sweeper.sweep()
        took = time.perf_counter() - t
        stop.set()
        thread.join()
        backend = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
        print(f"{backend}: sweep {took:.1f} s")
        print(
            f"  {report.segments:,} segments deleted ({report.segments / took:,.0f}/s), "
            f"{report.recordings_deleted:,} whole recordings, {report.blobs_deleted:,} blobs"
        )
        left = catalog.get_recording(rid)
        print(
            f"  24/7 recording now starts {left.start_time:%Y-%m-%d %H:%M:%S} "
            f"({left.segment_count:,} segments kept)"
        )
        lat = sorted(latencies)
        print(
            f"  add_segment meanwhile: {len(lat)} calls, "
            f"median {statistics.median(lat) * 1000:.1f} ms, "
            f"p99 {lat[int(len(lat) * 0.99)] * 1000:.1f} ms, max {lat[-1] * 1000:.1f} ms"
        )
        catalog.engine.dispose()


if __name__ == "__main__":
    main()
