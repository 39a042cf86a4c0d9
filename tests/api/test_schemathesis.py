"""The served OpenAPI schema matches the server: schemathesis generates requests from
`/openapi.json` of create_app on a real catalog and store, sends them in-process (ASGI, no
socket) with HTTP Basic credentials, and checks every answer against the schema: no 5xx,
only documented statuses, content types, headers and bodies, and 405 with `Allow` for a
method a path does not take.

Bounded and deterministic, so CI is not flaky: the fuzzing phase makes at most
MAX_EXAMPLES cases per operation, valid and invalid ones ("all" modes), and the coverage
phase adds the schema's boundary and negative cases and every undocumented method (about
1,070 requests, ~30 s); derandomized from a fixed seed, without hypothesis's example
database (nothing replayed from a local directory), and without a deadline (the 2-core
machine is shared). The project and entry point are pinned to the fixture's (`app1`,
`live`) so that cases get past the project check instead of all being 404s; times, stream
names and byte ranges are drawn half of the time from valid values, so that calls also
succeed and their 200 bodies are checked. Schemathesis puts no `/` in a path parameter,
so the file routes are also called with the stored files' real names (the last test)."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)
from schemathesis.specs.openapi.schemas import OpenApiSchema

from api.conftest import APP, CUSTOMER, SECRET, basic
from liverec.api.app import create_app
from liverec.api.context import ApiContext
from liverec.api.signing import sign_url
from liverec.catalog import Catalog
from liverec.config import REGIONS
from liverec.layout import project_root
from liverec.media.m3u8 import PLAYLIST_TYPE
from liverec.media.names import JPEG_TYPE
from liverec.media.ts import TS_TYPE
from liverec.storage import LocalStore

MAX_EXAMPLES = 25
AUTH = basic(CUSTOMER, SECRET)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    unsupported_method,
]
# Valid values, mixed into the generated ones: FLS's time forms around the fixture clock's
# now (2026-11-23T12:00Z), and stream names that pass the one name rule.
_TIMES = [
    "2026-11-23T11:00:00Z",
    "2026-11-23T11:59:00.500Z",
    "2026-11-23T19:30+08",
    "2026-11-23T12:00:00+00:00",
    "2026-11-30T12:00:00Z",
]
_STREAMS = ["cam", "cam-2", "stream_1"]
# Files stored in every region (api_schema), so downloads also succeed: 200, 206, 416.
_FILES = {
    "record/live/cam/sess_20261123110000000.m3u8": (
        b"#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-ENDLIST\n",
        PLAYLIST_TYPE,
    ),
    "record/live/cam/sess_20261123110000000_0.ts": (b"\x47" * 188 * 4, TS_TYPE),
    "record/live/cam/snap.jpg": (b"\xff\xd8\xff\xe0" + bytes(500) + b"\xff\xd9", JPEG_TYPE),
}
_RANGES = ["bytes=0-99", "bytes=10-", "bytes=-20", "bytes=100000-", "bytes=0-1,5-9", "items=0-1"]
DOWNLOAD = "/files/{app_id}/{region}/{file_name}"
SIGNED_DOWNLOAD = "/files/s/{expires}/{sig}/{app_id}/{region}/{file_name}"
_HALF = 0.5
# Schemathesis's own settings (its phases read them); the test's @settings says the same to
# hypothesis, whose explicit settings win.
CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 20261123,
        "generation": {
            "mode": "all",
            "max-examples": MAX_EXAMPLES,
            "deterministic": True,
            "database": "none",
        },
        "dictionaries": {
            "times": {"values": _TIMES},
            "streams": {"values": _STREAMS},
            "ranges": {"values": _RANGES},
        },
        "parameters": {
            "path.appid": APP,
            "path.app_id": APP,
            "path.entry_point": "live",
            **{
                f"{where}.{name}": {"dictionary": "times", "probability": _HALF}
                for where, name in [
                    ("query", "start_time"),
                    ("query", "end_time"),
                    ("body", "startTime"),
                    ("body", "endTime"),
                    ("body", "time"),
                    ("body", "resumeTime"),
                ]
            },
            **{
                f"{where}.{name}": {"dictionary": "streams", "probability": _HALF}
                for where, name in [("path", "stream_name"), ("query", "stream_name")]
            },
            "header.Range": {"dictionary": "ranges", "probability": _HALF},
        },
    }
)


@pytest.fixture
def api_schema(ctx: ApiContext, catalog: Catalog, store: LocalStore) -> OpenApiSchema:
    """The schema as the app serves it, bound to that app: cases are sent to it."""
    catalog.create_entry_point(APP, "live")
    for region in REGIONS:
        for name, (data, media_type) in _FILES.items():
            store.put(project_root(region, APP) + name, data, media_type)
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(ctx), config=CONFIG)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_the_server_answers_as_its_schema_says(case: Case[Any]) -> None:
    case.call_and_validate(headers=AUTH, checks=CHECKS)


@pytest.mark.parametrize(
    ("range_header", "status"),
    [(None, 200), ("bytes=0-99", 206), ("bytes=-20", 206), ("bytes=100000-", 416)],
)
def test_downloads_answer_as_the_schema_says(
    api_schema: OpenApiSchema, ctx: ApiContext, range_header: str | None, status: int
) -> None:
    """The stored files, fetched by their real names: schemathesis puts no `/` in a path
    parameter (OpenAPI has no parameter of several segments), so it never names one."""
    headers = {} if range_header is None else {"Range": range_header}
    for region in REGIONS:
        for name in _FILES:
            signed = sign_url(ctx, APP, region, name)
            expires, sig = signed.split("/")[3:5]
            cases = [
                api_schema[DOWNLOAD]["GET"].Case(
                    path_parameters={"app_id": APP, "region": region, "file_name": name},
                    headers={**AUTH, **headers},
                ),
                api_schema[SIGNED_DOWNLOAD]["GET"].Case(
                    path_parameters={
                        "expires": int(expires),
                        "sig": sig,
                        "app_id": APP,
                        "region": region,
                        "file_name": name,
                    },
                    headers=headers,
                ),
            ]
            for case in cases:
                response = case.call_and_validate(checks=CHECKS)
                assert response.status_code == status, (case.formatted_path, response.text)
