"""/metrics scrape time with N live streams: N real ffmpeg pushes (small, low-bitrate
generated media, real time) into a real `liverec serve`; once all N are live, GET /metrics
is timed `--count` times over HTTP and the median and p90 printed, with no stream live
first for a baseline, then with per-stream labels off and on.

    python bench/metrics.py                 # N = 100
    python bench/metrics.py 20 --count 30
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.mediagen import make_media
from support.server import LiverecProcess, start_push


def live_publishes(text: str) -> int:
    for line in text.splitlines():
        if line.startswith("liverec_live_publishes "):
            return int(float(line.split()[1]))
    return -1


def timed_scrapes(http: httpx.Client, count: int) -> tuple[list[float], int]:
    times: list[float] = []
    size = 0
    for _ in range(count):
        began = time.perf_counter()
        resp = http.get("/metrics")
        times.append(time.perf_counter() - began)
        resp.raise_for_status()
        size = len(resp.content)
        time.sleep(0.05)
    return times, size


def report(what: str, times: list[float], size: int) -> None:
    ms = sorted(t * 1000 for t in times)
    p90 = ms[min(len(ms) - 1, round(0.9 * (len(ms) - 1)))]
    print(
        f"{what:<34} median={statistics.median(ms):6.2f} ms  p90={p90:6.2f} ms  "
        f"max={ms[-1]:6.2f} ms  body={size / 1024:6.1f} KiB",
        flush=True,
    )


def run(n: int, media: Path, count: int, labels: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = {"LIVEREC_LOG_LEVEL": "WARNING"}
        if labels:
            env["LIVEREC_METRICS_STREAM_LABELS"] = "true"
        srv = LiverecProcess(Path(tmp) / "data", env=env).start()
        pushes: list[subprocess.Popen[str]] = []
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{srv.http_port}", timeout=30) as http:
                http.get("/metrics")  # the first scrape starts the storage walk
                time.sleep(0.5)
                if not labels:
                    report("0 live streams", *timed_scrapes(http, count))
                for i in range(n):
                    pushes.append(start_push(srv.url(stream=f"s{i}"), media))
                    time.sleep(0.02)
                deadline = time.monotonic() + 60
                while live_publishes(http.get("/metrics").text) < n:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"not all {n} pushes went live")
                    time.sleep(0.5)
                time.sleep(2.0)  # past the first segments
                times, size = timed_scrapes(http, count)
                live = live_publishes(http.get("/metrics").text)
                report(f"{live} live, stream labels {'on' if labels else 'off'}", times, size)
        finally:
            for p in pushes:
                p.kill()
                p.wait(10)
            srv.terminate()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("streams", nargs="?", type=int, default=100)
    parser.add_argument("--count", type=int, default=50, help="scrapes timed per figure")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        # Small and cheap to push: 160x120, 15 fps, ~60 kbit/s, long enough to stay live
        # through the scrapes.
        media = make_media(Path(tmp) / "small.flv", 90, fps=15, gop=30, width=160, height=120)
        print(f"N={args.streams} pushes of {media.stat().st_size * 8 / 90 / 1000:.0f} kbit/s")
        for labels in (False, True):
            run(args.streams, media, args.count, labels)


if __name__ == "__main__":
    main()
