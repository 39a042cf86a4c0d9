"""FLV tag bodies as carried in RTMP audio (type 8) and video (type 9) messages.

Only the tag *body* is parsed here (the RTMP message header already gave type and timestamp).
Enhanced RTMP (HEVC, AV1, ...) is recognised just far enough to be reported as unsupported."""

from __future__ import annotations

from dataclasses import dataclass

from liverec.errors import MediaError

CODEC_AVC = 7
SOUND_AAC = 10

# Video packet types for AVC (codec_id 7).
AVC_SEQUENCE_HEADER = 0
AVC_NALU = 1
AVC_END_OF_SEQUENCE = 2

# Audio packet types for AAC (sound_format 10).
AAC_SEQUENCE_HEADER = 0
AAC_RAW = 1

# codec_id reported for an Enhanced-RTMP video tag (FourCC codecs we do not record).
CODEC_UNSUPPORTED = -1

_EX_HEADER = 0x80


@dataclass(frozen=True, slots=True)
class VideoTag:
    frame_type: int  # 1 keyframe, 2 inter, 3 disposable, 4 generated key, 5 info/command
    codec_id: int  # 7 AVC; -1 for an Enhanced-RTMP tag
    packet_type: int | None  # AVC only: 0 sequence header, 1 NALUs, 2 end of sequence
    cts: int  # AVC only: signed composition time offset in ms
    body: bytes

    @property
    def keyframe(self) -> bool:
        return self.frame_type == 1


@dataclass(frozen=True, slots=True)
class AudioTag:
    sound_format: int  # 10 AAC
    packet_type: int | None  # AAC only: 0 AudioSpecificConfig, 1 raw frame
    body: bytes


def parse_video(payload: bytes) -> VideoTag:
    """Parse the body of an RTMP video message (an FLV VIDEODATA tag body)."""
    if not payload:
        raise MediaError("empty video tag")
    first = payload[0]
    if first & _EX_HEADER:
        # ExVideoTagHeader: 3-bit frame type, 4-bit packet type, then a FourCC. We only need
        # to know it is not AVC; the FourCC is checked so garbage is still called malformed.
        if len(payload) < 5:
            raise MediaError("truncated enhanced video tag")
        return VideoTag((first >> 4) & 0x07, CODEC_UNSUPPORTED, None, 0, bytes(payload[5:]))
    frame_type = first >> 4
    codec_id = first & 0x0F
    if codec_id != CODEC_AVC:
        return VideoTag(frame_type, codec_id, None, 0, bytes(payload[1:]))
    if len(payload) < 5:
        raise MediaError("truncated AVC video tag")
    packet_type = payload[1]
    if packet_type > AVC_END_OF_SEQUENCE:
        raise MediaError(f"bad AVC packet type {packet_type}")
    cts = int.from_bytes(payload[2:5], "big")
    if cts & 0x800000:
        cts -= 0x1000000
    return VideoTag(frame_type, codec_id, packet_type, cts, bytes(payload[5:]))


def parse_audio(payload: bytes) -> AudioTag:
    """Parse the body of an RTMP audio message (an FLV AUDIODATA tag body)."""
    if not payload:
        raise MediaError("empty audio tag")
    sound_format = payload[0] >> 4
    if sound_format != SOUND_AAC:
        return AudioTag(sound_format, None, bytes(payload[1:]))
    if len(payload) < 2:
        raise MediaError("truncated AAC audio tag")
    packet_type = payload[1]
    if packet_type > AAC_RAW:
        raise MediaError(f"bad AAC packet type {packet_type}")
    return AudioTag(sound_format, packet_type, bytes(payload[2:]))
