"""Where a real `liverec serve` spends its CPU: N real-time pushes (720p, 3 Mbit/s, -c
copy, as ingest.py makes them), optionally in `--rounds` back-to-back rounds of short
pushes (per-publish costs), with py-spy sampling the server (`--idle` off, so only
non-idle samples count). Prints the server's CPU seconds per stream-second and per
publish, and writes py-spy's raw (collapsed) stacks for bench/top_frames.py.

    python bench/profile_ingest.py 20 --seconds 20 --out /tmp/prof.txt
    python bench/profile_ingest.py 20 --seconds 10 --rounds 3 --out /tmp/short.txt
    python bench/profile_ingest.py 10 --seconds 30 --window 10 25 --bitrate 12000000 \
        --env LIVEREC_RTMP_READ_INTERVAL=0.2
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.mediagen import make_media
from support.server import LiverecProcess, start_push

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_times(pid: int, task: int | None = None) -> tuple[float, float]:
    """utime, stime of the process, or of one of its threads."""
    path = f"/proc/{pid}/stat" if task is None else f"/proc/{pid}/task/{task}/stat"
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("streams", type=int)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="py-spy raw output")
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--bitrate", type=int, default=3_000_000, help="of the pushed video")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the server")
    parser.add_argument(
        "--window",
        type=float,
        nargs=2,
        default=None,
        metavar=("FROM", "TO"),
        help="also the CPU between these seconds after the pushes start (steady state)",
    )
    parser.add_argument("--gil", action="store_true", help="py-spy --gil: GIL holders only")
    args = parser.parse_args()
    env = {"LIVEREC_LOG_LEVEL": "WARNING"}
    env.update(dict(e.split("=", 1) for e in args.env))
    with tempfile.TemporaryDirectory() as tmp:
        rate = "" if args.bitrate == 3_000_000 else f"-{args.bitrate // 1000}k"
        media = Path(tempfile.gettempdir()) / f"liverec-prof-720p-{args.seconds:g}s{rate}.flv"
        if not media.exists():
            make_media(
                media, args.seconds, fps=30, gop=60, width=1280, height=720, bitrate=args.bitrate
            )
        srv = LiverecProcess(Path(tmp) / "data", env=env).start()
        assert srv.proc is not None
        pid = srv.proc.pid
        time.sleep(1.0)
        spy = None
        if args.out is not None:
            spy = subprocess.Popen(
                [
                    "py-spy",
                    "record",
                    "--pid",
                    str(pid),
                    "--format",
                    "raw",
                    "--rate",
                    str(args.rate),
                    "--nonblocking",
                    "-o",
                    str(args.out),
                    *(["--gil"] if args.gil else []),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1.0)
        user0, sys0 = cpu_times(pid)
        main0 = sum(cpu_times(pid, pid))  # the event loop's thread
        t0 = time.monotonic()
        failed = 0
        for r in range(args.rounds):
            pushes = [start_push(srv.url(stream=f"s{r}_{i}"), media) for i in range(args.streams)]
            if args.window is not None and r == 0:
                time.sleep(max(0.0, t0 + args.window[0] - time.monotonic()))
                w0 = sum(cpu_times(pid))
                time.sleep(max(0.0, t0 + args.window[1] - time.monotonic()))
                w1 = sum(cpu_times(pid))
                span = args.window[1] - args.window[0]
                print(
                    f"steady state [{args.window[0]:g}, {args.window[1]:g}] s: "
                    f"{100 * (w1 - w0) / span / args.streams:.3f} % of a core per stream",
                    flush=True,
                )
            failed += sum(1 for p in pushes if p.wait(args.seconds + 120) != 0)
        time.sleep(2.0)
        wall = time.monotonic() - t0
        user1, sys1 = cpu_times(pid)
        loop_cpu = sum(cpu_times(pid, pid)) - main0
        user, system = user1 - user0, sys1 - sys0
        cpu = user + system
        if spy is not None:
            spy.send_signal(2)
            spy.wait(30)
        srv.terminate()
    publishes = args.streams * args.rounds
    print(
        f"N={args.streams} x {args.rounds} rounds of {args.seconds:g} s: server cpu {cpu:.2f} s "
        f"(user {user:.2f}, sys {system:.2f}; event loop {loop_cpu:.2f}, other threads "
        f"{cpu - loop_cpu:.2f}) over {wall:.1f} s = "
        f"{100 * cpu / wall / args.streams:.3f} % of a core per stream; "
        f"{1000 * cpu / publishes:.0f} ms per publish; failed pushes {failed}",
        flush=True,
    )


if __name__ == "__main__":
    main()
