"""End to end, on a real `liverec serve` on loopback: slowloris clients are cut at the
header deadline while the API answers; connections past the per-address cap are refused
while 127.0.0.2 is served; a Basic brute force gets 429 with Retry-After and one log line,
and the right secret from 127.0.0.2 still works; an HMAC replay is refused; a signed-link
tamper loop is rate limited; every refusal is counted in /metrics by reason."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest

from liverec.api.auth import hmac_authorization
from support.server import APP_ID, CUSTOMER_ID, CUSTOMER_SECRET, LiverecProcess

pytestmark = pytest.mark.slow  # a real `liverec serve`

PROJECTS = f"/v1/projects/{APP_ID}/fls/entry_points"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiverecProcess]:
    proc = LiverecProcess(
        tmp_path_factory.mktemp("abuse"),
        env={
            "LIVEREC_HTTP_HEADER_TIMEOUT": "1",
            "LIVEREC_HTTP_MAX_PER_IP": "30",
            "LIVEREC_AUTH_MAX_FAILURES_PER_IP": "6",
            "LIVEREC_AUTH_LOCKOUT": "5",
        },
    ).start()
    yield proc
    proc.terminate()


def client(srv: LiverecProcess, source: str = "127.0.0.1") -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=source)
    return httpx.Client(
        transport=transport, base_url=f"http://127.0.0.1:{srv.http_port}", timeout=10
    )


def metric(srv: LiverecProcess, reason: str) -> float:
    text = client(srv, "127.0.0.3").get("/metrics").text
    for line in text.splitlines():
        if line.startswith(f'liverec_refusals_total{{reason="{reason}"}}'):
            return float(line.split()[-1])
    return 0.0


def slow_socket(port: int, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def test_slowloris_is_cut_at_the_header_deadline_while_the_api_answers(
    srv: LiverecProcess,
) -> None:
    socks = [slow_socket(srv.http_port, "127.0.0.4") for _ in range(25)]
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100 + b"\r\n\r\n"
    closed: list[float] = []
    started = time.monotonic()

    def dribble(sock: socket.socket) -> None:
        sock.settimeout(0.1)
        try:
            for byte in request:
                sock.sendall(bytes([byte]))
                try:
                    if sock.recv(4096) is not None:
                        break  # the 408, or the close
                except TimeoutError:
                    continue
        except OSError:
            pass
        closed.append(time.monotonic() - started)
        sock.close()

    threads = [threading.Thread(target=dribble, args=(s,)) for s in socks]
    for t in threads:
        t.start()
    with client(srv) as c:
        for _ in range(5):
            t0 = time.monotonic()
            resp = c.get(PROJECTS, auth=(CUSTOMER_ID, CUSTOMER_SECRET))
            assert resp.status_code == 200, resp.text
            assert time.monotonic() - t0 < 1.0
            time.sleep(0.1)
    for t in threads:
        t.join(20)
    assert len(closed) == 25 and max(closed) < 5, closed
    assert metric(srv, "http_header_timeout") >= 25


def test_connections_past_the_per_address_cap_are_refused_another_address_served(
    srv: LiverecProcess,
) -> None:
    idle = [slow_socket(srv.http_port, "127.0.0.5") for _ in range(30)]
    try:
        time.sleep(0.2)
        refused = slow_socket(srv.http_port, "127.0.0.5")
        refused.settimeout(5)
        answer = refused.recv(4096)
        refused.close()
        assert answer.startswith(b"HTTP/1.1 429 "), answer
        with client(srv, "127.0.0.2") as c:
            resp = c.get(PROJECTS, auth=(CUSTOMER_ID, CUSTOMER_SECRET))
            assert resp.status_code == 200
    finally:
        for s in idle:
            s.close()
    assert metric(srv, "http_max_per_ip") >= 1


def test_brute_force_gets_429_and_one_log_line_then_the_right_secret_elsewhere_works(
    srv: LiverecProcess,
) -> None:
    mark = len(srv.lines)
    statuses = []
    with client(srv, "127.0.0.6") as c:
        for n in range(15):
            resp = c.get(PROJECTS, auth=(CUSTOMER_ID, f"guess{n}"))
            statuses.append(resp.status_code)
        assert statuses[:6] == [401] * 6 and set(statuses[6:]) == {429}, statuses
        body = resp.json()
        assert body["reason"] == "too_many_requests" and list(body) == ["message", "reason"]
        assert 1 <= int(resp.headers["retry-after"]) <= 5
        # the right secret from the guessing address waits too
        assert c.get(PROJECTS, auth=(CUSTOMER_ID, CUSTOMER_SECRET)).status_code == 429
    with client(srv, "127.0.0.2") as c:
        assert c.get(PROJECTS, auth=(CUSTOMER_ID, CUSTOMER_SECRET)).status_code == 200
    time.sleep(0.3)
    lines = [line for line in srv.lines[mark:] if "authentication failed" in line]
    assert len(lines) == 1 and "127.0.0.6" in lines[0], lines
    assert not any("guess" in line for line in srv.lines)
    assert metric(srv, "auth_locked") >= 9 and metric(srv, "auth_failed") >= 6


def test_an_hmac_replay_is_refused(srv: LiverecProcess) -> None:
    host = f"127.0.0.1:{srv.http_port}"
    date = format_datetime(datetime.now(UTC), usegmt=True)
    body = b'{"enabled": true}'
    target = PROJECTS + "/live/settings/record/standard/auto"
    headers = hmac_authorization(CUSTOMER_ID, CUSTOMER_SECRET, "PATCH", target, host, date, body)
    headers["content-type"] = "application/json"
    with client(srv, "127.0.0.7") as c:
        changed = c.patch(target, content=body, headers=headers)
        assert changed.status_code == 200, changed.text
        replay = c.patch(target, content=body, headers=headers)
        assert replay.status_code == 401 and "replay" in replay.json()["message"]
    assert metric(srv, "hmac_replay") == 1


def test_a_signed_link_tamper_loop_is_rate_limited(srv: LiverecProcess) -> None:
    folder = Path("record/live/cam1")
    base = f"/files/s/{int(time.time()) + 600}"
    statuses = []
    with client(srv, "127.0.0.8") as c:
        for n in range(10):
            resp = c.get(f"{base}/forged{n}/{APP_ID}/na/{folder}/x.m3u8")
            statuses.append(resp.status_code)
    assert statuses[:6] == [401] * 6 and set(statuses[6:]) == {429}, statuses
    assert "retry-after" in resp.headers
    with client(srv, "127.0.0.2") as c:  # another address: still just a bad link
        assert c.get(f"{base}/forged/{APP_ID}/na/{folder}/x.m3u8").status_code == 401
    assert metric(srv, "link_locked") >= 4
