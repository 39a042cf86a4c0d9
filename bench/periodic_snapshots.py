"""Periodic snapshots: the CPU one costs, and what that is per stream at an interval.

Media: the 720p30 3 Mbit/s file of bench/snapshot.py (2 s GOP). For each of its keyframes,
times (process CPU) what a live publish does when a snapshot is due: the FLV tag to an Annex
B access unit with its parameter sets, decoding that one keyframe, a full-size JPEG
(outputs/snapshots.py, postprocess.snapshot.encode_jpeg). Prints the median CPU per
snapshot and the share of a core per stream at 5 s and 10 s intervals (issue target: at
most 0.5 % of a core per stream at 5 s).

Run: python -m bench.periodic_snapshots [--seconds 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from liverec.media import flv
from liverec.media.h264 import AvcConfig, access_unit_annexb
from liverec.outputs.snapshots import decode_keyframe
from liverec.postprocess.snapshot import encode_jpeg

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from bench.snapshot import make_720p

from support.mediagen import read_flv_tags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="media length")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        media = make_720p(Path(tmp) / "in.flv", args.seconds)
        tags = [t for t in read_flv_tags(media) if t.type == 9]
        avc: AvcConfig | None = None
        keyframes: list[bytes] = []
        for tag in tags:
            video = flv.parse_video(tag.payload)
            if video.packet_type == 0:
                avc = AvcConfig.parse(video.body)
            elif video.packet_type == 1 and video.keyframe:
                keyframes.append(tag.payload)
        assert avc is not None and keyframes
        encode_jpeg(
            decode_keyframe(access_unit_annexb(flv.parse_video(keyframes[0]).body, avc, True))
        )
        costs = []
        for payload in keyframes * 3:
            began = time.process_time()
            annexb = access_unit_annexb(flv.parse_video(payload).body, avc, True)
            jpeg = encode_jpeg(decode_keyframe(annexb))
            costs.append(time.process_time() - began)
            assert jpeg[:2] == b"\xff\xd8"
    med = statistics.median(costs)
    print(
        f"periodic snapshot of a 720p keyframe ({len(costs)} runs): median {med * 1000:.1f} ms CPU"
    )
    for interval in (5, 10):
        print(f"  every {interval} s: {med / interval * 100:.2f} % of a core per stream")
    print("  target: <= 0.5 % of a core per stream at 5 s")


if __name__ == "__main__":
    main()
