"""FLV tag bodies as carried in RTMP audio (type 8) and video (type 9) messages.

Only the tag *body* is parsed here (the RTMP message header already gave type and timestamp).
Enhanced RTMP (HEVC, AV1, Opus, ...) is recognised just far enough to name its FourCC, so a
refusal can say which codec the publisher sent. The name tables are here too: pure lookups."""

from __future__ import annotations

from typing import NamedTuple

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
# sound_format of an Enhanced-RTMP audio tag: a FourCC follows (E-RTMP v2, SoundFormat.ExHeader).
SOUND_EX_HEADER = 9

_EX_HEADER = 0x80
# Enhanced RTMP packet types that put something before the FourCC (E-RTMP v2).
_VIDEO_METADATA = 4
_VIDEO_MULTITRACK = 6
_AUDIO_MULTITRACK = 5
_MOD_EX = 7  # same value for audio and video
_COMMAND_FRAME = 5  # video frame type: a one-byte command, no FourCC, no media

# What the publisher sent, in words. Codec ids from the FLV spec (VideoTagHeader CodecID,
# AudioTagHeader SoundFormat); 12 is the HEVC id Chinese CDNs and encoders use outside it.
VIDEO_CODECS: dict[int, str] = {
    1: "JPEG",
    2: "Sorenson H.263",
    3: "Screen video",
    4: "On2 VP6",
    5: "On2 VP6 with alpha channel",
    6: "Screen video version 2",
    7: "H.264",
    12: "HEVC (non-standard FLV codec id 12)",
}
AUDIO_CODECS: dict[int, str] = {
    0: "Linear PCM (platform endian)",
    1: "ADPCM",
    2: "MP3",
    3: "Linear PCM (little endian)",
    4: "Nellymoser 16 kHz mono",
    5: "Nellymoser 8 kHz mono",
    6: "Nellymoser",
    7: "G.711 A-law",
    8: "G.711 mu-law",
    10: "AAC",
    11: "Speex",
    14: "MP3 8 kHz",
    15: "Device-specific sound",
}
# Enhanced RTMP v1/v2 VideoFourCc and AudioFourCc.
VIDEO_FOURCCS: dict[str, str] = {
    "avc1": "H.264",
    "hvc1": "HEVC",
    "av01": "AV1",
    "vp09": "VP9",
    "vp08": "VP8",
}
AUDIO_FOURCCS: dict[str, str] = {
    "mp4a": "AAC",
    "Opus": "Opus",
    ".mp3": "MP3",
    "fLaC": "FLAC",
    "ac-3": "AC-3",
    "ec-3": "E-AC-3",
}


class VideoTag(NamedTuple):  # a NamedTuple: one per frame, cheaper than a frozen dataclass
    frame_type: int  # 1 keyframe, 2 inter, 3 disposable, 4 generated key, 5 info/command
    codec_id: int  # 7 AVC; -1 for an Enhanced-RTMP tag
    packet_type: int | None  # AVC only: 0 sequence header, 1 NALUs, 2 end of sequence
    cts: int  # AVC only: signed composition time offset in ms
    body: bytes
    fourcc: str = ""  # Enhanced RTMP only ("" for a command frame, which names no codec)

    @property
    def keyframe(self) -> bool:
        return self.frame_type == 1


class AudioTag(NamedTuple):
    sound_format: int  # 10 AAC; 9 Enhanced RTMP
    packet_type: int | None  # AAC only: 0 AudioSpecificConfig, 1 raw frame
    body: bytes
    fourcc: str = ""  # Enhanced RTMP only


def parse_video(payload: bytes) -> VideoTag:
    """Parse the body of an RTMP video message (an FLV VIDEODATA tag body)."""
    if not payload:
        raise MediaError("empty video tag")
    first = payload[0]
    if first & _EX_HEADER:
        # ExVideoTagHeader: 3-bit frame type, 4-bit packet type, then a FourCC. We only need
        # to know it is not AVC and which codec it is; the body is not parsed.
        frame_type, packet_type = (first >> 4) & 0x07, first & 0x0F
        if frame_type == _COMMAND_FRAME and packet_type != _VIDEO_METADATA:
            if len(payload) < 2:
                raise MediaError("truncated enhanced video tag")
            return VideoTag(frame_type, CODEC_UNSUPPORTED, None, 0, bytes(payload[2:]))
        fourcc, end = _ex_fourcc(payload, packet_type, _VIDEO_MULTITRACK, "video")
        return VideoTag(frame_type, CODEC_UNSUPPORTED, None, 0, bytes(payload[end:]), fourcc)
    frame_type = first >> 4
    codec_id = first & 0x0F
    if codec_id != CODEC_AVC:
        return VideoTag(frame_type, codec_id, None, 0, bytes(payload[1:]))
    if len(payload) < 5:
        raise MediaError("truncated AVC video tag")
    packet_type = payload[1]
    if packet_type > AVC_END_OF_SEQUENCE:
        raise MediaError(f"bad AVC packet type {packet_type}")
    cts = payload[2] << 16 | payload[3] << 8 | payload[4]
    if cts & 0x800000:
        cts -= 0x1000000
    return VideoTag(frame_type, codec_id, packet_type, cts, bytes(payload[5:]))


def parse_audio(payload: bytes) -> AudioTag:
    """Parse the body of an RTMP audio message (an FLV AUDIODATA tag body)."""
    if not payload:
        raise MediaError("empty audio tag")
    sound_format = payload[0] >> 4
    if sound_format == SOUND_EX_HEADER:
        fourcc, end = _ex_fourcc(payload, payload[0] & 0x0F, _AUDIO_MULTITRACK, "audio")
        return AudioTag(sound_format, None, bytes(payload[end:]), fourcc)
    if sound_format != SOUND_AAC:
        return AudioTag(sound_format, None, bytes(payload[1:]))
    if len(payload) < 2:
        raise MediaError("truncated AAC audio tag")
    packet_type = payload[1]
    if packet_type > AAC_RAW:
        raise MediaError(f"bad AAC packet type {packet_type}")
    return AudioTag(sound_format, packet_type, bytes(payload[2:]))


def _ex_fourcc(payload: bytes, packet_type: int, multitrack: int, kind: str) -> tuple[str, int]:
    """The FourCC of an Enhanced RTMP tag and the offset just past it.

    E-RTMP v2 may put ModEx blocks (1-65536 bytes each, then a new packet type nibble) and,
    for multitrack, a type byte before the FourCC; with ManyTracksManyCodecs the FourCC that
    follows is the first track's. Anything cut short is malformed media, not a codec."""
    pos = 1
    while packet_type == _MOD_EX:
        if len(payload) < pos + 1:
            raise MediaError(f"truncated enhanced {kind} tag")
        size = payload[pos] + 1
        pos += 1
        if size == 256:
            size = int.from_bytes(payload[pos : pos + 2], "big") + 1
            pos += 2
        pos += size
        if len(payload) < pos + 1:
            raise MediaError(f"truncated enhanced {kind} tag")
        packet_type = payload[pos] & 0x0F
        pos += 1
    if packet_type == multitrack:
        pos += 1  # multitrack type and the tracks' packet type
    if len(payload) < pos + 4:
        raise MediaError(f"truncated enhanced {kind} tag")
    return bytes(payload[pos : pos + 4]).decode("latin-1"), pos + 4


def _fourcc_name(fourcc: str, names: dict[str, str]) -> str:
    # Printable as sent; other bytes escaped, so a log line or client message stays one line.
    shown = "".join(c if " " <= c <= "~" else f"\\x{ord(c):02x}" for c in fourcc)
    name = names.get(fourcc)
    if name is None:
        return f"unknown (Enhanced RTMP FourCC '{shown}')"
    return f"{name} (Enhanced RTMP FourCC '{shown}')"


def video_codec_name(tag: VideoTag) -> str:
    """The video codec of a tag in words, e.g. "Sorenson H.263" or
    "HEVC (Enhanced RTMP FourCC 'hvc1')"."""
    if tag.codec_id == CODEC_UNSUPPORTED:
        if not tag.fourcc:
            return "Enhanced RTMP (a command frame, no codec named)"
        return _fourcc_name(tag.fourcc, VIDEO_FOURCCS)
    return VIDEO_CODECS.get(tag.codec_id, f"unknown (FLV codec id {tag.codec_id})")


def audio_codec_name(tag: AudioTag) -> str:
    """The audio codec of a tag in words, e.g. "MP3" or "Opus (Enhanced RTMP FourCC 'Opus')"."""
    if tag.sound_format == SOUND_EX_HEADER:
        return _fourcc_name(tag.fourcc, AUDIO_FOURCCS)
    return AUDIO_CODECS.get(tag.sound_format, f"unknown (FLV sound format {tag.sound_format})")


def metadata_codec_name(value: object, *, video: bool) -> str:
    """An onMetaData videocodecid/audiocodecid in words.

    The value is an FLV codec id (a number), a FourCC packed big-endian into a number, as
    Enhanced RTMP publishers send it ('hvc1' == 1752589105.0), or a string some encoders use
    ("avc1", "H264", ".mp3"). Anything else is shown as it came."""
    ids, fourccs = (VIDEO_CODECS, VIDEO_FOURCCS) if video else (AUDIO_CODECS, AUDIO_FOURCCS)
    if isinstance(value, float) and value.is_integer():  # AMF0 numbers decode as float
        number = int(value)
        if number in ids:
            return ids[number]
        if 0x01000000 <= number <= 0xFFFFFFFF:
            return _fourcc_name(number.to_bytes(4, "big").decode("latin-1"), fourccs)
        kind = "codec id" if video else "sound format"
        return f"unknown (FLV {kind} {number})"
    if isinstance(value, str) and len(value) == 4:
        return _fourcc_name(value, fourccs)
    return f"unknown ({repr(value)[:40]})"  # bounded: clients show ~255 bytes of a status
