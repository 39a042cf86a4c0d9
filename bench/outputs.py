"""Recording outputs at N streams: a real `liverec serve`, N concurrent real-time ffmpeg
pushes (720p30, 3 Mbit/s, -c copy), recorded four ways: HLS only, HLS + MP4, HLS +
periodic snapshots every 5 s, and all three. Prints the server's CPU per stream (% of one
core, utime + stime from /proc over the pushes and until every recording and MP4 slice is
stored) and each way's extra over HLS only, and the MP4 bytes written against the FLV
bytes pushed.

    python bench/outputs.py               # N = 20, 30 s pushes
    python bench/outputs.py --streams 5 --seconds 20
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ingest import cpu_seconds
from bench.snapshot import make_720p

from support.api import client
from support.recordings import finished
from support.server import APP_ID, LiverecProcess, start_push

EPS = f"/v1/projects/{APP_ID}/fls/entry_points"
WAYS = {
    "HLS only": (False, False),
    "HLS + MP4": (True, False),
    "HLS + snapshots/5s": (False, True),
    "all three": (True, True),
}


def run(n: int, media: Path, mp4: bool, snapshots: bool, tmp: Path) -> tuple[float, int]:
    """(CPU seconds of the server, MP4 bytes written) for N pushes of `media`."""
    srv = LiverecProcess(tmp / "data", env={"LIVEREC_LOG_LEVEL": "WARNING"}).start()
    assert srv.proc is not None
    with client(srv) as http:
        http.post(EPS, params={"id": "live"})  # made at first start; else made here
        base = EPS + "/live/settings"
        record = {"mp4Config": {"enabled": mp4}}
        assert http.patch(base + "/record/standard/regions/na", json=record).is_success
        shots = {"enabled": snapshots, "snapshotInterval": 5}
        assert http.patch(base + "/snapshot/standard/regions/na", json=shots).is_success
    time.sleep(1.0)
    cpu0 = cpu_seconds(srv.proc.pid)
    pushes = [start_push(srv.url(stream=f"s{i}"), media) for i in range(n)]
    failed = sum(1 for p in pushes if p.wait(300) != 0)
    for i in range(n):
        finished(srv.stream_dir(f"s{i}"), timeout=60)
    spool = srv.data_dir / "spool" / "mp4"
    deadline = time.monotonic() + 60
    while spool.is_dir() and any(spool.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.2)  # MP4 slices are published after their recording ends
    cpu = cpu_seconds(srv.proc.pid) - cpu0
    mp4_bytes = sum(p.stat().st_size for p in srv.storage.rglob("*.mp4"))
    srv.terminate()
    if failed:
        print(f"  ({failed} pushes failed)", flush=True)
    return cpu, mp4_bytes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    n, seconds = args.streams, args.seconds
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        media = make_720p(tmp / "720p.flv", seconds)
        pushed = media.stat().st_size
        print(f"N={n} pushes of {seconds:g} s 720p30 3 Mbit/s ({pushed / 1e6:.1f} MB each)")
        base = None
        for label, (mp4, snapshots) in WAYS.items():
            cpu, mp4_bytes = run(n, media, mp4, snapshots, tmp / label.replace(" ", "_"))
            per_stream = 100 * cpu / seconds / n
            extra = "" if base is None else f"  {per_stream - base:+.2f} points"
            if base is not None:
                extra += f" ({100 * (per_stream - base) / base:+.0f} %)"
            base = per_stream if base is None else base
            line = f"{label:20s} cpu/stream={per_stream:5.2f}% of a core{extra}"
            if mp4_bytes:
                line += f"  MP4/FLV bytes={mp4_bytes / (pushed * n):.4f}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
