"""The callback outbox on SQLite and PostgreSQL: what is kept, claiming per stream queue,
order, backoff, leases that run out, dead letters, and notices written in the transaction
of the change they report."""

from __future__ import annotations

import json
import random
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from liverec.catalog import Catalog, ClaimedNotice, Notice, Recording
from liverec.errors import NotFoundError
from liverec.layout import StreamRef

CAM = StreamRef("app", "na", "live", "cam")
ALL = [1, 2, 11, 101, 102, 1001]
LEASE = 60.0


def n(stream: StreamRef, seq: int, event_type: int = 1) -> Notice:
    return Notice(stream, event_type, {"eventName": "x", "seq": seq})


def seq(claim: ClaimedNotice | None) -> int:
    assert claim is not None
    return int(json.loads(claim.payload)["seq"])


@pytest.fixture
def cat(catalog: Catalog) -> Catalog:
    catalog.create_project("app")
    catalog.create_entry_point("app", "live")
    catalog.create_entry_point("app", "quiet")
    catalog.set_callback_settings("app", url="http://h.example/", secret="s", event_types=ALL)
    return catalog


def test_only_subscribed_notices_are_kept(cat: Catalog) -> None:
    assert cat.enqueue_notices([n(CAM, 1, 1), n(CAM, 2, 103)]) == 1  # 103: not subscribed
    cat.set_callback_settings(
        "app", "quiet", url="http://h.example/", secret="s", event_types=ALL, enabled=False
    )
    assert cat.enqueue_notices([n(StreamRef("app", "na", "quiet", "cam"), 3)]) == 0
    cat.create_project("other")
    cat.create_entry_point("other", "live")
    assert cat.enqueue_notices([n(StreamRef("other", "na", "live", "cam"), 4)]) == 0
    assert cat.pending_notices("app") == 1 and cat.pending_notices() == 1


def test_one_head_per_stream_then_the_next_under_the_same_lease(cat: Catalog) -> None:
    other = CAM.with_stream("other")
    cat.enqueue_notices([n(CAM, 1), n(other, 10), n(CAM, 2), n(CAM, 3), n(other, 11)])
    claims = cat.claim_notices("node-a", 10, LEASE)
    assert [seq(c) for c in claims] == [1, 10]  # one per stream, its oldest
    assert cat.claim_notices("node-b", 10, LEASE) == []  # both queues are held
    first = claims[0]
    assert (first.app_id, first.entry_point, first.stream_name, first.event_type) == (
        "app",
        "live",
        "cam",
        1,
    )
    assert first.attempts == 0 and len(first.notice_id) == 32
    nxt = cat.notice_delivered(first, LEASE)
    assert seq(nxt) == 2 and nxt is not None and nxt.token == first.token
    nxt = cat.notice_delivered(nxt, LEASE)
    assert seq(nxt) == 3
    assert nxt is not None and cat.notice_delivered(nxt, LEASE) is None  # the queue is idle
    assert seq(cat.notice_delivered(claims[1], LEASE)) == 11
    assert cat.pending_notices() == 1
    # A new notice of an idle queue is due at once.
    cat.enqueue_notices([n(CAM, 4)])
    assert [seq(c) for c in cat.claim_notices("node-b", 10, LEASE)] == [4]


def test_a_failure_holds_the_stream_back_until_its_retry(cat: Catalog) -> None:
    cat.enqueue_notices([n(CAM, 1), n(CAM, 2)])
    (claim,) = cat.claim_notices("node-a", 10, LEASE)
    assert cat.notice_failed(
        claim, "HTTP 500", retry_in=3600, keep_for=3600, lease_seconds=LEASE
    ) == (False, None)
    assert cat.claim_notices("node-a", 10, LEASE) == []  # neither 1 nor the 2 behind it
    cat.enqueue_notices([n(CAM, 3)])  # a new notice does not end the backoff
    assert cat.claim_notices("node-a", 10, LEASE) == []
    # Due again at once (retry_in 0): the same notice, its try counted.
    other = CAM.with_stream("other")
    cat.enqueue_notices([n(other, 10), n(other, 11)])
    (claim,) = cat.claim_notices("node-a", 10, LEASE)
    cat.notice_failed(claim, "HTTP 500", retry_in=0, keep_for=3600, lease_seconds=LEASE)
    (again,) = cat.claim_notices("node-b", 10, LEASE)
    assert (seq(again), again.attempts, again.notice_id) == (10, 1, claim.notice_id)
    assert seq(cat.notice_delivered(again, LEASE)) == 11


def test_a_failed_notice_is_given_up_after_its_window_and_can_be_redelivered(
    cat: Catalog,
) -> None:
    other = StreamRef("app", "na", "quiet", "cam")
    cat.enqueue_notices([n(CAM, 1, 101), n(CAM, 2)])
    (claim,) = cat.claim_notices("node-a", 10, LEASE)
    given_up, nxt = cat.notice_failed(
        claim, "HTTP 503 Service Unavailable", retry_in=1, keep_for=0, lease_seconds=LEASE
    )
    assert given_up and seq(nxt) == 2  # the next one goes on at once, same lease
    (dead,) = cat.dead_notices("app")
    assert (dead.notice_id, dead.event_type, dead.attempts, dead.last_error) == (
        claim.notice_id,
        101,
        1,
        "HTTP 503 Service Unavailable",
    )
    assert (dead.entry_point, dead.stream_name, json.loads(dead.payload)["seq"]) == (
        "live",
        "cam",
        1,
    )
    assert dead.failed_at >= dead.created_at
    assert cat.dead_notices("other") == []
    with pytest.raises(NotFoundError):
        cat.redeliver_notice("other", dead.id)
    # Redelivered: after what its stream has queued, with its noticeId.
    cat.redeliver_notice("app", dead.id)
    assert cat.dead_notices("app") == []
    with pytest.raises(NotFoundError):
        cat.redeliver_notice("app", dead.id)
    assert nxt is not None
    again = cat.notice_delivered(nxt, LEASE)
    assert again is not None and seq(again) == 1 and again.notice_id == claim.notice_id
    assert again.attempts == 0
    assert cat.notice_delivered(again, LEASE) is None
    cat.enqueue_notices([n(other, 5)])  # paging: newest first, below `before_id`
    assert cat.dead_notices("app", before_id=1) == []


def test_a_lost_lease_changes_nothing_of_the_new_holder(cat: Catalog) -> None:
    cat.enqueue_notices([n(CAM, 1), n(CAM, 2)])
    (old,) = cat.claim_notices("node-a", 10, 0.001)
    time.sleep(0.01)  # node-a's lease has run out (by the database's clock)
    (new,) = cat.claim_notices("node-b", 10, LEASE)
    assert new.id == old.id and new.token != old.token
    assert cat.notice_failed(old, "late", retry_in=3600, keep_for=0, lease_seconds=LEASE) == (
        False,
        None,
    )
    assert cat.dead_notices("app") == []
    # node-a's try did get through: the notice is gone, node-b's lease untouched.
    assert cat.notice_delivered(old, LEASE) is None
    assert cat.claim_notices("node-c", 10, LEASE) == []
    nxt = cat.notice_delivered(new, LEASE)  # node-b sent it too (at least once)
    assert seq(nxt) == 2


def test_a_node_gives_back_its_leases(cat: Catalog) -> None:
    cat.enqueue_notices([n(CAM, 1), n(CAM.with_stream("b"), 2)])
    assert len(cat.claim_notices("node-a", 10, LEASE)) == 2
    assert cat.claim_notices("node-b", 10, LEASE) == []
    assert cat.release_notice_leases("node-a") == 2
    assert len(cat.claim_notices("node-b", 1, LEASE)) == 1  # `limit` queues at most
    (claim,) = cat.claim_notices("node-b", 10, LEASE)
    cat.release_notice_claim(claim)
    assert [seq(c) for c in cat.claim_notices("node-c", 10, LEASE)] == [seq(claim)]


def test_changes_and_their_notices_commit_together_once(cat: Catalog) -> None:
    start = datetime.now(UTC)
    pid = cat.start_publish(
        CAM,
        node_id="node-a",
        client_ip="10.0.0.1",
        domain="push.example",
        start=start,
        node_ip="10.1.1.1",
        notices=[n(CAM, 1, 1)],
    )
    cat.set_publish_media(
        pid,
        video_codec="H264",
        audio_codec=None,
        width=1,
        height=1,
        fps=None,
        notices=[n(CAM, 2, 11)],
    )
    end = [n(CAM, 3, 2)]
    cat.end_publish(pid, start + timedelta(seconds=5), end)
    cat.end_publish(pid, start + timedelta(seconds=6), end)  # ended already: not told again
    rec = cat.create_recording(
        CAM,
        session_id="s1",
        playlist_key="record/live/cam/s1_20261123120000000.m3u8",
        start_time=start,
        node_id="node-a",
        lease_seconds=30,
    )
    cat.close_recording(rec.id, start, [n(CAM, 4, 101)])
    cat.close_recording(rec.id, start, [n(CAM, 5, 101)])  # closed already
    cat.add_snapshot_file(CAM, "snapshot/live/cam/a.jpg", start, [n(CAM, 6, 102)])
    cat.add_snapshot_file(CAM, "snapshot/live/cam/a.jpg", start, [n(CAM, 7, 102)])  # again
    # A publish its node left open: ended by its restart, with the callback made of its row.
    pid2 = cat.start_publish(
        CAM, node_id="node-a", client_ip="10.0.0.2", domain="d", start=start, node_ip="10.1.1.1"
    )
    made = []

    def ended(p: object) -> Notice:
        made.append(p)
        return n(CAM, 8, 2)

    assert cat.end_node_publishes("node-a", start, ended) == 1
    assert [getattr(p, "id", None) for p in made] == [pid2]
    assert getattr(made[0], "node_ip", None) == "10.1.1.1"
    got = []
    claim = cat.claim_notices("node-a", 1, LEASE)[0]
    while claim is not None:
        got.append((seq(claim), claim.event_type))
        claim = cat.notice_delivered(claim, LEASE)  # type: ignore[assignment]
    assert got == [(1, 1), (2, 11), (3, 2), (4, 101), (6, 102), (8, 2)]


def test_workers_racing_keep_each_streams_order_and_send_each_notice(cat: Catalog) -> None:
    """Four workers, each claiming two queues at a time and failing a fifth of their tries,
    on five streams of 20 notices: each stream's notices are delivered once each, in
    order, and no stream is ever sent by two workers at once."""
    streams = [CAM.with_stream(f"s{i}") for i in range(5)]
    for i in range(20):
        cat.enqueue_notices([n(s, i) for s in streams])
    delivered: dict[str, list[int]] = {s.stream_name: [] for s in streams}
    busy: set[str] = set()
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker(name: str, seed: int) -> None:
        rnd = random.Random(seed)
        idle = 0
        try:
            while idle < 20:
                claims = cat.claim_notices(name, 2, LEASE)
                idle = 0 if claims else idle + 1
                if not claims:
                    time.sleep(0.01)
                for claim in claims:
                    c: ClaimedNotice | None = claim
                    with lock:
                        assert claim.stream_name not in busy
                        busy.add(claim.stream_name)
                    while c is not None:
                        # The call that may give the queue back, and marking it free, under
                        # one lock: a worker that claims it next finds it free.
                        with lock:
                            if rnd.random() < 0.2:
                                cat.notice_failed(
                                    c, "x", retry_in=0, keep_for=3600, lease_seconds=LEASE
                                )
                                c = None
                            else:
                                delivered[c.stream_name].append(seq(c))
                                c = cat.notice_delivered(c, LEASE)
                            if c is None:
                                busy.discard(claim.stream_name)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(f"node-{i}", i)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert delivered == {s.stream_name: list(range(20)) for s in streams}
    assert cat.pending_notices() == 0


def test_delivered_notices_are_kept_newest_first_and_pruned(
    cat: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    from liverec.catalog import outbox

    other = CAM.with_stream("other")
    cat.enqueue_notices([n(CAM, 1), n(other, 10, 101), n(CAM, 2)])
    (a, b) = cat.claim_notices("node-a", 10, LEASE)
    cat.notice_failed(b, "HTTP 500", retry_in=0, keep_for=3600, lease_seconds=LEASE)
    nxt = cat.notice_delivered(a, LEASE)  # 1
    assert nxt is not None
    cat.notice_delivered(nxt, LEASE)  # 2
    (again,) = cat.claim_notices("node-b", 10, LEASE)
    cat.notice_delivered(again, LEASE)  # 10, on its second try
    done = cat.delivered_notices("app")
    assert [(d.stream_name, d.event_type, d.attempts) for d in done] == [
        ("other", 101, 2),
        ("cam", 1, 1),
        ("cam", 1, 1),
    ]
    assert done[0].notice_id == b.notice_id and done[0].created_at <= done[0].delivered_at
    assert [d.id for d in cat.delivered_notices("app", before_id=done[0].id, limit=1)] == [
        done[1].id
    ]
    cat.create_project("other")
    assert cat.delivered_notices("other") == []
    # A lost lease delivers nothing twice: the notice is recorded once.
    assert cat.notice_delivered(a, LEASE) is None
    assert len(cat.delivered_notices("app")) == 3
    # Only the newest are kept (here 4, pruned on every delivery).
    monkeypatch.setattr(outbox, "MAX_DELIVERED", 4)
    monkeypatch.setattr(outbox, "_PRUNE_EVERY", 1)
    for i in range(6):
        cat.enqueue_notices([n(CAM, 100 + i)])
        (claim,) = cat.claim_notices("node-a", 10, LEASE)
        cat.notice_delivered(claim, LEASE)
    kept = cat.delivered_notices("app")
    assert len(kept) == 4 and kept[0].id > kept[-1].id


def test_end_recording_closes_once_with_its_callback_or_forgets_an_empty_one(
    cat: Catalog,
) -> None:
    start = datetime.now(UTC).replace(microsecond=0)

    def recording(session: str) -> int:
        return cat.create_recording(
            CAM,
            session_id=session,
            playlist_key=f"record/live/cam/{session}_20261123120000000.m3u8",
            start_time=start,
            node_id="node-a",
            lease_seconds=30,
        ).id

    kept, empty = recording("s1"), recording("s2")
    cat.add_segment(
        kept, seq=0, key="k0.ts", start_time=start, duration=4.0, size=1, discontinuity=False
    )
    seen = []

    def closed(rec: Recording) -> Notice:
        seen.append((rec.id, rec.state, rec.segment_count))
        return n(CAM, len(seen), 101)

    assert cat.end_recording(kept, start + timedelta(seconds=4), closed) is True
    assert cat.end_recording(kept, start + timedelta(seconds=4), closed) is True  # closed already
    assert seen == [(kept, "open", 1)]  # made and enqueued by the call that closed it only
    rec = cat.get_recording(kept)
    assert rec.state == "closed" and rec.end_time == start + timedelta(seconds=4)
    assert cat.end_recording(empty, start, closed) is False
    with pytest.raises(NotFoundError):
        cat.get_recording(empty)
    assert not cat.file_reserved(CAM, "s2_20261123120000000.m3u8")  # its name is free
    with pytest.raises(NotFoundError):
        cat.end_recording(empty, start, closed)
    claim = cat.claim_notices("node-a", 1, LEASE)[0]
    assert (seq(claim), claim.event_type) == (1, 101)
    assert cat.notice_delivered(claim, LEASE) is None
