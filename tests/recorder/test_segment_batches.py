"""Group commit of segments across publishes (recorder/catalog_writer.SegmentBatches), on a
real SQLite catalog with real threads: what queues behind a transaction in progress is
committed in the next one, and each writer gets its own segment's outcome."""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from liverec.catalog import Catalog, NewSegment, Recording, SecretBox, ensure_schema, make_engine
from liverec.errors import ConflictError, LeaseLostError
from liverec.layout import StreamRef
from liverec.recorder.catalog_writer import SegmentBatches

T0 = datetime(2026, 11, 23, 12, tzinfo=UTC)


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    engine = make_engine(f"sqlite:///{tmp_path / 'catalog.db'}")
    ensure_schema(engine)
    catalog = Catalog(engine, SecretBox(SecretBox.generate_key()))
    catalog.create_project("app", is_default=True)
    catalog.create_entry_point("app", "live")
    return catalog


def recording(catalog: Catalog, name: str) -> Recording:
    return catalog.create_recording(
        StreamRef("app", "na", "live", name),
        session_id="s1",
        playlist_key=f"record/live/{name}/s1.m3u8",
        start_time=T0,
        node_id="n",
        lease_seconds=60,
    )


def segment(rec: Recording, seq: int) -> NewSegment:
    return NewSegment(
        rec.id,
        seq,
        f"{rec.playlist_key[:-5]}_{seq}.ts",
        T0 + timedelta(seconds=4 * seq),
        4.0,
        1000,
        False,
    )


def wait_until(pred: object, what: str) -> None:
    assert callable(pred)
    deadline = time.monotonic() + 20
    while not pred():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def test_segments_queued_behind_a_commit_share_the_next_one(
    catalog: Catalog, tmp_path: Path
) -> None:
    recs = [recording(catalog, f"cam{i}") for i in range(6)]
    batches = SegmentBatches(catalog)
    errors: list[BaseException] = []

    def add(seg: NewSegment) -> None:
        try:
            batches.add(seg)
        except BaseException as exc:
            errors.append(exc)

    # Another writer holds SQLite's write lock: the first segment's transaction waits for
    # it, and the other five queue behind that transaction meanwhile.
    blocker = sqlite3.connect(tmp_path / "catalog.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    first = threading.Thread(target=add, args=(segment(recs[0], 0),))
    first.start()
    wait_until(lambda: batches.commits == 0 and batches.committing, "the first commit began")
    others = [threading.Thread(target=add, args=(segment(r, 0),)) for r in recs[1:]]
    for t in others:
        t.start()
    wait_until(lambda: batches.waiting == 5, "five segments queued")
    blocker.execute("COMMIT")
    blocker.close()
    for t in [first, *others]:
        t.join(30)
    assert errors == []
    assert (batches.commits, batches.segments) == (2, 6)
    for rec in recs:
        assert [s.seq for s in catalog.segments_of(rec.id)] == [0]
        assert catalog.get_recording(rec.id).segment_count == 1


def test_each_writer_gets_its_own_refusal_and_the_others_commit(
    catalog: Catalog, tmp_path: Path
) -> None:
    ok, closed, repeated = (recording(catalog, n) for n in ("ok", "closed", "repeated"))
    catalog.close_recording(closed.id)
    batches = SegmentBatches(catalog)
    batches.add(segment(repeated, 0))
    outcomes: dict[str, BaseException | None] = {}

    def add(name: str, seg: NewSegment) -> None:
        try:
            batches.add(seg)
            outcomes[name] = None
        except BaseException as exc:
            outcomes[name] = exc

    blocker = sqlite3.connect(tmp_path / "catalog.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    threads = [threading.Thread(target=add, args=("ok0", segment(ok, 0)))]
    threads[0].start()
    wait_until(lambda: batches.committing, "the first commit began")
    for name, seg in (
        ("closed", segment(closed, 0)),
        ("repeated", segment(repeated, 0)),
        ("ok1", segment(ok, 1)),
    ):
        threads.append(threading.Thread(target=add, args=(name, seg)))
        threads[-1].start()
    wait_until(lambda: batches.waiting == 3, "three segments queued")
    blocker.execute("COMMIT")
    blocker.close()
    for t in threads:
        t.join(30)
    assert outcomes["ok0"] is None and outcomes["ok1"] is None
    assert isinstance(outcomes["closed"], LeaseLostError)
    assert isinstance(outcomes["repeated"], ConflictError)
    assert [s.seq for s in catalog.segments_of(ok.id)] == [0, 1]
    assert catalog.segments_of(closed.id) == []
    assert [s.seq for s in catalog.segments_of(repeated.id)] == [0]
