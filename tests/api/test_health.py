"""/healthz, /readyz, /metrics and the request middleware, in-process on the real app
(create_app) with a real catalog, store, Readiness and Metrics."""

from __future__ import annotations

import io
import json
import logging
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from api.conftest import APP, client_for
from liverec.api.app import create_app
from liverec.api.context import ApiContext
from liverec.catalog import Catalog
from liverec.logs import JsonFormatter
from liverec.metrics import Metrics
from liverec.readiness import Readiness, disk_check, storage_check
from liverec.storage import LocalStore


def readiness(catalog: Catalog, store: LocalStore, min_free: int = 0) -> Readiness:
    ready = Readiness(keep=0.0)
    ready.add("catalog", catalog.list_projects)
    ready.add("storage", storage_check(store, store.root))
    if min_free:
        ready.add("disk", disk_check(store.root, min_free))
    return ready


def app_with(ctx: ApiContext, **fields: object) -> FastAPI:
    return create_app(replace(ctx, **fields))  # type: ignore[arg-type]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_readyz_is_ready_when_the_catalog_and_store_answer(
    ctx: ApiContext, catalog: Catalog, store: LocalStore
) -> None:
    async with client_for(app_with(ctx, probes=readiness(catalog, store))) as client:
        resp = await client.get("/readyz")
        assert resp.status_code == 200
        assert resp.json() == {"status": "ready", "checks": {"catalog": "ok", "storage": "ok"}}
        assert (await client.get("/healthz")).json()["status"] == "ok"


async def test_readyz_names_a_disk_under_its_minimum_free_space(
    ctx: ApiContext, catalog: Catalog, store: LocalStore
) -> None:
    huge = 1 << 62  # more than any disk has free
    async with client_for(app_with(ctx, probes=readiness(catalog, store, huge))) as client:
        resp = await client.get("/readyz")
    assert resp.status_code == 503
    body = resp.json()
    assert next(iter(body)) == "message"
    assert body["failed"] == ["disk"]
    assert "storage_min_free" in body["checks"]["disk"]
    assert body["checks"]["catalog"] == body["checks"]["storage"] == "ok"


async def test_readyz_names_a_storage_root_that_is_gone(
    ctx: ApiContext, catalog: Catalog, store: LocalStore
) -> None:
    shutil.rmtree(store.root)
    async with client_for(app_with(ctx, probes=readiness(catalog, store))) as client:
        resp = await client.get("/readyz")
    assert resp.status_code == 503
    assert resp.json()["failed"] == ["storage"]


async def test_readyz_names_a_catalog_file_that_is_no_database(
    ctx: ApiContext, catalog: Catalog, store: LocalStore
) -> None:
    url = catalog.engine.url
    catalog.engine.dispose()
    assert url.database is not None
    with open(url.database, "r+b") as fh:  # the header overwritten: "not a database"
        fh.write(b"\0garbage" * 64)
    async with client_for(app_with(ctx, probes=readiness(catalog, store))) as client:
        resp = await client.get("/readyz")
    assert resp.status_code == 503
    body = resp.json()
    assert body["failed"] == ["catalog"]
    assert "catalog" in body["checks"]["catalog"]


async def test_a_hanging_dependency_answers_503_within_the_timeout_and_is_not_piled_up(
    ctx: ApiContext,
) -> None:
    release = threading.Event()
    calls: list[int] = []

    def hangs() -> None:
        calls.append(1)
        release.wait(30)

    ready = Readiness(timeout=0.3, keep=0.0)
    ready.add("catalog", hangs)
    try:
        async with client_for(app_with(ctx, probes=ready)) as client:
            began = time.monotonic()
            first = await client.get("/readyz")
            assert time.monotonic() - began < 2.0
            second = await client.get("/readyz")
        assert first.status_code == second.status_code == 503
        assert first.json()["checks"]["catalog"].startswith("timed out after 0.3 s")
        assert "still waiting" in second.json()["checks"]["catalog"]
        assert len(calls) == 1  # the second probe started no second thread
    finally:
        release.set()


async def test_metrics_token_is_checked_and_each_app_has_its_own_registry(
    ctx: ApiContext,
) -> None:
    one, two = Metrics(), Metrics()
    app_one = app_with(ctx, metrics=one, metrics_token="tok")
    app_two = app_with(ctx, metrics=two)
    async with client_for(app_one) as c1, client_for(app_two) as c2:
        assert (await c1.get("/metrics")).status_code == 401
        assert (await c1.get("/metrics", headers={"Authorization": "Bearer tok2"})).status_code == (
            401
        )
        for _ in range(3):
            assert (await c2.get("/healthz")).status_code == 200
        text_one = (await c1.get("/metrics", headers={"Authorization": "Bearer tok"})).text
        text_two = (await c2.get("/metrics")).text
    healthz = (
        "liverec_http_requests_total",
        (("method", "GET"), ("route", "/healthz"), ("status", "200")),
    )
    unauthorized = (
        "liverec_http_requests_total",
        (("method", "GET"), ("route", "/metrics"), ("status", "401")),
    )
    assert samples(text_two)[healthz] == 3
    assert healthz not in samples(text_one)
    assert samples(text_one)[unauthorized] == 2
    assert unauthorized not in samples(text_two)


async def test_metrics_without_a_sink_is_404(ctx: ApiContext) -> None:
    async with client_for(create_app(ctx)) as client:
        resp = await client.get("/metrics")
    assert resp.status_code == 404
    assert resp.json()["reason"] == "not_found"


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("liverec.test_health")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield out
    logger.removeHandler(handler)


async def test_log_lines_of_a_request_carry_its_id_and_routes_are_labelled_by_template(
    ctx: ApiContext, json_log: io.StringIO
) -> None:
    metrics = Metrics()
    app = app_with(ctx, metrics=metrics)

    @app.get("/test/{thing}/echo")
    async def echo(thing: str) -> dict[str, str]:
        logging.getLogger("liverec.test_health").info("echoing %s", thing)
        return {"thing": thing}

    @app.get("/test/sync")
    def in_a_thread() -> dict[str, str]:
        logging.getLogger("liverec.test_health").info("in a worker thread")
        return {}

    async with client_for(app) as client:
        a = await client.get("/test/one/echo", headers={"X-Request-ID": "given-1"})
        b = await client.get("/test/two/echo")
        c = await client.get("/test/sync")
        await client.get(f"/v1/projects/{APP}/nowhere")
    assert a.headers["x-request-id"] == "given-1"
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    assert [(e["message"], e["request_id"]) for e in lines] == [
        ("echoing one", "given-1"),
        ("echoing two", b.headers["x-request-id"]),
        ("in a worker thread", c.headers["x-request-id"]),
    ]
    seen = samples(metrics.render().decode())
    route = (
        "liverec_http_requests_total",
        (("method", "GET"), ("route", "/test/{thing}/echo"), ("status", "200")),
    )
    assert seen[route] == 2
    unmatched = (
        "liverec_http_requests_total",
        (("method", "GET"), ("route", "unmatched"), ("status", "404")),
    )
    assert seen[unmatched] == 1
    assert not any("one" in dict(labels).get("route", "") for _, labels in seen)
