"""preview_list latency on a stream with 10,000 recordings, on SQLite or PostgreSQL.

The catalog (bench/catalog_data.py): one stream with 10,000 closed recordings of 5-55 min
over ~8 months, bulk-inserted. For random 1-hour windows, prints the median and p90 of
(a) Catalog.recordings_overlapping, the one query behind preview_list, and
(b) the whole call GET .../preview_list through the real FastAPI app (create_app with an
    ApiContext built as service.py builds it), driven in-process by httpx's ASGITransport:
    Basic auth (scrypt once, then the catalog's verified-secret cache), the project grant
    and entry point checks, the query, the signed `url` of each item and the JSON answer.
    No socket: uvicorn's HTTP parsing is not in the figure.
It also prints the query plan (EXPLAIN QUERY PLAN on SQLite; EXPLAIN ANALYZE on
PostgreSQL, after an ANALYZE as autovacuum would run) to show an index range scan.

Run: python bench/preview_list.py [--count 500] [--database-url URL]
Default: a SQLite file in a temporary folder. With
--database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres the bench creates a
throwaway database on that server (through the named one) and drops it afterwards.
Targets (issues 3 and 4): <= 10 ms median on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx
from sqlalchemy import Engine, text

from liverec.api.app import create_app
from liverec.api.context import ApiContext
from liverec.api.times import format_time
from liverec.catalog import Catalog, SecretBox, to_ms, utc_now
from liverec.catalog.recordings import overlapping_statement
from liverec.layout import StreamRef
from liverec.postprocess import ClipWriter, SnapshotWriter
from liverec.storage import LocalStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.catalog_data import (
    APP,
    EP,
    MANY_RECORDINGS,
    REGION,
    add_many_recordings,
    one_hour_windows,
    open_catalog,
    scratch_database,
)

STREAM = "cam1"
START = datetime.fromisoformat("2025-01-01T00:00:00+00:00")
CUSTOMER_ID = "bench"
CUSTOMER_SECRET = "bench-secret-0123456789abcdef"
WARMUP = 5
BASE = f"/v1/projects/{APP}/fls/entry_points/{EP}/admin/record/standard/regions/{REGION}"

Window = tuple[datetime, datetime]


def summary(label: str, latencies: list[float], extra: str = "") -> None:
    med = statistics.median(latencies) * 1000
    p90 = statistics.quantiles(latencies, n=10)[-1] * 1000
    print(f"{label} ({len(latencies)} runs): median {med:.2f} ms, p90 {p90:.2f} ms{extra}")


def query_plan(engine: Engine, window: Window) -> list[str]:
    """The plan of preview_list's query for one window, one line per node."""
    stmt = overlapping_statement(
        StreamRef(APP, REGION, EP, STREAM), to_ms(window[0]), to_ms(window[1])
    )
    sql = str(stmt.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql).all()
            depth = {0: 0}
            lines = []
            for node, parent, _, detail in rows:
                depth[node] = depth.get(parent, 0) + 1
                lines.append("  " * depth[node] + str(detail))
            return lines
        # Fresh statistics, as autovacuum's analyze would have them on a live catalog.
        conn.execute(text("ANALYZE"))
        plan = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql).all()
        return ["  " + str(row[0]) for row in plan]


def full_scans(engine: Engine, plan: list[str]) -> list[str]:
    """Plan lines that read a whole table (a bare SCAN / a Seq Scan) of recordings."""
    if engine.dialect.name == "sqlite":
        bad = [ln for ln in plan if ln.strip().startswith("SCAN recordings")]
    else:
        bad = [ln for ln in plan if "Seq Scan on recordings" in ln]
    return bad


def bench_query(catalog: Catalog, windows: list[Window]) -> list[int]:
    """(a): the catalog call alone. Returns the number of recordings of each window."""
    latencies = []
    counts = []
    for i, (t0, t1) in enumerate(windows):
        began = time.perf_counter()
        recs = catalog.recordings_overlapping(StreamRef(APP, REGION, EP, STREAM), t0, t1)
        if i >= WARMUP:  # the first ones fill the connection pool and caches
            latencies.append(time.perf_counter() - began)
            counts.append(len(recs))
    mean = statistics.fmean(counts)
    summary(
        "  (a) Catalog.recordings_overlapping, 1 h windows",
        latencies,
        f"; {mean:.1f} recordings per window",
    )
    return counts


async def bench_http(ctx: ApiContext, windows: list[Window], expected: list[int]) -> None:
    """(b): GET preview_list through the app, in-process."""
    app = create_app(ctx)
    transport = httpx.ASGITransport(app=app)
    latencies = []
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://liverec.bench",
        auth=(CUSTOMER_ID, CUSTOMER_SECRET),
    ) as client:
        for i, (t0, t1) in enumerate(windows):
            params = {
                "start_time": format_time(t0),
                "end_time": format_time(t1),
                "stream_name": STREAM,
            }
            began = time.perf_counter()
            resp = await client.get(f"{BASE}/preview_list", params=params)
            elapsed = time.perf_counter() - began
            assert resp.status_code == 200, resp.text
            if i >= WARMUP:  # the first one runs scrypt; the cache serves the rest
                latencies.append(elapsed)
                got = len(resp.json()["list"])
                assert got == expected[i - WARMUP], (got, expected[i - WARMUP])
    summary("  (b) GET preview_list, Basic auth, in-process ASGI", latencies)


def run(url: str, store_dir: Path, count: int, others: int) -> None:
    backend = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    began = time.perf_counter()
    catalog = open_catalog(url)
    catalog.create_project(APP)
    first, last = add_many_recordings(catalog, APP, EP, STREAM, START, count=MANY_RECORDINGS)
    # Other streams beside it, so that the plan is the one of a catalog with many streams
    # (on one-row tables PostgreSQL rightly prefers a sequential scan to any index).
    for i in range(others):
        add_many_recordings(catalog, APP, EP, f"other{i}", START, count=20, seed=100 + i)
    took = time.perf_counter() - began
    print(f"{backend}: {MANY_RECORDINGS} recordings of one stream, {first:%Y-%m-%d} to ", end="")
    print(f"{last:%Y-%m-%d}, beside {others} streams of 20; built in {took:.1f} s")

    windows = one_hour_windows(first, last, count + WARMUP)
    plan = query_plan(catalog.engine, windows[0])
    kind = "EXPLAIN QUERY PLAN" if backend == "SQLite" else "EXPLAIN ANALYZE"
    print(f"  {kind} of preview_list's query (one 1 h window):")
    print("\n".join(plan))
    scans = full_scans(catalog.engine, plan)
    print(f"  full scan of recordings: {'YES: ' + '; '.join(scans) if scans else 'none'}")

    counts = bench_query(catalog, windows)
    catalog.create_credential(CUSTOMER_ID, CUSTOMER_SECRET, [APP])
    box = SecretBox(SecretBox.generate_key())
    store = LocalStore(store_dir)
    ctx = ApiContext(
        catalog=catalog,
        store=store,
        region=REGION,
        url_key=box.derive("file-urls"),
        clock=utc_now,
        make_clip=ClipWriter(catalog, store),
        make_snapshot=SnapshotWriter(catalog, store),
        node_id="bench",
    )
    asyncio.run(bench_http(ctx, windows, counts))
    print("  targets: <= 10 ms median (issues 3 and 4)")
    catalog.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=500, help="1-hour windows to time")
    parser.add_argument(
        "--other-streams", type=int, default=500, help="streams of 20 recordings beside it"
    )
    parser.add_argument(
        "--database-url",
        default="",
        help="a PostgreSQL server (URL of its `postgres` database) to run on in a throwaway "
        "database; default: SQLite in a temporary folder",
    )
    args = parser.parse_args()
    with scratch_database(args.database_url) as url, tempfile.TemporaryDirectory() as store:
        run(url, Path(store), args.count, args.other_streams)


if __name__ == "__main__":
    main()
