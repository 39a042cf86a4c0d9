"""H.264 helpers: the AVCDecoderConfigurationRecord, SPS size, AVCC -> Annex B access units."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from liverec.errors import MediaError

START_CODE = b"\x00\x00\x00\x01"
_U32 = struct.Struct(">I")
AUD = START_CODE + b"\x09\xf0"  # access unit delimiter, primary_pic_type 7 (any slice type)

NAL_SLICE = 1
NAL_IDR = 5
NAL_SEI = 6
NAL_SPS = 7
NAL_PPS = 8
NAL_AUD = 9

# profile_idc values whose SPS carries chroma_format_idc, bit depths and scaling matrices.
_HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})


@dataclass(frozen=True)
class AvcConfig:
    nal_length_size: int
    sps: list[bytes]
    pps: list[bytes]
    width: int
    height: int
    profile: int
    level: int

    @classmethod
    def parse(cls, record: bytes) -> AvcConfig:
        """Parse an AVCDecoderConfigurationRecord (ISO 14496-15 5.2.4.1)."""
        if len(record) < 7:
            raise MediaError("AVC config record too short")
        if record[0] != 1:
            raise MediaError(f"AVC config record version {record[0]}")
        profile, level = record[1], record[3]
        nal_length_size = (record[4] & 0x03) + 1
        if nal_length_size == 3:
            raise MediaError("AVC config record: NAL length size 3")
        sps, pos = _parameter_sets(record, 6, record[5] & 0x1F)
        if pos >= len(record):
            raise MediaError("AVC config record truncated before PPS")
        pps, pos = _parameter_sets(record, pos + 1, record[pos])
        if not sps or not pps:
            raise MediaError("AVC config record without SPS or PPS")
        try:
            width, height = sps_dimensions(sps[0])
        except (MediaError, IndexError):
            width = height = 0  # a picture size we cannot read is no reason to refuse the stream
        return cls(nal_length_size, sps, pps, width, height, profile, level)

    def parameter_sets_annexb(self) -> bytes:
        return b"".join(START_CODE + nal for nal in (*self.sps, *self.pps))


def _parameter_sets(record: bytes, pos: int, count: int) -> tuple[list[bytes], int]:
    out = []
    for _ in range(count):
        if pos + 2 > len(record):
            raise MediaError("AVC config record truncated")
        size = int.from_bytes(record[pos : pos + 2], "big")
        pos += 2
        if size == 0 or pos + size > len(record):
            raise MediaError("AVC config record: bad parameter set length")
        out.append(bytes(record[pos : pos + size]))
        pos += size
    return out, pos


class _Bits:
    """MSB-first bit reader over an RBSP (emulation prevention bytes already removed)."""

    def __init__(self, data: bytes) -> None:
        self._value = int.from_bytes(data, "big")
        self._left = len(data) * 8

    def u(self, n: int) -> int:
        if n > self._left:
            raise MediaError("SPS truncated")
        self._left -= n
        return (self._value >> self._left) & ((1 << n) - 1)

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise MediaError("SPS: bad exp-Golomb code")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


def unescape_rbsp(nal: bytes) -> bytes:
    """Remove emulation prevention bytes (00 00 03 -> 00 00)."""
    if b"\x00\x00\x03" not in nal:
        return nal
    out = bytearray()
    i = 0
    while True:
        j = nal.find(b"\x00\x00\x03", i)
        if j < 0:
            out += nal[i:]
            return bytes(out)
        out += nal[i : j + 2]
        i = j + 3


def _skip_scaling_list(bits: _Bits, size: int) -> None:
    last = next_scale = 8
    for _ in range(size):
        if next_scale != 0:
            next_scale = (last + bits.se() + 256) % 256
        last = last if next_scale == 0 else next_scale


def sps_dimensions(sps: bytes) -> tuple[int, int]:
    """Width and height in pixels, after cropping, from an SPS NAL unit (ITU-T H.264 7.3.2.1)."""
    if not sps or sps[0] & 0x1F != NAL_SPS:
        raise MediaError("not an SPS")
    bits = _Bits(unescape_rbsp(sps[1:]))
    profile_idc = bits.u(8)
    bits.u(16)  # constraint flags, reserved bits, level_idc
    bits.ue()  # seq_parameter_set_id
    chroma_format_idc = 1
    separate_colour_plane = 0
    if profile_idc in _HIGH_PROFILES:
        chroma_format_idc = bits.ue()
        if chroma_format_idc > 3:
            raise MediaError("SPS: bad chroma_format_idc")
        if chroma_format_idc == 3:
            separate_colour_plane = bits.u(1)
        bits.ue()  # bit_depth_luma_minus8
        bits.ue()  # bit_depth_chroma_minus8
        bits.u(1)  # qpprime_y_zero_transform_bypass_flag
        if bits.u(1):  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma_format_idc != 3 else 12):
                if bits.u(1):
                    _skip_scaling_list(bits, 16 if i < 6 else 64)
    bits.ue()  # log2_max_frame_num_minus4
    poc_type = bits.ue()
    if poc_type == 0:
        bits.ue()  # log2_max_pic_order_cnt_lsb_minus4
    elif poc_type == 1:
        bits.u(1)  # delta_pic_order_always_zero_flag
        bits.se()  # offset_for_non_ref_pic
        bits.se()  # offset_for_top_to_bottom_field
        cycle = bits.ue()
        if cycle > 255:
            raise MediaError("SPS: bad num_ref_frames_in_pic_order_cnt_cycle")
        for _ in range(cycle):
            bits.se()
    elif poc_type != 2:
        raise MediaError("SPS: bad pic_order_cnt_type")
    bits.ue()  # max_num_ref_frames
    bits.u(1)  # gaps_in_frame_num_value_allowed_flag
    width_mbs = bits.ue() + 1
    height_map_units = bits.ue() + 1
    frame_mbs_only = bits.u(1)
    if not frame_mbs_only:
        bits.u(1)  # mb_adaptive_frame_field_flag
    bits.u(1)  # direct_8x8_inference_flag
    width = width_mbs * 16
    height = (2 - frame_mbs_only) * height_map_units * 16
    if bits.u(1):  # frame_cropping_flag
        left, right, top, bottom = bits.ue(), bits.ue(), bits.ue(), bits.ue()
        if separate_colour_plane or chroma_format_idc == 0:
            unit_x, unit_y = 1, 2 - frame_mbs_only
        else:
            sub_w = 1 if chroma_format_idc == 3 else 2
            sub_h = 2 if chroma_format_idc == 1 else 1
            unit_x, unit_y = sub_w, sub_h * (2 - frame_mbs_only)
        width -= unit_x * (left + right)
        height -= unit_y * (top + bottom)
    if width <= 0 or height <= 0:
        raise MediaError("SPS: cropping leaves no picture")
    return width, height


def _split_avcc(data: bytes, nal_length_size: int) -> list[memoryview]:
    # memoryview slices: the NAL payloads are copied once, by the final join.
    view = memoryview(data)
    nals = []
    pos, end = 0, len(view)
    while pos < end:
        if pos + nal_length_size > end:
            raise MediaError("AVCC: truncated NAL length")
        if nal_length_size == 4:  # what encoders use: no slice object per NAL
            size = _U32.unpack_from(view, pos)[0]
        else:
            size = int.from_bytes(view[pos : pos + nal_length_size], "big")
        pos += nal_length_size
        if pos + size > end:
            raise MediaError("AVCC: NAL length past the end of the frame")
        if size:
            nals.append(view[pos : pos + size])
        pos += size
    return nals


def avcc_to_annexb(data: bytes, nal_length_size: int) -> bytes:
    """Length-prefixed NAL units -> start-code-prefixed ones."""
    nals = _split_avcc(data, nal_length_size)
    return START_CODE + START_CODE.join(nals) if nals else b""


def nal_types(data: bytes, nal_length_size: int) -> list[int]:
    return [nal[0] & 0x1F for nal in _split_avcc(data, nal_length_size)]


def access_unit_annexb(data: bytes, config: AvcConfig, keyframe: bool) -> bytes:
    """One FLV AVC frame -> one Annex B access unit as HLS/MPEG-TS wants it.

    Starts with an AUD; a keyframe gets SPS/PPS in band unless the publisher already sent them,
    so every segment (which starts at a keyframe) decodes on its own."""
    nals = _split_avcc(data, config.nal_length_size)
    types = [nal[0] & 0x1F for nal in nals]
    if NAL_AUD in types:
        nals = [nal for nal, t in zip(nals, types, strict=True) if t != NAL_AUD]
    parts: list[bytes | memoryview] = [AUD]
    if keyframe and NAL_SPS not in types:
        parts.append(config.parameter_sets_annexb())
    for nal in nals:  # one join: the frame's bytes are copied once
        parts.append(START_CODE)
        parts.append(nal)
    return b"".join(parts)
