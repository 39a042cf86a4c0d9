"""Memory benchmark: where a real `liverec serve` holds its memory, idle and under N
concurrent real-time pushes (720p, 3 Mbit/s, -c copy, as bench/ingest.py).

Prints idle RSS, RSS sampled every 0.2 s while pushing (peak and mean, per stream over the
idle figure) and, with --trace, tracemalloc's top allocations by line, taken at the moment
RSS peaks on a sampled interval (the server runs with a sitecustomize that writes a
snapshot when asked; tracemalloc costs CPU, so RSS figures from a traced run are not
comparable with untraced ones).

    python bench/memory.py 20 --seconds 20
    python bench/memory.py 20 --seconds 20 --trace
    python bench/memory.py 20 --env MALLOC_ARENA_MAX=2
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.mediagen import make_media
from support.server import LiverecProcess, proc_mb, start_push

# Runs in the server at startup (its directory is put first on PYTHONPATH): when the bench
# creates `request`, write tracemalloc's top lines to `stats`.
SITECUSTOMIZE = """
import ctypes, os, threading, time, tracemalloc
_dir = os.environ["LIVEREC_BENCH_TRACE_DIR"]
if os.environ.get("LIVEREC_BENCH_TRACE_FRAMES"):
    tracemalloc.start(int(os.environ["LIVEREC_BENCH_TRACE_FRAMES"]))

def _watch():
    req = os.path.join(_dir, "request")
    while True:
        time.sleep(0.05)
        trim = os.path.join(_dir, "trim")
        if os.path.exists(trim):
            os.remove(trim)
            ctypes.CDLL("libc.so.6").malloc_trim(0)
            open(os.path.join(_dir, "trimmed"), "w").close()
        if os.path.exists(req):
            os.remove(req)
            snap = tracemalloc.take_snapshot()
            stats = snap.statistics("lineno")
            cur, peak = tracemalloc.get_traced_memory()
            with open(os.path.join(_dir, "stats.tmp"), "w") as f:
                f.write(f"traced {cur / 1e6:.1f} MB (peak {peak / 1e6:.1f} MB)\\n")
                for st in stats[:40]:
                    f.write(f"{st.size / 1e6:8.2f} MB {st.count:7d} {st.traceback[0]}\\n")
                if tracemalloc.get_traceback_limit() > 1:
                    for st in snap.statistics("traceback")[:8]:
                        f.write(f"{st.size / 1e6:8.2f} MB {st.count:7d}\\n")
                        for fr in st.traceback.format(most_recent_first=True):
                            f.write(f"    {fr}\\n")
            os.replace(os.path.join(_dir, "stats.tmp"), os.path.join(_dir, "stats"))

threading.Thread(target=_watch, daemon=True).start()
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("n", type=int, nargs="?", default=20)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--trace", action="store_true", help="tracemalloc top lines")
    parser.add_argument("--trace-at", type=float, default=None, help="seconds into the pushes")
    parser.add_argument("--frames", type=int, default=1, help="traceback depth (--trace)")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the server")
    parser.add_argument("--series", action="store_true", help="print RSS every second")
    parser.add_argument("--trim", action="store_true", help="malloc_trim(0) after, print RSS")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        media = make_media(
            tmpdir / "720p.flv",
            args.seconds,
            fps=30,
            gop=60,
            width=1280,
            height=720,
            bitrate=3_000_000,
        )
        env = {"LIVEREC_LOG_LEVEL": "WARNING"}
        env.update(dict(e.split("=", 1) for e in args.env))
        trace_dir = tmpdir / "trace"
        if args.trace or args.trim:
            trace_dir.mkdir()
            (trace_dir / "sitecustomize.py").write_text(SITECUSTOMIZE)
            env["PYTHONPATH"] = f"{trace_dir}:{os.environ.get('PYTHONPATH', '')}"
            env["LIVEREC_BENCH_TRACE_DIR"] = str(trace_dir)
        if args.trace:
            env["LIVEREC_BENCH_TRACE_FRAMES"] = str(args.frames)
        srv = LiverecProcess(tmpdir / "data", env=env).start(timeout=180)
        assert srv.proc is not None
        pid = srv.proc.pid
        time.sleep(1.0)
        idle = proc_mb(pid)
        samples: list[float] = []
        stop = threading.Event()

        def sample() -> None:
            asked = False
            while not stop.wait(0.2):
                rss = proc_mb(pid)
                samples.append(rss)
                # One snapshot, near the end of the pushes' first half (a steady state).
                at = args.seconds * 0.6 if args.trace_at is None else args.trace_at
                if args.trace and not asked and len(samples) * 0.2 > at:
                    (trace_dir / "request").touch()
                    asked = True

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        pushes = [start_push(srv.url(stream=f"s{i}"), media) for i in range(args.n)]
        failed = sum(1 for p in pushes if p.wait(args.seconds + 120) != 0)
        pushed = len(samples)
        time.sleep(5.0)  # the server may still be catching up on what was sent
        stop.set()
        sampler.join()
        after = proc_mb(pid)
        peak = proc_mb(pid, "VmHWM")
        if args.trace:
            stats = trace_dir / "stats"
            for _ in range(200):
                if stats.exists():
                    break
                time.sleep(0.1)
            print(stats.read_text() if stats.exists() else "no tracemalloc snapshot")
        trimmed = None
        if args.trim:
            (trace_dir / "trim").touch()
            for _ in range(100):
                if (trace_dir / "trimmed").exists():
                    break
                time.sleep(0.1)
            trimmed = proc_mb(pid)
        srv.terminate()
    if trimmed is not None:
        print(f"after malloc_trim(0): {trimmed:.1f} MB")
    n = args.n
    if args.series:
        print("RSS/s:", " ".join(f"{x:.0f}" for x in samples[:pushed:5]))
        print("RSS/s after the pushes:", " ".join(f"{x:.0f}" for x in samples[pushed::5]))
    mean = sum(samples[:pushed]) / max(1, pushed)
    print(
        f"N={n} idle={idle:.1f} MB  peak={peak:.1f} MB ({(peak - idle) / n:.2f} MB/stream)  "
        f"mean while pushing={mean:.1f} MB ({(mean - idle) / n:.2f} MB/stream)  "
        f"5 s after={after:.1f} MB  failed pushes={failed}",
        flush=True,
    )


if __name__ == "__main__":
    main()
