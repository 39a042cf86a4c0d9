"""Leases across nodes: heartbeats on open recordings, takeover after expiry, and one live
publisher per stream name. Races run real threads against the real database."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

import pytest
import sqlalchemy as sa

from liverec.catalog import Catalog, Clock, Recording, SecretBox
from liverec.errors import CatalogError

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
        app_id="app",
        entry_point="live",
        stream_name="cam",
        region="na",
        session_id=session,
        playlist_key=f"record/live/cam/{session}.m3u8",
        start_time=T0,
        node_id=node,
        lease_seconds=lease,
    )


def test_leases_expire_unless_renewed(
    cat: Catalog, clock: Clock, advance: Callable[[float], None]
) -> None:
    a = open_recording(cat, "node-a", "a")
    b = open_recording(cat, "node-b", "b")
    assert [r.id for r in cat.open_recordings()] == [a.id, b.id]
    assert [r.id for r in cat.open_recordings("node-a")] == [a.id]
    advance(20)
    cat.renew_leases("node-a", 30)  # a heartbeat from node-a only: now until T0+50
    advance(10)  # T0+30: b's lease ends now, not yet before now
    assert cat.expired_open_recordings(clock()) == []
    advance(0.001)
    assert [r.id for r in cat.expired_open_recordings(clock())] == [b.id]
    advance(20)  # T0+50.001: a's lease has run out too
    assert [r.id for r in cat.expired_open_recordings(clock())] == [a.id, b.id]
    cat.renew_leases("node-a", 30)
    # A segment renews the lease too.
    cat.add_segment(b.id, seq=0, key="k", start_time=T0, duration=2, size=1, discontinuity=False)
    assert cat.expired_open_recordings(clock()) == []
    cat.close_recording(b.id)
    advance(3600)
    assert [r.id for r in cat.expired_open_recordings(clock())] == [a.id]  # closed: not listed


def test_claim_needs_an_expired_lease(cat: Catalog, advance: Callable[[float], None]) -> None:
    rec = open_recording(cat, "node-a")
    assert not cat.claim_recording(rec.id, "node-b", 30)
    assert cat.claim_recording(rec.id, "node-a", 30)  # its own holder may
    advance(31)
    assert cat.claim_recording(rec.id, "node-b", 30)
    assert cat.get_recording(rec.id).node_id == "node-b"
    assert not cat.claim_recording(rec.id, "node-a", 30)  # node-b holds it now
    assert cat.claim_recording(rec.id, "node-c", 30, force=True)
    cat.close_recording(rec.id)
    advance(100)
    assert not cat.claim_recording(rec.id, "node-b", 30, force=True)  # closed
    assert not cat.claim_recording(999_999, "node-b", 30)


def test_racing_claims_have_one_winner(
    cat: Catalog,
    engine: sa.Engine,
    box: SecretBox,
    clock: Clock,
    advance: Callable[[float], None],
) -> None:
    recs = [open_recording(cat, "dead", f"s{i}") for i in range(3)]
    advance(60)
    nodes = [Catalog(engine, box, clock) for _ in range(6)]  # nodes sharing the database
    for rec in recs:

        def claim(i: int, rid: int = rec.id) -> bool:
            return nodes[i].claim_recording(rid, f"n{i}", 30)

        assert sorted(race(len(nodes), claim)) == [False] * 5 + [True]
        assert cat.get_recording(rec.id).node_id != "dead"


def test_a_closed_recording_refuses_segments_from_its_old_holder(
    cat: Catalog, advance: Callable[[float], None]
) -> None:
    rec = open_recording(cat, "node-a")
    advance(31)
    assert cat.claim_recording(rec.id, "node-b", 30)
    cat.close_recording(rec.id)
    with pytest.raises(CatalogError, match="closed"):
        cat.add_segment(
            rec.id, seq=0, key="k", start_time=T0, duration=2, size=1, discontinuity=False
        )


def test_one_live_publisher_per_stream(cat: Catalog) -> None:
    assert cat.try_acquire_live("app", "live", "cam", "node-a", 30)
    assert not cat.try_acquire_live("app", "live", "cam", "node-b", 30)
    assert not cat.try_acquire_live("app", "live", "cam", "node-a", 30)  # same node too
    assert cat.try_acquire_live("app", "live", "cam2", "node-b", 30)
    assert cat.live_holder("app", "live", "cam") == "node-a"
    cat.release_live("app", "live", "cam", "node-b")  # not the holder: no effect
    assert not cat.try_acquire_live("app", "live", "cam", "node-b", 30)
    cat.release_live("app", "live", "cam", "node-a")
    assert cat.live_holder("app", "live", "cam") is None
    assert cat.try_acquire_live("app", "live", "cam", "node-b", 30)


def test_an_expired_live_lease_may_be_taken_over(
    cat: Catalog, advance: Callable[[float], None]
) -> None:
    assert cat.try_acquire_live("app", "live", "cam", "node-a", 30)
    assert cat.try_acquire_live("app", "live", "cam2", "node-b", 30)
    advance(25)
    cat.renew_leases("node-b", 30)
    advance(10)
    assert cat.live_holder("app", "live", "cam") is None
    assert cat.try_acquire_live("app", "live", "cam", "node-c", 30)
    assert not cat.try_acquire_live("app", "live", "cam2", "node-c", 30)  # renewed
    cat.renew_leases("node-a", 30)  # a late heartbeat does not steal it back
    assert cat.live_holder("app", "live", "cam") == "node-c"


def test_release_node_live(cat: Catalog) -> None:
    assert cat.try_acquire_live("app", "live", "cam", "node-a", 30)
    assert cat.try_acquire_live("app", "live", "cam2", "node-a", 30)
    assert cat.try_acquire_live("app", "live", "cam3", "node-b", 30)
    assert cat.release_node_live("node-a") == 2
    assert cat.live_holder("app", "live", "cam") is None
    assert cat.live_holder("app", "live", "cam3") == "node-b"


def test_racing_publishers_have_one_winner(
    cat: Catalog, engine: sa.Engine, box: SecretBox, clock: Clock
) -> None:
    nodes = [Catalog(engine, box, clock) for _ in range(8)]
    for stream in ("new-stream", "new-stream-2"):  # the stream row is made in the race

        def acquire(i: int, s: str = stream) -> bool:
            return nodes[i].try_acquire_live("app", "live", s, f"node-{i}", 30)

        assert sorted(race(len(nodes), acquire)) == [False] * 7 + [True]
