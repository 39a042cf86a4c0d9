"""Retention and the storage spool (storage/spool.py): segments spooled during a storage
outage, catalogued, then trimmed by a sweep before the spool could upload them, are not
left in the store as orphans once the spool uploads them (the next start's, as after a
kill -9); the segment still listed is uploaded and kept. On SQLite and PostgreSQL, a real
LocalStore whose root really goes away."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from catalog.conftest import FakeClock
from catalog.test_retention_sweep import SIZE, record, setup_project, sweeper
from liverec.catalog import Catalog
from liverec.media.ts import TS_TYPE
from liverec.storage import LocalStore
from liverec.storage.spool import SpooledWriter
from storage.test_storage_spool import Outage, wait_for


def test_segments_trimmed_while_spooled_are_not_left_as_orphans(
    catalog: Catalog, clock: FakeClock, tmp_path: Path
) -> None:
    setup_project(catalog, retention=60)
    root = tmp_path / "store"
    store = LocalStore(root)
    now = clock()
    rec = record(catalog, store, now - timedelta(seconds=80), 10, close=False)
    path = rec.stream.recording("s1", rec.start_time)
    assert path.playlist == rec.playlist_key

    def spool() -> SpooledWriter:
        return SpooledWriter(
            store,
            tmp_path / "spool",
            max_bytes=1 << 20,
            retry_first=0.02,
            retry_max=0.1,
            orphan=catalog.trimmed_segment,
        )

    # The store goes away: segments 10-14 are spooled, then catalogued (durable in the
    # spool), and the node dies before it could upload them.
    first = spool()
    first.start()
    outage = Outage(root)
    outage.begin()
    for seq in range(10, 15):
        first.put(rec.stream.key(path.segment(seq)), b"s" * SIZE, TS_TYPE)
        catalog.add_segment(
            rec.id,
            seq=seq,
            key=path.segment(seq),
            start_time=rec.start_time + timedelta(seconds=4 * seq),
            duration=4.0,
            size=SIZE,
            discontinuity=False,
        )
    first.close()
    assert first.backlog() == (5, 5 * SIZE)
    outage.end()
    # A sweep (another node's, or this one's before the spool starts) trims the live head,
    # all but its newest segment, spooled ones too: their blobs are not there to delete.
    clock.advance(60)
    report = sweeper(catalog, store, clock, grace_seconds=0).sweep()
    assert report.segments == 14 and catalog.trash_count() == 0
    assert [s.seq for s in catalog.segments_of(rec.id)] == [14]
    for seq in (9, 10, 14):
        assert catalog.trimmed_segment(rec.stream.key(path.segment(seq))) is (seq != 14)
    # The next start uploads the spool: what retention dropped is deleted again.
    second = spool()
    second.start()
    try:
        wait_for(lambda: second.backlog() == (0, 0))
    finally:
        second.close()
    assert second.uploaded == 5
    folder = rec.stream.key(path.playlist).rsplit("/", 1)[0] + "/"
    assert store.list(folder) == sorted(
        [rec.stream.key(path.playlist), rec.stream.key(path.segment(14))]
    )


def test_only_segments_retention_dropped_are_orphans(
    catalog: Catalog, clock: FakeClock, tmp_path: Path
) -> None:
    setup_project(catalog)
    store = LocalStore(tmp_path / "store")
    rec = record(catalog, store, clock() - timedelta(hours=1), 3)
    path = rec.stream.recording("s1", rec.start_time)
    key = rec.stream.key
    assert not catalog.trimmed_segment(key(path.segment(1)))  # listed
    assert catalog.trimmed_segment(key(path.segment(7)))  # closed, no such segment
    # A recording not catalogued (yet: a lagging catalog), a playlist, a clip, nonsense.
    later = rec.stream.recording("s2", rec.start_time)
    assert not catalog.trimmed_segment(key(later.segment(0)))
    assert not catalog.trimmed_segment(key(path.playlist))
    assert not catalog.trimmed_segment(key(rec.stream.file("clip.m3u8")))
    assert not catalog.trimmed_segment("na/x")
