"""Cataloguing segments from many publishes at once: one transaction per segment vs the
recorders' group commit (recorder/catalog_writer.SegmentBatches). T threads (the
recorders' pool has 8) each catalogue segments of their own recordings back to back, on
a real SQLite catalog; prints process CPU and wall time per segment, and the segments per
commit.

    python bench/segment_commits.py [--threads 8] [--segments 2000] [--fsync full|off]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from liverec.catalog import Catalog, NewSegment, SecretBox, make_engine, migrate
from liverec.layout import StreamRef
from liverec.recorder.catalog_writer import SegmentBatches

APP = "0123456789abcdef0123456789abcdef"
T0 = datetime(2026, 11, 23, 12, tzinfo=UTC)


def run(threads: int, total: int, batched: bool, fsync: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'catalog.db'}", fsync=fsync)
        migrate(engine)
        catalog = Catalog(engine, SecretBox(SecretBox.generate_key()))
        catalog.create_project(APP)
        recs = [
            catalog.create_recording(
                StreamRef(APP, "na", "live", f"s{i}"),
                session_id="abc",
                playlist_key=f"record/live/s{i}/abc.m3u8",
                start_time=T0,
                node_id="n",
                lease_seconds=60,
            )
            for i in range(threads)
        ]
        batches = SegmentBatches(catalog)
        per = total // threads

        def work(i: int) -> None:
            rec = recs[i]
            for seq in range(per):
                seg = NewSegment(
                    rec.id,
                    seq,
                    f"record/live/s{i}/abc_{seq}.ts",
                    T0 + timedelta(seconds=4 * seq),
                    4.0,
                    1_900_000,
                    False,
                )
                if batched:
                    batches.add(seg)
                else:
                    catalog.add_segment(
                        seg.recording_id,
                        seq=seg.seq,
                        key=seg.key,
                        start_time=seg.start_time,
                        duration=seg.duration,
                        size=seg.size,
                        discontinuity=False,
                    )

        pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
        c0, w0 = time.process_time(), time.perf_counter()
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        n = per * threads
        commits = batches.commits if batched else n
        print(
            f"{'group commit' if batched else 'one per segment'}: {cpu / n * 1e6:6.0f} us CPU, "
            f"{wall / n * 1e6:6.0f} us wall per segment; {n / commits:.1f} segments per commit",
            flush=True,
        )
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--segments", type=int, default=2000)
    parser.add_argument("--fsync", choices=("full", "off"), default="full")
    args = parser.parse_args()
    for batched in (False, True, False, True):
        run(args.threads, args.segments, batched, args.fsync == "full")


if __name__ == "__main__":
    main()
