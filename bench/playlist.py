"""What one version of a growing live playlist costs the event loop, by the recording's
length: the writer renders it after every segment (recorder/hls.py). With each segment's
lines kept (what the writer does), against rendering every entry again (what it did; a
recording of max_file_duration 1 h at 4 s segments reaches 900 entries).

    python bench/playlist.py [--entries 15 150 900]
"""

from __future__ import annotations

import argparse
import timeit
from datetime import UTC, datetime, timedelta

from liverec.media.m3u8 import SegmentEntry, segment_lines
from liverec.recorder.playlist import render_playlist

T0 = datetime(2026, 12, 6, tzinfo=UTC)


def figures(n: int) -> tuple[float, float, int]:
    """ms per version with the lines kept, ms rendered again, and its size, at n entries."""
    entries = [
        SegmentEntry(
            uri=f"abcdef0123456789_20261206000000000_{i}.ts",
            duration=4.0,
            program_date_time=T0 + timedelta(seconds=4 * i, microseconds=33_333),
            discontinuity=i % 300 == 0,
        )
        for i in range(n)
    ]
    rendered = [segment_lines(e) for e in entries]

    def kept() -> bytes:
        text = render_playlist(entries, ended=False, target_duration=4, rendered=rendered, fits=4)
        return text.encode()

    def again() -> bytes:
        return render_playlist(entries, ended=False, target_duration=4).encode()

    assert kept() == again()
    number = max(5, 20_000 // n)
    slow = max(2, number // 20)
    t_kept = min(timeit.repeat(kept, number=number, repeat=5)) / number
    t_again = min(timeit.repeat(again, number=slow, repeat=5)) / slow
    return t_kept * 1000, t_again * 1000, len(kept())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, nargs="+", default=[15, 150, 900, 2700])
    args = parser.parse_args()
    print("entries | kept lines (ms) | rendered again (ms) | bytes")
    for n in args.entries:
        kept, again, size = figures(n)
        print(f"{n:7d} | {kept:15.3f} | {again:19.3f} | {size}")


if __name__ == "__main__":
    main()
