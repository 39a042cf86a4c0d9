"""Summarise py-spy raw (collapsed) stacks: the top functions by self and by total samples.

python bench/top_frames.py /tmp/prof.txt [--top 40] [--grep liverec]
"""

from __future__ import annotations

import argparse
import collections
import re
from pathlib import Path

_LINE = re.compile(r" \(([^)]*?)(?::\d+)?\)$")


def frame_name(frame: str) -> str:
    # "func (path/to/file.py:123)" -> "func (file.py)"
    m = re.match(r"(.*) \((.*?)(?::\d+)?\)$", frame)
    if not m:
        return frame
    return f"{m.group(1)} ({m.group(2).rsplit('/', 1)[-1]})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("path", type=Path)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--grep", default="")
    args = parser.parse_args()
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in args.path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        samples += n
        frames = [frame_name(f) for f in stack.split(";")]
        # the first frame is the thread name in py-spy's raw output
        own[frames[-1]] += n
        for f in set(frames[1:]):
            total[f] += n
    print(f"{samples} samples")
    print("-- self --")
    for name, n in own.most_common(args.top):
        if args.grep in name:
            print(f"{100 * n / samples:5.1f}%  {name}")
    print("-- total --")
    for name, n in total.most_common(args.top * 2):
        if args.grep in name:
            print(f"{100 * n / samples:5.1f}%  {name}")


if __name__ == "__main__":
    main()
