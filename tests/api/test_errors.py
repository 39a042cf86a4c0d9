"""Error mapping: every non-200 answer is JSON with `message` first; validation is 400,
unknown paths 404, timeouts 504, and internal failures 500 without details."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
import sqlalchemy.exc
from fastapi import FastAPI, HTTPException
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from api.conftest import assert_error, client_for, make_app
from liverec.api.context import ApiContext
from liverec.api.errors import ApiError, classify, is_timeout
from liverec.catalog.db import mapped_errors
from liverec.errors import (
    CatalogError,
    ConflictError,
    InvalidKeyError,
    MediaError,
    NotFoundError,
    SchemaError,
    StorageError,
)
from liverec.storage import ObjectNotFoundError

LEAKY = "/srv/liverec/secret-internal-path"


def _raiser(exc: BaseException) -> Callable[[], None]:
    def fail() -> None:
        raise exc

    return fail


def _storage_timeout() -> None:
    try:
        raise TimeoutError("read timed out")
    except TimeoutError as exc:
        raise StorageError(f"S3 get {LEAKY} failed") from exc


def _db_error(text: str) -> None:
    # As the catalog raises it: the driver's error mapped at the catalog's boundary.
    with mapped_errors():
        raise sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception(text))


def _pool_timeout() -> None:
    with mapped_errors():
        raise sqlalchemy.exc.TimeoutError("pool")


FAILURES: dict[str, Callable[[], None]] = {
    "not-found": _raiser(NotFoundError("project 'x' does not exist")),
    "object-missing": _raiser(ObjectNotFoundError(f"no object {LEAKY!r}")),
    "conflict": _raiser(ConflictError("name taken")),
    "bad-key": _raiser(InvalidKeyError("key has a '..' part")),
    "storage": _raiser(StorageError(f"cannot read {LEAKY}")),
    "catalog": _raiser(CatalogError("stream name must be 1-128 characters")),
    "schema": _raiser(SchemaError(f"catalog schema at {LEAKY} is behind")),
    "media": _raiser(MediaError("bad NAL")),
    "runtime": _raiser(RuntimeError(f"bug near {LEAKY}")),
    "key-error": lambda: print({"a": 1}["missing"]),  # an unexpected bug
    "timeout": _raiser(TimeoutError()),
    "storage-timeout": _storage_timeout,
    "db-locked": lambda: _db_error("database is locked"),
    "db-statement-timeout": lambda: _db_error("canceling statement due to statement timeout"),
    "db-pool-timeout": _pool_timeout,
    "db-other": lambda: _db_error(f"no such table: {LEAKY}"),
}
EXPECTED = {
    "not-found": (404, "not_found"),
    "object-missing": (404, "not_found"),
    "conflict": (409, "conflict"),
    "bad-key": (400, "invalid_parameter"),
    "storage": (503, "unavailable"),  # the message says which dependency
    "catalog": (400, "invalid_parameter"),  # a value the caller gave was refused
    "schema": (500, "internal"),
    "media": (500, "internal"),
    "runtime": (500, "internal"),
    "key-error": (500, "internal"),
    "timeout": (504, "timeout"),
    "storage-timeout": (504, "timeout"),
    "db-locked": (504, "timeout"),
    "db-statement-timeout": (504, "timeout"),
    "db-pool-timeout": (504, "timeout"),
    "db-other": (503, "unavailable"),
}


class Body(BaseModel):
    startTime: str
    count: int


def _routes(app: FastAPI) -> None:
    @app.get("/fail/{kind}")
    async def fail(kind: str) -> None:
        FAILURES[kind]()

    @app.get("/fail-sync/{kind}")
    def fail_sync(kind: str) -> None:
        FAILURES[kind]()

    @app.get("/fail-long/{rest:path}")
    async def fail_long(rest: str) -> None:
        raise RuntimeError("bug")

    @app.get("/v1/ok")
    async def ok() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/api-error")
    async def api_error() -> None:
        raise ApiError(400, "invalid_time", "endTime is before startTime", {"X-Extra": "1"})

    @app.get("/api-401")
    async def api_401() -> None:
        raise ApiError(401, "unauthorized", "no")

    @app.get("/http-exception")
    async def http_exception() -> None:
        raise HTTPException(404, "no recording at that time")

    @app.get("/typed")
    async def typed(start_time: str, n: int = 0) -> dict[str, int]:
        return {"n": n}

    @app.post("/body")
    async def body(body: Body) -> dict[str, int]:
        return {"count": body.count}

    @app.get("/half-sent")
    async def half_sent() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"first"
            raise RuntimeError("broke mid-stream")

        return StreamingResponse(chunks())


@pytest.fixture
async def client(ctx: ApiContext) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(make_app(ctx, _routes)) as c:
        yield c


@pytest.mark.parametrize("route", ["fail", "fail-sync"])
@pytest.mark.parametrize("kind", sorted(FAILURES))
async def test_exceptions_map_to_json_answers(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, route: str, kind: str
) -> None:
    status, reason = EXPECTED[kind]
    caplog.set_level(logging.WARNING, logger="liverec.api.errors")
    resp = await client.get(f"/{route}/{kind}")
    message = assert_error(resp, status, reason)
    assert LEAKY not in resp.text
    if status == 500:
        assert message == "internal error"
        assert any(r.exc_info for r in caplog.records), "a 500 logs its traceback"
    if status == 504:
        assert caplog.records, "a timeout is logged"


async def test_api_error_keeps_its_status_reason_and_headers(client: httpx.AsyncClient) -> None:
    resp = await client.get("/api-error")
    assert assert_error(resp, 400, "invalid_time") == "endTime is before startTime"
    assert resp.headers["x-extra"] == "1"
    assert resp.headers["content-type"] == "application/json"


async def test_every_401_says_how_to_authenticate(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/api-401"), 401)  # checks WWW-Authenticate


async def test_http_exception_detail_becomes_the_message(client: httpx.AsyncClient) -> None:
    resp = await client.get("/http-exception")
    assert assert_error(resp, 404, "not_found") == "no recording at that time"


async def test_unknown_path_is_404_json(client: httpx.AsyncClient) -> None:
    for path in ("/nope", "/v1/projects", "/files"):
        assert assert_error(await client.get(path), 404, "not_found") == "no such path"
    head = await client.head("/nope")
    assert head.status_code == 404


async def test_wrong_method_is_405_json_with_allow(client: httpx.AsyncClient) -> None:
    resp = await client.delete("/typed")
    assert_error(resp, 405, "method_not_allowed")
    assert "GET" in resp.headers["allow"]


@pytest.mark.parametrize(
    ("request_args", "field"),
    [
        ({"url": "/typed"}, "start_time"),
        ({"url": "/typed", "params": {"start_time": "x", "n": "abc"}}, "n"),
        ({"url": "/body", "method": "POST", "json": {"count": 1}}, "startTime"),
        ({"url": "/body", "method": "POST", "json": {"startTime": "x", "count": "many"}}, "count"),
        ({"url": "/body", "method": "POST", "json": ["not", "an", "object"]}, "body"),
    ],
)
async def test_validation_failures_are_400_naming_the_field(
    client: httpx.AsyncClient, request_args: dict[str, object], field: str
) -> None:
    args = dict(request_args)
    method = str(args.pop("method", "GET"))
    url = str(args.pop("url"))
    resp = await client.request(method, url, **args)  # type: ignore[arg-type]
    message = assert_error(resp, 400, "invalid_parameter")
    assert field in message
    assert "detail" not in resp.text and resp.status_code != 422


async def test_a_body_that_is_not_json_is_400(client: httpx.AsyncClient) -> None:
    resp = await client.post(
        "/body", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert assert_error(resp, 400, "invalid_parameter") == "the request body is not valid JSON"


async def test_a_failure_after_the_answer_started_drops_the_connection(
    client: httpx.AsyncClient,
) -> None:
    # Headers are out: no second answer can be sent, so the error reaches the server,
    # which closes the connection (here: the ASGI transport raises it).
    with pytest.raises(RuntimeError, match="broke mid-stream"):
        await client.get("/half-sent")


def test_timeouts_are_found_through_the_cause_chain() -> None:
    try:
        _storage_timeout()
    except StorageError as exc:
        assert is_timeout(exc)
        assert classify(exc) == (504, "timeout", "the storage did not answer in time")
    assert not is_timeout(StorageError("disk full"))
    loop = StorageError("a")
    loop.__context__ = StorageError("b")
    loop.__context__.__context__ = loop  # a cycle must not hang
    assert not is_timeout(loop)


async def test_an_outage_is_logged_once_and_its_end_once(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="liverec.api.errors")
    for _ in range(3):
        assert_error(await client.get("/fail/db-other"), 503, "unavailable")
    assert (await client.get("/fail/db-pool-timeout")).json()["message"] == (
        "the catalog database did not answer in time"
    )
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and lines[0].startswith("the catalog database is failing"), lines
    assert (await client.get("/v1/ok")).status_code == 200
    assert (await client.get("/v1/ok")).status_code == 200
    lines = [r.getMessage() for r in caplog.records]
    assert lines[1:] == ["the catalog database answers again"], lines


async def test_a_long_path_is_clipped_in_the_log(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="liverec.api.errors")
    assert_error(await client.get("/fail-long/" + "x" * 10_000), 500, "internal")
    [record] = caplog.records
    assert len(record.getMessage()) < 400 and "(+" in record.getMessage()
