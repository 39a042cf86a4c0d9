"""Calls between nodes, not part of the public API (left out of the OpenAPI schema).

`GET /internal/v1/live_segment/{app_id}/{region}/{entry_point}/{stream_name}?at=` answers
the TS bytes of the segment this node's live recorder holds at `at` (or its newest), with
its wall-clock start in a header, so another node can take a snapshot at the live edge of
a stream this node records. Requests are signed with HMAC-SHA256 under a key every node
derives from the shared secret key (`node_key`), over the method, the path with its query
and a Unix time that must be within a minute of this node's clock.

`GET /internal/v1/metrics` answers this node's Prometheus text: the API process of ingest
workers (workers.py) sums its workers' ingest figures into its own /metrics."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from urllib.parse import quote

from fastapi import APIRouter, Request, Response

from liverec.api.access import check_region, check_stream_name
from liverec.api.auth import get_context
from liverec.api.errors import ApiError
from liverec.api.times import format_time, parse_time
from liverec.layout import StreamRef

PREFIX = "/internal/v1/live_segment"
METRICS_PATH = "/internal/v1/metrics"
SEGMENT_START = "X-Liverec-Segment-Start"
_TIME = "X-Liverec-Time"
_SIGNATURE = "X-Liverec-Signature"
SKEW = 60.0

router = APIRouter(include_in_schema=False)


def live_segment_path(stream: StreamRef) -> str:
    parts = (stream.app_id, stream.region, stream.entry_point, stream.stream_name)
    return PREFIX + "/" + "/".join(quote(p, safe="") for p in parts)


def _signature(key: bytes, method: str, target: str, stamp: str) -> str:
    text = f"{method.upper()}\n{target}\n{stamp}".encode()
    return base64.b64encode(hmac.digest(key, text, hashlib.sha256)).decode("ascii")


def internal_headers(key: bytes, method: str, target: str) -> dict[str, str]:
    """The headers that sign a call to another node (`target`: path and query)."""
    stamp = str(int(time.time()))
    return {_TIME: stamp, _SIGNATURE: _signature(key, method, target, stamp)}


def _verify(request: Request, key: bytes) -> None:
    stamp = request.headers.get(_TIME, "")
    sent = request.headers.get(_SIGNATURE, "")
    if not stamp.isdigit() or abs(int(stamp) - time.time()) > SKEW:
        raise ApiError(401, "unauthorized", "not a call from another node")
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    expected = _signature(key, request.method, target, stamp)
    if not hmac.compare_digest(expected.encode(), sent.encode("utf-8", "replace")):
        raise ApiError(401, "unauthorized", "not a call from another node")


@router.get(PREFIX + "/{app_id}/{region}/{entry_point}/{stream_name}")
async def live_segment(
    request: Request, app_id: str, region: str, entry_point: str, stream_name: str
) -> Response:
    ctx = get_context(request)
    if ctx.local_live is None or not ctx.node_key:
        raise ApiError(404, "not_found", "no live media here")
    _verify(request, ctx.node_key)
    check_region(region)
    stream = StreamRef(app_id, region, entry_point, check_stream_name(stream_name))
    at_text = request.query_params.get("at")
    at = parse_time(at_text, "at") if at_text else None
    found = await asyncio.to_thread(ctx.local_live.live_segment, stream, at)
    if found is None:
        raise ApiError(404, "not_live", f"no live media of {stream} here")
    return Response(
        found.data,
        media_type="video/mp2t",
        headers={SEGMENT_START: format_time(found.start_time)},
    )


@router.get(METRICS_PATH)
def node_metrics(request: Request) -> Response:
    # A plain `def`: rendering reads the parts' state from a worker thread, off the loop.
    ctx = get_context(request)
    if ctx.metrics is None or not ctx.node_key:
        raise ApiError(404, "not_found", "no metrics here")
    _verify(request, ctx.node_key)
    return Response(ctx.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
