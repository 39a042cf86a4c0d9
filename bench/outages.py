"""Long outages, for real: a `liverec serve` on PostgreSQL and an S3-compatible server (moto
on loopback), N real-time ffmpeg pushes, and mid-push the catalog database refusing every
connection and/or the S3 server hanging (SIGSTOP) for --minutes. Afterwards the frames
decoded through the API (preview_list's URLs) are compared with the frames pushed; prints
frames lost per stream, EXT-X-DISCONTINUITY tags, and how long the node took to catch up.
tests/e2e/test_outages.py runs the same at ~10 s; this is the 10-minute version.

    python bench/outages.py                       # both at once, 10 minutes, 2 streams
    python bench/outages.py --kind s3 --minutes 2
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from e2e.test_outages import BASE, Node, recordings
from support.api import client
from support.mediagen import decode_frames, make_media
from support.server import start_push

FPS = 25


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kind", choices=["s3", "catalog", "both"], default="both")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--streams", type=int, default=2)
    args = parser.parse_args()
    seconds = int(args.minutes * 60) + 90
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        media = make_media(tmp / "long.flv", seconds, fps=FPS, gop=FPS)
        node = Node(tmp)
        try:
            with client(node.srv) as http:
                pushes = [
                    start_push(node.srv.url(stream=f"o{i}"), media) for i in range(args.streams)
                ]
                time.sleep(30)
                began = datetime.now(UTC)
                print(f"{began:%H:%M:%S} outage ({args.kind}) for {args.minutes:g} min", flush=True)
                if args.kind in ("s3", "both"):
                    node.s3_signal(signal.SIGSTOP)
                if args.kind in ("catalog", "both"):
                    node.catalog_down()
                time.sleep(args.minutes * 60)
                node.s3_signal(signal.SIGCONT)
                node.catalog_up()
                back = time.monotonic()
                print(f"{datetime.now(UTC):%H:%M:%S} dependencies back", flush=True)
                failed = sum(1 for p in pushes if p.wait(seconds + 300) != 0)
                for i in range(args.streams):
                    stream = f"o{i}"
                    deadline = time.monotonic() + 600
                    while True:
                        items = recordings(http, stream)
                        text = httpx.get(items[-1]["url"]).text if items else ""
                        if items and "ENDLIST" in text:
                            break
                        assert time.monotonic() < deadline, f"{stream}: did not end"
                        time.sleep(1)
                    caught_up = time.monotonic() - back
                    frames = [n for item in items for _, n in decode_frames(item["url"])]
                    gaps = sum(httpx.get(i["url"]).text.count("DISCONTINUITY") for i in items)
                    lost = len(set(range(seconds * FPS)) - set(frames))
                    print(
                        f"{stream}: {len(items)} recording(s), {len(frames)} frames decoded of "
                        f"{seconds * FPS}, lost {lost}, repeated {len(frames) - len(set(frames))},"
                        f" {gaps} discontinuities; ended {caught_up:.0f} s after the dependencies "
                        "came back (the push itself ran on for 90 s)",
                        flush=True,
                    )
                print(f"failed pushes: {failed}; preview_list path {BASE}", flush=True)
        finally:
            node.stop()


if __name__ == "__main__":
    main()
