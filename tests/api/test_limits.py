"""Request bodies are bounded before anything reads them: a Content-Length over 64 KiB is
refused unread, a chunked body is counted as it arrives; both answer a JSON 413."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Request
from starlette.types import Message

from api.conftest import APP, CUSTOMER, SECRET, assert_error, basic, client_for
from liverec.api.app import create_app
from liverec.api.context import ApiContext
from liverec.api.limits import MAX_BODY_BYTES, BodyLimit
from liverec.catalog import Catalog

LIMIT = 1000
BASE = f"/v1/projects/{APP}/fls/entry_points/live/admin/record/standard/regions/na"


def echo_app() -> FastAPI:
    app = FastAPI()

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"received": len(await request.body())}

    app.add_middleware(BodyLimit, max_bytes=LIMIT)
    return app


@pytest.fixture
async def echo() -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(echo_app()) as c:
        yield c


async def chunks(total: int, size: int = 100) -> AsyncIterator[bytes]:
    while total > 0:
        yield b"x" * min(size, total)
        total -= size


async def test_bodies_up_to_the_limit_pass(echo: httpx.AsyncClient) -> None:
    for n in (0, 1, LIMIT):
        resp = await echo.post("/echo", content=b"x" * n)
        assert resp.json() == {"received": n}
        # Without a Content-Length (chunked), in several pieces.
        resp = await echo.post("/echo", content=chunks(n))
        assert "content-length" not in resp.request.headers
        assert resp.json() == {"received": n}


async def test_a_declared_length_over_the_limit_is_refused(echo: httpx.AsyncClient) -> None:
    resp = await echo.post("/echo", content=b"x" * (LIMIT + 1))
    message = assert_error(resp, 413, "body_too_large")
    assert str(LIMIT) in message


async def test_a_chunked_body_over_the_limit_is_refused(echo: httpx.AsyncClient) -> None:
    resp = await echo.post("/echo", content=chunks(LIMIT + 1))
    assert_error(resp, 413, "body_too_large")
    resp = await echo.post("/echo", content=chunks(LIMIT * 1000, 10_000))
    assert_error(resp, 413, "body_too_large")


async def test_a_huge_declared_length_is_refused_without_reading_the_body() -> None:
    """The answer comes before a single body byte is asked for."""
    sent: list[Message] = []

    async def receive() -> Message:
        raise AssertionError("the body was read")

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/echo",
        "raw_path": b"/echo",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"x"), (b"content-length", b"10000000000")],
        "server": ("x", 80),
        "client": ("127.0.0.1", 1),
    }
    await echo_app()(scope, receive, send)
    assert sent[0]["status"] == 413
    body = json.loads(b"".join(m.get("body", b"") for m in sent[1:]))
    assert list(body) == ["message", "reason"] and body["reason"] == "body_too_large"


async def test_a_bad_content_length_is_400(echo: httpx.AsyncClient) -> None:
    resp = await echo.post("/echo", content=b"12", headers={"content-length": "+2"})
    assert_error(resp, 400, "invalid_parameter")


async def test_the_app_bounds_its_bodies(ctx: ApiContext, catalog: Catalog) -> None:
    """create_app installs the limit: 64 KiB of JSON reaches the route, one byte more does
    not, whatever the authentication scheme would have read."""
    catalog.create_entry_point(APP, "live")
    auth = basic(CUSTOMER, SECRET)

    def body(size: int) -> bytes:
        head = b'{"fileName": "bad name.m3u8", "startTime": "2026-11-23T12:00:00Z", "pad": "'
        tail = b'"}'
        return head + b"x" * (size - len(head) - len(tail)) + tail

    async with client_for(create_app(ctx)) as c:
        headers = {**auth, "content-type": "application/json"}
        resp = await c.post(BASE + "/cutting/cam", content=body(MAX_BODY_BYTES), headers=headers)
        assert_error(resp, 400, "invalid_file_name")  # parsed, then judged
        resp = await c.post(
            BASE + "/cutting/cam", content=body(MAX_BODY_BYTES + 1), headers=headers
        )
        assert_error(resp, 413, "body_too_large")
        resp = await c.post(
            BASE + "/cutting/cam",
            content=chunks(MAX_BODY_BYTES + 1, 4096),
            headers=headers,
        )
        assert_error(resp, 413, "body_too_large")
        # Before authentication: a stranger cannot make the server buffer either.
        resp = await c.post(BASE + "/cutting/cam", content=body(MAX_BODY_BYTES + 1))
        assert_error(resp, 413, "body_too_large")
