"""Callbacks: how fast a node delivers them, and what they cost ingest.

1. Throughput, with 100 streams publishing: a real `liverec serve` (SQLite, or PostgreSQL
   with --pg) whose project sends callbacks to a local receiver (tests/support/receiver.py,
   in this process, answering 200). While the receiver is down, `--backlog` notices per
   stream (101 new_standard_record_file, as the recorder's close makes them) are enqueued
   straight into the node's catalog (`Catalog.enqueue_notices`): 100 real pushes make only
   four notices each (1, 11, 2, 101), too few for a steady figure. Then 100 real ffmpeg
   pushes start at once (real time), and once they publish the receiver comes up: printed
   are the notices delivered per second from then until every one (backlog and the
   pushes' own) has arrived, and that the pushes all succeeded.
2. Ingest CPU: `--streams` real-time pushes into a fresh node, callbacks off (no
   configuration: nothing is enqueued) vs on (every FLS event to the receiver); the node's
   CPU seconds (utime + stime, /proc/PID/stat) from just before the pushes until they have
   ended, every notice has arrived (on) and a fixed settle time has passed. Alternated,
   `--repeat` times each; the goal is that on and off differ within the runs' own spread.

    python bench/callbacks.py [--backlog 20] [--streams 20] [--seconds 10] [--repeat 2] [--pg]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ingest import cpu_seconds

from liverec.catalog import Catalog, SecretBox, make_engine
from liverec.events.notices import record_file_notice
from liverec.layout import StreamRef
from support.api import client
from support.mediagen import make_media
from support.pg import PG_ADMIN_URL, PgServer
from support.receiver import Receiver, delivered
from support.server import APP_ID, LiverecProcess, start_push

SETTINGS = f"/v1/projects/{APP_ID}/fls/settings"
SECRET = "bench-secret"
PUSHES = 100
SETTLE = 2.0  # seconds after the last push (and, with callbacks, the last notice)


@contextmanager
def node(root: Path, pg: bool) -> Iterator[tuple[LiverecProcess, Catalog]]:
    """A running node and the catalog it uses (to enqueue into, and count)."""
    key = SecretBox.generate_key()
    env = {
        "LIVEREC_LOG_LEVEL": "WARNING",
        "LIVEREC_SECRET_KEY": key,
        "LIVEREC_CALLBACK_MAX_BACKOFF": "0.5",  # a receiver back up is tried within 0.5 s
    }
    server = PgServer(PG_ADMIN_URL) if pg else None
    db_url = server.create() if server else f"sqlite:///{(root / 'data' / 'catalog.db').resolve()}"
    if server:
        env["LIVEREC_DATABASE_URL"] = db_url
    srv = LiverecProcess(root / "data", env=env).start()
    engine = make_engine(db_url)
    try:
        yield srv, Catalog(engine, SecretBox(key))
    finally:
        srv.terminate(60)
        engine.dispose()
        if server:
            server.drop(db_url)
            server.admin.dispose()


def set_callbacks(srv: LiverecProcess, rx: Receiver) -> None:
    with client(srv) as c:
        resp = c.put(SETTINGS + "/callback", json={"url": rx.url, "secret": SECRET})
        assert resp.status_code == 200, resp.text


def throughput(media: Path, backlog: int, pg: bool, publishing: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp, node(Path(tmp), pg) as (srv, catalog):
        rx = Receiver()  # not listening yet
        set_callbacks(srv, rx)
        streams = [f"s{i}" for i in range(PUSHES)]
        items = [
            record_file_notice(
                StreamRef(APP_ID, "na", "live", name), f"record/live/{name}/backlog_{k}.m3u8"
            )
            for name in streams
            for k in range(backlog)
        ]
        t = time.perf_counter()
        for start in range(0, len(items), 500):
            catalog.enqueue_notices(items[start : start + 500])
        enqueue_s = time.perf_counter() - t
        pushes = [start_push(srv.url(stream=s), media) for s in streams] if publishing else []
        # Waiting when the receiver comes up: the backlog, and each push's publish_start
        # and media info (its publish_end and recording come when it ends).
        waiting = len(items) + 2 * len(pushes)
        deadline = time.monotonic() + 30
        while catalog.pending_notices() < waiting and time.monotonic() < deadline:
            time.sleep(0.1)
        assert srv.proc is not None
        cpu0 = cpu_seconds(srv.proc.pid)
        t0 = time.monotonic()
        rx.start()
        try:
            rx.wait_for(lambda r: len(delivered(r)) >= waiting, timeout=600)
            wall = time.monotonic() - t0
            cpu = cpu_seconds(srv.proc.pid) - cpu0
            failed = sum(1 for p in pushes if p.wait(120) != 0)
            ended = time.monotonic()
            got = rx.wait_for(lambda r: len(delivered(r)) >= waiting + 2 * len(pushes), 120)
            after = time.monotonic() - ended
        finally:
            rx.stop()
        where = "postgresql" if pg else "sqlite"
        what = f"{PUSHES} streams publishing" if publishing else "no stream publishing"
        print(
            f"{where:10s}  {what:26s}: {waiting:5d} notices waiting ({len(items)} enqueued "
            f"directly in {enqueue_s:.2f} s) delivered in {wall:5.2f} s = "
            f"{waiting / wall:5.0f} notices/s, node CPU {100 * cpu / wall:3.0f}% of a core"
            + (
                f"; the pushes' last notices {after:.2f} s after the last push ended "
                f"({len(got)} tries in all, failed pushes={failed})"
                if publishing
                else ""
            ),
            flush=True,
        )


def ingest_cpu(media: Path, streams: int, on: bool) -> float:
    """The node's CPU seconds for `streams` real-time pushes, callbacks on or off."""
    with tempfile.TemporaryDirectory() as tmp, node(Path(tmp), False) as (srv, _catalog):
        rx = Receiver().start()
        try:
            if on:
                set_callbacks(srv, rx)
            assert srv.proc is not None
            time.sleep(1.0)
            cpu0 = cpu_seconds(srv.proc.pid)
            pushes = [start_push(srv.url(stream=f"c{i}"), media) for i in range(streams)]
            failed = sum(1 for p in pushes if p.wait(120) != 0)
            if on:
                rx.wait_for(lambda r: len(delivered(r)) >= 4 * streams, timeout=120)
            time.sleep(SETTLE)
            cpu = cpu_seconds(srv.proc.pid) - cpu0
            sent = len(delivered(rx.received))
        finally:
            rx.stop()
    print(
        f"  callbacks {'on ' if on else 'off'}: node CPU {cpu:6.2f} s  "
        f"({sent} notices delivered, failed pushes={failed})",
        flush=True,
    )
    return cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backlog", type=int, default=20, help="notices enqueued per stream")
    parser.add_argument("--streams", type=int, default=20, help="pushes of the CPU runs")
    parser.add_argument("--seconds", type=float, default=10.0, help="media of each push")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--pg", action="store_true", help="throughput on PostgreSQL as well")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        short = make_media(Path(tmp) / "short.flv", 5, fps=25, gop=25)
        media = make_media(Path(tmp) / "media.flv", args.seconds, fps=25, gop=50)
        print("throughput (320x240 25 fps pushes of 5 s, real time, all at once):", flush=True)
        for pg in (False, True) if args.pg else (False,):
            for publishing in (False, True):
                throughput(short, args.backlog, pg, publishing)
        print(
            f"ingest CPU: {args.streams} real-time pushes of {args.seconds:.0f} s "
            "(320x240 25 fps H.264 + AAC), SQLite catalog:",
            flush=True,
        )
        runs: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(args.repeat):
            for on in (False, True):
                runs[on].append(ingest_cpu(media, args.streams, on))
        for on in (False, True):
            cpus = runs[on]
            spread = max(cpus) - min(cpus)
            print(
                f"callbacks {'on ' if on else 'off'}: mean {statistics.mean(cpus):.2f} s CPU "
                f"(runs {', '.join(f'{c:.2f}' for c in cpus)}; spread {spread:.2f} s)",
                flush=True,
            )
        off, on_ = statistics.mean(runs[False]), statistics.mean(runs[True])
        print(f"difference on - off: {on_ - off:+.2f} s ({100 * (on_ - off) / off:+.1f}%)")


if __name__ == "__main__":
    main()
