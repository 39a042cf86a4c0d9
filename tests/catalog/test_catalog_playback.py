"""Time-shift playlists from cached entries (playback/cache.py) against the catalog, on SQLite
and PostgreSQL: for every range, what `plan` + `render_plan` write is byte for byte what
`render_time_shift` writes from `play_rows`; a closed recording is read once, and read again
when retention trims it; an open recording's new segments appear; anything the cached
entries cannot vouch for (a segment outside its recording's row, interleaved recordings)
falls back to play_rows."""

from __future__ import annotations

from datetime import datetime, timedelta

from catalog.conftest import T0
from liverec.catalog import Catalog
from liverec.layout import StreamRef
from liverec.playback import TimeShift, render_time_shift
from liverec.playback.cache import EntryCache, Plan, plan, render_plan

APP = "0123456789abcdef0123456789abcdef"
STREAM = StreamRef(APP, "na", "live", "cam1")
PREFIX = "https://liverec.example/files/s/1795000000/sig/0123/na/record/live/cam1/"


def record(
    catalog: Catalog,
    session: str,
    start: datetime,
    durations: list[float],
    *,
    stream: StreamRef = STREAM,
    close: bool = True,
    discontinuities: frozenset[int] = frozenset(),
    gap_after: dict[int, float] | None = None,
) -> int:
    path = stream.recording(session, start)
    rec = catalog.create_recording(
        stream,
        session_id=session,
        playlist_key=path.playlist,
        start_time=start,
        node_id="n1",
        lease_seconds=30,
    )
    t = start
    for seq, duration in enumerate(durations):
        catalog.add_segment(
            rec.id,
            seq=seq,
            key=path.segment(seq),
            start_time=t,
            duration=duration,
            size=100,
            discontinuity=seq in discontinuities,
        )
        t += timedelta(seconds=duration + (gap_after or {}).get(seq, 0.0))
    if close:
        catalog.close_recording(rec.id)
    return rec.id


def same(catalog: Catalog, cache: EntryCache, start: datetime, end: datetime) -> Plan:
    """The plan for [start, end], checked against play_rows for a VOD and an EVENT."""
    got = plan(catalog, cache, STREAM, start, end)
    rows = catalog.play_rows(STREAM, start, end)
    for spec in (
        TimeShift(PREFIX, event=False),
        TimeShift(PREFIX, event=True, ended=False, target=12),
    ):
        assert render_plan(got, spec).decode() == render_time_shift(rows, spec)
    return got


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_cached_entries_write_what_play_rows_would(catalog: Catalog) -> None:
    catalog.create_project(APP)
    record(catalog, "a", at(0), [4.0, 3.96, 4.04, 4.0], discontinuities=frozenset({2}))
    record(catalog, "b", at(30), [4.0, 6.0, 4.0, 4.0], gap_after={1: 0.5})
    record(catalog, "c", at(60), [2.0, 2.0, 2.0], close=False)
    record(catalog, "x", at(10), [4.0, 4.0], stream=StreamRef(APP, "eu", "live", "cam1"))
    cache = EntryCache()
    edges = [-5, 0, 0.5, 3.96, 4.0, 11.999, 12.0, 16.0, 20, 30, 34, 40.5, 47, 60, 61, 66, 90]
    for i, s in enumerate(edges):
        for e in edges[i:]:
            got = same(catalog, cache, at(s), at(e))
            # None of these needed play_rows's rows (an empty range reads no entries).
            assert got.slices is not None or got.empty, (s, e)
    # The closed recordings (the other region's too) are kept; the open one is not.
    assert len(cache) == 3


def test_retention_trimming_a_cached_recording_shows_its_new_start(
    catalog: Catalog, clock: object
) -> None:
    catalog.create_project(APP)
    rec = record(catalog, "a", at(0), [4.0] * 6)
    cache = EntryCache()
    first = same(catalog, cache, at(0), at(24))
    assert first.slices is not None and len(cache) == 1
    catalog.trim_recording(rec, cutoff=at(8), now=at(3600))  # segments 0 and 1 go
    text = render_plan(same(catalog, cache, at(0), at(24)), TimeShift(PREFIX, event=False))
    assert b"a_20261123120000000_0.ts" not in text and b"a_20261123120000000_1.ts" not in text
    assert b"#EXT-X-PROGRAM-DATE-TIME:2026-11-23T12:00:08.000Z\n" in text
    # A hole between locked segments: the segment after it starts a discontinuity.
    catalog.add_lock(STREAM, at(8), at(9))
    catalog.trim_recording(rec, cutoff=at(16), from_seq=2, now=at(3600))  # seq 3 goes
    text = render_plan(same(catalog, cache, at(0), at(24)), TimeShift(PREFIX, event=False))
    assert b"_3.ts" not in text and text.count(b"#EXT-X-DISCONTINUITY\n") == 1


def test_an_open_recordings_new_segments_appear(catalog: Catalog) -> None:
    catalog.create_project(APP)
    record(catalog, "a", at(0), [4.0, 4.0])
    live = record(catalog, "b", at(10), [4.0], close=False)
    cache = EntryCache()
    assert len(same(catalog, cache, at(0), at(40)).slices or []) == 2
    catalog.add_segment(
        live,
        seq=1,
        key=STREAM.recording("b", at(10)).segment(1),
        start_time=at(14),
        duration=4.0,
        size=100,
        discontinuity=False,
    )
    text = render_plan(same(catalog, cache, at(0), at(40)), TimeShift(PREFIX, event=False))
    assert text.count(b"#EXTINF") == 4
    assert len(cache) == 1  # the open one is read every time
    catalog.close_recording(live)
    same(catalog, cache, at(0), at(40))
    assert len(cache) == 2


def test_what_the_cache_cannot_vouch_for_comes_from_play_rows(catalog: Catalog) -> None:
    catalog.create_project(APP)
    # A recording whose row ends before its last segment does (closed at an earlier end).
    short = record(catalog, "a", at(0), [4.0, 4.0, 4.0], close=False)
    catalog.close_recording(short, at(4))
    cache = EntryCache()
    assert same(catalog, cache, at(9), at(11)).slices is None
    assert same(catalog, cache, at(0), at(11)).slices is not None
    # Two recordings of one stream at once (two nodes): interleaved entries.
    record(catalog, "b", at(20), [4.0, 4.0, 4.0])
    record(catalog, "c", at(22), [4.0, 4.0, 4.0])
    assert same(catalog, cache, at(20), at(32)).slices is None
    assert same(catalog, cache, at(20), at(21)).slices is not None
    # Nothing there.
    assert same(catalog, cache, at(100), at(200)).empty
