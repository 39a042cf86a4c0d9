"""Remux cost: FLV tags (as RTMP delivers them) -> MPEG-TS, our pure TsMuxer vs PyAV's muxer.

Input: a 30 s 1280x720 30 fps ~3 Mbit/s H.264 + AAC FLV made by tests/support/mediagen.
Prints CPU seconds per media second, as % of one core, for:
  (a) liverec.media: parse_video/parse_audio -> access_unit_annexb / ADTS -> TsMuxer
  (b) PyAV: av.Packet built from the same FLV payloads -> av.open(..., format="mpegts")
      (FFmpeg's mpegts muxer adds h264_mp4toannexb and ADTS itself, from the extradata).
Both cut a segment (PAT/PMT; for PyAV, a new muxer) at the first keyframe after 4 s.

Run: python bench/remux.py [--seconds 30] [--repeat 5]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from liverec.media.aac import AacConfig
from liverec.media.flv import parse_audio, parse_video
from liverec.media.h264 import AvcConfig, access_unit_annexb
from liverec.media.ts import TsMuxer
from support.mediagen import FlvTag, make_media, read_flv_tags

SEGMENT_MS = 4000


def ours(tags: list[FlvTag]) -> int:
    mux = TsMuxer(video=True, audio=True)
    avc: AvcConfig | None = None
    asc: AacConfig | None = None
    start: int | None = None
    segments: list[list[bytes]] = []
    out: list[bytes] = []
    for tag in tags:
        if tag.type == 9:
            v = parse_video(tag.payload)
            if v.packet_type == 0:
                avc = AvcConfig.parse(v.body)
                continue
            if v.packet_type != 1 or avc is None:
                continue
            if v.keyframe and (start is None or tag.timestamp - start >= SEGMENT_MS):
                start = tag.timestamp
                out = [mux.segment_header()]
                segments.append(out)
            if start is None:
                continue
            au = access_unit_annexb(v.body, avc, v.keyframe)
            ts = tag.timestamp * 90
            out.append(mux.video(ts + v.cts * 90, ts, au, v.keyframe))
        elif tag.type == 8:
            a = parse_audio(tag.payload)
            if a.packet_type == 0:
                asc = AacConfig.parse(a.body)
                continue
            if start is None or asc is None:
                continue
            out.append(mux.audio(tag.timestamp * 90, asc.adts_header(len(a.body)) + a.body))
    return sum(len(b"".join(seg)) for seg in segments)


def pyav(tags: list[FlvTag], templates: Path) -> int:
    with av.open(str(templates)) as src:
        video_template = src.streams.video[0]
        audio_template = src.streams.audio[0]
        total = 0
        start: int | None = None
        extradata: dict[str, bytes] = {}
        buf: io.BytesIO | None = None
        out: Any = None
        streams: dict[str, Any] = {}

        def open_segment() -> None:
            nonlocal buf, out, total
            close_segment()
            buf = io.BytesIO()
            out = av.open(buf, "w", format="mpegts")
            for kind, template in (("video", video_template), ("audio", audio_template)):
                stream = out.add_stream_from_template(template, opaque=True)
                stream.codec_context.extradata = extradata[kind]
                stream.time_base = Fraction(1, 1000)
                streams[kind] = stream

        def close_segment() -> None:
            nonlocal total
            if out is not None and buf is not None:
                out.close()
                total += len(buf.getvalue())

        for tag in tags:
            if tag.type == 9:
                v = parse_video(tag.payload)
                if v.packet_type == 0:
                    extradata["video"] = v.body
                    continue
                if v.packet_type != 1:
                    continue
                if v.keyframe and (start is None or tag.timestamp - start >= SEGMENT_MS):
                    start = tag.timestamp
                    open_segment()
                if start is None:
                    continue
                packet = av.Packet(v.body)
                packet.stream = streams["video"]
                packet.time_base = Fraction(1, 1000)
                packet.dts = tag.timestamp
                packet.pts = tag.timestamp + v.cts
                packet.is_keyframe = v.keyframe
                out.mux(packet)
            elif tag.type == 8:
                a = parse_audio(tag.payload)
                if a.packet_type == 0:
                    extradata["audio"] = a.body
                    continue
                if start is None:
                    continue
                packet = av.Packet(a.body)
                packet.stream = streams["audio"]
                packet.time_base = Fraction(1, 1000)
                packet.pts = packet.dts = tag.timestamp
                out.mux(packet)
        close_segment()
    return total


def measure(fn: Callable[[], int], repeat: int) -> tuple[float, int]:
    best, size = float("inf"), 0
    for _ in range(repeat):
        t0 = time.process_time()
        size = fn()
        best = min(best, time.process_time() - t0)
    return best, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    path = Path(tempfile.gettempdir()) / f"liverec-bench-720p-3M-{args.seconds:g}s.flv"
    if not path.exists():
        t0 = time.perf_counter()
        make_media(path, args.seconds, fps=30, gop=60, width=1280, height=720, bitrate=3_000_000)
        print(f"generated {path} in {time.perf_counter() - t0:.1f} s")
    tags = read_flv_tags(path)
    media = max(t.timestamp for t in tags) / 1000
    mbit = sum(len(t.payload) for t in tags if t.type == 9) * 8 / media / 1e6
    print(f"input: {path.name}, {len(tags)} tags, {media:.1f} s, video {mbit:.2f} Mbit/s")

    for name, fn in (
        ("liverec TsMuxer", lambda: ours(tags)),
        ("PyAV mpegts    ", lambda: pyav(tags, path)),
    ):
        cpu, size = measure(fn, args.repeat)
        print(
            f"{name}: {cpu * 1000:7.1f} ms CPU for {media:.0f} s of media = "
            f"{cpu / media * 100:.3f} % of a core  ({size / 1e6:.2f} MB of TS)"
        )


if __name__ == "__main__":
    main()
