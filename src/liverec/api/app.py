"""The FastAPI application factory."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from liverec import __version__
from liverec.api import admin, files, fls, internal, streams
from liverec.api.context import ApiContext
from liverec.api.errors import install_error_handlers
from liverec.api.jsonbody import JsonBodies
from liverec.api.limits import MAX_BODY_BYTES, BodyLimit

DESCRIPTION = """\
liverec records RTMP pushes as HLS and serves Agora Fusion Live Streaming's
standard-recording post-processing API (list recordings, cut clips, take snapshots), its
management calls for what is recorded, and the recorded files.

Authentication: HTTP Basic with a customer ID and secret, or Agora's HMAC-SHA256 scheme.
Times: RFC 3339 with an offset in requests; UTC with milliseconds in answers.
Errors: a JSON body `{"message": ..., "reason": ...}` on every non-200 answer.
Request bodies: JSON whatever the Content-Type says (Agora's samples send none, or a form
type); at most 64 KiB (413 `body_too_large` beyond).
"""

# An FLS path with an empty appid or entry point does not match any route; FLS answers
# such a request with 400 (a parameter is invalid), not 404.
_EMPTY_SEGMENT = re.compile(r"^/v1/projects/(|[^/]*/fls/entry_points/)(/|$)")


def create_app(ctx: ApiContext | None) -> FastAPI:
    """The app; `ctx` None builds it for its OpenAPI schema only."""
    app = FastAPI(title="liverec", version=__version__, description=DESCRIPTION)
    app.state.ctx = ctx
    install_error_handlers(app)
    app.include_router(fls.router)
    app.include_router(admin.router)
    app.include_router(streams.router)
    app.include_router(internal.router)
    app.include_router(files.router)

    @app.middleware("http")
    async def empty_segments(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if _EMPTY_SEGMENT.match(request.url.path):
            return JSONResponse(
                {
                    "message": "appid and entry_point must not be empty",
                    "reason": "invalid_parameter",
                },
                status_code=400,
            )
        return await call_next(request)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "node": ctx.node_id if ctx else ""}

    app.add_middleware(JsonBodies)
    # Added last, so it runs first: nothing reads a body before it is bounded.
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)
    return app


def openapi_json() -> str:
    """The API's OpenAPI schema as the repo keeps it in docs/openapi.json."""
    return json.dumps(create_app(None).openapi(), indent=2, sort_keys=True) + "\n"
