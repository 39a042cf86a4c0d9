"""Snapshot latency: liverec's SnapshotWriter vs an ffmpeg subprocess taking the same frame.

Media: 1280x720 30 fps H.264 (x264 veryfast, High profile with B-frames, a 2 s GOP,
3 Mbit/s) + AAC, made by the ffmpeg CLI and recorded through the real StreamRecorder into a
LocalStore and a SQLite catalog (2 s segments). For random instants, prints the median (and
p90) latency of SnapshotWriter (catalog lookup, name reservation, decode, JPEG, store.put) and
of `ffmpeg -ss OFFSET -i SEGMENT.ts -frames:v 1 -q:v 2 out.jpg` taking the same frame from
the same segment, and checks the two JPEGs show the same picture.

Run: python bench/snapshot.py [--count 40] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import numpy as np

from liverec.catalog import Catalog, SecretBox, make_engine, migrate
from liverec.layout import StreamRef
from liverec.postprocess.snapshot import SnapshotWriter
from liverec.postprocess.timing import open_segment
from liverec.storage import LocalStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.recordflv import record_flv

APP = "0123456789abcdef0123456789abcdef"
REGION = "na"
EP = "live"
STREAM = "cam1"
CAM = StreamRef(APP, REGION, EP, STREAM)
T0 = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)


def make_720p(path: Path, seconds: float) -> Path:
    """Realistic 720p30 H.264 High (B-frames, CABAC) + AAC, 2 s GOP, 3 Mbit/s."""
    subprocess.run(
        [
            "ffmpeg", "-v", "error", "-y",
            "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
            "-t", str(seconds),
            "-c:v", "libx264", "-preset", "veryfast", "-g", "60", "-keyint_min", "60",
            "-sc_threshold", "0", "-b:v", "3M", "-maxrate", "3M", "-bufsize", "3M",
            "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k",
            "-f", "flv", str(path),
        ],
        check=True,
        timeout=300,
    )  # fmt: skip
    return path


@dataclass
class Setup:
    catalog: Catalog
    store: LocalStore
    start: datetime
    end: datetime


def record(folder: Path, flv: Path, target_duration: float = 2.0) -> Setup:
    """A catalog + store holding `flv` recorded as a push starting at T0."""
    engine = make_engine(f"sqlite:///{folder / 'catalog.db'}")
    migrate(engine)
    catalog = Catalog(engine, SecretBox(SecretBox.generate_key()))
    catalog.create_project(APP)
    store = LocalStore(folder / "store")

    asyncio.run(
        record_flv(
            flv,
            catalog,
            store,
            app_id=APP,
            entry_point=EP,
            stream=STREAM,
            region=REGION,
            start=T0,
            session_id="bench",
            target_duration=target_duration,
            max_file_duration=1e6,
        )
    )
    rec = catalog.latest_recording(CAM)
    assert rec is not None
    return Setup(catalog, store, rec.start_time, rec.end_time)


def ffmpeg_snapshot(setup: Setup, frame_time: datetime, out: Path) -> float:
    """Seconds for ffmpeg to take the frame shown at `frame_time` from its segment."""
    pairs = setup.catalog.segments_between(CAM, frame_time - timedelta(seconds=1), frame_time)
    for _, seg in reversed(pairs):
        with open_segment(setup.store, CAM, seg, audio=False) as media:
            pts = [p.pts for p in media.frames() if media.clock.time_of(p.pts) == frame_time]
        if pts:
            break
    else:
        raise AssertionError(f"no frame at {frame_time}")
    path = setup.store.local_path(CAM.key(seg.key))
    began = time.perf_counter()
    # -ss after -i: decode from the segment's start and drop the frames before the time, the
    # exact way (input seeking in a TS file lands off keyframes and often yields nothing);
    # -copyts so that the time is the frame's own PTS (ffmpeg 5.1's rebased output -ss
    # misses a segment's last frames); 5 ms early so that rounding cannot skip the frame.
    at = f"{pts[0] / 90_000 - 0.005:.6f}"
    command = ["ffmpeg", "-v", "error", "-y", "-copyts", "-i", str(path), "-ss", at]
    subprocess.run(
        [*command, "-frames:v", "1", "-q:v", "2", str(out)],
        check=True,
        timeout=60,
    )
    elapsed = time.perf_counter() - began
    if not out.exists():
        raise AssertionError(f"ffmpeg wrote no frame for {frame_time}")
    return elapsed


def luma(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        return frame.reformat(format="gray").to_ndarray().astype(np.int16)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=40, help="snapshots to time")
    parser.add_argument("--seconds", type=float, default=20.0, help="media length")
    args = parser.parse_args()
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        setup = record(folder, make_720p(folder / "in.flv", args.seconds))
        span = (setup.end - setup.start).total_seconds()
        # Instants inside the media, away from its first 200 ms (audio comes first there).
        instants = [
            setup.start + timedelta(seconds=rng.uniform(0.2, span - 0.1)) for _ in range(args.count)
        ]
        make_snapshot = SnapshotWriter(setup.catalog, setup.store)
        make_snapshot(  # warm-up: imports, codec tables
            CAM,
            file_name="warm.jpg",
            time=instants[0],
        )
        ours: list[float] = []
        theirs: list[float] = []
        worst = 0.0
        for i, at in enumerate(instants):
            began = time.perf_counter()
            result = make_snapshot(
                CAM,
                file_name=f"s{i}.jpg",
                time=at,
            )
            ours.append(time.perf_counter() - began)
            ff_jpeg = folder / f"ff{i}.jpg"
            theirs.append(ffmpeg_snapshot(setup, result.time, ff_jpeg))
            mine = setup.store.local_path(CAM.key(result.file_name))
            assert mine is not None
            worst = max(worst, float(np.abs(luma(mine) - luma(ff_jpeg)).mean()))
        med_ours, med_ff = statistics.median(ours), statistics.median(theirs)
        p90 = statistics.quantiles(ours, n=10)[-1]
        print(f"snapshot 1280x720 30 fps, 2 s GOP, High+B-frames, {args.count} random instants")
        print(f"  liverec snapshot: median {med_ours * 1000:.1f} ms, p90 {p90 * 1000:.1f} ms")
        print(f"  ffmpeg subprocess:     median {med_ff * 1000:.1f} ms")
        print(f"  speed-up: {med_ff / med_ours:.1f}x")
        print(f"  same frame check: worst mean |luma difference| {worst:.2f} (of 255)")


if __name__ == "__main__":
    main()
