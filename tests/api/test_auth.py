"""Authentication (HTTP Basic and Agora's HMAC scheme) and project access, through a real
app on a real catalog."""

from __future__ import annotations

import base64
import hashlib
import hmac as hmac_mod
import json
import logging
from datetime import datetime, timedelta

import httpx
import pytest

from api.conftest import (
    APP,
    CUSTOMER,
    HOST,
    OTHER_APP,
    OTHER_CUSTOMER,
    OTHER_SECRET,
    SECRET,
    FakeClock,
    assert_error,
    basic,
)
from liverec.api.auth import body_digest, hmac_authorization, http_date, signing_string
from liverec.catalog import Catalog

# --- Basic -------------------------------------------------------------------------------


async def test_basic_with_the_right_secret_authenticates(client: httpx.AsyncClient) -> None:
    resp = await client.get("/whoami", headers=basic(CUSTOMER, SECRET))
    assert resp.status_code == 200
    assert resp.json() == {"customer_id": CUSTOMER}
    # A second call (the verified-secret cache) still authenticates.
    again = await client.get("/whoami", headers=basic(CUSTOMER, SECRET))
    assert again.json() == {"customer_id": CUSTOMER}


@pytest.mark.parametrize(
    ("customer_id", "secret"),
    [(CUSTOMER, "wrong"), (CUSTOMER, OTHER_SECRET), ("nobody", SECRET), (CUSTOMER, SECRET + "x")],
)
async def test_basic_with_a_wrong_id_or_secret_is_401(
    client: httpx.AsyncClient, customer_id: str, secret: str
) -> None:
    resp = await client.get("/whoami", headers=basic(customer_id, secret))
    assert assert_error(resp, 401, "unauthorized") == "wrong customer ID or secret"


async def test_basic_with_a_revoked_credential_is_401(
    client: httpx.AsyncClient, catalog: Catalog
) -> None:
    assert (await client.get("/whoami", headers=basic(CUSTOMER, SECRET))).status_code == 200
    catalog.revoke_credential(CUSTOMER)
    assert_error(await client.get("/whoami", headers=basic(CUSTOMER, SECRET)), 401)


async def test_missing_authorization_is_401(client: httpx.AsyncClient) -> None:
    message = assert_error(await client.get("/whoami"), 401, "unauthorized")
    assert "missing" in message


@pytest.mark.parametrize(
    "header",
    [
        "Basic",
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"no-colon-here").decode(),
        "Basic " + base64.b64encode(b":secret-without-id").decode(),
        "Basic " + base64.b64encode(b"id-without-secret:").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
        "Bearer abc.def",
        "   ",
    ],
)
async def test_malformed_authorization_is_401(client: httpx.AsyncClient, header: str) -> None:
    assert_error(await client.get("/whoami", headers={"Authorization": header}), 401)


# --- HMAC --------------------------------------------------------------------------------


def signed(
    clock: FakeClock,
    method: str,
    path_qs: str,
    body: bytes = b"",
    *,
    customer_id: str = CUSTOMER,
    secret: str = SECRET,
    date: datetime | str | None = None,
    signed_headers: tuple[str, ...] = ("host", "date", "request-line", "digest"),
) -> dict[str, str]:
    return hmac_authorization(
        customer_id,
        secret,
        method,
        path_qs,
        HOST,
        clock.now if date is None else date,
        body,
        signed_headers=signed_headers,
    )


async def test_hmac_get_authenticates(client: httpx.AsyncClient, clock: FakeClock) -> None:
    resp = await client.get("/whoami", headers=signed(clock, "GET", "/whoami"))
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"customer_id": CUSTOMER}


async def test_hmac_post_with_a_body_authenticates(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    body = json.dumps({"text": "héllo"}).encode()
    headers = {**signed(clock, "POST", "/echo", body), "Content-Type": "application/json"}
    resp = await client.post("/echo", content=body, headers=headers)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"customer_id": CUSTOMER, "text": "héllo"}


async def test_hmac_signs_the_query_string(client: httpx.AsyncClient, clock: FakeClock) -> None:
    good = signed(clock, "GET", "/whoami?a=1&b=%20x")
    assert (await client.get("/whoami?a=1&b=%20x", headers=good)).status_code == 200
    # The same signature on another query string does not verify.
    resp = await client.get("/whoami?a=2&b=%20x", headers=good)
    assert "signature does not match" in assert_error(resp, 401)


async def test_hmac_may_sign_the_path_without_its_query(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    # The docs leave it open; Agora's Postman script signs the path alone.
    bare = signed(clock, "GET", "/whoami")
    assert (await client.get("/whoami?a=1", headers=bare)).status_code == 200
    # Nothing looser: another path, or a query signed that was not sent, is refused.
    other = signed(clock, "GET", "/whoam")
    assert_error(await client.get("/whoami?a=1", headers=other), 401)
    extra = signed(clock, "GET", "/whoami?a=1")
    assert_error(await client.get("/whoami", headers=extra), 401)


@pytest.mark.parametrize(
    ("sent", "signed_as", "ok"),
    [
        ("testserver:8080", "testserver", True),  # the Postman script drops the port
        ("testserver", "testserver:80", True),  # a client that adds the default port
        ("testserver:80", "testserver", True),
        ("[::1]:8080", "[::1]", True),
        ("testserver", "testserver:8080", False),  # not the default port
        ("testserver:8080", "testserver:8081", False),
        ("testserver", "otherserver", False),
        ("testserver:8080", "otherserver", False),
    ],
)
async def test_hmac_host_with_or_without_the_default_port(
    client: httpx.AsyncClient, clock: FakeClock, sent: str, signed_as: str, ok: bool
) -> None:
    headers = hmac_authorization(CUSTOMER, SECRET, "GET", "/whoami", signed_as, clock.now)
    headers["Host"] = sent
    resp = await client.get("/whoami", headers=headers)
    if ok:
        assert resp.status_code == 200, resp.text
    else:
        assert "signature does not match" in assert_error(resp, 401)


async def test_hmac_with_the_wrong_secret_is_401(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    resp = await client.get("/whoami", headers=signed(clock, "GET", "/whoami", secret="nope"))
    assert "signature does not match" in assert_error(resp, 401, "unauthorized")


async def test_hmac_signature_of_another_method_is_401(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    resp = await client.get("/whoami", headers=signed(clock, "POST", "/whoami"))
    assert_error(resp, 401)


@pytest.mark.parametrize("customer_id", ["nobody", OTHER_CUSTOMER])
async def test_hmac_with_an_unknown_or_revoked_credential_is_401(
    client: httpx.AsyncClient, clock: FakeClock, catalog: Catalog, customer_id: str
) -> None:
    catalog.revoke_credential(OTHER_CUSTOMER)
    headers = signed(clock, "GET", "/whoami", customer_id=customer_id, secret=OTHER_SECRET)
    assert "unknown or revoked" in assert_error(await client.get("/whoami", headers=headers), 401)


@pytest.mark.parametrize(
    ("offset", "ok", "word"),
    [
        (-299.0, True, ""),
        (299.0, True, ""),
        (-301.0, False, "stale"),
        (-3600.0, False, "stale"),
        (301.0, False, "future"),
    ],
)
async def test_hmac_date_must_be_within_the_skew(
    client: httpx.AsyncClient, clock: FakeClock, offset: float, ok: bool, word: str
) -> None:
    date = clock.now + timedelta(seconds=offset)
    resp = await client.get("/whoami", headers=signed(clock, "GET", "/whoami", date=date))
    if ok:
        assert resp.status_code == 200, resp.text
    else:
        assert word in assert_error(resp, 401)


async def test_hmac_date_that_is_not_an_http_date_is_401(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    headers = signed(clock, "GET", "/whoami", date="yesterday at noon")
    assert "not an HTTP date" in assert_error(await client.get("/whoami", headers=headers), 401)


async def test_hmac_body_not_matching_the_digest_is_401(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    signed_body = b'{"text": "hello"}'
    sent_body = b'{"text": "hellO"}'
    headers = {**signed(clock, "POST", "/echo", signed_body), "Content-Type": "application/json"}
    resp = await client.post("/echo", content=sent_body, headers=headers)
    assert "Digest header does not match" in assert_error(resp, 401)


async def test_hmac_unsigned_digest_header_is_still_checked(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    headers = signed(clock, "GET", "/whoami", signed_headers=("host", "date", "request-line"))
    assert (await client.get("/whoami", headers=headers)).status_code == 200
    headers["Digest"] = body_digest(b"something else")
    assert_error(await client.get("/whoami", headers=headers), 401)


@pytest.mark.parametrize(
    ("signed_headers", "missing"),
    [
        (("date", "request-line", "digest"), "host"),
        (("host", "request-line", "digest"), "date"),
        (("host", "date", "digest"), "request-line"),
        (("host", "date", "request-line"), "digest"),  # a body needs its digest signed
    ],
)
async def test_hmac_must_sign_host_date_request_line_and_the_body(
    client: httpx.AsyncClient, clock: FakeClock, signed_headers: tuple[str, ...], missing: str
) -> None:
    body = b'{"text": "x"}'
    headers = {
        **signed(clock, "POST", "/echo", body, signed_headers=signed_headers),
        "Content-Type": "application/json",
    }
    resp = await client.post("/echo", content=body, headers=headers)
    assert f"must cover {missing}" in assert_error(resp, 401)


async def test_hmac_signed_header_absent_from_the_request_is_401(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    headers = signed(clock, "GET", "/whoami")
    del headers["Digest"]
    assert "digest is missing" in assert_error(await client.get("/whoami", headers=headers), 401)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda a: a.replace("hmac-sha256", "hmac-sha1"),
        lambda a: a.replace('username="cust", ', ""),
        lambda a: a.replace("signature=", "sig="),
        lambda a: a.replace('", ', '" '),
        lambda a: a + ', headers="host"',
        lambda a: a.replace('signature="', 'signature="*'),
        lambda a: "hmac",
        lambda a: a.replace('username="cust"', 'username=""'),
    ],
)
async def test_malformed_hmac_authorization_is_401(
    client: httpx.AsyncClient, clock: FakeClock, mangle: object
) -> None:
    headers = signed(clock, "GET", "/whoami")
    assert callable(mangle)
    headers["Authorization"] = mangle(headers["Authorization"])
    assert_error(await client.get("/whoami", headers=headers), 401)


def test_hmac_client_signs_the_documented_string() -> None:
    """The client helper produces what the scheme defines, checked by hand."""
    date = datetime(2026, 11, 23, 12, 0, 0).astimezone()
    headers = hmac_authorization("me", "s3cret", "post", "/p?q=1", "api.example", date, b"{}")
    digest = "SHA-256=RBNvo1WzZ4oRRq0W9+hknpT7T8If536DEMBg9hyq/4o="
    assert headers["Digest"] == digest
    assert headers["Date"] == http_date(date) and headers["Date"].endswith(" GMT")
    text = signing_string(
        ["host", "date", "request-line", "digest"],
        {"host": "api.example", "date": headers["Date"], "digest": digest},
        "POST /p?q=1 HTTP/1.1",
    )
    lines = ["host: api.example", f"date: {headers['Date']}", "POST /p?q=1 HTTP/1.1"]
    assert text == "\n".join([*lines, f"digest: {digest}"])
    sig = base64.b64encode(hmac_mod.digest(b"s3cret", text.encode(), hashlib.sha256)).decode()
    assert headers["Authorization"] == (
        'hmac username="me", algorithm="hmac-sha256", '
        f'headers="host date request-line digest", signature="{sig}"'
    )
    with pytest.raises(ValueError):
        hmac_authorization("me", "s", "GET", "/", "h", date, signed_headers=("x-custom",))


async def test_no_secret_or_authorization_reaches_the_log(
    client: httpx.AsyncClient, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    hmac_headers = signed(clock, "GET", "/whoami", secret=SECRET + "-wrong")
    basic_headers = basic(CUSTOMER, SECRET + "-wrong")
    await client.get("/whoami", headers=hmac_headers)
    await client.get("/whoami", headers=basic_headers)
    await client.get("/whoami", headers=signed(clock, "GET", "/whoami"))
    assert SECRET not in caplog.text
    assert hmac_headers["Authorization"].split("signature=")[1] not in caplog.text
    assert basic_headers["Authorization"] not in caplog.text


# --- project access ----------------------------------------------------------------------


async def test_a_granted_project_is_reached(client: httpx.AsyncClient, clock: FakeClock) -> None:
    resp = await client.get(f"/v1/projects/{APP}/thing", headers=basic(CUSTOMER, SECRET))
    assert resp.json() == {"app_id": APP}
    path = f"/v1/projects/{APP}/thing"
    assert (await client.get(path, headers=signed(clock, "GET", path))).status_code == 200


async def test_a_project_not_granted_answers_like_a_missing_one(
    client: httpx.AsyncClient,
) -> None:
    auth = basic(CUSTOMER, SECRET)
    not_granted = await client.get(f"/v1/projects/{OTHER_APP}/thing", headers=auth)
    missing = await client.get("/v1/projects/nosuchapp/thing", headers=auth)
    m1 = assert_error(not_granted, 404, "not_found")
    m2 = assert_error(missing, 404, "not_found")
    assert m1.replace(OTHER_APP, "X") == m2.replace("nosuchapp", "X")
    # The other credential reaches its own project, and not ours.
    other = basic(OTHER_CUSTOMER, OTHER_SECRET)
    assert (await client.get(f"/v1/projects/{OTHER_APP}/thing", headers=other)).status_code == 200
    assert_error(await client.get(f"/v1/projects/{APP}/thing", headers=other), 404)


async def test_project_access_authenticates_first(client: httpx.AsyncClient) -> None:
    assert_error(await client.get(f"/v1/projects/{APP}/thing"), 401)
    assert_error(await client.get("/v1/projects/nosuchapp/thing"), 401)
