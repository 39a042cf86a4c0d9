"""The retention sweeper (liverec/retention.py) on a real catalog (SQLite and PostgreSQL) and a
real LocalStore: by age with an injected clock, by size, a live recording's head, locks and
clips surviving, a crash between the catalog change and the blobs, two sweepers racing."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from catalog.conftest import FakeClock
from liverec.catalog import Catalog, Recording
from liverec.events.notices import record_deleted_notice
from liverec.layout import StreamRef
from liverec.media.m3u8 import PLAYLIST_TYPE, MediaPlaylist, parse
from liverec.media.ts import TS_TYPE
from liverec.postprocess import ClipWriter
from liverec.recorder.recovery import playlist_for
from liverec.retention import MARGIN, Sweeper, format_retention, parse_retention
from liverec.storage import LocalStore

T0_STREAM = StreamRef("app1", "na", "live", "cam")
SIZE = 1000


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


def setup_project(catalog: Catalog, retention: int = 0) -> None:
    catalog.create_project("app1")
    catalog.create_entry_point("app1", "live", retention=retention)
    catalog.create_entry_point("app1", "keep")  # forever


def record(
    catalog: Catalog,
    store: LocalStore,
    start: datetime,
    count: int,
    *,
    stream: StreamRef = T0_STREAM,
    session: str = "s1",
    close: bool = True,
    seg: float = 4.0,
) -> Recording:
    """A recording of `count` segments of `seg` seconds from `start`, its blobs and
    playlist stored as the recorder stores them."""
    path = stream.recording(session, start)
    rec = catalog.create_recording(
        stream,
        session_id=session,
        playlist_key=path.playlist,
        start_time=start,
        node_id="n1",
        lease_seconds=3600,
    )
    for i in range(count):
        name = path.segment(i)
        store.put(stream.key(name), bytes([i % 256]) * SIZE, TS_TYPE)
        catalog.add_segment(
            rec.id,
            seq=i,
            key=name,
            start_time=start + timedelta(seconds=seg * i),
            duration=seg,
            size=SIZE,
            discontinuity=False,
        )
    segs = catalog.segments_of(rec.id)
    text = playlist_for(segs, ended=close, target_duration=6)
    store.put(stream.key(path.playlist), text.encode(), PLAYLIST_TYPE)
    if close:
        catalog.close_recording(rec.id, segs[-1].end_time)
    return catalog.get_recording(rec.id)


def sweeper(catalog: Catalog, store: LocalStore, clock: FakeClock, **kw: object) -> Sweeper:
    return Sweeper(
        catalog,
        store,
        region="na",
        node_id=str(kw.pop("node_id", "n1")),
        clock=clock,
        deleted_notice=record_deleted_notice,
        **kw,  # type: ignore[arg-type]
    )


def playlist(store: LocalStore, rec: Recording) -> MediaPlaylist:
    return parse(store.get(rec.stream.key(rec.playlist_key)).decode())


def assert_listed_files_exist(store: LocalStore, rec: Recording) -> MediaPlaylist:
    pl = playlist(store, rec)
    for entry in pl.segments:
        assert store.exists(rec.stream.key(rec.stream.file(entry.uri))), entry.uri
    return pl


def test_by_age_deletes_old_recordings_and_trims_heads(
    catalog: Catalog, store: LocalStore, clock: FakeClock
) -> None:
    setup_project(catalog, retention=3600)
    now = clock()
    old = record(catalog, store, now - timedelta(hours=3), 10, session="old")
    half = record(catalog, store, now - timedelta(minutes=61), 30, session="half")
    young = record(catalog, store, now - timedelta(minutes=30), 5, session="young")
    kept = record(
        catalog, store, now - timedelta(days=30), 5, stream=StreamRef("app1", "na", "keep", "x")
    )
    report = sweeper(catalog, store, clock).sweep()
    assert report.ran
    # old: 10; half: the 15 segments ending at or before now - 1h
    assert (report.segments, report.recordings_deleted) == (25, 1)
    assert report.bytes == 25 * SIZE
    with pytest.raises(Exception, match="does not exist"):
        catalog.get_recording(old.id)
    assert not store.exists(old.stream.key(old.playlist_key))
    assert store.list(old.stream.key(old.playlist_key.removesuffix(".m3u8"))) == []
    trimmed = catalog.get_recording(half.id)
    assert trimmed.start_time == now - timedelta(minutes=60)
    assert trimmed.end_time == half.end_time
    assert trimmed.segment_count == 15
    assert catalog.recording_head(half.id) == (15, 0)
    pl = assert_listed_files_exist(store, trimmed)
    assert (pl.media_sequence, pl.target_duration, pl.endlist) == (15, 6, True)
    assert pl.playlist_type == "VOD" and len(pl.segments) == 15
    assert not store.exists(half.stream.key(half.stream.file(f"{half.playlist_name[:-5]}_14.ts")))
    # preview_list answers the new start
    listed = catalog.recordings_overlapping(T0_STREAM, now - timedelta(hours=4), now)
    assert [(r.id, r.start_time) for r in listed] == [
        (half.id, now - timedelta(minutes=60)),
        (young.id, young.start_time),
    ]
    assert catalog.get_recording(kept.id).segment_count == 5  # its entry point keeps forever
    assert catalog.trash_count() == 0
    assert catalog.bytes_used("na") == (15 + 5 + 5) * SIZE
    # the clock moves on: the next sweep takes what aged since
    clock.advance(120)
    assert sweeper(catalog, store, clock).sweep().segments == 15 + 0


def test_by_size_deletes_the_oldest_first_across_entry_points(
    catalog: Catalog, store: LocalStore, clock: FakeClock
) -> None:
    setup_project(catalog)
    now = clock()
    other = StreamRef("app1", "na", "keep", "other")
    a = record(catalog, store, now - timedelta(hours=3), 10, stream=other, session="a")
    b = record(catalog, store, now - timedelta(hours=2), 10, session="b")
    c = record(catalog, store, now - timedelta(hours=1), 10, session="c")
    cap = 20 * SIZE
    report = sweeper(catalog, store, clock, max_bytes=cap).sweep()
    # down to the cap less the margin: 30 kB - 19 kB = 11 segments, the oldest first
    assert report.segments == 30 - int(cap * (1 - MARGIN)) // SIZE == 11
    assert catalog.bytes_used("na") <= cap * (1 - MARGIN)
    with pytest.raises(Exception, match="does not exist"):
        catalog.get_recording(a.id)
    assert catalog.recording_head(b.id) == (1, 0)
    assert catalog.get_recording(c.id).segment_count == 10
    assert_listed_files_exist(store, catalog.get_recording(b.id))
    # under the cap: nothing more
    assert sweeper(catalog, store, clock, max_bytes=cap).sweep().segments == 0
    # the minimum free space (local disk): a fake free figure, real deletions
    report = sweeper(catalog, store, clock, min_free=10 * SIZE, free_bytes=lambda: 5 * SIZE).sweep()
    assert report.segments == int(10 * SIZE * (1 + MARGIN)) // SIZE - 5 + 1


def test_live_recording_loses_its_head_and_keeps_the_newest(
    catalog: Catalog, store: LocalStore, clock: FakeClock
) -> None:
    setup_project(catalog, retention=60)
    now = clock()
    live = record(catalog, store, now - timedelta(seconds=80), 20, close=False)
    sweep = sweeper(catalog, store, clock, grace_seconds=30)
    report = sweep.sweep()
    assert report.segments == 5  # those ending by now - 60 s
    rec = catalog.get_recording(live.id)
    assert rec.state == "open" and rec.start_time == now - timedelta(seconds=60)
    assert catalog.recording_head(live.id) == (5, 0)
    # its writer rewrites its playlist: the blobs wait out the grace period
    first = live.stream.key(live.stream.file(f"{live.playlist_name[:-5]}_0.ts"))
    assert store.exists(first) and catalog.trash_count() == 5
    clock.advance(31)
    report = sweep.sweep()
    # the first five are gone; the seven that aged meanwhile wait for their own grace
    assert not store.exists(first) and report.blobs_deleted == 5
    assert report.segments == 7 and catalog.trash_count() == 7
    # all of it expired: the newest catalogued segment stays
    clock.advance(3600)
    sweep.sweep()
    assert catalog.get_recording(live.id).segment_count == 1
    assert catalog.recording_head(live.id) == (19, 0)


def test_locks_and_clips_survive(catalog: Catalog, store: LocalStore, clock: FakeClock) -> None:
    setup_project(catalog, retention=3600)
    now = clock()
    start = now - timedelta(hours=2)
    rec = record(catalog, store, start, 30)  # 2 minutes
    locked = catalog.add_lock(
        T0_STREAM, start + timedelta(seconds=20), start + timedelta(seconds=27)
    )
    expired = catalog.add_lock(
        T0_STREAM, start, start + timedelta(seconds=100), now + timedelta(minutes=5)
    )
    assert [lk.id for lk in catalog.locks("app1", "live", "na", "cam")] == [expired.id, locked.id]
    clip = ClipWriter(catalog, store, holds=catalog)(
        T0_STREAM,
        file_name="clip.m3u8",
        start=start + timedelta(seconds=60),
        end=start + timedelta(seconds=67),
    )
    assert clip.segments == 2
    # the expiring lock holds everything up to 100 s for now (an end is inclusive: the
    # segment starting at 100 s too)
    assert sweeper(catalog, store, clock).sweep().segments == 30 - 26
    clock.advance(600)
    sweeper(catalog, store, clock).sweep()
    kept = catalog.segments_of(rec.id)
    # the lock [20 s, 27 s] holds segments 5 and 6; the clip [60 s, 67 s] 15 and 16
    assert [s.seq for s in kept] == [5, 6, 15, 16]
    assert [s.discontinuity for s in kept] == [False, False, True, False]
    pl = assert_listed_files_exist(store, catalog.get_recording(rec.id))
    assert pl.media_sequence == 5 and len(pl.segments) == 4
    clip_pl = parse(store.get(T0_STREAM.key(clip.file_name)).decode())
    for entry in clip_pl.segments:
        assert store.exists(T0_STREAM.key(T0_STREAM.file(entry.uri)))
    # released, they go with the next sweep
    catalog.delete_lock("app1", "live", locked.id)
    catalog.delete_file(T0_STREAM, "clip.m3u8", "clip", [T0_STREAM.key(clip.file_name)])
    report = sweeper(catalog, store, clock).sweep()
    assert (report.segments, report.recordings_deleted) == (4, 1)
    assert store.list("na/app1/") == []


def test_a_crash_between_catalog_and_blobs_leaves_only_listed_orphans(
    catalog: Catalog, store: LocalStore, clock: FakeClock
) -> None:
    setup_project(catalog, retention=3600)
    now = clock()
    rec = record(catalog, store, now - timedelta(minutes=61), 30)
    gone = record(catalog, store, now - timedelta(hours=5), 3, session="gone")
    sweep = sweeper(catalog, store, clock)

    def crash() -> None:
        raise KeyboardInterrupt("killed")

    sweep.before_blobs = crash
    with pytest.raises(KeyboardInterrupt):
        sweep.sweep()
    # the catalog changed, no blob went: every file the catalog or a playlist lists exists
    assert catalog.get_recording(rec.id).segment_count == 15
    assert catalog.trash_count() == 15 + 3 + 1
    assert_listed_files_exist(store, rec)
    assert store.exists(gone.stream.key(gone.playlist_key))
    # the next sweep (another node's, the lease was given back) finishes the job
    report = sweeper(catalog, store, clock, node_id="n2").sweep()
    assert report.segments == 0 and report.blobs_deleted == 15 + 3 + 1
    assert catalog.trash_count() == 0
    pl = assert_listed_files_exist(store, catalog.get_recording(rec.id))
    assert pl.media_sequence == 15
    assert not store.exists(gone.stream.key(gone.playlist_key))
    assert len(store.list("na/app1/")) == 15 + 1


def test_one_sweeper_at_a_time(catalog: Catalog, store: LocalStore, clock: FakeClock) -> None:
    setup_project(catalog, retention=60)
    now = clock()
    for i in range(8):
        record(catalog, store, now - timedelta(hours=2, minutes=i), 40, session=f"r{i}")
    # a lease held elsewhere: this node does not sweep
    token = catalog.take_retention_lease("na", "other", 60)
    assert token is not None
    assert not sweeper(catalog, store, clock).sweep().ran
    catalog.release_retention_lease("na", token)
    # two racing, in small batches: every segment deleted once, every blob gone
    sweepers = [sweeper(catalog, store, clock, node_id=f"n{i}", batch=7) for i in range(2)]
    reports = []
    barrier = threading.Barrier(2)

    def run(s: Sweeper) -> None:
        barrier.wait()
        reports.append(s.sweep())

    threads = [threading.Thread(target=run, args=(s,)) for s in sweepers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.segments for r in reports) == 8 * 40
    assert sum(r.recordings_deleted for r in reports) == 8
    assert catalog.trash_count() == 0 and store.list("na/app1/") == []


def test_retention_periods_parse() -> None:
    assert parse_retention("7d") == 7 * 86400
    assert parse_retention("36h") == 36 * 3600
    assert parse_retention("0") == parse_retention("forever") == 0
    assert parse_retention("90") == 90
    for bad in ("", "7x", "-1d", "1.5d", "d", "99999999d"):
        with pytest.raises(ValueError):
            parse_retention(bad)
    assert [format_retention(s) for s in (0, 604800, 129600, 90)] == ["forever", "7d", "36h", "90s"]


def test_mp4_slices_and_periodic_snapshots_go_by_age_unless_locked(
    catalog: Catalog, store: LocalStore, clock: FakeClock
) -> None:
    setup_project(catalog, retention=3600)
    now = clock()
    keep = StreamRef("app1", "na", "keep", "x")

    def mp4(stream: StreamRef, start: datetime, slice_id: int) -> str:
        name = stream.recording("s1", start).mp4(slice_id, start)
        store.put(stream.key(name), b"mp4" * 100, "video/mp4")
        catalog.add_mp4_file(
            stream,
            name=name,
            session_id="s1",
            slice_id=slice_id,
            start_time=start,
            end_time=start + timedelta(minutes=10),
            size=300,
        )
        return name

    def shot(stream: StreamRef, taken: datetime) -> str:
        name = stream.recording("s1", now - timedelta(hours=5)).snapshot(taken)
        store.put(stream.key(name), b"jpeg", "image/jpeg")
        catalog.add_snapshot_file(stream, name, taken)
        return name

    old_mp4 = mp4(T0_STREAM, now - timedelta(hours=3), 0)
    locked_mp4 = mp4(T0_STREAM, now - timedelta(hours=2), 1)
    young_mp4 = mp4(T0_STREAM, now - timedelta(minutes=30), 2)
    forever_mp4 = mp4(keep, now - timedelta(days=30), 0)
    old_shot = shot(T0_STREAM, now - timedelta(hours=3))
    young_shot = shot(T0_STREAM, now - timedelta(minutes=5))
    catalog.add_lock(T0_STREAM, now - timedelta(hours=2), now - timedelta(hours=2, minutes=-1))
    report = sweeper(catalog, store, clock).sweep()
    assert report.outputs_deleted == 2
    listed = catalog.mp4_files_overlapping(T0_STREAM, now - timedelta(days=1), now)
    assert [f.name for f in listed] == [locked_mp4, young_mp4]
    assert [f.name for f in catalog.mp4_files_overlapping(keep, now - timedelta(days=31), now)] == [
        forever_mp4
    ]
    shots = catalog.snapshot_files_between(T0_STREAM, now - timedelta(days=1), now)
    assert [s.name for s in shots] == [young_shot]
    # The catalog first, then the blobs: none listed is missing, none deleted is left.
    assert not store.exists(T0_STREAM.key(old_mp4)) and not store.exists(T0_STREAM.key(old_shot))
    for name in (locked_mp4, young_mp4, young_shot):
        assert store.exists(T0_STREAM.key(name))
    assert catalog.trash_count() == 0


def test_the_byte_cap_counts_mp4_slices_and_snapshots_and_deletes_them_oldest_first(
    catalog: Catalog, store: LocalStore, clock: FakeClock
) -> None:
    setup_project(catalog)  # kept forever: only the cap deletes
    now = clock()
    other = StreamRef("app1", "na", "keep", "x")

    def mp4(stream: StreamRef, start: datetime, seconds: float) -> str:
        name = stream.recording("m", start).mp4(0, start)
        store.put(stream.key(name), b"m" * 5 * SIZE, "video/mp4")
        catalog.add_mp4_file(
            stream,
            name=name,
            session_id="m",
            slice_id=0,
            start_time=start,
            end_time=start + timedelta(seconds=seconds),
            size=5 * SIZE,
        )
        return name

    a = record(catalog, store, now - timedelta(hours=3), 10, session="a")  # 10 kB
    a_mp4 = mp4(T0_STREAM, a.start_time, 40)  # 5 kB, A's time: held by the clip below
    shot = T0_STREAM.recording("a", a.start_time).snapshot(a.start_time + timedelta(seconds=20))
    store.put(T0_STREAM.key(shot), b"j" * (SIZE // 2), "image/jpeg")
    catalog.add_snapshot_file(T0_STREAM, shot, a.start_time + timedelta(seconds=20), size=SIZE // 2)
    locked_mp4 = mp4(T0_STREAM, now - timedelta(hours=2), 60)  # 5 kB, locked
    catalog.add_lock(T0_STREAM, now - timedelta(hours=2), now - timedelta(hours=2, minutes=-1))
    b = record(catalog, store, now - timedelta(hours=1), 10, session="b")  # 10 kB
    newest_mp4 = mp4(other, now - timedelta(minutes=5), 60)  # 5 kB
    ClipWriter(catalog, store, holds=catalog)(
        T0_STREAM,
        file_name="clip.m3u8",
        start=a.start_time + timedelta(seconds=33),
        end=a.start_time + timedelta(seconds=37),
    )
    assert catalog.bytes_used("na") == 35 * SIZE + SIZE // 2
    cap = 20 * SIZE
    report = sweeper(catalog, store, clock, max_bytes=cap).sweep()
    # Oldest first, segments and outputs alike: the snapshot and A's unheld segments, then
    # (the locked slice skipped) B's head, until 5 % under the cap.
    assert (report.segments, report.outputs_deleted) == (8 + 8, 1)
    assert report.bytes + report.outputs_bytes == 16 * SIZE + SIZE // 2
    assert catalog.bytes_used("na") == cap * (1 - MARGIN)
    assert [s.seq for s in catalog.segments_of(a.id)] == [8, 9]  # the clip's
    assert [s.seq for s in catalog.segments_of(b.id)] == [8, 9]
    day = (now - timedelta(days=1), now)
    assert [f.name for f in catalog.mp4_files_overlapping(T0_STREAM, *day)] == [a_mp4, locked_mp4]
    assert [f.name for f in catalog.mp4_files_overlapping(other, *day)] == [newest_mp4]
    assert catalog.snapshot_files_between(T0_STREAM, *day) == []
    assert not store.exists(T0_STREAM.key(shot))
    for name in (a_mp4, locked_mp4):
        assert store.exists(T0_STREAM.key(name))
    assert store.exists(other.key(newest_mp4))
    for rec in (a, b):
        assert_listed_files_exist(store, catalog.get_recording(rec.id))
    assert catalog.trash_count() == 0


def test_the_byte_cap_reaches_media_timed_ahead_of_the_clock(
    catalog: Catalog, store: LocalStore, clock: FakeClock
) -> None:
    # A push faster than real time: its segments' times run ahead of the wall clock.
    setup_project(catalog)
    rec = record(catalog, store, clock() - timedelta(seconds=1), 10)
    report = sweeper(catalog, store, clock, max_bytes=5 * SIZE).sweep()
    assert report.segments == 10 - int(5 * SIZE * (1 - MARGIN)) // SIZE
    assert_listed_files_exist(store, catalog.get_recording(rec.id))
