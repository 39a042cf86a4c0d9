"""Real AAC-LC frames with ADTS headers, for tests of how audio is muxed and read back."""

from __future__ import annotations

import io
from typing import Any

import av
import numpy as np

from liverec.media.aac import AacConfig

# AudioSpecificConfig of AAC-LC stereo by sampling rate (object type 2, its index, 2 ch).
_CONFIGS = {44100: bytes([0x12, 0x10]), 48000: bytes([0x11, 0x90]), 22050: bytes([0x13, 0x90])}


def aac_frames(count: int, rate: int = 44100) -> list[bytes]:
    """`count` frames of a 440 Hz tone from FFmpeg's AAC encoder, each with its ADTS
    header."""
    config = AacConfig.parse(_CONFIGS[rate])
    enc = av.CodecContext.create("aac", "w")
    enc.sample_rate, enc.layout, enc.format = rate, "stereo", "fltp"
    raw: list[bytes] = []
    for i in range(count + 4):  # the encoder's delay
        t = (np.arange(1024) + i * 1024) / rate
        tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp", layout="stereo")
        frame.sample_rate, frame.pts = rate, i * 1024
        raw += [bytes(p) for p in enc.encode(frame)]
    assert len(raw) >= count
    return [config.adts_header(len(r)) + r for r in raw[:count]]


def demuxed_audio(data: bytes) -> list[tuple[int, bytes]]:
    """(PTS, frame) of every audio packet as FFmpeg's demuxer reads these TS bytes."""
    container: Any = av.open(io.BytesIO(data), format="mpegts")
    with container:
        stream = container.streams.audio[0]
        return [(int(p.pts), bytes(p)) for p in container.demux(stream) if p.size]
