"""One recording's TS segments -> MP4 samples on one monotonic 90 kHz timeline.

Exact by construction: a sample's DTS and PTS are the TS ones (unwrapped past the 33-bit
wrap) plus the recording's current `shift`, which changes only at a segment the segmenter
marked as a discontinuity. There the shift is set so that the segment starts where the
previous one ended (its start plus its EXTINF duration), which is where an HLS player
plays it: a forward jump (a pause no segment could span) is closed, a backward one cannot
make time run back (an unmarked jump back is closed the same way). So between
discontinuities every PTS/DTS difference, across tracks and segments, is the TS's to the
tick, and an MP4 position is the recording's HLS playback position. Should a track's DTS
still not increase (a publisher's jitter that the segmenter clamps to the same
millisecond), the sample is moved one tick later: MP4 wants every sample to have a
duration.

Video: the Annex B access unit is split into NAL units (AUDs dropped: MP4 frames its
samples itself); a sample is a sync sample when it holds an IDR slice. Audio: each ADTS
frame of a PES is one sample (header stripped), the n-th 1024 samples after the PES's PTS.
The SPS/PPS and ADTS headers give each track's configuration for the MP4 sample entries."""

from __future__ import annotations

from dataclasses import dataclass, field

from liverec.errors import MediaError
from liverec.media.aac import parse_adts
from liverec.media.h264 import NAL_AUD, NAL_IDR, NAL_PPS, NAL_SPS, sps_dimensions
from liverec.outputs.tsread import AccessUnit, Segment, read_segment

PTS_HZ = 90_000
_WRAP = 1 << 33
_HALF = 1 << 32
# A segment starting this much before the previous one ended is a jump back, marked or not
# (the segmenter marks every jump; this guards the timeline against one it did not).
UNMARKED_JUMP_BACK = PTS_HZ // 10
_AAC_FRAME = 1024  # samples per AAC frame (at the core rate for HE-AAC, as ADTS signals it)


@dataclass(frozen=True, slots=True)
class VideoConfig:
    """An H.264 track's parameter sets (those of the first IDR of a slice) and picture size."""

    sps: tuple[bytes, ...]
    pps: tuple[bytes, ...]
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class AudioConfig:
    """An AAC track as its ADTS headers describe it."""

    object_type: int
    sampling_index: int
    sample_rate: int
    channels: int

    @property
    def audio_specific_config(self) -> bytes:
        """The 2-byte AudioSpecificConfig (ISO 14496-3 1.6.2.1) for the esds."""
        value = (self.object_type << 11) | (self.sampling_index << 7) | (self.channels << 3)
        return value.to_bytes(2, "big")


@dataclass(slots=True)
class Sample:
    dts: int  # ticks on the recording's timeline
    pts: int  # >= dts
    nals: list[bytes] | None  # video: its NAL units, no start codes
    data: bytes  # audio: the raw AAC frame (video: empty; its NALs are framed when written)
    sync: bool


@dataclass(slots=True)
class SegmentSamples:
    """One segment's samples, each track in decode order."""

    start: int  # timeline ticks of its first frame in file order (the segment's start)
    end: int  # start + its duration: where the next segment starts, as HLS plays it
    has_video: bool  # the stream has these tracks (the segment's PMT)
    has_audio: bool
    video: list[Sample] = field(default_factory=list)
    audio: list[Sample] = field(default_factory=list)
    video_config: VideoConfig | None = None  # of its first access unit with SPS and PPS
    audio_config: AudioConfig | None = None

    @property
    def cut_point(self) -> bool:
        """A file can start here and play: the segment's first video sample is an IDR (or the
        stream has no video). Segments start on keyframes except hard cuts of streams whose
        keyframes are too far apart (recorder/segmenter.py, rule 3)."""
        return not self.has_video or bool(self.video and self.video[0].sync)

    def first_dts(self) -> int:
        """The earliest DTS of any sample: audio muxed after a keyframe can be a little
        earlier than the segment's start."""
        firsts = [track[0].dts for track in (self.video, self.audio) if track]
        return min([self.start, *firsts])


class Timeline:
    """One recording's timeline; feed it the recording's segments in order."""

    def __init__(self) -> None:
        self._ref_raw: int | None = None  # the latest raw (33-bit) DTS seen...
        self._ref = 0  # ... and its unwrapped value
        self._shift = 0
        self._end: int | None = None  # where the previous segment ended
        self._last_dts: dict[bool, int] = {}  # by video?

    def segment(
        self,
        data: bytes,
        duration: float,
        discontinuity: bool,
        units: Segment | None = None,
    ) -> SegmentSamples:
        """The samples of the next segment of the recording (MediaError: unreadable).
        `units`: its PES payloads as the segmenter muxed them, when it kept them (then the
        TS is not read back; they are exactly what reading it would give)."""
        ts = read_segment(data) if units is None else units
        if not ts.units:
            raise MediaError("the segment has no frames")
        unwrapped = [self._unwrap(unit.dts) for unit in ts.units]
        if self._end is not None and (
            discontinuity or unwrapped[0] + self._shift < self._end - UNMARKED_JUMP_BACK
        ):
            self._shift = self._end - unwrapped[0]
        start = unwrapped[0] + self._shift
        out = SegmentSamples(start, start + round(duration * PTS_HZ), ts.has_video, ts.has_audio)
        self._end = out.end
        for unit, dts in zip(ts.units, unwrapped, strict=True):
            if unit.video:
                self._video(out, unit, dts + self._shift)
            else:
                self._audio(out, unit, dts + self._shift)
        return out

    def _unwrap(self, raw: int) -> int:
        if self._ref_raw is not None:
            self._ref += (raw - self._ref_raw + _HALF) % _WRAP - _HALF
        self._ref_raw = raw
        return self._ref

    def _monotonic(self, video: bool, dts: int, pts: int) -> tuple[int, int]:
        last = self._last_dts.get(video)
        if last is not None and dts <= last:
            bump = last + 1 - dts
            dts, pts = dts + bump, pts + bump
        self._last_dts[video] = dts
        return dts, pts

    def _video(self, out: SegmentSamples, unit: AccessUnit, dts: int) -> None:
        cts = max(0, (unit.pts - unit.dts + _HALF) % _WRAP - _HALF)
        dts, pts = self._monotonic(True, dts, dts + cts)
        nals = [nal for nal in split_annexb(unit.data) if nal[0] & 0x1F != NAL_AUD]
        if not nals:
            return
        types = [nal[0] & 0x1F for nal in nals]
        if out.video_config is None and NAL_SPS in types and NAL_PPS in types:
            out.video_config = video_config(nals, types)
        out.video.append(Sample(dts, pts, nals, b"", NAL_IDR in types))

    def _audio(self, out: SegmentSamples, unit: AccessUnit, dts: int) -> None:
        data = unit.data
        pos = 0
        raw = unit.dts  # the PES's own time: FFmpeg times the frames after it from there
        at_raw = raw
        while pos < len(data):
            config, header, length = parse_adts(data[pos : pos + 9])
            if pos + length > len(data):
                raise MediaError("an ADTS frame runs past its PES")
            if out.audio_config is None:
                out.audio_config = AudioConfig(
                    config.object_type, config.sampling_index, config.sample_rate, config.channels
                )
            at, _ = self._monotonic(False, dts + at_raw - raw, dts + at_raw - raw)
            out.audio.append(Sample(at, at, None, data[pos + header : pos + length], True))
            pos += length
            at_raw = next_aac_pts(at_raw, config.sample_rate)


def next_aac_pts(pts: int, rate: int) -> int:
    """The 90 kHz PTS FFmpeg's demuxer gives the AAC frame after one at `pts` in the same
    PES (libavutil's av_add_stable: a step along the grid of frame starts from 0, each
    rounded to the nearest tick, so rounding never accumulates). The MP4 then plays each
    frame when the HLS does."""
    num = _AAC_FRAME * PTS_HZ  # a frame lasts num / rate ticks

    def tick(frame: int) -> int:  # where frame number `frame` of the grid starts
        return (2 * frame * num + rate) // (2 * rate)

    frame = (2 * pts * rate + num) // (2 * num)  # the grid's frame nearest pts
    return tick(frame + 1) + pts - tick(frame)


def split_annexb(data: bytes) -> list[bytes]:
    """The NAL units of an Annex B byte stream, without start codes (a 4-byte start code's
    leading zero, and trailing_zero_8bits, are not part of the NAL before it)."""
    nals: list[bytes] = []
    start = data.find(b"\x00\x00\x01")
    while start >= 0:
        start += 3
        nxt = data.find(b"\x00\x00\x01", start)
        nal = data[start:] if nxt < 0 else data[start:nxt]
        nal = nal.rstrip(b"\x00")
        if nal:
            nals.append(nal)
        start = nxt
    return nals


def video_config(nals: list[bytes], types: list[int]) -> VideoConfig:
    sps = tuple(dict.fromkeys(n for n, t in zip(nals, types, strict=True) if t == NAL_SPS))
    pps = tuple(dict.fromkeys(n for n, t in zip(nals, types, strict=True) if t == NAL_PPS))
    try:
        width, height = sps_dimensions(sps[0])
    except (MediaError, IndexError):
        width = height = 0  # the sample entry then says 0x0; decoders read the SPS
    return VideoConfig(sps, pps, width, height)
