"""Recordings and segments: lifecycle, time-range queries at their edges, and index use."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from liverec.catalog import Catalog, NewSegment, Recording
from liverec.catalog.recordings import overlapping_statement, segments_between_statement
from liverec.errors import (
    CatalogError,
    ConflictError,
    InvalidValueError,
    LeaseLostError,
    NotFoundError,
)
from liverec.layout import StreamRef

T0 = datetime.fromisoformat("2026-11-23T12:00:00.000+00:00")

CAM = StreamRef("app", "na", "live", "cam")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
def cat(catalog: Catalog) -> Catalog:
    catalog.create_project("app")
    catalog.create_entry_point("app", "live")
    return catalog


def record(
    cat: Catalog,
    start: float,
    durations: list[float],
    *,
    stream: str = "cam",
    session: str | None = None,
    region: str = "na",
) -> Recording:
    """A recording starting at T0+start with back-to-back segments."""
    session = session or f"s{start:g}".replace(".", "_")
    rec = cat.create_recording(
        StreamRef("app", region, "live", stream),
        session_id=session,
        playlist_key=f"record/live/{stream}/{session}.m3u8",
        start_time=at(start),
        node_id="node-a",
        lease_seconds=30,
    )
    t = start
    for seq, duration in enumerate(durations):
        cat.add_segment(
            rec.id,
            seq=seq,
            key=f"record/live/{stream}/{session}_{seq}.ts",
            start_time=at(t),
            duration=duration,
            size=1000 + seq,
            discontinuity=False,
        )
        t += duration
    return cat.get_recording(rec.id)


def test_recording_lifecycle(cat: Catalog) -> None:
    rec = cat.create_recording(
        StreamRef("app", "na", "live", "cam"),  # kept to the millisecond
        node_id="node-a",
        session_id="abc",
        playlist_key="record/live/cam/abc_20261123120000000.m3u8",
        start_time=T0 + timedelta(microseconds=1500),
        lease_seconds=30,
    )
    assert (rec.state, rec.segment_count, rec.start_time, rec.end_time) == (
        "open",
        0,
        at(0.001),
        at(0.001),
    )
    assert cat.get_recording(rec.id) == rec
    assert rec.playlist_name == "abc_20261123120000000.m3u8"
    s0 = cat.add_segment(
        rec.id, seq=0, key="k0", start_time=at(0.001), duration=4.004, size=10, discontinuity=False
    )
    s1 = cat.add_segment(
        rec.id, seq=1, key="k1", start_time=at(4.005), duration=3.5, size=20, discontinuity=True
    )
    assert s0.end_time == at(4.005)
    got = cat.get_recording(rec.id)
    assert (got.segment_count, got.end_time, got.duration) == (2, at(7.505), 7.504)
    assert cat.segments_of(rec.id) == [s0, s1]
    with pytest.raises(ConflictError):
        cat.add_segment(
            rec.id, seq=1, key="k", start_time=at(8), duration=1, size=1, discontinuity=False
        )
    assert cat.get_recording(rec.id).segment_count == 2  # the failed add left nothing
    cat.close_recording(rec.id)
    assert cat.get_recording(rec.id).state == "closed"
    with pytest.raises(CatalogError, match="closed"):
        cat.add_segment(
            rec.id, seq=2, key="k2", start_time=at(8), duration=1, size=1, discontinuity=False
        )
    cat.close_recording(rec.id, at(9))  # an explicit end wins
    assert cat.get_recording(rec.id).end_time == at(9)
    with pytest.raises(NotFoundError):
        cat.get_recording(999_999)
    with pytest.raises(NotFoundError):
        cat.add_segment(
            999_999, seq=0, key="k", start_time=at(0), duration=1, size=1, discontinuity=False
        )


def test_delete_recording_frees_its_playlist_name(cat: Catalog) -> None:
    rec = record(cat, 0, [])
    assert cat.file_reserved(StreamRef("app", "na", "live", "cam"), rec.playlist_name)
    cat.delete_recording(rec.id)
    assert not cat.file_reserved(StreamRef("app", "na", "live", "cam"), rec.playlist_name)
    with pytest.raises(NotFoundError):
        cat.get_recording(rec.id)
    with pytest.raises(NotFoundError):
        cat.delete_recording(rec.id)
    full = record(cat, 10, [2, 2])
    cat.delete_recording(full.id)
    assert cat.segments_of(full.id) == []


def test_recording_input_is_checked(cat: Catalog) -> None:
    def create(stream: StreamRef = CAM, **kw: object) -> None:
        args: dict[str, object] = {
            "session_id": "s",
            "playlist_key": "record/live/cam/s.m3u8",
            "start_time": T0,
            "node_id": "n",
            "lease_seconds": 30,
        }
        args.update(kw)
        cat.create_recording(stream, **args)  # type: ignore[arg-type]

    with pytest.raises(NotFoundError):
        create(StreamRef("nope", "na", "live", "cam"))
    with pytest.raises(InvalidValueError):
        create(StreamRef("app", "na", "live", "a/b"))
    with pytest.raises(InvalidValueError):
        create(start_time=datetime(2026, 1, 1))  # naive
    with pytest.raises(InvalidValueError):
        create(StreamRef("app", "NA", "live", "cam"))
    create()
    with pytest.raises(ConflictError):  # the same playlist name in the same folder
        create(session_id="other")


def _ids(recs: list[Recording]) -> list[str]:
    return [r.session_id for r in recs]


def q(cat: Catalog, start: datetime, end: datetime, ref: StreamRef = CAM) -> list[Recording]:
    return cat.recordings_overlapping(ref, start, end)


def test_overlap_is_half_open(cat: Catalog) -> None:
    record(cat, 0, [4, 4], session="a")  # [0, 8)
    record(cat, 10, [4], session="b")  # [10, 14)
    record(cat, 20, [], session="empty")  # no segment: never listed
    assert _ids(q(cat, at(-5), at(-0.001))) == []
    assert _ids(q(cat, at(-5), at(0))) == ["a"]  # the query's end is inclusive
    assert _ids(q(cat, at(7.999), at(9))) == ["a"]
    assert _ids(q(cat, at(8), at(9))) == []  # a recording does not hold its end
    assert _ids(q(cat, at(8), at(10))) == ["b"]
    assert _ids(q(cat, at(3), at(3))) == ["a"]
    assert _ids(q(cat, at(-100), at(100))) == ["a", "b"]
    assert _ids(q(cat, at(13.999), at(30))) == ["b"]
    assert _ids(q(cat, at(14), at(30))) == []
    assert q(cat, at(-100), at(100), CAM.with_stream("other")) == []
    assert q(cat, at(-100), at(100), StreamRef("nope", "na", "live", "cam")) == []
    assert _ids(q(cat, at(-100), at(100), StreamRef("app", "eu", "live", "cam"))) == []


def test_a_long_recording_is_found_from_late_in_it(cat: Catalog) -> None:
    # The index bound start >= t0 - longest recording must cover the longest one, whenever
    # it came: long, then short ones.
    record(cat, 0, [3600.0] * 6, session="long")  # 6 h
    record(cat, 30_000, [2, 2], session="short")
    record(cat, 40_000, [2], session="late")
    assert _ids(q(cat, at(21_599), at(21_599))) == ["long"]
    assert _ids(q(cat, at(21_599.999), at(30_000))) == ["long", "short"]
    assert _ids(q(cat, at(21_600), at(30_000))) == ["short"]
    pairs = cat.segments_between(StreamRef("app", "na", "live", "cam"), at(21_000), at(21_000))
    assert [(r.session_id, s.seq) for r, s in pairs] == [("long", 5)]


def test_a_recording_extended_by_close_is_found(cat: Catalog) -> None:
    rec = record(cat, 0, [2])
    record(cat, 100, [2], session="later")
    cat.close_recording(rec.id, at(50))
    assert _ids(
        cat.recordings_overlapping(StreamRef("app", "na", "live", "cam"), at(49), at(49))
    ) == ["s0"]


def test_latest_recording_skips_empty_ones(cat: Catalog) -> None:
    assert cat.latest_recording(StreamRef("app", "na", "live", "cam")) is None
    record(cat, 0, [2], session="a")
    record(cat, 10, [2], session="b", region="eu")
    record(cat, 20, [], session="empty")
    latest = cat.latest_recording(StreamRef("app", "eu", "live", "cam"))
    assert latest is not None and latest.session_id == "b"
    in_na = cat.latest_recording(StreamRef("app", "na", "live", "cam"))
    assert in_na is not None and in_na.session_id == "a"
    assert cat.latest_recording(StreamRef("app", "na", "live", "nope")) is None


def test_segments_between_edges_and_order(cat: Catalog) -> None:
    record(cat, 0, [4, 4, 4], session="a")  # [0,4) [4,8) [8,12)
    record(cat, 12.5, [2, 2], session="b")  # [12.5,14.5) [14.5,16.5)

    def seqs(start: float, end: float) -> list[tuple[str, int]]:
        pairs = cat.segments_between(StreamRef("app", "na", "live", "cam"), at(start), at(end))
        return [(r.session_id, s.seq) for r, s in pairs]

    assert seqs(4, 4) == [("a", 1)]  # a segment holds its start, not its end
    assert seqs(3.999, 4) == [("a", 0), ("a", 1)]
    assert seqs(12, 12.4) == []  # the gap between recordings
    assert seqs(11, 13) == [("a", 2), ("b", 0)]
    assert seqs(-10, 100) == [("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1)]
    assert seqs(16.5, 20) == []
    pairs = cat.segments_between(StreamRef("app", "na", "live", "cam"), at(0), at(100))
    assert pairs[0][0] is pairs[1][0]  # one Recording object per recording
    assert pairs[0][1].key == "record/live/cam/a_0.ts" and pairs[0][1].size == 1000


def test_streams_are_kept_apart(cat: Catalog) -> None:
    cat.create_project("app2")
    cat.create_entry_point("app2", "live")
    record(cat, 0, [2], stream="cam", session="x")
    record(cat, 0, [2], stream="cam2", session="x")
    assert [
        r.stream_name
        for r in cat.recordings_overlapping(StreamRef("app", "na", "live", "cam2"), T0, T0)
    ] == ["cam2"]
    assert cat.recordings_overlapping(StreamRef("app2", "na", "live", "cam"), T0, T0) == []
    assert cat.segments_between(StreamRef("app2", "na", "live", "cam"), T0, T0) == []


def _plan(engine: sa.Engine, stmt: sa.Select[object]) -> str:
    sql = str(stmt.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql).all()
            return "\n".join(str(row[-1]) for row in rows)
        conn.exec_driver_sql("SET enable_seqscan = off")  # tiny tables: judge the indexes
        return "\n".join(str(row[0]) for row in conn.exec_driver_sql("EXPLAIN " + sql))


def test_time_queries_are_bounded_index_range_scans(cat: Catalog, engine: sa.Engine) -> None:
    record(cat, 0, [2, 2])
    overlapping = _plan(engine, overlapping_statement(CAM, 1000, 2000))
    between = _plan(engine, segments_between_statement(CAM, 1000, 2000))
    if engine.dialect.name == "sqlite":
        assert "ix_recordings_stream_start (stream_id=? AND start_ms>? AND start_ms<?)" in (
            overlapping
        )
        assert "ix_segments_stream_start (stream_id=? AND start_ms>? AND start_ms<?)" in between
        assert "SCAN" not in overlapping + between
    else:
        assert "Seq Scan" not in overlapping + between
        for plan, index in ((overlapping, "ix_recordings"), (between, "ix_segments")):
            scan = plan[plan.index(f"Index Scan using {index}_stream_start") :]
            cond = scan.splitlines()[1]
            assert "start_ms >=" in cond and "start_ms <=" in cond, plan


def test_add_segments_commits_several_recordings_at_once_each_with_its_own_refusal(
    cat: Catalog,
) -> None:
    a = record(cat, 0, [4.0])
    b = record(cat, 0, [4.0], stream="other")
    closed = record(cat, 0, [4.0], stream="third")
    cat.close_recording(closed.id)

    def new(rec: Recording, seq: int, start: float) -> NewSegment:
        return NewSegment(
            rec.id, seq, f"{rec.playlist_key[:-5]}_{seq}.ts", at(start), 4.0, 2000, False
        )

    results = cat.add_segments(
        [new(a, 1, 4), new(closed, 1, 4), new(b, 0, 4), new(b, 1, 4), new(a, 2, 8)]
    )
    assert isinstance(results[1], LeaseLostError)  # closed elsewhere: that one alone
    assert isinstance(results[2], ConflictError)  # b has a segment 0 already
    assert [s.seq for s in results if not isinstance(s, Exception)] == [1, 1, 2]
    assert [s.seq for s in cat.segments_of(a.id)] == [0, 1, 2]
    assert [s.seq for s in cat.segments_of(b.id)] == [0, 1]
    assert [s.seq for s in cat.segments_of(closed.id)] == [0]
    got = cat.get_recording(a.id)
    assert got.segment_count == 3 and got.end_time == at(12)
    assert cat.get_recording(b.id).segment_count == 2
