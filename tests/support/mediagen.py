"""Test media: H.264 + AAC files whose every video frame shows its own number.

The frame number is drawn as 16 big blocks (white = 1, black = 0, most significant first)
across the top of the picture, which survive lossy encoding; `read_frame_number` reads them
back, so an end-to-end test can check that every frame arrived, in order, at the right time.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.logging
import numpy as np
import numpy.typing as npt

BITS = 16
_BG = 128  # mid-grey: far from both block levels


@dataclass(frozen=True)
class _Layout:
    cols: int
    rows: int
    block: int


def _layout(width: int, height: int) -> _Layout:
    # One row of 16 when the picture is wide enough for 16 px blocks, else two rows of 8.
    cols = BITS if width >= BITS * 16 else BITS // 2
    rows = BITS // cols
    block = min(width // cols, height // (rows * 3))
    if block < 16:
        raise ValueError(f"{width}x{height} is too small for 16x16 px frame-number blocks")
    return _Layout(cols, rows, block)


def _luma(
    number: int, width: int, height: int, layout: _Layout, texture: npt.NDArray[np.uint8] | None
) -> npt.NDArray[np.uint8]:
    if texture is not None:
        # Scrolling noise: content that really costs bits, for bitrate-bound tests.
        shift = (number * 7) % texture.shape[1]
        y = np.roll(texture, shift, axis=1)[:height, :width].copy()
    else:
        y = np.full((height, width), _BG, np.uint8)
        bar = (number * 4) % width  # a moving bar below the blocks, so frames differ
        y[layout.rows * layout.block + 8 :, bar : bar + 8] = 235
    b = layout.block
    for bit in range(BITS):
        row, col = divmod(bit, layout.cols)
        on = (number >> (BITS - 1 - bit)) & 1
        y[row * b : (row + 1) * b, col * b : (col + 1) * b] = 255 if on else 0
    return y


def read_frame_number(frame: Any) -> int:
    """The number drawn by make_media into a decoded av.VideoFrame."""
    y = frame.to_ndarray(format="gray")
    layout = _layout(frame.width, frame.height)
    b = layout.block
    m = b // 4  # block centres only: edges ring after lossy coding
    number = 0
    for bit in range(BITS):
        row, col = divmod(bit, layout.cols)
        mean = float(y[row * b + m : (row + 1) * b - m, col * b + m : (col + 1) * b - m].mean())
        number = (number << 1) | (mean >= 128)
    return number


def _tone(start: int, count: int, rate: int, channels: int) -> npt.NDArray[np.float32]:
    t = np.arange(start, start + count, dtype=np.float64) / rate
    wave = (0.3 * np.sin(2 * math.pi * 440.0 * t)).astype(np.float32)
    return np.tile(wave, (channels, 1))


def make_media(
    path: Path,
    seconds: float,
    *,
    fps: int = 25,
    gop: int = 50,
    width: int = 320,
    height: int = 240,
    video: bool = True,
    audio: bool = True,
    fmt: str = "flv",
    audio_rate: int = 44100,
    bitrate: int | None = None,
    bframes: int = 0,
    profile: str | None = None,
    start_number: int = 0,
) -> Path:
    """Write an FLV (or an MP4, by `fmt` or a .mp4 suffix) of H.264 and AAC test media.

    Video: libx264 yuv420p, a closed GOP every `gop` frames, no B-frames unless asked, frame
    `i` showing the number `start_number + i`. `bitrate` switches to a scrolling-noise picture
    coded at that rate (otherwise quality-based, small files). `profile` is x264's cap
    (default baseline, main with B-frames); ultrafast codes without CABAC, so the SPS says
    baseline (66) unless B-frames are used. Audio: AAC, a 440 Hz tone, stereo. With audio, an
    FLV's timeline is shifted by the AAC encoder delay (1024 samples): its first video frame is
    at 23 ms (44.1 kHz), so take expected times from the file, not from the frame number."""
    if not (video or audio):
        raise ValueError("nothing to write")
    if path.suffix == ".mp4":
        fmt = "mp4"
    frames = round(seconds * fps)
    with av.open(str(path), "w", format=fmt) as out:
        vstream: Any = None
        astream: Any = None
        if video:
            layout = _layout(width, height)
            vstream = out.add_stream("libx264", rate=fps)
            vstream.width, vstream.height, vstream.pix_fmt = width, height, "yuv420p"
            params = f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={bframes}:open-gop=0"
            options = {"preset": "ultrafast", "x264-params": params}
            options["profile"] = profile or ("main" if bframes else "baseline")
            if bitrate:
                vstream.bit_rate = bitrate
                params += f":vbv-maxrate={bitrate // 1000}:vbv-bufsize={bitrate // 1000}"
                options["x264-params"] = params
            vstream.codec_context.options = options
            vstream.codec_context.time_base = Fraction(1, fps)
        if audio:
            astream = out.add_stream("aac", rate=audio_rate, layout="stereo")
            astream.codec_context.time_base = Fraction(1, audio_rate)
        texture = None
        if video and bitrate:
            rng = np.random.default_rng(1)
            small = rng.integers(40, 216, (height // 2 + 1, width // 2 + 2), dtype=np.uint8)
            texture = np.repeat(np.repeat(small, 2, axis=0), 2, axis=1)

        def video_frames() -> Iterator[Any]:
            chroma = np.full((height // 2, width), 128, np.uint8)
            for i in range(frames):
                y = _luma(start_number + i, width, height, layout, texture)
                frame = av.VideoFrame.from_ndarray(np.vstack((y, chroma)), format="yuv420p")
                frame.pts = i
                frame.time_base = Fraction(1, fps)
                yield frame

        def audio_frames() -> Iterator[Any]:
            total = round(seconds * audio_rate)
            for start in range(0, total, 1024):
                count = min(1024, total - start)
                frame = av.AudioFrame.from_ndarray(
                    _tone(start, count, audio_rate, 2), format="fltp", layout="stereo"
                )
                frame.sample_rate = audio_rate
                frame.pts = start
                frame.time_base = Fraction(1, audio_rate)
                yield frame

        # Encode in presentation order, interleaving by time so the muxer buffers little.
        vit = video_frames() if video else iter(())
        ait = audio_frames() if audio else iter(())
        v_next, a_next = next(vit, None), next(ait, None)
        while v_next is not None or a_next is not None:
            if a_next is None or (v_next is not None and v_next.time <= a_next.time):
                out.mux(vstream.encode(v_next))
                v_next = next(vit, None)
            else:
                out.mux(astream.encode(a_next))
                a_next = next(ait, None)
        if vstream is not None:
            out.mux(vstream.encode(None))
        if astream is not None:
            out.mux(astream.encode(None))
    return path


@contextmanager
def libav_warnings() -> Iterator[list[tuple[int, str, str]]]:
    """Collect what FFmpeg logs at WARNING or worse inside the block (demuxer and decoder
    complaints, e.g. 'PES packet size mismatch', 'non-existing PPS')."""
    previous = av.logging.get_level()
    av.logging.set_level(av.logging.WARNING)
    try:
        with av.logging.Capture() as logs:
            yield logs
    finally:
        av.logging.set_level(previous)


def _open(path_or_url: str) -> Any:
    options = {}
    if path_or_url.endswith(".m3u8"):
        options["protocol_whitelist"] = "file,http,https,tcp,tls,crypto"
    return av.open(path_or_url, options=options)


def decode_frames(path_or_url: str) -> list[tuple[float, int]]:
    """(presentation time in seconds, frame number) of every video frame, in output order."""
    out = []
    with _open(path_or_url) as container:
        for frame in container.decode(video=0):
            time = math.nan if frame.time is None else float(frame.time)
            out.append((time, read_frame_number(frame)))
    return out


def audio_duration(path: str) -> float:
    """Seconds of audio the file decodes to (encoder priming included)."""
    samples = 0
    rate = 0
    with _open(path) as container:
        for frame in container.decode(audio=0):
            samples += frame.samples
            rate = frame.sample_rate
    return samples / rate if rate else 0.0


@dataclass(frozen=True)
class FlvTag:
    type: int  # 8 audio, 9 video, 18 script data
    timestamp: int  # ms, 32-bit (extended byte applied)
    payload: bytes


def read_flv_tags(path: Path) -> list[FlvTag]:
    """The tags of an FLV file: exactly what an RTMP publisher sends as messages."""
    data = path.read_bytes()
    if data[:3] != b"FLV":
        raise ValueError(f"{path} is not an FLV file")
    pos = int.from_bytes(data[5:9], "big") + 4  # header, then PreviousTagSize0
    tags = []
    while pos + 11 <= len(data):
        tag_type = data[pos] & 0x1F
        size = int.from_bytes(data[pos + 1 : pos + 4], "big")
        ts = int.from_bytes(data[pos + 4 : pos + 7], "big") | (data[pos + 7] << 24)
        body = data[pos + 11 : pos + 11 + size]
        if len(body) < size:
            break  # truncated last tag
        tags.append(FlvTag(tag_type, ts, body))
        pos += 11 + size + 4
    return tags
