"""The API's latency under abuse: p50/p99 of an honest authenticated call (Basic, from
127.0.0.2) on a real `liverec serve`, idle; under a guessing run (W workers sending wrong
secrets from 127.0.0.1 as fast as they get answers); under N slowloris connections (each
sends one header byte a second, spread over source addresses 127.0.1.x so that the
per-address cap does not refuse them; a connection cut at the header deadline is reopened).

    python bench/limits.py                       # N = 2000 slow connections, W = 16
    python bench/limits.py --slow 500 --workers 8 --count 200
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.server import APP_ID, CUSTOMER_ID, CUSTOMER_SECRET, LiverecProcess

PATH = f"/v1/projects/{APP_ID}/fls/entry_points"


def honest(port: int, count: int) -> tuple[float, float]:
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    times: list[float] = []
    with httpx.Client(transport=transport, base_url=f"http://127.0.0.1:{port}") as c:
        for _ in range(count):
            began = time.perf_counter()
            resp = c.get(PATH, auth=(CUSTOMER_ID, CUSTOMER_SECRET), timeout=30)
            times.append(time.perf_counter() - began)
            assert resp.status_code == 200, resp.text
    times.sort()
    return statistics.median(times) * 1000, times[int(len(times) * 0.99) - 1] * 1000


def report(name: str, p50: float, p99: float, extra: str = "") -> None:
    print(f"{name:<34} p50 {p50:7.1f} ms   p99 {p99:7.1f} ms   {extra}", flush=True)


def guessing(port: int, workers: int, stop: threading.Event, seen: Counter[int]) -> None:
    def work(n: int) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
            i = 0
            while not stop.is_set():
                i += 1
                resp = c.get(PATH, auth=(CUSTOMER_ID, f"guess-{n}-{i}"), timeout=30)
                seen[resp.status_code] += 1

    threads = [threading.Thread(target=work, args=(n,)) for n in range(workers)]
    for t in threads:
        t.start()
    stop.wait()
    for t in threads:
        t.join()


async def slowloris(port: int, count: int, stop: threading.Event, stats: Counter[str]) -> None:
    async def one(n: int) -> None:
        source = f"127.0.1.{n % 200 + 1}"
        while not stop.is_set():
            try:
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", port, local_addr=(source, 0)
                )
            except OSError:
                stats["connect failed"] += 1
                await asyncio.sleep(1)
                continue
            stats["opened"] += 1
            try:
                for byte in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000:
                    if stop.is_set() or reader.at_eof():
                        break
                    writer.write(bytes([byte]))
                    await asyncio.sleep(1)
            except OSError:
                pass
            stats["cut"] += 1
            writer.close()

    tasks = [asyncio.create_task(one(n)) for n in range(count)]
    while not stop.is_set():
        await asyncio.sleep(0.2)
    for task in tasks:
        task.cancel()
    with contextlib.suppress(BaseException):
        await asyncio.gather(*tasks)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slow", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--count", type=int, default=300)
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with tempfile.TemporaryDirectory() as tmp:
        srv = LiverecProcess(
            Path(tmp), env={"LIVEREC_LOG_LEVEL": "WARNING", "LIVEREC_HTTP_MAX_CONNECTIONS": "8192"}
        ).start()
        try:
            honest(srv.http_port, 10)  # warm up
            report("idle", *honest(srv.http_port, args.count))

            stop = threading.Event()
            seen: Counter[int] = Counter()
            runner = threading.Thread(
                target=guessing, args=(srv.http_port, args.workers, stop, seen)
            )
            began = time.monotonic()
            runner.start()
            time.sleep(1)
            p50, p99 = honest(srv.http_port, args.count)
            stop.set()
            runner.join()
            rate = sum(seen.values()) / (time.monotonic() - began)
            answers = ", ".join(f"{n} x {s}" for s, n in sorted(seen.items()))
            report(
                f"guessing ({args.workers} workers)",
                p50,
                p99,
                f"{rate:.0f} guesses/s answered ({answers})",
            )

            stop = threading.Event()
            stats: Counter[str] = Counter()
            loop_thread = threading.Thread(
                target=lambda: asyncio.run(slowloris(srv.http_port, args.slow, stop, stats))
            )
            loop_thread.start()
            time.sleep(3)  # all opened
            p50, p99 = honest(srv.http_port, args.count)
            stop.set()
            loop_thread.join()
            report(
                f"{args.slow} slow connections",
                p50,
                p99,
                ", ".join(f"{k} {v}" for k, v in sorted(stats.items())),
            )
        finally:
            srv.terminate()


if __name__ == "__main__":
    main()
