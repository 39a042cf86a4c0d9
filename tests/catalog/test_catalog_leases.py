"""Leases across nodes: heartbeats on open recordings, takeover after expiry, and one live
publisher per stream name. Races run real threads against the real database."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest
import sqlalchemy as sa

from catalog.conftest import FakeClock
from liverec.catalog import Catalog, Clock, Recording, SecretBox
from liverec.catalog.dbclock import db_now_ms
from liverec.catalog.schema import recordings
from liverec.errors import CatalogError
from liverec.layout import StreamRef

R = TypeVar("R")
T0 = datetime.fromisoformat("2026-11-23T12:00:00+00:00")


def race(n: int, work: Callable[[int], R]) -> list[R]:
    """Run work(0..n-1) in n threads released at the same instant."""
    barrier = threading.Barrier(n)
    results: list[R | None] = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return [r for r in results if r is not None]


@pytest.fixture
def cat(catalog: Catalog) -> Catalog:
    catalog.create_project("app")
    catalog.create_entry_point("app", "live")
    return catalog


def open_recording(cat: Catalog, node: str, session: str = "s", lease: float = 30) -> Recording:
    return cat.create_recording(
        StreamRef("app", "na", "live", "cam"),
        session_id=session,
        playlist_key=f"record/live/cam/{session}.m3u8",
        start_time=T0,
        node_id=node,
        lease_seconds=lease,
    )


# Leases run on the database's clock, so these tests wait in real time: a lease that must
# run out is a few milliseconds long, one that must hold is 30 s.
SHORT = 0.02
PAST_SHORT = 0.06


def ids(recs: list[Recording]) -> list[int]:
    return [r.id for r in recs]


def lease_expiry_ms(engine: sa.Engine, recording_id: int) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(recordings.c.lease_expires_ms).where(recordings.c.id == recording_id)
            ).scalar_one()
        )


def test_the_database_clock_is_real_time(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        before = time.time() * 1000
        now_ms = conn.execute(sa.select(db_now_ms())).scalar_one()
        after = time.time() * 1000
    # The test database runs on this machine: its clock is ours.
    assert isinstance(now_ms, int)
    assert before - 5 <= now_ms <= after + 5


def test_leases_expire_unless_renewed(cat: Catalog, engine: sa.Engine) -> None:
    a = open_recording(cat, "node-a", "a")
    b = open_recording(cat, "node-b", "b", lease=SHORT)
    assert ids(cat.open_recordings()) == [a.id, b.id]
    assert ids(cat.open_recordings("node-a")) == [a.id]
    time.sleep(PAST_SHORT)
    assert ids(cat.expired_open_recordings()) == [b.id]
    cat.renew_leases("node-b", 30)  # a heartbeat, late but before anyone claimed it
    assert cat.expired_open_recordings() == []
    cat.renew_leases("node-a", SHORT)
    time.sleep(PAST_SHORT)
    assert ids(cat.expired_open_recordings()) == [a.id]
    cat.renew_leases("node-a", 30)
    assert cat.expired_open_recordings() == []
    # A segment renews the lease too, for the lease's length from now.
    before = lease_expiry_ms(engine, b.id)
    time.sleep(PAST_SHORT)
    cat.add_segment(b.id, seq=0, key="k", start_time=T0, duration=2, size=1, discontinuity=False)
    assert lease_expiry_ms(engine, b.id) >= before + PAST_SHORT * 1000
    cat.renew_leases("node-b", SHORT)
    cat.close_recording(b.id)
    time.sleep(PAST_SHORT)
    assert cat.expired_open_recordings() == []  # closed: not listed


def test_claim_needs_an_expired_lease(cat: Catalog) -> None:
    rec = open_recording(cat, "node-a")
    assert not cat.claim_recording(rec.id, "node-b", 30)
    assert cat.claim_recording(rec.id, "node-a", SHORT)  # its own holder may
    time.sleep(PAST_SHORT)
    assert cat.claim_recording(rec.id, "node-b", 30)
    assert cat.get_recording(rec.id).node_id == "node-b"
    assert not cat.claim_recording(rec.id, "node-a", 30)  # node-b holds it now
    assert cat.claim_recording(rec.id, "node-c", 30, force=True)
    cat.close_recording(rec.id)
    assert not cat.claim_recording(rec.id, "node-b", 30, force=True)  # closed
    assert not cat.claim_recording(999_999, "node-b", 30)


def test_racing_claims_have_one_winner(
    cat: Catalog, engine: sa.Engine, box: SecretBox, clock: Clock
) -> None:
    recs = [open_recording(cat, "dead", f"s{i}", lease=SHORT) for i in range(3)]
    time.sleep(PAST_SHORT)
    nodes = [Catalog(engine, box, clock) for _ in range(6)]  # nodes sharing the database
    for rec in recs:

        def claim(i: int, rid: int = rec.id) -> bool:
            return nodes[i].claim_recording(rid, f"n{i}", 30)

        assert sorted(race(len(nodes), claim)) == [False] * 5 + [True]
        assert cat.get_recording(rec.id).node_id != "dead"


def test_a_closed_recording_refuses_segments_from_its_old_holder(cat: Catalog) -> None:
    rec = open_recording(cat, "node-a", lease=SHORT)
    time.sleep(PAST_SHORT)
    assert cat.claim_recording(rec.id, "node-b", 30)
    cat.close_recording(rec.id)
    with pytest.raises(CatalogError, match="closed"):
        cat.add_segment(
            rec.id, seq=0, key="k", start_time=T0, duration=2, size=1, discontinuity=False
        )


def test_leases_do_not_depend_on_the_nodes_clocks(
    cat: Catalog, engine: sa.Engine, box: SecretBox
) -> None:
    """A node whose clock is an hour slow writes leases; a node an hour fast judges them:
    neither clock matters, the database's decides."""
    now = datetime.now(UTC)
    slow = Catalog(engine, box, FakeClock(now - timedelta(hours=1)))
    fast = Catalog(engine, box, FakeClock(now + timedelta(hours=1)))
    rec = open_recording(slow, "node-slow")
    assert fast.expired_open_recordings() == []
    assert not fast.claim_recording(rec.id, "node-fast", 30)
    slow.renew_leases("node-slow", 30)
    assert not fast.claim_recording(rec.id, "node-fast", 30)
    assert slow.try_acquire_live(StreamRef("app", "na", "live", "cam"), "node-slow", 30)
    assert fast.live_holder(StreamRef("app", "na", "live", "cam")) == "node-slow"
    assert not fast.try_acquire_live(StreamRef("app", "na", "live", "cam"), "node-fast", 30)
    # And a lease that has run out by the database's clock is over for the slow node too.
    fast.renew_leases("node-fast", 30)
    rec2 = open_recording(fast, "node-fast", "s2", lease=SHORT)
    time.sleep(PAST_SHORT)
    assert ids(slow.expired_open_recordings()) == [rec2.id]
    assert slow.claim_recording(rec2.id, "node-slow", 30)


def test_one_live_publisher_per_stream(cat: Catalog) -> None:
    assert cat.try_acquire_live(StreamRef("app", "na", "live", "cam"), "node-a", 30)
    assert not cat.try_acquire_live(StreamRef("app", "na", "live", "cam"), "node-b", 30)
    assert not cat.try_acquire_live(
        StreamRef("app", "na", "live", "cam"), "node-a", 30
    )  # same node too
    assert cat.try_acquire_live(StreamRef("app", "na", "live", "cam2"), "node-b", 30)
    assert cat.live_holder(StreamRef("app", "na", "live", "cam")) == "node-a"
    cat.release_live(StreamRef("app", "na", "live", "cam"), "node-b")  # not the holder: no effect
    assert not cat.try_acquire_live(StreamRef("app", "na", "live", "cam"), "node-b", 30)
    cat.release_live(StreamRef("app", "na", "live", "cam"), "node-a")
    assert cat.live_holder(StreamRef("app", "na", "live", "cam")) is None
    assert cat.try_acquire_live(StreamRef("app", "na", "live", "cam"), "node-b", 30)


def test_an_expired_live_lease_may_be_taken_over(cat: Catalog) -> None:
    assert cat.try_acquire_live(StreamRef("app", "na", "live", "cam"), "node-a", SHORT)
    assert cat.try_acquire_live(StreamRef("app", "na", "live", "cam2"), "node-b", SHORT)
    time.sleep(PAST_SHORT)
    cat.renew_leases("node-b", 30)
    assert cat.live_holder(StreamRef("app", "na", "live", "cam")) is None
    assert cat.try_acquire_live(StreamRef("app", "na", "live", "cam"), "node-c", 30)
    assert not cat.try_acquire_live(StreamRef("app", "na", "live", "cam2"), "node-c", 30)  # renewed
    cat.renew_leases("node-a", 30)  # a late heartbeat does not steal it back
    assert cat.live_holder(StreamRef("app", "na", "live", "cam")) == "node-c"


def test_release_node_live(cat: Catalog) -> None:
    assert cat.try_acquire_live(StreamRef("app", "na", "live", "cam"), "node-a", 30)
    assert cat.try_acquire_live(StreamRef("app", "na", "live", "cam2"), "node-a", 30)
    assert cat.try_acquire_live(StreamRef("app", "na", "live", "cam3"), "node-b", 30)
    assert cat.release_node_live("node-a") == 2
    assert cat.live_holder(StreamRef("app", "na", "live", "cam")) is None
    assert cat.live_holder(StreamRef("app", "na", "live", "cam3")) == "node-b"


def test_racing_publishers_have_one_winner(
    cat: Catalog, engine: sa.Engine, box: SecretBox, clock: Clock
) -> None:
    nodes = [Catalog(engine, box, clock) for _ in range(8)]
    for stream in ("new-stream", "new-stream-2"):  # the stream row is made in the race

        def acquire(i: int, s: str = stream) -> bool:
            return nodes[i].try_acquire_live(StreamRef("app", "na", "live", s), f"node-{i}", 30)

        assert sorted(race(len(nodes), acquire)) == [False] * 7 + [True]
