"""The FLS routes in-process (create_app on a real catalog and store): every user-given name
passes the one rule and is refused with a 400, never a 500; times in FLS's own forms; any
FLS region. (Clips and snapshots of real recordings: tests/e2e/test_api.py.)"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from api.conftest import APP, CUSTOMER, SECRET, assert_error, basic, client_for
from liverec.api.app import create_app
from liverec.api.context import ApiContext
from liverec.catalog import Catalog

AUTH = basic(CUSTOMER, SECRET)


def base(region: str = "na") -> str:
    return f"/v1/projects/{APP}/fls/entry_points/live/admin/record/standard/regions/{region}"


@pytest.fixture
async def client(ctx: ApiContext, catalog: Catalog) -> AsyncIterator[httpx.AsyncClient]:
    catalog.create_entry_point(APP, "live")
    async with client_for(create_app(ctx)) as c:
        yield c


BAD_FILE_NAMES = [
    "a\u2028b",  # passed the API's old check, then failed the catalog's: a 500
    "a b",
    "a?b",
    "a#b",
    "a%20b",
    "caf\u00e9",
    ".hidden",
    "x" * 200,
]


@pytest.mark.parametrize("stem", BAD_FILE_NAMES)
async def test_bad_file_names_are_400(client: httpx.AsyncClient, stem: str) -> None:
    resp = await client.post(
        base() + "/cutting/cam",
        json={"startTime": "2026-11-23T11:00:00Z", "fileName": stem + ".m3u8"},
        headers=AUTH,
    )
    assert_error(resp, 400, "invalid_file_name")
    resp = await client.post(
        base() + "/snapshot/cam", json={"fileName": stem + ".jpg"}, headers=AUTH
    )
    assert_error(resp, 400, "invalid_file_name")


@pytest.mark.parametrize("stream", ["..", "a b", "x" * 129, "caf\u00e9", "a%3F"])
async def test_bad_stream_names_are_400_on_every_route(
    client: httpx.AsyncClient, stream: str
) -> None:
    window = {"start_time": "2026-11-23T11:00Z", "end_time": "2026-11-23T12:00Z"}
    answers = [
        await client.get(
            base() + "/preview_list", params={**window, "stream_name": stream}, headers=AUTH
        ),
        await client.put(base() + "/tasks", params={"id": stream}, headers=AUTH),
    ]
    if stream != "..":  # in a path, the client resolves ".." away: another path
        body = {"startTime": "2026-11-23T11:00:00Z", "fileName": "ok.m3u8"}
        answers += [
            await client.post(base() + f"/cutting/{stream}", json=body, headers=AUTH),
            await client.post(
                base() + f"/snapshot/{stream}", json={"fileName": "a.jpg"}, headers=AUTH
            ),
            await client.delete(base() + f"/tasks/{stream}", headers=AUTH),
        ]
    for resp in answers:
        assert_error(resp, 400, "invalid_stream_name")


async def test_times_in_flss_own_forms(client: httpx.AsyncClient) -> None:
    for start, end in [
        ("2026-11-23T19:00+08", "2026-11-23T20:00+08"),
        ("2026-11-23T11:00:00.5Z", "2026-11-23T12:00:00+00:00"),
        ("2026-11-23T19:00:00+0800", "2026-11-23T12:00Z"),
    ]:
        resp = await client.get(
            base() + "/preview_list",
            params={"start_time": start, "end_time": end, "stream_name": "cam"},
            headers=AUTH,
        )
        assert resp.status_code == 200, resp.text
        assert resp.json() == {"list": []}
    for bad in ("2026-11-23T11:00", "2026-11-23T11:00+8", "yesterday"):
        resp = await client.get(
            base() + "/preview_list",
            params={"start_time": bad, "end_time": "2026-11-23T12:00Z", "stream_name": "cam"},
            headers=AUTH,
        )
        message = assert_error(resp, 400, "invalid_time")
        assert message.startswith("start_time")


async def test_any_fls_region_is_a_filter(client: httpx.AsyncClient) -> None:
    params = {"start_time": "2026-11-23T11:00Z", "end_time": "2026-11-23T12:00Z"}
    for region in ("na", "eu", "ap", "cn"):
        resp = await client.get(
            base(region) + "/preview_list", params={**params, "stream_name": "cam"}, headers=AUTH
        )
        assert resp.status_code == 200, resp.text
    resp = await client.get(
        base("xx") + "/preview_list", params={**params, "stream_name": "cam"}, headers=AUTH
    )
    assert_error(resp, 400, "invalid_region")


@pytest.mark.parametrize(
    "content_type",
    [None, "application/x-www-form-urlencoded", "text/plain; charset=utf-8", "application/json"],
)
async def test_a_json_body_is_json_whatever_its_content_type(
    client: httpx.AsyncClient, content_type: str | None
) -> None:
    # Agora's Python HMAC sample sends no Content-Type, its Java sample Java's form type.
    body = b'{"startTime": "2026-11-23T11:00:00Z", "fileName": "x.m3u8"}'
    headers = {**AUTH, **({"Content-Type": content_type} if content_type else {})}
    if content_type is None:
        headers["Content-Type"] = ""  # httpx would add none anyway; an empty one is sent
    resp = await client.post(base() + "/cutting/cam", content=body, headers=headers)
    # Parsed and validated as JSON: the stream has no recording, which is a 404.
    assert_error(resp, 404, "no_recording")
    resp = await client.post(base() + "/cutting/cam", content=b"startTime=x", headers=headers)
    assert "not valid JSON" in assert_error(resp, 400, "invalid_parameter")


async def test_preview_list_may_end_in_the_future(
    client: httpx.AsyncClient, ctx: ApiContext
) -> None:
    # The common call: the whole of today, during today.
    today = ctx.clock().date().isoformat()
    resp = await client.get(
        base() + "/preview_list",
        params={
            "start_time": f"{today}T00:00:00Z",
            "end_time": f"{today}T23:59:59Z",
            "stream_name": "cam",
        },
        headers=AUTH,
    )
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"list": []}


async def test_entry_points_list_has_the_documented_shape(client: httpx.AsyncClient) -> None:
    resp = await client.get(f"/v1/projects/{APP}/fls/entry_points", headers=AUTH)
    assert resp.status_code == 200, resp.text
    items = resp.json()["entryPointList"]
    assert [item["name"] for item in items] == ["live"]
