"""Setting an entry point's push authentication through the API (an extension): the key is
stored sealed and never answered; bad input changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from api.conftest import APP, CUSTOMER, SECRET, assert_error, basic, client_for, make_app
from liverec.api import admin
from liverec.api.context import ApiContext
from liverec.catalog import Catalog

AUTH = basic(CUSTOMER, SECRET)
URL = f"/v1/projects/{APP}/fls/entry_points/live/settings/push_auth"


@pytest.fixture
async def api(ctx: ApiContext, catalog: Catalog) -> AsyncIterator[httpx.AsyncClient]:
    catalog.create_entry_point(APP, "live")

    def extend(app: FastAPI) -> None:
        app.include_router(admin.router)

    async with client_for(make_app(ctx, extend)) as client:
        yield client


async def listed(api: httpx.AsyncClient) -> bool:
    eps = (await api.get(f"/v1/projects/{APP}/fls/entry_points", headers=AUTH)).json()
    return bool(eps["entryPointList"][0]["pushAuth"])


async def test_push_auth_is_set_and_removed(api: httpx.AsyncClient, catalog: Catalog) -> None:
    resp = await api.patch(URL, json={"authKey": "k3y"}, headers=AUTH)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"pushAuth": True}  # the key itself is never answered
    assert catalog.get_entry_point(APP, "live").auth_key == "k3y"
    assert await listed(api)
    for bad in ({"authKey": 5}, {"authKey": "x" * 1000}, {"authKey": "a\nb"}, {}, {"key": "k"}):
        assert_error(await api.patch(URL, json=bad, headers=AUTH), 400)
    assert catalog.get_entry_point(APP, "live").auth_key == "k3y"  # unchanged
    assert (await api.patch(URL, json={"authKey": ""}, headers=AUTH)).json() == {"pushAuth": False}
    assert catalog.get_entry_point(APP, "live").auth_key is None
    assert not await listed(api)
    await api.patch(URL, json={"authKey": "again"}, headers=AUTH)
    assert (await api.patch(URL, json={"authKey": None}, headers=AUTH)).json() == {
        "pushAuth": False
    }


async def test_push_auth_checks_scope(api: httpx.AsyncClient) -> None:
    assert_error(await api.patch(URL, json={"authKey": "k"}), 401)
    assert_error(
        await api.patch(URL.replace("/live/", "/nope/"), json={"authKey": "k"}, headers=AUTH),
        404,
        "entry_point_not_found",
    )
