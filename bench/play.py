"""Time-shift playlist latency: a 24-hour VOD playlist of a 24/7 stream (21,600 segments of 4 s).

A synthetic catalog (bench/catalog_data.py, bulk inserts): one stream recorded for 48 hours
in 1-hour recordings of 900 segments of 4 s (the default max file duration), back to back.
For random 24-hour windows inside it, prints the median and p90 of:

- (a) `Catalog.play_rows`, the one query behind the playlist (catalog/playback.py);
- (b) (a) plus `render_time_shift`, the playlist text (playback/playlist.py);
- (b') what the route does instead: `plan` + `render_plan` (playback/cache.py), closed
  recordings' entries cached (warm: the cache holds them all);
- (c) the whole `GET /play/{appid}/{region}/{ep}/{stream}.m3u8?start=&end=` through the real
  FastAPI app (create_app with an ApiContext as service.py builds it), in-process through
  httpx's ASGITransport, with Basic auth (scrypt once, then the verified-secret cache):
  the range checks, the query, one signature, the text, a ~3.6 MB answer. No socket.
  The cache starts empty, and fills as the windows reach recordings (steady state);
- (c cold) the same with the cache emptied before each request (a restarted server's first
  request: every recording read and rendered).

Each answer is checked: 21,600 or 21,601 entries (a window starting inside a segment).
Target: <= 20 ms median for (c) (issue 12).

Run: python bench/play.py [--count 30] [--database-url URL] (a PostgreSQL server's
`postgres` database, for a throwaway database beside it; default: SQLite in a temp folder).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.catalog_data import APP, EP, REGION, add_day_recording, open_catalog, scratch_database

from liverec.api.app import create_app
from liverec.api.context import ApiContext
from liverec.catalog import Catalog, SecretBox
from liverec.layout import StreamRef
from liverec.media.m3u8 import format_time
from liverec.playback import TimeShift, render_time_shift
from liverec.playback.cache import EntryCache, plan, render_plan
from liverec.postprocess import ClipWriter, SnapshotWriter
from liverec.storage import LocalStore

STREAM = "round-the-clock"
T0 = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
HOURS = 48
SEGMENT_S = 4.0
PER_RECORDING = 900  # 1 h of 4 s segments
DAY_SEGMENTS = 21_600
CUSTOMER_ID = "bench"
CUSTOMER_SECRET = "bench-secret-0123456789abcdef"
WARMUP = 3


def summary(label: str, latencies: list[float]) -> None:
    med = statistics.median(latencies) * 1000
    p90 = statistics.quantiles(latencies, n=10)[-1] * 1000
    low = min(latencies) * 1000
    print(f"{label} ({len(latencies)} runs): median {med:.1f} ms, p90 {p90:.1f} ms, min {low:.1f}")


def windows(count: int) -> list[tuple[datetime, datetime]]:
    rng = random.Random(1)
    out = []
    for _ in range(count + WARMUP):
        start = T0 + timedelta(milliseconds=rng.randrange((HOURS - 24) * 3_600_000))
        out.append((start, start + timedelta(hours=24)))
    return out


def timed(
    fn: Callable[[datetime, datetime], int], spans: list[tuple[datetime, datetime]]
) -> list[float]:
    latencies = []
    for i, (t0, t1) in enumerate(spans):
        began = time.perf_counter()
        entries = fn(t0, t1)
        elapsed = time.perf_counter() - began
        assert entries in (DAY_SEGMENTS, DAY_SEGMENTS + 1), entries
        if i >= WARMUP:
            latencies.append(elapsed)
    return latencies


async def bench_http(
    ctx: ApiContext, spans: list[tuple[datetime, datetime]], *, cold: bool = False
) -> list[float]:
    latencies = []
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(ctx)),
        base_url="http://liverec.bench",
        auth=(CUSTOMER_ID, CUSTOMER_SECRET),
    ) as client:
        for i, (t0, t1) in enumerate(spans):
            params = {"start": format_time(t0), "end": format_time(t1)}
            if cold:
                ctx.play_cache.clear()
            began = time.perf_counter()
            resp = await client.get(f"/play/{APP}/{REGION}/{EP}/{STREAM}.m3u8", params=params)
            elapsed = time.perf_counter() - began
            assert resp.status_code == 200, resp.text
            entries = resp.text.count("#EXTINF")
            assert entries in (DAY_SEGMENTS, DAY_SEGMENTS + 1), entries
            if i >= WARMUP:
                latencies.append(elapsed)
    return latencies


def build(url: str) -> Catalog:
    catalog = open_catalog(url)
    catalog.create_project(APP)
    for hour in range(HOURS):
        add_day_recording(
            catalog,
            APP,
            EP,
            STREAM,
            T0 + timedelta(hours=hour),
            count=PER_RECORDING,
            segment_s=SEGMENT_S,
            session_id=f"h{hour:02d}",
        )
    return catalog


def run(url: str, store_dir: Path, count: int) -> None:
    backend = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    began = time.perf_counter()
    catalog = build(url)
    print(
        f"{backend}: {HOURS} h of one stream, {HOURS} recordings of {PER_RECORDING} segments of ",
        end="",
    )
    print(f"{SEGMENT_S:g} s, built in {time.perf_counter() - began:.1f} s")
    stream = StreamRef(APP, REGION, EP, STREAM)
    spans = windows(count)
    summary(
        "  (a) Catalog.play_rows, 24 h",
        timed(lambda t0, t1: len(catalog.play_rows(stream, t0, t1)), spans),
    )
    prefix = "http://liverec.bench/files/s/1795000000/" + "x" * 43 + f"/{APP}/na/{stream.folder}"

    def rendered(t0: datetime, t1: datetime) -> int:
        text = render_time_shift(catalog.play_rows(stream, t0, t1), TimeShift(prefix, event=False))
        return text.count("#EXTINF")

    summary("  (b) play_rows + render_time_shift", timed(rendered, spans))
    cache = EntryCache()
    spec = TimeShift(prefix, event=False)
    render_plan(plan(catalog, cache, stream, T0, T0 + timedelta(hours=HOURS)), spec)  # warm

    def cached(t0: datetime, t1: datetime) -> int:
        return render_plan(plan(catalog, cache, stream, t0, t1), spec).count(b"#EXTINF")

    summary("  (b') plan + render_plan, cache warm", timed(cached, spans))
    catalog.create_credential(CUSTOMER_ID, CUSTOMER_SECRET, [APP])
    store = LocalStore(store_dir)
    ctx = ApiContext(
        catalog=catalog,
        store=store,
        region=REGION,
        url_key=SecretBox(SecretBox.generate_key()).derive("file-urls"),
        clock=lambda: datetime.now(UTC),
        make_clip=ClipWriter(catalog, store),
        make_snapshot=SnapshotWriter(catalog, store),
        node_id="bench",
    )
    summary(
        "  (c) GET /play ...m3u8?start&end, Basic, in-process ASGI",
        asyncio.run(bench_http(ctx, spans)),
    )
    summary(
        "  (c cold) the same, the cache emptied before each",
        asyncio.run(bench_http(ctx, spans, cold=True)),
    )
    print("  target: (c) <= 20 ms median (issue 12)")
    catalog.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=30, help="24-hour windows to time")
    parser.add_argument("--database-url", default="", help="default: SQLite in a temp folder")
    args = parser.parse_args()
    with scratch_database(args.database_url) as url, tempfile.TemporaryDirectory() as tmp:
        run(url, Path(tmp) / "store", args.count)


if __name__ == "__main__":
    main()
