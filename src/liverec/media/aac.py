"""AAC helpers: the AudioSpecificConfig from the FLV sequence header, and ADTS framing."""

from __future__ import annotations

from dataclasses import dataclass

from liverec.errors import MediaError

SAMPLE_RATES = (
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
)  # fmt: skip

_SBR = 5  # HE-AAC
_PS = 29  # HE-AACv2
_MAX_ADTS_FRAME = (1 << 13) - 1


@dataclass(frozen=True)
class AacConfig:
    """What ADTS needs. For HE-AAC the core (AAC-LC) object type and sample rate are kept:
    ADTS signals SBR implicitly, and a frame is then 1024 samples at the core rate."""

    object_type: int
    sample_rate: int
    sampling_index: int
    channels: int

    @classmethod
    def parse(cls, asc: bytes) -> AacConfig:
        """Parse an AudioSpecificConfig (ISO 14496-3 1.6.2.1)."""
        if len(asc) < 2:
            raise MediaError("AudioSpecificConfig too short")
        value = int.from_bytes(asc[:8], "big")
        left = min(len(asc), 8) * 8

        def take(n: int) -> int:
            nonlocal left
            if n > left:
                raise MediaError("AudioSpecificConfig truncated")
            left -= n
            return (value >> left) & ((1 << n) - 1)

        def object_type() -> int:
            ot = take(5)
            return 32 + take(6) if ot == 31 else ot

        def sampling() -> tuple[int, int]:
            index = take(4)
            if index == 15:
                rate = take(24)
                if rate not in SAMPLE_RATES:
                    raise MediaError(f"AAC sample rate {rate} has no ADTS index")
                return SAMPLE_RATES.index(rate), rate
            if index >= len(SAMPLE_RATES):
                raise MediaError(f"bad AAC sampling index {index}")
            return index, SAMPLE_RATES[index]

        ot = object_type()
        index, rate = sampling()
        channels = take(4)
        if ot in (_SBR, _PS):
            sampling()  # extension (output) sample rate; ADTS carries the core one
            ot = object_type()
        if not 1 <= ot <= 4:
            raise MediaError(f"AAC object type {ot} cannot be carried in ADTS")
        if channels > 7:
            raise MediaError(f"bad AAC channel configuration {channels}")
        return cls(ot, rate, index, channels)

    def adts_header(self, payload_len: int) -> bytes:
        """The 7-byte ADTS header (no CRC) for one raw AAC frame of payload_len bytes."""
        length = payload_len + 7
        if payload_len < 0 or length > _MAX_ADTS_FRAME:
            raise MediaError(f"AAC frame of {payload_len} bytes does not fit ADTS")
        profile = self.object_type - 1
        return bytes(
            (
                0xFF,
                0xF1,  # MPEG-4, layer 0, protection_absent
                (profile << 6) | (self.sampling_index << 2) | (self.channels >> 2),
                ((self.channels & 0x03) << 6) | (length >> 11),
                (length >> 3) & 0xFF,
                ((length & 0x07) << 5) | 0x1F,  # buffer fullness 0x7FF: variable rate
                0xFC,  # ... and one raw data block
            )
        )

    @property
    def frame_duration_90k(self) -> float:
        return 1024 * 90000 / self.sample_rate


def parse_adts(data: bytes) -> tuple[AacConfig, int, int]:
    """An ADTS header -> (config, header length, whole frame length)."""
    if len(data) < 7 or data[0] != 0xFF or data[1] & 0xF6 != 0xF0:
        raise MediaError("no ADTS sync word")
    header_len = 7 if data[1] & 0x01 else 9
    profile = data[2] >> 6
    index = (data[2] >> 2) & 0x0F
    if index >= len(SAMPLE_RATES):
        raise MediaError(f"bad ADTS sampling index {index}")
    channels = ((data[2] & 0x01) << 2) | (data[3] >> 6)
    length = ((data[3] & 0x03) << 11) | (data[4] << 3) | (data[5] >> 5)
    if length < header_len:
        raise MediaError("ADTS frame length shorter than its header")
    return AacConfig(profile + 1, SAMPLE_RATES[index], index, channels), header_len, length
