"""The OpenAPI schema kept in the repo is the app's: a drift fails here."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from api.conftest import CUSTOMER, SECRET, assert_error, basic, client_for
from liverec.api.app import create_app, openapi_json
from liverec.api.context import ApiContext
from liverec.config import REGIONS

SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_exported_schema_matches_the_app() -> None:
    assert SCHEMA.read_text() == openapi_json(), (
        "docs/openapi.json is stale: run `liverec openapi --output docs/openapi.json`"
    )


def test_schema_describes_the_fls_calls() -> None:
    paths = json.loads(openapi_json())["paths"]
    base = (
        "/v1/projects/{appid}/fls/entry_points/{entry_point}/admin/record/standard/regions/{region}"
    )
    assert set(paths[base + "/preview_list"]) == {"get"}
    # DELETE (release a clip or snapshot, api/locks.py) and GET (list them, api/made.py) are
    # liverec extensions.
    assert set(paths[base + "/cutting/{stream_name}"]) == {"post", "delete", "get"}
    assert set(paths[base + "/snapshot/{stream_name}"]) == {"post", "delete", "get"}
    assert {"get", "post", "delete"} <= set(paths[base + "/locks"])
    assert {"put", "delete"} <= set(paths[base + "/tasks"])
    assert {"get", "post"} <= set(paths["/v1/projects/{appid}/fls/entry_points"])
    assert any(p.startswith("/files/") for p in paths)
    # /docs is served from the package (api/docs.py), not by FastAPI's CDN page.
    assert any(getattr(r, "path", None) == "/docs" for r in create_app(None).routes)


def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    paths = json.loads(openapi_json())["paths"]
    return [(path, method, op) for path, ops in paths.items() for method, op in ops.items()]


# Health and metrics (api/health.py): no credentials, no catalog call of their own.
_OPS_PATHS = {"/healthz", "/readyz", "/metrics"}


def test_every_error_an_operation_can_answer_is_documented_with_the_error_body() -> None:
    for path, method, op in _operations():
        if path in _OPS_PATHS:
            continue
        responses = op["responses"]
        where = f"{method.upper()} {path}"
        # Validation errors are answered 400 (api/errors.py), never FastAPI's 422.
        assert "422" not in responses, where
        # Every call authenticates (or checks a signature), and calls the catalog or store.
        assert {"400", "401", "404", "500", "504"} <= set(responses), where
        if "requestBody" in op:
            assert "413" in responses, where
        for status, response in responses.items():
            if int(status) >= 400:
                content = response["content"]
                assert list(content) == ["application/json"], where
                assert content["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/ErrorBody"
                }, where
        if path.startswith("/files/"):
            assert {"200", "206", "307", "416"} <= set(responses), where
    schemas = json.loads(openapi_json())["components"]["schemas"]
    assert schemas["ErrorBody"]["required"] == ["message", "reason"]
    assert schemas["ErrorBody"]["additionalProperties"] is False
    assert "HTTPValidationError" not in schemas


def test_region_is_documented_as_an_enum_of_the_fls_regions() -> None:
    seen = 0
    for path, method, op in _operations():
        for param in op.get("parameters", []):
            if param["name"] == "region":
                assert param["schema"]["enum"] == list(REGIONS), (method, path)
                assert param["schema"]["type"] == "string"
                seen += 1
    assert seen >= 8


def test_liverec_extensions_are_marked_and_internal_routes_left_out() -> None:
    schema = json.loads(openapi_json())
    paths = schema["paths"]
    for path, ops in paths.items():
        if path.startswith("/files/"):
            assert ops["get"]["description"].startswith("liverec extension"), path
    precise = schema["components"]["schemas"]["CuttingRequest"]["properties"]["precise"]
    assert precise["description"].startswith("liverec extension")
    base = (
        "/v1/projects/{appid}/fls/entry_points/{entry_point}/admin/record/standard/regions/{region}"
    )
    assert paths[base + "/tasks"]["delete"]["description"].startswith("liverec extension")
    assert not any(p.startswith("/internal/") for p in paths)
    for path in _OPS_PATHS:
        assert paths[path]["get"]["description"].startswith("liverec extension"), path
    assert set(paths["/readyz"]["get"]["responses"]) == {"200", "503"}
    assert {"200", "401", "404"} <= set(paths["/metrics"]["get"]["responses"])


# A value for each path parameter, to turn a schema path into a request path.
_SAMPLE = {
    "appid": "app1",
    "app_id": "app1",
    "entry_point": "live",
    "region": "na",
    "stream_name": "cam",
    "expires": "4102444800",
    "sig": "x",
    "file_name": "record/live/cam/a.m3u8",
    "ep": "live",  # /play
    "stream": "cam",
}


def _concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: _SAMPLE[m.group(1)], path)


async def test_options_answers_the_methods_of_each_path_without_credentials() -> None:
    paths = json.loads(openapi_json())["paths"]
    async with client_for(create_app(None)) as client:
        for path, ops in paths.items():
            expected = {m.upper() for m in ops} | {"OPTIONS"}
            if path.startswith("/files/") or path.endswith(".m3u8"):
                expected.add("HEAD")  # served, kept out of the schema
            resp = await client.options(
                _concrete(path),
                headers={
                    "Origin": "https://player.example",
                    "Access-Control-Request-Method": "GET",
                    "Access-Control-Request-Headers": "authorization",
                },
            )
            assert resp.status_code == 204, (path, resp.text)
            assert set(resp.headers["allow"].split(", ")) == expected, path
            assert resp.headers["access-control-allow-methods"] == resp.headers["allow"]
            assert resp.headers["access-control-allow-origin"] == "*"
            allowed_headers = resp.headers["access-control-allow-headers"].split(", ")
            assert {"Authorization", "Content-Type", "Date", "Digest", "Host"} <= set(
                allowed_headers
            )
            assert "www-authenticate" not in resp.headers


async def test_a_method_a_path_does_not_take_is_405_listing_every_method_it_takes() -> None:
    async with client_for(create_app(None)) as client:
        # Two routes share this path: Starlette alone named only the first one's method.
        resp = await client.patch("/v1/projects/app1/fls/entry_points")
        assert_error(resp, 405, "method_not_allowed")
        assert resp.headers["allow"] == "GET, POST, OPTIONS"
        resp = await client.request("TRACE", "/files/app1/na/record/live/cam/a.m3u8")
        assert_error(resp, 405, "method_not_allowed")
        assert resp.headers["allow"] == "GET, HEAD, OPTIONS"


async def test_options_on_an_unknown_path_is_a_json_404() -> None:
    async with client_for(create_app(None)) as client:
        assert_error(await client.options("/v1/nothing/here"), 404, "not_found")
        # An empty appid is still FLS's 400, for OPTIONS too.
        resp = await client.options("/v1/projects//fls/entry_points")
        assert_error(resp, 400, "invalid_parameter")


async def test_every_answer_to_a_browser_allows_its_origin(ctx: ApiContext) -> None:
    async with client_for(create_app(ctx)) as client:
        resp = await client.get(
            "/v1/projects/app1/fls/entry_points", headers={"Origin": "https://app.example"}
        )
        assert_error(resp, 401, "unauthorized")
        assert resp.headers["access-control-allow-origin"] == "*"
        resp = await client.get(
            "/v1/projects/app1/fls/entry_points",
            headers={"Origin": "https://app.example", **basic(CUSTOMER, SECRET)},
        )
        assert resp.status_code == 200, resp.text
        assert resp.headers["access-control-allow-origin"] == "*"
        # Without an Origin (not a browser's cross-origin call), nothing is added.
        resp = await client.get(
            "/v1/projects/app1/fls/entry_points", headers=basic(CUSTOMER, SECRET)
        )
        assert "access-control-allow-origin" not in resp.headers
