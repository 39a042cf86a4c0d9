"""Retention's API extensions (api/locks.py): locks, releasing clips and snapshots, an entry
point's retention period; and their bad input."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI

from api.conftest import (
    APP,
    CUSTOMER,
    SECRET,
    FakeClock,
    assert_error,
    basic,
    client_for,
    make_app,
    record_segments,
)
from liverec.api import admin, locks
from liverec.api.context import ApiContext
from liverec.catalog import Catalog
from liverec.layout import StreamRef
from liverec.media.m3u8 import format_time
from liverec.postprocess import ClipWriter
from liverec.storage import LocalStore

BASE = f"/v1/projects/{APP}/fls/entry_points/live/admin/record/standard/regions/na"
AUTH = basic(CUSTOMER, SECRET)
STREAM = StreamRef(APP, "na", "live", "cam")


@pytest.fixture
async def api(ctx: ApiContext, catalog: Catalog) -> AsyncIterator[httpx.AsyncClient]:
    catalog.create_entry_point(APP, "live")

    def extend(app: FastAPI) -> None:
        app.include_router(locks.router)
        app.include_router(admin.router)

    async with client_for(make_app(ctx, extend)) as client:
        yield client


async def test_locks_are_added_listed_and_deleted(api: httpx.AsyncClient, clock: FakeClock) -> None:
    now = clock()
    body = {
        "streamName": "cam",
        "startTime": "2026-11-23T10:00:00+01:00",
        "endTime": format_time(now),
        "expireTime": format_time(now + timedelta(days=1)),
    }
    resp = await api.post(BASE + "/locks", json=body, headers=AUTH)
    assert resp.status_code == 201, resp.text
    lock = resp.json()
    assert lock == {
        "lockId": lock["lockId"],
        "streamName": "cam",
        "startTime": "2026-11-23T09:00:00.000Z",
        "endTime": "2026-11-23T12:00:00.000Z",
        "expireTime": "2026-11-24T12:00:00.000Z",
    }
    del body["expireTime"]
    resp = await api.post(BASE + "/locks", json=body | {"streamName": "other"}, headers=AUTH)
    assert resp.status_code == 201 and resp.json()["expireTime"] is None
    listed = (await api.get(BASE + "/locks", headers=AUTH)).json()["locks"]
    assert [x["streamName"] for x in listed] == ["cam", "other"]
    one = (await api.get(BASE + "/locks?stream_name=cam", headers=AUTH)).json()["locks"]
    assert one == [lock]
    resp = await api.delete(BASE + f"/locks?id={lock['lockId']}", headers=AUTH)
    assert resp.status_code == 200
    assert_error(await api.delete(BASE + f"/locks?id={lock['lockId']}", headers=AUTH), 404)
    # expired locks are not listed
    clock.advance(86400 * 2)
    assert [
        x["streamName"] for x in (await api.get(BASE + "/locks", headers=AUTH)).json()["locks"]
    ] == ["other"]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"startTime": "yesterday"}, "invalid_time"),
        ({"endTime": "2026-11-23T08:00:00Z"}, "invalid_time"),  # before startTime
        ({"expireTime": "2026-11-23T11:00:00Z"}, "invalid_time"),  # in the past
        ({"endTime": "2046-11-23T08:00:00Z"}, "invalid_time"),  # over 10 years
        ({"streamName": "a/b"}, "invalid_stream_name"),
        ({"streamName": 7}, "invalid_parameter"),
        ({"unknown": 1}, "invalid_parameter"),
    ],
)
async def test_bad_locks_are_400(
    api: httpx.AsyncClient, change: dict[str, object], reason: str
) -> None:
    body = {
        "streamName": "cam",
        "startTime": "2026-11-23T09:00:00Z",
        "endTime": "2026-11-23T10:00:00Z",
    }
    resp = await api.post(BASE + "/locks", json=body | change, headers=AUTH)
    assert_error(resp, 400, reason)


async def test_lock_calls_check_their_scope(api: httpx.AsyncClient) -> None:
    body = {
        "streamName": "cam",
        "startTime": "2026-11-23T09:00:00Z",
        "endTime": "2026-11-23T10:00:00Z",
    }
    assert_error(await api.post(BASE + "/locks", json=body), 401)
    assert_error(
        await api.post(BASE.replace("/na", "/xx") + "/locks", json=body, headers=AUTH),
        400,
        "invalid_region",
    )
    assert_error(await api.get(BASE.replace("/live/", "/nope/") + "/locks", headers=AUTH), 404)
    assert_error(await api.delete(BASE + "/locks?id=abc", headers=AUTH), 400)
    assert_error(await api.delete(BASE + "/locks?id=0", headers=AUTH), 400)
    assert_error(await api.delete(BASE + "/locks", headers=AUTH), 400)


async def test_clips_and_snapshots_are_released(
    api: httpx.AsyncClient, catalog: Catalog, store: LocalStore, clock: FakeClock
) -> None:
    start = clock() - timedelta(minutes=5)
    path = record_segments(catalog, store, STREAM, start)
    ClipWriter(catalog, store, holds=catalog)(
        STREAM, file_name="c.m3u8", start=start, end=start + timedelta(seconds=5)
    )
    assert store.exists(STREAM.key(STREAM.file("c.m3u8")))
    catalog.reserve_file(STREAM, "s.jpg", "snapshot")
    store.put(STREAM.key(STREAM.file("s.jpg")), b"jpeg", "image/jpeg")

    assert_error(
        await api.delete(BASE + "/cutting/cam?fileName=../x.m3u8", headers=AUTH),
        400,
        "invalid_file_name",
    )
    assert_error(
        await api.delete(BASE + "/cutting/cam?fileName=s.jpg", headers=AUTH),
        400,
        "invalid_file_name",
    )
    assert_error(await api.delete(BASE + "/cutting/cam", headers=AUTH), 400)
    assert_error(await api.delete(BASE + "/cutting/cam?fileName=none.m3u8", headers=AUTH), 404)
    # a recording's playlist is not a clip
    assert_error(
        await api.delete(
            BASE + f"/cutting/cam?fileName={path.playlist.rsplit('/', 1)[1]}", headers=AUTH
        ),
        404,
    )
    resp = await api.delete(BASE + "/cutting/cam?fileName=c.m3u8", headers=AUTH)
    assert resp.status_code == 200, resp.text
    assert not store.exists(STREAM.key(STREAM.file("c.m3u8")))
    assert not catalog.file_reserved(STREAM, "c.m3u8")
    assert_error(await api.delete(BASE + "/cutting/cam?fileName=c.m3u8", headers=AUTH), 404)
    resp = await api.delete(BASE + "/snapshot/cam?fileName=s.jpg", headers=AUTH)
    assert resp.status_code == 200
    assert not store.exists(STREAM.key(STREAM.file("s.jpg")))
    assert store.exists(STREAM.key(path.segment(0)))  # the recording is not touched


async def test_entry_point_retention_setting(api: httpx.AsyncClient) -> None:
    url = f"/v1/projects/{APP}/fls/entry_points/live/settings/retention"
    assert (await api.get(url, headers=AUTH)).json() == {
        "retentionSeconds": 0,
        "retention": "forever",
    }
    resp = await api.patch(url, json={"retention": "7d"}, headers=AUTH)
    assert resp.json() == {"retentionSeconds": 604800, "retention": "7d"}
    resp = await api.patch(url, json={"retention": 129600}, headers=AUTH)
    assert resp.json()["retention"] == "36h"
    eps = (await api.get(f"/v1/projects/{APP}/fls/entry_points", headers=AUTH)).json()
    assert eps["entryPointList"][0]["retentionSeconds"] == 129600
    for bad in ("7 days", -5, "", True, None, 10**12):
        assert_error(await api.patch(url, json={"retention": bad}, headers=AUTH), 400)
    assert (await api.patch(url, json={"retention": "forever"}, headers=AUTH)).json()[
        "retentionSeconds"
    ] == 0
    assert_error(await api.get(url.replace("/live/", "/nope/"), headers=AUTH), 404)
