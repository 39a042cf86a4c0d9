"""The OpenAPI schema kept in the repo is the app's: a drift fails here."""

from __future__ import annotations

import json
from pathlib import Path

from liverec.api.app import create_app, openapi_json

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
    assert set(paths[base + "/cutting/{stream_name}"]) == {"post"}
    assert set(paths[base + "/snapshot/{stream_name}"]) == {"post"}
    assert {"put", "delete"} <= set(paths[base + "/tasks"])
    assert {"get", "post"} <= set(paths["/v1/projects/{appid}/fls/entry_points"])
    assert any(p.startswith("/files/") for p in paths)
    assert create_app(None).docs_url == "/docs"
