"""timing.py and the TS helpers of precise.py, on bytes from our own TsMuxer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from liverec.errors import MediaError
from liverec.media.ts import TsMuxer, continuity, first_dts, renumber
from liverec.postprocess.timing import PTS_HZ, SegmentClock, ticks_between

T0 = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
AU = b"\x00\x00\x00\x01\x09\xf0\x00\x00\x00\x01\x65" + b"\x88" * 400
ADTS = b"\xff\xf1\x50\x80\x02\x1f\xfc" + b"\x00" * 300
US = timedelta(microseconds=1)


def test_first_dts_is_the_first_pes_in_file_order() -> None:
    mux = TsMuxer(video=True, audio=True)
    video_first = mux.segment_header() + mux.video(1_000_300, 1_000_000, AU, True)
    assert first_dts(video_first + mux.audio(999_000, ADTS)) == 1_000_000  # DTS, not PTS
    audio_first = mux.segment_header() + mux.audio(5_000, ADTS) + mux.video(4_000, 4_000, AU, True)
    assert first_dts(audio_first) == 5_000
    only_pts = mux.segment_header() + mux.video(7_777, 7_777, AU, True)
    assert first_dts(only_pts) == 7_777


def test_first_dts_of_a_33_bit_timestamp() -> None:
    mux = TsMuxer(video=True, audio=False)
    top = (1 << 33) - 1
    assert first_dts(mux.segment_header() + mux.video(top, top, AU, True)) == top


def test_first_dts_without_pes_is_a_media_error() -> None:
    mux = TsMuxer(video=True, audio=False)
    with pytest.raises(MediaError):
        first_dts(mux.segment_header())
    with pytest.raises(MediaError):
        first_dts(b"\x00" * 188 * 4)


def test_ticks_between_wraps_at_33_bits() -> None:
    assert ticks_between(100, 250) == 150
    assert ticks_between(250, 100) == -150
    assert ticks_between((1 << 33) - 10, 20) == 30  # the TS clock wrapped
    assert ticks_between(20, (1 << 33) - 10) == -30
    assert ticks_between((1 << 33) - 10, (1 << 33) + 20) == 30  # PyAV's unwrapped values


def test_clock_maps_timestamps_to_wall_clock() -> None:
    clock = SegmentClock(T0, 900_000)
    assert clock.time_of(900_000) == T0
    assert clock.time_of(900_000 + 3600) == T0 + timedelta(milliseconds=40)
    # 1001/30000 s frames: 3003 ticks = 33366.67 us, rounded up.
    assert clock.time_of(900_000 + 3003) == T0 + timedelta(microseconds=33367)
    assert clock.limit(T0 + timedelta(milliseconds=40)) == 3600
    assert clock.limit(T0 + timedelta(milliseconds=40) - US) == 3599
    assert clock.limit(T0 - timedelta(seconds=1)) == -PTS_HZ
    assert clock.shown_by(123, None)


@given(
    first=st.integers(0, (1 << 33) - 1),
    offset=st.integers(0, (1 << 32) - 1),  # within a segment: far less than 13 h
    start_us=st.integers(0, 10**12),
)
def test_a_frame_time_given_back_selects_that_frame(first: int, offset: int, start_us: int) -> None:
    """time_of(pts) is the first instant at which the frame is shown: given back, it selects
    the frame; a microsecond earlier, it does not (for frames more than 1 us apart)."""
    clock = SegmentClock(T0 + timedelta(microseconds=start_us), first)
    pts = (first + offset) % (1 << 33)
    at = clock.time_of(pts)
    assert clock.shown_by(pts, at)
    assert not clock.shown_by(pts, at - US)
    assert clock.offset(pts) == offset


def test_continuity_and_renumber() -> None:
    mux = TsMuxer(video=True, audio=True)
    mux.segment_header()  # a previous segment: counters are not at 0 any more
    mux.video(0, 0, AU * 3, True)
    data = mux.segment_header() + mux.video(3600, 3600, AU, True) + mux.audio(3600, ADTS)
    first, last = continuity(data)
    assert first[0x100] != 0 and set(first) == {0x0, 0x1000, 0x100, 0x101}
    ours = TsMuxer(video=True, audio=True)
    fresh = ours.segment_header() + ours.video(3600, 3600, AU, True) + ours.audio(3600, ADTS)
    assert continuity(fresh)[0][0x100] == 0
    assert continuity(renumber(fresh, first, None)) == (first, last)
    assert continuity(renumber(fresh, None, last)) == (first, last)
    # Only the counter nibble changes.
    renumbered = renumber(fresh, first, None)
    assert bytes(b & 0xF0 for b in renumbered[3::188]) == bytes(b & 0xF0 for b in fresh[3::188])
    assert renumbered[4::188] == fresh[4::188]
