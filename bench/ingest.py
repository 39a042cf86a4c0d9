"""Ingest benchmark: N concurrent real-time pushes (720p, 3 Mbit/s, -c copy) into a real
`liverec serve`; prints server CPU per stream (% of one core), peak RSS and frames lost.

    python bench/ingest.py            # N = 1, 20, 60
    python bench/ingest.py 1 5 --seconds 20
    python bench/ingest.py 60 --workers 2   # ingest workers: CPU of each process, and
                                            # the whole tree's (liverec/workers.py)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import av

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.mediagen import make_media
from support.recordings import recordings
from support.server import LiverecProcess, proc_mb, start_push

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (ingest workers are the fork server's children)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            continue
    found = [pid]
    for p in found:
        found.extend(child for child, parent in parents.items() if parent == p)
    return found


def tree_cpu(pids: list[int]) -> dict[int, float]:
    out = {}
    for p in pids:
        try:
            out[p] = cpu_seconds(p)
        except OSError:
            continue
    return out


def pss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    raise LookupError("Pss")


def video_packets(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for p in c.demux(video=0) if p.size)


def recorded_packets(folder: Path) -> int:
    total = 0
    for rec in recordings(folder):
        for seg in rec.playlist.segments:
            total += video_packets(rec.path.parent / seg.uri)
    return total


def run(n: int, media: Path, source_frames: int, seconds: float, workers: int = 1) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        srv = LiverecProcess(
            Path(tmp) / "data",
            env={"LIVEREC_LOG_LEVEL": "WARNING"},
            args=["--workers", str(workers)] if workers > 1 else [],
        ).start()
        assert srv.proc is not None
        pid = srv.proc.pid
        time.sleep(1.0)
        pids = process_tree(pid)
        idle_rss = proc_mb(pid)
        if workers > 1:
            idle = ", ".join(f"{p}: RSS {proc_mb(p):.0f} PSS {pss_mb(p):.0f}" for p in pids)
            print(f"idle MB (API process, fork server, workers): {idle}", flush=True)
        cpu0 = tree_cpu(pids)
        t0 = time.monotonic()
        pushes = [start_push(srv.url(stream=f"s{i}"), media) for i in range(n)]
        failed = sum(1 for p in pushes if p.wait(seconds + 120) != 0)
        wall = time.monotonic() - t0
        time.sleep(0.5)
        cpu1 = tree_cpu(pids)
        each = {p: cpu1[p] - cpu0[p] for p in cpu1 if p in cpu0}
        cpu = sum(each.values())
        if workers > 1:
            spread = "  ".join(f"{p}: {100 * c / wall:.1f}%" for p, c in each.items())
            print(f"cpu by process (API process, fork server, workers): {spread}", flush=True)
        peak = proc_mb(pid, "VmHWM")
        lost = 0
        for i in range(n):
            lost += source_frames - recorded_packets(srv.stream_dir(f"s{i}"))
        srv.terminate()
    per_stream = 100 * cpu / wall / n
    print(
        f"N={n:3d}  cpu/stream={per_stream:5.2f}% of a core  total cpu={100 * cpu / wall:6.1f}%  "
        f"peak RSS={peak:6.1f} MB  (idle {idle_rss:.1f} MB, "
        f"{(peak - idle_rss) / n:.2f} MB/stream)  frames lost={lost}  failed pushes={failed}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("counts", nargs="*", type=int, default=[1, 20, 60])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=1, help="serve --workers")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        media = make_media(
            Path(tmp) / "720p.flv",
            args.seconds,
            fps=30,
            gop=60,
            width=1280,
            height=720,
            bitrate=3_000_000,
        )
        frames = video_packets(media)
        size = media.stat().st_size
        print(
            f"media: 1280x720 30 fps, {args.seconds:.0f} s, "
            f"{size * 8 / args.seconds / 1e6:.2f} Mbit/s, {frames} frames",
            flush=True,
        )
        for n in args.counts:
            run(n, media, frames, args.seconds, args.workers)


if __name__ == "__main__":
    main()
