"""The listings of clips and snapshots made through the API (api/made.py): newest first,
their ranges and signed links, the time window, the limit, bad input, and what they leave
out (recordings, released files, other streams)."""

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
from liverec.api import locks, made
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
        app.include_router(made.router)
        app.include_router(locks.router)

    async with client_for(make_app(ctx, extend)) as client:
        yield client


async def test_clips_and_snapshots_are_listed_newest_first(
    api: httpx.AsyncClient, catalog: Catalog, store: LocalStore, clock: FakeClock
) -> None:
    start = clock() - timedelta(seconds=12)
    record_segments(catalog, store, STREAM, start)  # 3 segments of 4 s, ending now
    clips = ClipWriter(catalog, store, holds=catalog)
    clips(STREAM, file_name="a.m3u8", start=start, end=start + timedelta(seconds=5))
    clock.advance(60)
    clips(
        STREAM,
        file_name="b.m3u8",
        start=start + timedelta(seconds=4),
        end=start + timedelta(seconds=8),
    )
    catalog.reserve_file(STREAM, "s.jpg", "snapshot")
    other = StreamRef(APP, "na", "live", "other")
    catalog.reserve_file(other, "o.jpg", "snapshot")

    resp = await api.get(BASE + "/cutting/cam", headers=AUTH)
    assert resp.status_code == 200, resp.text
    listed = resp.json()["list"]
    assert [c["fileName"] for c in listed] == ["b.m3u8", "a.m3u8"]  # not the recording
    b = listed[0]
    assert b["createdTime"] == format_time(clock())
    # what retention holds for it: whole segments around the range asked for
    assert b["startTime"] <= format_time(start + timedelta(seconds=4))
    assert b["endTime"] >= format_time(start + timedelta(seconds=8))
    assert listed[1]["startTime"] <= format_time(start) < b["startTime"]
    assert b["url"].startswith("http://testserver/files/s/")
    assert b["url"].endswith(f"/{APP}/na/record/live/cam/b.m3u8")
    shots = (await api.get(BASE + "/snapshot/cam", headers=AUTH)).json()["list"]
    assert [s["fileName"] for s in shots] == ["s.jpg"]
    assert shots[0]["url"].endswith(f"/{APP}/na/record/live/cam/s.jpg")

    # the window and the limit
    window = {"start_time": format_time(clock() - timedelta(seconds=30))}
    newer = (await api.get(BASE + "/cutting/cam", params=window, headers=AUTH)).json()["list"]
    assert [c["fileName"] for c in newer] == ["b.m3u8"]
    one = (await api.get(BASE + "/cutting/cam?limit=1", headers=AUTH)).json()["list"]
    assert [c["fileName"] for c in one] == ["b.m3u8"]
    clock.advance(8 * 86400)  # the default window is the last 7 days
    assert (await api.get(BASE + "/cutting/cam", headers=AUTH)).json()["list"] == []

    # released: no longer listed
    everything = {"start_time": "2020-01-01T00:00:00Z"}
    assert (
        await api.delete(BASE + "/cutting/cam?fileName=a.m3u8", headers=AUTH)
    ).status_code == 200
    left = (await api.get(BASE + "/cutting/cam", params=everything, headers=AUTH)).json()["list"]
    assert [c["fileName"] for c in left] == ["b.m3u8"]


@pytest.mark.parametrize(
    ("query", "status", "reason"),
    [
        ("?start_time=yesterday", 400, "invalid_time"),
        ("?start_time=2026-11-23T10:00:00Z&end_time=2026-11-23T09:00:00Z", 400, "invalid_time"),
        ("?limit=0", 400, None),
        ("?limit=1001", 400, None),
    ],
)
async def test_bad_listing_queries_are_400(
    api: httpx.AsyncClient, query: str, status: int, reason: str | None
) -> None:
    for kind in ("cutting", "snapshot"):
        resp = await api.get(BASE + f"/{kind}/cam{query}", headers=AUTH)
        if reason:
            assert_error(resp, status, reason)
        else:
            assert resp.status_code == status, resp.text


async def test_listings_check_credentials_and_names(api: httpx.AsyncClient) -> None:
    assert_error(await api.get(BASE + "/cutting/cam"), 401)
    assert_error(
        await api.get(BASE + "/cutting/bad%20name", headers=AUTH), 400, "invalid_stream_name"
    )
    assert_error(
        await api.get(BASE.replace("/na", "/xx") + "/snapshot/cam", headers=AUTH),
        400,
        "invalid_region",
    )
    assert_error(
        await api.get(BASE.replace("/live/", "/nope/") + "/cutting/cam", headers=AUTH), 404
    )
    # an unknown stream has made nothing
    assert (await api.get(BASE + "/cutting/never", headers=AUTH)).json() == {"list": []}
