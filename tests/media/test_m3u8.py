"""M3U8 model: rendering, parsing, the target duration rule, RFC 3339 times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from liverec.errors import MediaError
from liverec.media.m3u8 import (
    MediaPlaylist,
    SegmentEntry,
    format_time,
    parse,
    parse_time,
    render,
    segment_lines,
)

T0 = datetime(2026, 11, 23, 12, 0, 0, 40000, tzinfo=UTC)


def test_render_exact() -> None:
    pl = MediaPlaylist(
        [
            SegmentEntry("0.ts", 4.0, T0),
            SegmentEntry("1.ts", 3.96, T0 + timedelta(seconds=4)),
            SegmentEntry("../other/7.ts", 4.52, T0 + timedelta(seconds=60), discontinuity=True),
        ],
        media_sequence=5,
        playlist_type="VOD",
        endlist=True,
    )
    assert render(pl) == (
        "#EXTM3U\n"
        "#EXT-X-VERSION:3\n"
        "#EXT-X-TARGETDURATION:5\n"
        "#EXT-X-MEDIA-SEQUENCE:5\n"
        "#EXT-X-PLAYLIST-TYPE:VOD\n"
        "#EXT-X-PROGRAM-DATE-TIME:2026-11-23T12:00:00.040Z\n"
        "#EXTINF:4.000,\n"
        "0.ts\n"
        "#EXT-X-PROGRAM-DATE-TIME:2026-11-23T12:00:04.040Z\n"
        "#EXTINF:3.960,\n"
        "1.ts\n"
        "#EXT-X-DISCONTINUITY\n"
        "#EXT-X-PROGRAM-DATE-TIME:2026-11-23T12:01:00.040Z\n"
        "#EXTINF:4.520,\n"
        "../other/7.ts\n"
        "#EXT-X-ENDLIST\n"
    )


def test_live_event_playlist_has_no_endlist() -> None:
    text = render(MediaPlaylist([SegmentEntry("a.ts", 2.0)], playlist_type="EVENT"))
    assert "#EXT-X-PLAYLIST-TYPE:EVENT\n" in text
    assert "ENDLIST" not in text and "PROGRAM-DATE-TIME" not in text


@pytest.mark.parametrize(
    ("durations", "target"),
    [
        ([], 1),
        ([0.2], 1),
        ([4.0, 4.0], 4),
        ([4.499], 4),
        ([4.4996], 5),  # rendered as 4.500, which rounds to 5
        ([4.5], 5),
        ([2.0, 6.48, 3.0], 6),
        ([10.0], 10),
    ],
)
def test_target_duration_rule(durations: list[float], target: int) -> None:
    pl = MediaPlaylist([SegmentEntry(f"{i}.ts", d) for i, d in enumerate(durations)])
    assert f"#EXT-X-TARGETDURATION:{target}\n" in render(pl)
    assert parse(render(pl)).target_duration == target


def test_explicit_target_duration_wins() -> None:
    pl = MediaPlaylist([SegmentEntry("0.ts", 1.0)], target_duration=6)
    assert "#EXT-X-TARGETDURATION:6\n" in render(pl)


segments = st.lists(
    st.builds(
        SegmentEntry,
        uri=st.from_regex(r"[a-z0-9_/.]{1,20}\.ts", fullmatch=True),
        duration=st.integers(0, 20000).map(lambda ms: ms / 1000),
        program_date_time=st.none()
        | st.integers(0, 4 * 10**12).map(
            lambda ms: datetime(2000, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
        ),
        discontinuity=st.booleans(),
    ),
    max_size=8,
)


@given(
    segments=segments,
    media_sequence=st.integers(0, 10**9),
    discontinuity_sequence=st.integers(0, 10**6),
    playlist_type=st.sampled_from([None, "EVENT", "VOD"]),
    endlist=st.booleans(),
)
def test_round_trip(
    segments: list[SegmentEntry],
    media_sequence: int,
    discontinuity_sequence: int,
    playlist_type: str | None,
    endlist: bool,
) -> None:
    pl = MediaPlaylist(
        segments,
        media_sequence=media_sequence,
        discontinuity_sequence=discontinuity_sequence,
        playlist_type=playlist_type,
        endlist=endlist,
    )
    text = render(pl)
    # A writer that keeps each segment's lines renders the same text.
    assert render(pl, [segment_lines(s) for s in segments]) == text
    back = parse(text)
    assert back.target_duration == pl.effective_target_duration()
    back.target_duration = None
    assert back == pl


def test_parse_tolerates_unknown_tags_comments_and_crlf() -> None:
    text = (
        "\ufeff#EXTM3U\r\n"
        "#EXT-X-VERSION:6\r\n"
        "#EXT-X-TARGETDURATION:4\r\n"
        "#EXT-X-INDEPENDENT-SEGMENTS\r\n"
        "# a comment\r\n"
        "\r\n"
        "#EXT-X-PROGRAM-DATE-TIME:2026-11-23T20:00:00.040+08:00\r\n"
        "#EXTINF:3.5,title here\r\n"
        "#EXT-X-BITRATE:1000\r\n"
        "https://cdn.example/a.ts?x=1\r\n"
    )
    pl = parse(text)
    assert pl.version == 6 and pl.target_duration == 4 and not pl.endlist
    assert pl.segments == [SegmentEntry("https://cdn.example/a.ts?x=1", 3.5, T0)]
    assert pl.segments[0].program_date_time is not None
    assert pl.segments[0].program_date_time.tzinfo == UTC


@pytest.mark.parametrize(
    "text",
    [
        "",
        "#EXT-X-VERSION:3\n#EXTM3U\n",
        "#EXTM3U\n#EXT-X-TARGETDURATION:4\na.ts\n",  # segment without EXTINF
        "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\n",  # EXTINF without URI
        "#EXTM3U\n#EXT-X-TARGETDURATION:four\n",
        "#EXTM3U\n#EXT-X-TARGETDURATION:-1\n",
        "#EXTM3U\n#EXTINF:4,\na.ts\n",  # no target duration
        "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:abc,\na.ts\n",
        "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:nan,\na.ts\n",
        "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-PLAYLIST-TYPE:LIVE\n",
        "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-PROGRAM-DATE-TIME:2026-11-23T12:00:00\n"
        "#EXTINF:4,\na.ts\n",
    ],
)
def test_parse_malformed(text: str) -> None:
    with pytest.raises(MediaError):
        parse(text)


def test_times_in_any_offset_are_the_same_instant() -> None:
    a = parse_time("2026-11-23T20:00:00.040+08:00")
    b = parse_time("2026-11-23T12:00:00.040Z")
    c = parse_time("2026-11-23T07:30:00.04-04:30")
    assert a == b == c == T0
    assert a.tzinfo == UTC
    assert format_time(a) == "2026-11-23T12:00:00.040Z"
    assert format_time(T0.astimezone(timezone(timedelta(hours=8)))) == format_time(T0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-23T12:00:00Z", datetime(2026, 11, 23, 12, tzinfo=UTC)),
        ("2026-11-23t12:00:00z", datetime(2026, 11, 23, 12, tzinfo=UTC)),
        ("2026-11-23T12:00:00.5+00:00", datetime(2026, 11, 23, 12, 0, 0, 500000, tzinfo=UTC)),
        ("2026-11-23T12:00:00.123456789Z", datetime(2026, 11, 23, 12, 0, 0, 123456, tzinfo=UTC)),
        ("2026-11-24T00:30:00+01:00", datetime(2026, 11, 23, 23, 30, tzinfo=UTC)),
        # The forms FLS's own docs show: no seconds, an hour-only offset.
        ("2019-01-07T12:00+08", datetime(2019, 1, 7, 4, tzinfo=UTC)),
        ("2026-11-23T12:00Z", datetime(2026, 11, 23, 12, tzinfo=UTC)),
        ("2026-11-23T20:00:00+0800", datetime(2026, 11, 23, 12, tzinfo=UTC)),
        ("2026-11-23T07:30-04:30", datetime(2026, 11, 23, 12, tzinfo=UTC)),
        ("2026-11-23 12:00:00,25Z", datetime(2026, 11, 23, 12, 0, 0, 250000, tzinfo=UTC)),
    ],
)
def test_parse_time(text: str, expected: datetime) -> None:
    assert parse_time(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-23T12:00:00",  # no offset
        "2026-11-23T12:00:00.040",
        "2026-11-23",
        "2026-11-23T12Z",
        "2026-11-23T12:00",  # no offset
        "2026-11-23T12:00:00+8",
        "2026-11-23T12:00:00+08:",
        "2026-11-23T12:00:00+08:0",
        "2026-11-23T12:00.5Z",  # a fraction needs seconds
        "2026-11-23T12:00:00+24:00",
        "2026-11-23T12:00:00+24",
        "2026-11-23T12:00:00+08:60",
        "2026-02-30T12:00:00Z",
        "2026-11-23T25:00:00Z",
        "2026-11-23T12:00:00.Z",
        "yesterday",
        "1764000000",
    ],
)
def test_parse_time_rejects(text: str) -> None:
    with pytest.raises(MediaError):
        parse_time(text)


def test_format_time_rounds_up_to_the_millisecond() -> None:
    # A frame at .0399999 s must be selected again by the time we print for it.
    assert format_time(T0 - timedelta(microseconds=1)) == "2026-11-23T12:00:00.040Z"
    assert format_time(T0) == "2026-11-23T12:00:00.040Z"
    assert format_time(T0 + timedelta(microseconds=1)) == "2026-11-23T12:00:00.041Z"
    end_of_day = datetime(2026, 12, 31, 23, 59, 59, 999500, tzinfo=UTC)
    assert format_time(end_of_day) == "2027-01-01T00:00:00.000Z"
    with pytest.raises(ValueError, match="aware"):
        format_time(datetime(2026, 11, 23))
