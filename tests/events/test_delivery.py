"""The delivery worker against a real HTTP receiver, over a real catalog (SQLite and
PostgreSQL): signed bodies, order per stream, retries of 500s, hangs and a receiver that
is down, dead letters and their redelivery."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from liverec.catalog import Catalog, Notice
from liverec.events import CallbackDelivery, RetryPolicy, post
from liverec.layout import StreamRef
from support.receiver import Received, Receiver, always, delivered

SECRET = "receiver-secret"
CAM = StreamRef("app", "na", "live", "cam")
FAST = RetryPolicy(timeout=2.0, keep_for=3600, first_backoff=0.05, max_backoff=0.2)


@pytest.fixture
def cat(catalog: Catalog) -> Catalog:
    catalog.create_project("app")
    catalog.create_entry_point("app", "live")
    return catalog


def configure(cat: Catalog, receiver: Receiver, **kw: object) -> None:
    cat.set_callback_settings(
        "app",
        url=receiver.url,
        secret=SECRET,
        event_types=[1, 2, 101],
        **kw,  # type: ignore[arg-type]
    )


@asynccontextmanager
async def running(cat: Catalog, policy: RetryPolicy = FAST) -> AsyncIterator[CallbackDelivery]:
    delivery = CallbackDelivery(cat, node_id="node-a", policy=policy, workers=4, poll=0.05)
    task = asyncio.create_task(delivery.run())
    try:
        yield delivery
    finally:
        delivery.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def wait(receiver: Receiver, predicate: Callable[[list[Received]], bool]) -> list[Received]:
    return await asyncio.to_thread(receiver.wait_for, predicate, 60.0)


async def until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def seqs(bodies: list[dict[str, object]], stream: str) -> list[int]:
    return [b["payload"]["seq"] for b in bodies if b["payload"]["streamName"] == stream]  # type: ignore[index]


def notices_for(stream: StreamRef, seqs_: range, event_type: int = 1) -> list[Notice]:
    return [
        Notice(stream, event_type, {"eventName": "e", "streamName": stream.stream_name, "seq": i})
        for i in seqs_
    ]


async def test_signed_in_order_and_a_500_retried_with_the_same_notice_id(cat: Catalog) -> None:
    receiver = Receiver(lambda i, _r: (500, 0.0) if i < 2 else (200, 0.0)).start()
    try:
        configure(cat, receiver)
        other = CAM.with_stream("other")
        cat.enqueue_notices(notices_for(CAM, range(3)) + notices_for(other, range(2)))
        async with running(cat):
            got = await wait(receiver, lambda r: len(delivered(r)) == 5)
            # The receiver has the last request before the worker has its answer and marks
            # the notice done: wait for that too, while the worker still runs.
            await until(lambda: cat.pending_notices() == 0)
    finally:
        receiver.stop()
    bodies = delivered(got)
    assert seqs(bodies, "cam") == [0, 1, 2] and seqs(bodies, "other") == [0, 1]
    for r in got:
        assert r.signed_with(SECRET), r
        assert r.headers["content-type"] == "application/json;charset=utf-8"
        assert r.path == "/hook?token=t1"
        body = r.json
        assert list(body) == ["noticeId", "productId", "eventType", "notifyMs", "payload"]
        assert body["productId"] == 7 and body["eventType"] == 1
    # The two 500s were tries of notices that were sent again with the same noticeId and
    # a new notifyMs.
    failed = [r.json for r in got if r.answered == 500]
    assert len(failed) == 2
    for try_ in failed:
        later = next(b for b in bodies if b["noticeId"] == try_["noticeId"])
        assert later["payload"] == try_["payload"]
        assert later["notifyMs"] > try_["notifyMs"]
    assert cat.pending_notices() == 0


async def test_a_receiver_that_hangs_is_timed_out_and_retried(cat: Catalog) -> None:
    # The first request hangs (then would answer 500); the others are answered at once.
    receiver = Receiver(lambda i, _r: (500, 30.0) if i == 0 else (200, 0.0)).start()
    try:
        configure(cat, receiver)
        cat.enqueue_notices(notices_for(CAM, range(2)))
        policy = RetryPolicy(timeout=0.5, keep_for=3600, first_backoff=0.05, max_backoff=0.1)
        async with running(cat, policy):
            got = await wait(receiver, lambda r: len(delivered(r)) == 2)
    finally:
        receiver.stop()
    assert seqs(delivered(got), "cam") == [0, 1]
    assert got[0].json["noticeId"] == got[1].json["noticeId"]  # the hung one, sent again


async def test_a_receiver_down_then_up_gets_everything_in_order(cat: Catalog) -> None:
    receiver = Receiver()  # not listening yet: connections are refused
    configure(cat, receiver)
    streams = [CAM.with_stream(f"s{i}") for i in range(3)]
    for i in range(4):
        cat.enqueue_notices([n for s in streams for n in notices_for(s, range(i, i + 1))])
    async with running(cat):
        # Tries fail while it is down; nothing is lost or given up.
        await asyncio.sleep(1.0)
        assert cat.pending_notices() == 12 and cat.dead_notices("app") == []
        receiver.start()
        try:
            got = await wait(receiver, lambda r: len(delivered(r)) == 12)
        finally:
            receiver.stop()
    bodies = delivered(got)
    for s in streams:
        assert seqs(bodies, s.stream_name) == [0, 1, 2, 3]


async def test_given_up_after_the_window_then_redelivered(cat: Catalog) -> None:
    answer = {"status": 500}
    receiver = Receiver(lambda _i, _r: (answer["status"], 0.0)).start()
    try:
        configure(cat, receiver)
        cat.enqueue_notices(notices_for(CAM, range(2)))
        policy = RetryPolicy(timeout=2.0, keep_for=0.0, first_backoff=0.05, max_backoff=0.1)
        async with running(cat, policy):
            await wait(receiver, lambda r: len(r) == 2)
            for _ in range(200):
                if len(cat.dead_notices("app")) == 2:
                    break
                await asyncio.sleep(0.05)
        dead = cat.dead_notices("app")
        assert [json.loads(d.payload)["seq"] for d in dead] == [1, 0]  # newest first
        assert all(d.last_error.startswith("HTTP 500") and d.attempts == 1 for d in dead)
        assert cat.pending_notices() == 0
        answer["status"] = 200
        cat.redeliver_notice("app", dead[1].id)
        async with running(cat):
            got = await wait(receiver, lambda r: len(delivered(r)) == 1)
    finally:
        receiver.stop()
    (body,) = delivered(got)
    assert body["noticeId"] == dead[1].notice_id and body["payload"]["seq"] == 0


async def test_notices_whose_callbacks_were_switched_off_are_given_up(cat: Catalog) -> None:
    receiver = Receiver(always(200)).start()
    try:
        configure(cat, receiver)
        cat.enqueue_notices(notices_for(CAM, range(1)))
        configure(cat, receiver, enabled=False)
        async with running(cat):
            for _ in range(200):
                if cat.dead_notices("app"):
                    break
                await asyncio.sleep(0.05)
    finally:
        receiver.stop()
    (dead,) = cat.dead_notices("app")
    assert "off" in dead.last_error and receiver.received == []


def test_a_trickling_answer_is_cut_at_the_deadline() -> None:
    """A receiver that sends its answer a byte at a time, never finishing, cannot hold a
    try longer than its deadline: TimeoutError, though every read gets a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    stop = threading.Event()

    def trickle() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 10_000:
                if stop.wait(0.05):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        with pytest.raises(TimeoutError):
            post(f"http://127.0.0.1:{port}/", b"{}", {}, 0.5)
    finally:
        stop.set()
        server.close()
        thread.join(5)
