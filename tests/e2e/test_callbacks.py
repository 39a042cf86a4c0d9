"""End to end: FLS callbacks and the publish webhook on real `liverec serve` processes, with
real ffmpeg pushes and a real HTTP receiver on loopback (support/receiver.py) that checks
each body's signatures as FLS documents them: `Agora-Signature` hex HMAC-SHA1 and
`Agora-Signature-V2` hex HMAC-SHA256 of the raw body, keyed with the secret.

Every event type from real pushes; at least once and in order per stream through a receiver
that is down, answers 500, hangs; given-up callbacks redelivered; a kill -9 mid-delivery;
two nodes on one PostgreSQL catalog, one killed while holding undelivered events; the
publish webhook allowing, refusing and timing out (fail-closed, and fail-open). The nodes
run with short timeouts and backoffs (FAST) so that retries take a second, not minutes."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest

from liverec.catalog import SecretBox
from support.api import base_path, client, z
from support.mediagen import make_media
from support.pg import PG_ADMIN_URL, PgServer
from support.receiver import Received, Receiver, always, delivered
from support.recordings import finished, recordings
from support.rtmpclient import RtmpPublisher
from support.server import APP_ID, LiverecProcess, push, start_push

pytestmark = pytest.mark.slow  # real `liverec serve` processes, real ffmpeg pushes

FPS = 25
SECRET = "callback-secret-1"
WEBHOOK_SECRET = "webhook-secret-1"
EPS = f"/v1/projects/{APP_ID}/fls/entry_points"
SETTINGS = f"/v1/projects/{APP_ID}/fls/settings"
CALLBACK_TIMEOUT = 2  # seconds a try may take (the default is 10)
FAST = {
    "LIVEREC_CALLBACK_TIMEOUT": str(CALLBACK_TIMEOUT),
    "LIVEREC_CALLBACK_MAX_BACKOFF": "0.5",  # tries 0.25-0.5 s apart
    "LIVEREC_WEBHOOK_TIMEOUT": "1",
    "LIVEREC_WEBHOOK_CACHE_SECONDS": "0",  # every publish asks the webhook
}
HANG = 60.0  # a hanging receiver's wait: longer than any test (cut short when it stops)
# The documented eventName of each event type (FLS's, then liverec's extensions).
NAMES = {
    1: "publish_start",
    2: "publish_end",
    11: "publish_media_info",
    101: "new_standard_record_file",
    102: "new_standard_snapshot_file",
    1000: "callback_test",
    1001: "new_clip_file",
    1002: "new_api_snapshot_file",
}
PUBLISH_EVENTS = [1, 2, 11, 101]


# -- fixtures and helpers -----------------------------------------------------------------


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiverecProcess]:
    proc = LiverecProcess(tmp_path_factory.mktemp("data"), env=FAST).start()
    yield proc
    proc.terminate()


@pytest.fixture(scope="module")
def http(srv: LiverecProcess) -> Iterator[httpx.Client]:
    with client(srv) as c:
        yield c


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("media")
    return {
        "short": make_media(d / "short.flv", 2, fps=FPS, gop=FPS),
        "seven": make_media(d / "seven.flv", 7, fps=FPS, gop=FPS),
    }


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    """Receivers a test starts, stopped (their hangs let go) at its end."""
    made: list[Receiver] = []
    yield made
    for rx in made:
        rx.stop()


def receiver(made: list[Receiver], behaviour: Any = None, *, listening: bool = True) -> Receiver:
    rx = Receiver(behaviour)
    made.append(rx)
    return rx.start() if listening else rx


def entry_point(http: httpx.Client, ep: str, rx: Receiver, events: list[int] | None) -> None:
    """A new entry point whose callbacks (its own configuration) go to `rx`."""
    assert http.post(EPS, params={"id": ep}).status_code == 201
    body: dict[str, Any] = {"url": rx.url, "secret": SECRET}
    if events is not None:
        body["eventTypes"] = events
    resp = http.put(SETTINGS + "/callback", params={"entryPoint": ep}, json=body)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {
        "entryPoint": ep,
        "url": rx.url,
        "eventTypes": sorted(events or [1, 2, 11, 101, 102]),
        "enabled": True,
        "secretSet": True,
    }


def stream_of(r: Received) -> str:
    name = r.json["payload"]["streamName"]
    assert isinstance(name, str)
    return name


def check_format(received: list[Received], secret: str = SECRET) -> None:
    """Each request is exactly as FLS documents a callback."""
    assert received
    for r in received:
        assert r.path == "/hook?token=t1"  # the URL as configured, query and all
        assert r.headers["content-type"] == "application/json;charset=utf-8", r.headers
        assert r.signed_with(secret), r
        body = r.json
        assert list(body) == ["noticeId", "productId", "eventType", "notifyMs", "payload"]
        assert body["productId"] == 7 and isinstance(body["notifyMs"], int), body
        assert isinstance(body["noticeId"], str) and body["noticeId"], body
        payload = body["payload"]
        assert payload["eventName"] == NAMES[body["eventType"]], body


def check_one_at_a_time(received: list[Received], *, duplicates_ok: bool = False) -> None:
    """Per stream, a notice is tried until the receiver took it (2xx), and only then the
    next one: each request repeats the previous noticeId of its stream if that try failed,
    and is a new one if it succeeded (after a crash, `duplicates_ok`, it may be repeated)."""
    by_stream: dict[str, list[Received]] = defaultdict(list)
    for r in received:
        by_stream[stream_of(r)].append(r)
    for stream, reqs in by_stream.items():
        for prev, cur in pairwise(reqs):
            same = prev.json["noticeId"] == cur.json["noticeId"]
            if 200 <= prev.answered < 300:
                assert duplicates_ok or not same, (stream, prev.json, cur.json)
            else:
                assert same, (stream, prev.answered, prev.json, cur.json)


def types_of(bodies: list[dict[str, Any]], stream: str) -> list[int]:
    return [b["eventType"] for b in bodies if b["payload"]["streamName"] == stream]


def check_publish_order(types: list[int], expected: list[int] = PUBLISH_EVENTS) -> None:
    """A publish's notices: each once, publish_start first, media info before the end."""
    assert sorted(types) == sorted(expected), types
    assert types[0] == 1, types
    if 11 in types:
        assert types.index(11) < types.index(2), types


def has_all(expected: dict[str, int]) -> Callable[[list[Received]], bool]:
    """A wait_for predicate: that many notices delivered for each stream."""

    def done(received: list[Received]) -> bool:
        bodies = delivered(received)
        return all(len(types_of(bodies, s)) >= n for s, n in expected.items())

    return done


def cli(node: LiverecProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """A `liverec` admin command on the node's catalog (its data dir and environment)."""
    return subprocess.run(
        [sys.executable, "-m", "liverec", *args, "--data-dir", str(node.data_dir)],
        env=node.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def waiting(node: LiverecProcess) -> int:
    """The project's notices in the outbox, as `liverec callbacks show` says."""
    result = cli(node, "callbacks", "show")
    assert result.returncode == 0, result.stderr
    found = re.search(r"waiting to be sent: (\d+)", result.stdout)
    assert found, result.stdout
    return int(found.group(1))


def wait_until(pred: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def count_log(node: LiverecProcess, pattern: str, start: int = 0) -> int:
    regex = re.compile(pattern)
    return sum(1 for line in node.lines[start:] if regex.search(line))


# -- every event type, from real pushes ---------------------------------------------------


def test_every_event_type_from_real_pushes_signed_and_in_order(
    srv: LiverecProcess,
    http: httpx.Client,
    media: dict[str, Path],
    receivers: list[Receiver],
) -> None:
    rx = receiver(receivers)
    entry_point(http, "events", rx, [1, 2, 11, 101, 102, 1001, 1002])
    ep_settings = EPS + "/events/settings"
    resp = http.patch(
        ep_settings + "/record/standard/regions/na", json={"mp4Config": {"enabled": True}}
    )
    assert resp.status_code == 200, resp.text
    resp = http.patch(
        ep_settings + "/snapshot/standard/regions/na", json={"enabled": True, "snapshotInterval": 5}
    )
    assert resp.status_code == 200, resp.text
    # In real time: periodic snapshots are taken on the wall clock (one at about 5 s).
    assert push(srv.url("events", "cam"), media["seven"]).returncode == 0
    [rec] = finished(srv.stream_dir("cam", "events"))
    base = base_path(entry_point="events")
    clip = http.post(
        base + "/cutting/cam",
        json={
            "startTime": z(rec.start + timedelta(seconds=1)),
            "endTime": z(rec.start + timedelta(seconds=3)),
            "fileName": "clip1.m3u8",
        },
    )
    assert clip.status_code == 200, clip.text
    shot = http.post(base + "/snapshot/cam", json={"fileName": "shot1.jpg"})
    assert shot.status_code == 200, shot.text

    # publish_start, media info, publish_end, the HLS recording and an MP4 slice (101), a
    # periodic snapshot (102), the clip (1001) and the API snapshot (1002).
    got = rx.wait_for(has_all({"cam": 8}))
    check_format(got)
    assert len(got) == len(delivered(got))  # a receiver that takes each: each sent once
    check_one_at_a_time(got)
    bodies = delivered(got)
    by_type: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for b in bodies:
        assert (b["payload"]["entryPoint"], b["payload"]["streamName"]) == ("events", "cam")
        by_type[b["eventType"]].append(b["payload"])
    assert sorted(by_type) == [1, 2, 11, 101, 102, 1001, 1002], bodies
    types = [b["eventType"] for b in bodies]
    check_publish_order([t for t in types if t in (1, 2, 11)], [1, 2, 11])
    assert types.index(1) < types.index(101) and types.index(1) < types.index(102), types

    [start], [end] = by_type[1], by_type[2]
    where = {"domain": "127.0.0.1", "clientIp": "127.0.0.1", "nodeIp": "127.0.0.1"}
    assert (
        start == {"eventName": "publish_start", "entryPoint": "events", "streamName": "cam"} | where
    )
    assert end == start | {"eventName": "publish_end"}
    [info] = by_type[11]
    # Numbers are JSON numbers (FLS's table types them as integers).
    assert {k: info[k] for k in ("videoCodec", "audioCodec", "videoFps", "width", "height")} == {
        "videoCodec": "H264",
        "audioCodec": "AAC",
        "videoFps": FPS,
        "width": 320,
        "height": 240,
    }, info
    assert type(info["videoRate"]) is int and info["videoRate"] >= 0, info
    assert info["domain"] == "127.0.0.1"

    # 101: the closed HLS recording by its playlist name, and each MP4 slice as listed.
    record_files = {p["fileName"] for p in by_type[101]}
    hls = f"record/events/cam/{rec.path.name}"
    assert hls in record_files, record_files
    since = {
        "start_time": z(rec.start - timedelta(minutes=1)),
        "end_time": z(datetime.now(UTC) + timedelta(minutes=1)),
        "stream_name": "cam",
    }
    listed = http.get(EPS + "/events/admin/record/standard/regions/na/mp4_list", params=since)
    assert listed.status_code == 200, listed.text
    slices = {item["fileName"] for item in listed.json()["list"]}
    assert slices and record_files == {hls} | slices, (record_files, slices)
    assert all(
        re.fullmatch(rf"record/events/cam/{rec.path.stem}_\d+_\d{{17}}\.mp4", s) for s in slices
    )
    # 102: each periodic snapshot, as the snapshot list has it.
    listed = http.get(EPS + "/events/admin/snapshot/standard/regions/na/list", params=since)
    assert listed.status_code == 200, listed.text
    snapshots = {item["fileName"] for item in listed.json()["list"]}
    assert snapshots and {p["fileName"] for p in by_type[102]} == snapshots, by_type[102]
    # 1001 and 1002 (liverec extensions): what the cutting and snapshot calls answered.
    [clip_notice] = by_type[1001]
    assert clip_notice["fileName"] == clip.json()["fileName"] == "record/events/cam/clip1.m3u8"
    assert clip_notice["startTime"] == z(rec.start + timedelta(seconds=1)) or clip_notice[
        "startTime"
    ] <= z(rec.start + timedelta(seconds=1)), clip_notice
    assert clip_notice["endTime"] > clip_notice["startTime"], clip_notice
    [shot_notice] = by_type[1002]
    assert shot_notice["fileName"] == shot.json()["fileName"] == "record/events/cam/shot1.jpg"
    assert shot_notice["time"] == shot.json()["time"], (shot_notice, shot.json())


def test_only_subscribed_event_types_are_sent(
    srv: LiverecProcess,
    http: httpx.Client,
    media: dict[str, Path],
    receivers: list[Receiver],
) -> None:
    rx = receiver(receivers)
    entry_point(http, "picky", rx, [2])
    other = receiver(receivers)
    entry_point(http, "plain", other, None)  # no eventTypes: FLS's own
    assert push(srv.url("picky", "cam"), media["short"], realtime=False).returncode == 0
    assert push(srv.url("plain", "cam"), media["short"], realtime=False).returncode == 0
    finished(srv.stream_dir("cam", "picky"))
    plain = other.wait_for(has_all({"cam": 4}))
    check_publish_order(types_of(delivered(plain), "cam"))
    got = rx.wait_for(has_all({"cam": 1}))
    # By now the plain entry point's publish, made after, was told in full.
    assert [b["eventType"] for b in delivered(got)] == [2], got
    assert waiting(srv) == 0


# -- at least once, in order per stream ---------------------------------------------------


def test_receiver_down_then_up_gets_everything_in_order(
    srv: LiverecProcess,
    http: httpx.Client,
    media: dict[str, Path],
    receivers: list[Receiver],
) -> None:
    rx = receiver(receivers, listening=False)  # its port refuses connections
    entry_point(http, "down", rx, PUBLISH_EVENTS)
    mark = len(srv.lines)
    streams = ["s1", "s2", "s3"]
    pushes = [start_push(srv.url("down", s), media["short"], realtime=False) for s in streams]
    assert all(p.wait(60) == 0 for p in pushes)
    for s in streams:
        finished(srv.stream_dir(s, "down"))
    # Every notice is in the outbox, and the head of each stream has been tried and retried.
    wait_until(lambda: waiting(srv) == 4 * len(streams), "12 notices waiting")
    wait_until(
        lambda: count_log(srv, r"failed \(try [3-9]\): ConnectionRefusedError", mark) >= 3,
        "retries of the three streams",
    )
    assert rx.received == []
    rx.start()
    got = rx.wait_for(has_all(dict.fromkeys(streams, 4)))
    check_format(got)
    check_one_at_a_time(got)
    bodies = delivered(got)
    for s in streams:
        check_publish_order(types_of(bodies, s))
    wait_until(lambda: waiting(srv) == 0, "an empty outbox")


def test_500s_then_success_same_notice_id(
    srv: LiverecProcess,
    http: httpx.Client,
    media: dict[str, Path],
    receivers: list[Receiver],
) -> None:
    rx = receiver(receivers, lambda n, _r: (500, 0.0) if n < 3 else (200, 0.0))
    entry_point(http, "errors", rx, PUBLISH_EVENTS)
    assert push(srv.url("errors", "cam"), media["short"], realtime=False).returncode == 0
    got = rx.wait_for(has_all({"cam": 4}))
    check_format(got)
    check_one_at_a_time(got)
    first = [r.json for r in got[:4]]
    assert [r.answered for r in got[:4]] == [500, 500, 500, 200]
    # The same event four times: one noticeId (receivers de-duplicate by it), notifyMs new
    # on each try.
    assert {b["noticeId"] for b in first} == {first[0]["noticeId"]} and first[0]["eventType"] == 1
    assert {b["payload"]["streamName"] for b in first} == {"cam"}
    assert all(a["notifyMs"] < b["notifyMs"] for a, b in pairwise(first)), first
    assert {b["payload"] == first[0]["payload"] for b in first} == {True}
    check_publish_order(types_of(delivered(got), "cam"))
    # Retried, not given up; listed as delivered on its fourth try.
    assert http.get(SETTINGS + "/callback/failed").json() == {"failedList": []}

    def taken() -> list[dict[str, Any]]:
        found = http.get(SETTINGS + "/callback/delivered").json()["deliveredList"]
        return [d for d in found if d["entryPoint"] == "errors"]

    wait_until(lambda: any(d["noticeId"] == first[0]["noticeId"] for d in taken()), "listed")
    (listed,) = [d for d in taken() if d["noticeId"] == first[0]["noticeId"]]
    assert (listed["attempts"], listed["eventType"], listed["streamName"]) == (4, 1, "cam")


def test_a_receiver_that_hangs_is_cut_at_the_timeout_and_holds_up_no_other_stream(
    srv: LiverecProcess,
    http: httpx.Client,
    media: dict[str, Path],
    receivers: list[Receiver],
) -> None:
    hung: list[str] = []

    def behaviour(_n: int, r: Received) -> tuple[int, float]:
        if stream_of(r) == "slow" and not hung:
            hung.append(r.json["noticeId"])
            return 0, HANG  # holds the connection, never answers
        return 200, 0.0

    rx = receiver(receivers, behaviour)
    entry_point(http, "hang", rx, PUBLISH_EVENTS)
    mark = len(srv.lines)
    assert push(srv.url("hang", "slow"), media["short"], realtime=False).returncode == 0
    rx.wait_for(lambda got: len(got) >= 1)
    assert push(srv.url("hang", "quick"), media["short"], realtime=False).returncode == 0
    got = rx.wait_for(has_all({"slow": 4, "quick": 4}))
    check_format(got)
    check_one_at_a_time(got)
    # The first try is still hanging on the receiver (it never answers): liverec cut it at
    # its timeout and sent the same notice again.
    assert got[0].answered == 0 and got[0].json["noticeId"] == hung[0]
    retries = [r for r in got[1:] if r.json["noticeId"] == hung[0]]
    assert [r.answered for r in retries] == [200], retries
    bodies = delivered(got)
    check_publish_order(types_of(bodies, "slow"))
    check_publish_order(types_of(bodies, "quick"))
    assert count_log(srv, rf"failed \(try 1\): no answer within {CALLBACK_TIMEOUT} s", mark) == 1


def test_cli_test_prints_the_receivers_answer(
    srv: LiverecProcess, http: httpx.Client, receivers: list[Receiver]
) -> None:
    rx = receiver(receivers)
    entry_point(http, "clitest", rx, None)
    result = cli(srv, "callbacks", "test", "--entry-point", "clitest", "--stream", "probe")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["HTTP 200 OK", '{"ok":true}'], result.stdout
    [got] = rx.received
    check_format([got])
    assert got.json["eventType"] == 1000
    assert got.json["payload"] == {
        "eventName": "callback_test",
        "entryPoint": "clitest",
        "streamName": "probe",
    }
    rx.behaviour = always(503)
    result = cli(srv, "callbacks", "test", "--entry-point", "clitest")
    assert result.returncode == 1, result
    assert result.stdout.splitlines()[0] == "HTTP 503 Service Unavailable", result.stdout
    assert len(rx.received) == 2


# -- the publish webhook ------------------------------------------------------------------


@pytest.fixture
def webhook(http: httpx.Client, receivers: list[Receiver]) -> Iterator[Receiver]:
    """The project's publish webhook, enabled, answering 200 until told otherwise."""
    wh = receiver(receivers)
    resp = http.patch(
        SETTINGS + "/streamauth/webhook",
        json={"enabled": True, "url": wh.url, "secret": WEBHOOK_SECRET},
    )
    assert resp.status_code == 200, resp.text
    on = {"enabled": True, "url": wh.url, "secret": WEBHOOK_SECRET}
    assert resp.json() == on and http.get(SETTINGS + "/streamauth/webhook").json() == on
    yield wh
    resp = http.patch(SETTINGS + "/streamauth/webhook", json={"enabled": False})
    assert resp.status_code == 200 and resp.json()["enabled"] is False


def check_webhook_request(r: Received, stream: str, token: str) -> None:
    assert r.path == "/hook?token=t1"
    assert r.headers["content-type"] == "application/json;charset=utf-8"
    assert r.signed_with(WEBHOOK_SECRET), r
    body = r.json
    assert isinstance(body.pop("requestId"), str)
    assert body == {
        "host": "127.0.0.1",
        "entryPoint": "gated",
        "streamName": stream,
        "cdnIp": "127.0.0.1",
        "clientIp": "127.0.0.1",
        "token": token,
    }


def test_publish_webhook_allows_refuses_and_times_out(
    srv: LiverecProcess,
    http: httpx.Client,
    media: dict[str, Path],
    receivers: list[Receiver],
    webhook: Receiver,
) -> None:
    rx = receiver(receivers)
    entry_point(http, "gated", rx, PUBLISH_EVENTS)
    mark = len(srv.lines)
    # 200: the publish goes ahead, and is recorded and told.
    url = srv.url("gated", "ok", query="token=tok-1")
    assert push(url, media["short"], realtime=False).returncode == 0
    finished(srv.stream_dir("ok", "gated"))
    [asked] = webhook.received
    check_webhook_request(asked, "ok", "tok-1")
    rx.wait_for(has_all({"ok": 4}))

    # 401: refused, with a status ffmpeg prints; nothing is recorded.
    webhook.behaviour = always(401)
    refused = push(srv.url("gated", "no", query="token=tok-2"), media["short"], realtime=False)
    assert refused.returncode != 0
    assert "Server error: the publish webhook refused the publish (HTTP 401)" in refused.stderr, (
        refused.stderr
    )
    check_webhook_request(webhook.received[1], "no", "tok-2")
    pub = RtmpPublisher("127.0.0.1", srv.rtmp_port)
    try:
        assert pub.connect_and_publish("gated", "no") == "NetStream.Publish.Unauthorized"
    finally:
        pub.close()
    check_webhook_request(webhook.received[2], "no", "")

    # No answer within the webhook timeout (1 s here): refused.
    webhook.behaviour = lambda _n, _r: (200, HANG)
    late = push(srv.url("gated", "late"), media["short"], realtime=False)
    assert late.returncode != 0
    assert "Server error: the publish webhook did not answer within 1 s" in late.stderr, late.stderr
    assert len(webhook.received) == 4
    assert count_log(
        srv, r"publish webhook did not answer within 1 s for gated/late: refused", mark
    )

    # Allowed again: its notices come, and none of the refused publishes ever had any.
    webhook.behaviour = always(200)
    assert push(srv.url("gated", "after"), media["short"], realtime=False).returncode == 0
    got = rx.wait_for(has_all({"after": 4}))
    assert {stream_of(r) for r in got} == {"ok", "after"}, got
    for stream in ("no", "late"):
        assert not list(srv.stream_dir(stream, "gated").glob("*"))
    assert waiting(srv) == 0


# -- a node with a short retry window and a fail-open webhook ------------------------------


@pytest.fixture(scope="module")
def aux(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiverecProcess]:
    env = FAST | {
        "LIVEREC_CALLBACK_RETRY_HOURS": "0.0005",  # given up after 1.8 s of failing
        "LIVEREC_WEBHOOK_FAIL_OPEN": "true",
    }
    proc = LiverecProcess(tmp_path_factory.mktemp("aux"), env=env).start()
    yield proc
    proc.terminate()


def test_given_up_callbacks_are_listed_and_redelivered(
    aux: LiverecProcess, media: dict[str, Path], receivers: list[Receiver]
) -> None:
    rx = receiver(receivers, always(500))
    with client(aux) as c:
        entry_point(c, "dead", rx, [1, 2])
        assert push(aux.url("dead", "cam"), media["short"], realtime=False).returncode == 0

        def failed_lines() -> list[str]:
            result = cli(aux, "callbacks", "failed")
            assert result.returncode == 0, result.stderr
            return result.stdout.splitlines()

        wait_until(lambda: len(failed_lines()) == 2, "two failed callbacks")
        assert waiting(aux) == 0
        lines = failed_lines()
        assert re.match(r"\d+\t\S+\t2 publish_end\tdead/cam\ttries=\d+\tHTTP 500 ", lines[0]), lines
        assert re.match(r"\d+\t\S+\t1 publish_start\tdead/cam\ttries=\d+\tHTTP 500 ", lines[1])
        failed = c.get(SETTINGS + "/callback/failed").json()["failedList"]
        assert [f["eventType"] for f in failed] == [2, 1], failed  # newest first
        tried = {r.json["noticeId"] for r in rx.received}
        for f in failed:
            assert f["noticeId"] in tried and f["attempts"] >= 1, f
            assert f["lastError"].startswith("HTTP 500") and f["eventName"] == NAMES[f["eventType"]]
            assert (f["entryPoint"], f["streamName"]) == ("dead", "cam")
            assert f["payload"]["eventName"] == f["eventName"]
        end, start = failed
        # Redelivered, with their noticeIds: publish_start by the CLI, publish_end by the API.
        rx.behaviour = always(200)
        mark = len(rx.received)
        result = cli(aux, "callbacks", "redeliver", str(start["id"]))
        assert result.returncode == 0 and "queued again" in result.stdout, result
        got = rx.wait_for(lambda r: len(delivered(r[mark:])) == 1)
        resp = c.post(SETTINGS + "/callback/failed/redeliver", params={"id": end["id"]})
        assert resp.status_code == 200, resp.text
        got = rx.wait_for(lambda r: len(delivered(r[mark:])) == 2)
        again = delivered(got[mark:])
        assert [b["noticeId"] for b in again] == [start["noticeId"], end["noticeId"]]
        assert [b["payload"] for b in again] == [start["payload"], end["payload"]]
        check_format(got)
        assert c.get(SETTINGS + "/callback/failed").json() == {"failedList": []}
        resp = c.post(SETTINGS + "/callback/failed/redeliver", params={"id": end["id"]})
        assert resp.status_code == 404 and resp.json()["reason"] == "callback_not_found"


def test_fail_open_webhook_lets_an_unanswered_publish_through(
    aux: LiverecProcess, media: dict[str, Path], receivers: list[Receiver]
) -> None:
    wh = receiver(receivers, lambda _n, _r: (200, HANG))
    mark = len(aux.lines)
    with client(aux) as c:
        assert c.post(EPS, params={"id": "open"}).status_code == 201
        hook = {"enabled": True, "url": wh.url, "secret": WEBHOOK_SECRET}
        assert c.patch(SETTINGS + "/streamauth/webhook", json=hook).status_code == 200
        try:
            assert push(aux.url("open", "cam"), media["short"], realtime=False).returncode == 0
            finished(aux.stream_dir("cam", "open"))
            assert count_log(
                aux, r"did not answer within 1 s for open/cam: allowed \(fail-open\)", mark
            )
            # A refusal is still a refusal.
            wh.behaviour = always(401)
            refused = push(aux.url("open", "no"), media["short"], realtime=False)
            assert refused.returncode != 0 and "HTTP 401" in refused.stderr, refused.stderr
            assert not list(aux.stream_dir("no", "open").glob("*"))
            assert len(wh.received) == 2 and all(r.signed_with(WEBHOOK_SECRET) for r in wh.received)
        finally:
            assert (
                c.patch(SETTINGS + "/streamauth/webhook", json={"enabled": False}).status_code
                == 200
            )


# -- crashes ------------------------------------------------------------------------------


class HangUntilReleased:
    """A receiver behaviour: hold every request (never answering) until `released`, then
    take each at once."""

    def __init__(self) -> None:
        self.released = threading.Event()

    def __call__(self, _n: int, _r: Received) -> tuple[int, float]:
        return (200, 0.0) if self.released.is_set() else (0, HANG)


def check_after_crash(got: list[Received], killed_at: int) -> list[dict[str, Any]]:
    """What a receiver got around a crash: before it (`killed_at` requests) tries of one
    notice, never answered; after it, each notice once, the one being sent first."""
    check_format(got)
    check_one_at_a_time(got, duplicates_ok=True)
    before, after = got[:killed_at], got[killed_at:]
    assert {r.answered for r in before} == {0} and len({r.json["noticeId"] for r in before}) == 1
    assert {r.answered for r in after} == {200}, after
    bodies = delivered(after)
    assert len(bodies) == len(after)  # none twice
    assert bodies[0]["noticeId"] == before[0].json["noticeId"]  # the one being sent, again
    assert bodies[0]["eventType"] == 1
    check_publish_order(types_of(bodies, "cam"))
    start, end = (b["payload"] for b in bodies if b["eventType"] in (1, 2))
    assert end == start | {"eventName": "publish_end"}
    return bodies


def test_kill_9_mid_delivery_and_mid_publish_then_restart_loses_nothing(
    tmp_path: Path, media: dict[str, Path], receivers: list[Receiver]
) -> None:
    hold = HangUntilReleased()
    rx = receiver(receivers, hold)
    node = LiverecProcess(tmp_path / "data", env=FAST).start()
    try:
        with client(node) as c:
            entry_point(c, "crash", rx, PUBLISH_EVENTS)
        publisher = start_push(node.url("crash", "cam"), media["seven"])
        # publish_start is being tried (its receiver never answers), media info waits
        # behind it, and the recording has a segment (one without is dropped, not told).
        rx.wait_for(lambda got: len(got) >= 1)
        wait_until(lambda: waiting(node) == 2, "publish_start and media info in the outbox")
        folder = node.stream_dir("cam", "crash")
        wait_until(lambda: any(r.playlist.segments for r in recordings(folder)), "a segment")
        tries = len(rx.received)
        rx.wait_for(lambda got: len(got) > tries)  # a try has just begun
        node.kill()  # SIGKILL: mid-delivery, mid-publish
        killed_at = len(rx.received)
        publisher.kill()
        publisher.wait(10)
        hold.released.set()
        node.start()
        # The restart ends the publish and closes its recording: their notices follow.
        got = rx.wait_for(lambda got: len(delivered(got)) >= 4)
        finished(folder)
        wait_until(lambda: waiting(node) == 0, "an empty outbox")
    finally:
        node.terminate()
    check_after_crash(got, killed_at)


def test_two_nodes_on_postgresql_one_killed_with_undelivered_events(
    tmp_path: Path, media: dict[str, Path], receivers: list[Receiver]
) -> None:
    hold = HangUntilReleased()
    rx = receiver(receivers, hold)
    pg = PgServer(PG_ADMIN_URL)
    db_url = pg.create()
    env = {
        "LIVEREC_DATABASE_URL": db_url,
        "LIVEREC_SECRET_KEY": SecretBox.generate_key(),  # shared: B opens A's secrets
    }
    # A tries for 10 s (the default) and so holds its claim a while: B starts meanwhile.
    a = LiverecProcess(tmp_path / "a", env=env)
    b = LiverecProcess(tmp_path / "b", env=FAST | env)
    try:
        a.start()
        with client(a) as c:
            entry_point(c, "multi", rx, PUBLISH_EVENTS)
        assert push(a.url("multi", "cam"), media["short"], realtime=False).returncode == 0
        finished(a.stream_dir("cam", "multi"))
        rx.wait_for(lambda got: len(got) >= 1)
        wait_until(lambda: waiting(a) == 4, "four notices in the outbox")
        b.start()
        # A is still in its first try of publish_start, holding the stream's queue.
        assert len(rx.received) == 1, rx.received
        a.kill()  # SIGKILL: B takes the queue once A's claim ran out
        killed_at = len(rx.received)
        hold.released.set()
        got = rx.wait_for(lambda got: len(delivered(got)) >= 4, timeout=120)
        wait_until(lambda: waiting(b) == 0, "an empty outbox")
        assert a.proc is not None and a.proc.poll() is not None  # B sent all of it
    finally:
        a.kill()
        if b.proc is not None and b.proc.poll() is None:
            b.terminate()
        pg.drop(db_url)
        pg.admin.dispose()
    check_after_crash(got, killed_at)
