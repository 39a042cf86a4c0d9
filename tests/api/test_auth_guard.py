"""Failed credentials and signed links: lockout with 429 + Retry-After, one log line per
customer ID and address, never a lockout of the right secret from another address; the
HMAC replay cache (api/guard.py), through a real app on a real catalog."""

from __future__ import annotations

import dataclasses
import logging

import httpx
import pytest
from fastapi import FastAPI

from api.conftest import (
    BASE_URL,
    CUSTOMER,
    HOST,
    SECRET,
    FakeClock,
    assert_error,
    basic,
    make_app,
)
from liverec.api.auth import hmac_authorization
from liverec.api.context import ApiContext
from liverec.api.guard import Guard, GuardSettings, Limiter, ReplayCache, clip
from liverec.api.signing import sign_url

ATTACKER = "10.0.0.66"
HONEST = "10.0.0.7"
LINK_FILE = "record/ep/cam/sess_20261123120000000.m3u8"


class Tick:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclasses.dataclass
class Guarded:
    app: FastAPI
    guard: Guard
    tick: Tick
    refusals: list[str]

    def client(self, address: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=(address, 40000))
        return httpx.AsyncClient(transport=transport, base_url=BASE_URL)


@pytest.fixture
def guarded(ctx: ApiContext, clock: FakeClock) -> Guarded:
    tick = Tick()
    refusals: list[str] = []
    guard = Guard(
        GuardSettings(ip_failures=5, customer_failures=8, window=60, lockout=2, lockout_max=16),
        clock=tick,
        wall=lambda: clock.now.timestamp(),
        on_refusal=refusals.append,
    )
    app = make_app(dataclasses.replace(ctx, guard=guard))
    return Guarded(app, guard, tick, refusals)


async def test_brute_force_gets_429_and_one_log_line_and_the_right_secret_elsewhere_works(
    guarded: Guarded, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="liverec.api.guard")
    async with guarded.client(ATTACKER) as bad, guarded.client(HONEST) as good:
        statuses = []
        for n in range(12):
            resp = await bad.get("/whoami", headers=basic(CUSTOMER, f"guess-{n}"))
            statuses.append(resp.status_code)
        assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}
        locked = await bad.get("/whoami", headers=basic(CUSTOMER, SECRET))
        assert_error(locked, 429, "too_many_requests")
        assert 1 <= int(locked.headers["retry-after"]) <= 2
        # the right secret from another address is never refused
        resp = await good.get("/whoami", headers=basic(CUSTOMER, SECRET))
        assert resp.status_code == 200 and resp.json() == {"customer_id": CUSTOMER}
    failures = [r for r in caplog.records if "authentication failed" in r.getMessage()]
    assert len(failures) == 1, [r.getMessage() for r in failures]
    assert ATTACKER in failures[0].getMessage() and CUSTOMER in failures[0].getMessage()
    text = caplog.text
    assert "guess-" not in text and SECRET not in text
    assert guarded.refusals.count("auth_failed") == 5
    assert guarded.refusals.count("auth_locked") == 8


async def test_lockout_ends_and_grows(guarded: Guarded) -> None:
    async with guarded.client(ATTACKER) as bad:

        async def fail_until_locked() -> int:
            # unknown customer IDs: only the address's limit is reached
            guarded.tick.now += 0.1
            for _ in range(5):
                resp = await bad.get("/whoami", headers=basic(f"nobody{guarded.tick.now}", "x"))
                assert resp.status_code == 401
            resp = await bad.get("/whoami", headers=basic(CUSTOMER, "wrong"))
            assert resp.status_code == 429
            return int(resp.headers["retry-after"])

        assert await fail_until_locked() == 2
        guarded.tick.now += 2.5
        assert await fail_until_locked() == 4
        guarded.tick.now += 4.5
        assert await fail_until_locked() == 8
        guarded.tick.now += 8.5
        resp = await bad.get("/whoami", headers=basic(CUSTOMER, SECRET))
        assert resp.status_code == 200


async def test_a_customer_id_guessed_from_many_addresses_locks_only_those_addresses(
    guarded: Guarded,
) -> None:
    addresses = [f"10.1.0.{n}" for n in range(8)]
    for address in addresses:  # one failure each: no address is locked by itself
        async with guarded.client(address) as c:
            resp = await c.get("/whoami", headers=basic(CUSTOMER, "wrong"))
            assert resp.status_code == 401
    for address in addresses:
        async with guarded.client(address) as c:
            resp = await c.get("/whoami", headers=basic(CUSTOMER, SECRET))
            assert_error(resp, 429, "too_many_requests")
            assert "retry-after" in resp.headers
    async with guarded.client(HONEST) as c:
        resp = await c.get("/whoami", headers=basic(CUSTOMER, SECRET))
        assert resp.status_code == 200


async def test_a_long_customer_id_is_cut_in_the_log(
    guarded: Guarded, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="liverec.api.guard")
    async with guarded.client(ATTACKER) as c:
        resp = await c.get("/whoami", headers=basic("x" * 5000 + "\n", "s3cret-guess"))
        assert resp.status_code == 401
    (line,) = [r.getMessage() for r in caplog.records]
    assert len(line) < 400 and "\n" not in line and "s3cret-guess" not in line


async def test_an_hmac_replay_of_a_change_is_refused_a_repeated_read_is_not(
    guarded: Guarded, clock: FakeClock
) -> None:
    body = b'{"text": "hi"}'
    headers = hmac_authorization(CUSTOMER, SECRET, "POST", "/echo", HOST, clock.now, body)
    headers["content-type"] = "application/json"
    async with guarded.client(HONEST) as c:
        first = await c.post("/echo", content=body, headers=headers)
        assert first.status_code == 200, first.text
        again = await c.post("/echo", content=body, headers=headers)
        message = assert_error(again, 401, "unauthorized")
        assert "replay" in message
        # signed anew (another second): accepted
        clock.advance(1)
        fresh = hmac_authorization(CUSTOMER, SECRET, "POST", "/echo", HOST, clock.now, body)
        fresh["content-type"] = "application/json"
        assert (await c.post("/echo", content=body, headers=fresh)).status_code == 200
        # the same read twice in a second (FLS clients sign with a Date to the second)
        read = hmac_authorization(CUSTOMER, SECRET, "GET", "/whoami", HOST, clock.now)
        assert (await c.get("/whoami", headers=read)).status_code == 200
        assert (await c.get("/whoami", headers=read)).status_code == 200
        # Signed over the path without its query (Agora's Postman script): two different
        # changes in one second share a signature, and neither replays the other.
        clock.advance(1)
        bare = hmac_authorization(CUSTOMER, SECRET, "POST", "/echo", HOST, clock.now, body)
        bare["content-type"] = "application/json"
        for n in (1, 2):
            sent = await c.post(f"/echo?n={n}", content=body, headers=bare)
            assert sent.status_code == 200, sent.text
        assert (await c.post("/echo?n=1", content=body, headers=bare)).status_code == 401
    async with guarded.client(ATTACKER) as c:  # from another address: still a replay
        assert (await c.post("/echo", content=body, headers=headers)).status_code == 401
    assert guarded.refusals.count("hmac_replay") == 3


async def test_a_signed_link_tamper_loop_is_rate_limited(guarded: Guarded, ctx: ApiContext) -> None:
    good = sign_url(ctx, "0123456789abcdef0123456789abcdef", "na", LINK_FILE)
    parts = good.split("/")  # /files/s/{expires}/{sig}/...
    statuses = []
    async with guarded.client(ATTACKER) as c:
        for n in range(9):
            parts[4] = f"tampered{n}" + parts[4][9:]
            statuses.append((await c.get("/".join(parts))).status_code)
        assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}
        resp = await c.get(good)
        assert_error(resp, 429, "too_many_requests")
        assert resp.headers["retry-after"] == "2"
    async with guarded.client(HONEST) as c:  # the link itself is fine from elsewhere
        assert (await c.get(good)).status_code == 404  # no such file in this test's store
    assert guarded.refusals.count("link_bad_signature") == 5
    assert guarded.refusals.count("link_locked") == 5


async def test_without_a_guard_nothing_is_limited(client: httpx.AsyncClient) -> None:
    for _ in range(30):
        resp = await client.get("/whoami", headers=basic(CUSTOMER, "wrong"))
        assert resp.status_code == 401


def test_limiter_and_replay_cache_stay_bounded() -> None:
    tick = Tick()
    settings = GuardSettings(max_keys=100)
    limiter = Limiter(3, settings, tick)
    for n in range(1000):
        limiter.failed(f"ip{n}")
    assert len(limiter.records) == 100
    cache = ReplayCache(50, tick)
    for n in range(200):
        assert cache.first_use(n.to_bytes(4, "big"), tick.now + 10)
    assert len(cache.seen) == 50
    assert not cache.first_use((199).to_bytes(4, "big"), tick.now + 10)
    tick.now += 11  # expired: accepted again, and the old ones are dropped
    assert cache.first_use((199).to_bytes(4, "big"), tick.now + 10)
    assert len(cache.seen) == 1
    assert ReplayCache(0, tick).first_use(b"x", 0) and ReplayCache(0, tick).first_use(b"x", 0)


def test_clip() -> None:
    assert clip("abc") == "'abc'"
    assert clip("a" * 100) == repr("a" * 64 + "...")
    assert clip("a\nb") == "'a\\nb'"
