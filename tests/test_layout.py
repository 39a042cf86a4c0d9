"""The storage key layout (liverec.layout): every name encodes as FLS names it and decodes
back to what made it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from liverec.errors import InvalidKeyError
from liverec.layout import (
    StreamRef,
    parse_date,
    parse_name,
    project_root,
    session_date,
    snapshot_date,
)
from liverec.storage import check_key

CAM = StreamRef("app1", "na", "live", "test_stream")
START = datetime(2021, 11, 22, 9, 47, 18, 109_000, tzinfo=UTC)


def test_names_are_the_ones_fls_documents() -> None:
    rec = CAM.recording("536694d6ef4b06c137b0e8a0a3f225a7", START)
    assert rec.playlist == (
        "record/live/test_stream/536694d6ef4b06c137b0e8a0a3f225a7_20211122094718109.m3u8"
    )
    assert rec.segment(3) == (
        "record/live/test_stream/536694d6ef4b06c137b0e8a0a3f225a7_20211122094718109_3.ts"
    )
    # FLS's own example of an MP4 record file name.
    created = datetime(2021, 11, 23, 5, 12, 43, 120_000, tzinfo=UTC)
    assert rec.mp4(0, created) == (
        "record/live/test_stream/"
        "536694d6ef4b06c137b0e8a0a3f225a7_20211122094718109_0_20211123051243120.mp4"
    )
    # Periodic snapshots: their own folder, a 14-digit file date.
    assert rec.snapshot(created) == (
        "snapshot/live/test_stream/536694d6ef4b06c137b0e8a0a3f225a7_20211122094718109_"
        "20211123051243.jpg"
    )
    assert CAM.file("clip.m3u8") == "record/live/test_stream/clip.m3u8"
    assert CAM.root == project_root("na", "app1") == "na/app1/"
    assert CAM.key(rec.playlist) == "na/app1/" + rec.playlist
    assert str(CAM) == "live/test_stream"


def test_dates_are_utc_whatever_the_offset() -> None:
    local = START.astimezone(timezone(timedelta(hours=8)))
    assert session_date(local) == "20211122094718109"
    assert snapshot_date(local) == "20211122094718"
    assert parse_date("20211122094718109") == START
    assert parse_date("20211122094718") == START.replace(microsecond=0)
    for bad in ("2021112209471810", "2021112209471x109", "20211322094718109", ""):
        with pytest.raises(InvalidKeyError):
            parse_date(bad)


def test_every_kind_decodes_back() -> None:
    rec = CAM.recording("abc123", START)
    created = START + timedelta(hours=1)
    playlist = parse_name(rec.playlist)
    assert (playlist.kind, playlist.session_id, playlist.session_date) == (
        "playlist",
        "abc123",
        START,
    )
    assert playlist.stream("app1", "na") == CAM
    assert playlist.folder == CAM.folder
    segment = parse_name(rec.segment(12))
    assert (segment.kind, segment.index, segment.session_id) == ("segment", 12, "abc123")
    mp4 = parse_name(rec.mp4(2, created))
    assert (mp4.kind, mp4.slice_id, mp4.file_date) == ("mp4", 2, created)
    shot = parse_name(rec.snapshot(created))
    assert (shot.kind, shot.top, shot.file_date) == (
        "snapshot",
        "snapshot",
        created.replace(microsecond=0),
    )
    assert shot.folder == CAM.snapshot_folder
    clip = parse_name(CAM.file("my-clip_1.m3u8"))
    assert (clip.kind, clip.file_name, clip.session_id) == ("file", "my-clip_1.m3u8", None)
    # Digits that are no date make a user's file, not a recording.
    odd = parse_name("record/live/cam/x_99999999999999999.m3u8")
    assert odd.kind == "file"


@pytest.mark.parametrize(
    "name",
    [
        "",
        "record/live/cam",
        "record/live/cam/",
        "record/live/cam/sub/x.ts",
        "other/live/cam/x.ts",
        "record/live/../x.ts",
        "record/li ve/cam/x.ts",
        "record/live/c:am/x.ts",
        "record/live/cam/..",
        "record/live/cam/a\x00.ts",
        "record/live/cam/a\\b.ts",
    ],
)
def test_names_not_of_a_stream_folder_are_refused(name: str) -> None:
    with pytest.raises(InvalidKeyError):
        parse_name(name)


@given(
    session=st.text("0123456789abcdef", min_size=1, max_size=32),
    ms=st.integers(0, 4_102_444_800_000),  # up to 2100
    index=st.integers(0, 10**6),
    stream=st.from_regex(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,40}", fullmatch=True),
)
def test_round_trip(session: str, ms: int, index: int, stream: str) -> None:
    start = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    ref = CAM.with_stream(stream)
    rec = ref.recording(session, start)
    for name, kind in ((rec.playlist, "playlist"), (rec.segment(index), "segment")):
        parsed = parse_name(name)
        assert (parsed.kind, parsed.session_id, parsed.session_date) == (kind, session, start)
        assert parsed.stream(ref.app_id, ref.region) == ref
        assert check_key(ref.key(name))  # every name is a safe store key
