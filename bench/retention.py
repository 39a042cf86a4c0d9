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
        [--month-segments 669600] [--recordings 10000]

With --serve, the same catalog and blobs are swept by a real `liverec serve` while --streams
(20) real-time pushes are recorded by it (one ffmpeg, the tee muxer): the catalog and blobs
are built in the node's data dir, the node starts with the entry point keeping everything,
the pushes start, and once every stream has a stored segment the entry point is set to keep
1 day: the node's next periodic sweep (every second here) deletes the month. Printed: the
sweep's time (from the setting to its "retention deleted" line), and the video frames
pushed against the frames in the stored segments of every push.

    python -m bench.retention --serve [--streams 20] [--push-seconds 300] [...]"""

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


def build(
    url: str, root: Path, month_segments: int, recordings_count: int, end: datetime
) -> Catalog:
    """The bench's catalog on `url` (the project default, as a node's bootstrap makes it),
    its 24/7 recording ending at `end`, and an empty file for every segment and playlist
    under the store `root`."""
    catalog = open_catalog(url)
    catalog.create_project(APP, is_default=True)
    catalog.create_entry_point(APP, "live", record_enabled=True)
    t = time.perf_counter()
    month_start = end - timedelta(seconds=4 * month_segments)
    add_day_recording(catalog, APP, "live", "tv", month_start, count=month_segments, segment_s=4.0)
    add_many_recordings(
        catalog, APP, "live", "shows", month_start - timedelta(days=400), count=recordings_count
    )
    blobs = touch_blobs(catalog, LocalStore(root))
    print(f"catalog and {blobs:,} blobs built in {time.perf_counter() - t:.0f} s", flush=True)
    return catalog


def serve(args: argparse.Namespace) -> None:
    """The --serve mode (see the module docstring)."""
    from bench.ingest import start_pushers, video_packets, wait_until

    from support.mediagen import make_media
    from support.recordings import recordings as recorded
    from support.server import LiverecProcess

    with scratch_database(args.database_url) as url, tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        if url.startswith("sqlite"):  # the node's own catalog file
            url = f"sqlite:///{data / 'catalog.db'}"
        # The node sweeps by its own clock: the month ends now, so one day of it is kept.
        now = datetime.now(UTC).replace(microsecond=0)
        catalog = build(url, data / "storage", args.month_segments, args.recordings, now)
        media = make_media(Path(tmp) / "av.flv", args.push_seconds, fps=25, gop=50)
        frames = video_packets(media)
        srv = LiverecProcess(
            data,
            env={
                "LIVEREC_DATABASE_URL": url,
                "LIVEREC_RETENTION_INTERVAL": "1",
                "LIVEREC_LOG_LEVEL": "INFO",
            },
        ).start()
        streams = [f"s{i}" for i in range(args.streams)]
        try:
            t0 = time.monotonic()
            pushers = start_pushers([srv.url(stream=s) for s in streams], media, len(streams))

            def has_segment(stream: str) -> bool:
                folder = srv.stream_dir(stream)
                return folder.exists() and any(folder.glob("*.ts"))

            wait_until(lambda: all(has_segment(s) for s in streams), 60)
            mark = len(srv.lines)
            set_at = time.monotonic()
            catalog.update_entry_point(APP, "live", retention=86400)
            line = srv.wait_for_log("retention deleted", timeout=3600, start=mark)
            swept = time.monotonic() - set_at
            live = [p.poll() is None for p in pushers]
            print(f"sweep: {swept:.1f} s, {set_at - t0:.1f} s into the pushes; {line}", flush=True)
            if not all(live):
                print("  the pushes ended before the sweep did: lengthen --push-seconds")
            failed = sum(p.wait() != 0 for p in pushers)
            wait_until(
                lambda: all(
                    (recs := recorded(srv.stream_dir(s))) and all(r.playlist.endlist for r in recs)
                    for s in streams
                ),
                120,
            )
            got = [
                sum(
                    video_packets(r.path.parent / seg.uri)
                    for r in recorded(srv.stream_dir(s))
                    for seg in r.playlist.segments
                )
                for s in streams
            ]
        finally:
            srv.terminate()
            catalog.engine.dispose()
        backend = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
        lost = [frames - g for g in got]
        print(
            f"{backend}: {len(streams)} pushes of {frames:,} video frames each "
            f"({args.push_seconds:.0f} s), {failed} failed: "
            f"{sum(got):,} of {frames * len(streams):,} frames recorded, "
            f"lost {sum(lost):,} (per stream: min {min(lost)}, max {max(lost)})",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", default="")
    parser.add_argument("--month-segments", type=int, default=MONTH_SEGMENTS)
    parser.add_argument("--recordings", type=int, default=10_000)
    parser.add_argument("--serve", action="store_true", help="a real node, live pushes")
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--push-seconds", type=float, default=300.0)
    args = parser.parse_args()
    if args.serve:
        serve(args)
        return
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
