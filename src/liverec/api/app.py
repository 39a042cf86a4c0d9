"""The FastAPI application factory."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.datastructures import MutableHeaders
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from liverec import __version__
from liverec.api import (
    admin,
    callbacks,
    docs,
    files,
    fls,
    health,
    internal,
    locks,
    made,
    outputs,
    play,
    settings,
    streams,
    thumbnails,
)
from liverec.api.context import ApiContext
from liverec.api.errors import (
    API_ERRORS,
    ERROR_DESCRIPTIONS,
    ErrorBody,
    error_responses,
    install_error_handlers,
)
from liverec.api.jsonbody import JsonBodies
from liverec.api.limits import MAX_BODY_BYTES, BodyLimit
from liverec.api.observe import Observe

DESCRIPTION = """\
liverec records RTMP pushes as HLS and serves Agora Fusion Live Streaming's
standard-recording post-processing API (list recordings, cut clips, take snapshots), its
management calls for what is recorded, and the recorded files.

Authentication: HTTP Basic with a customer ID and secret, or Agora's HMAC-SHA256 scheme.
Times: RFC 3339 with an offset in requests; UTC with milliseconds in answers.
Errors: a JSON body `{"message": ..., "reason": ...}` on every non-2xx answer; each call
lists the statuses it can answer.
Browsers: `OPTIONS` on any path answers its methods (`Allow`) and the CORS preflight
headers without credentials; every answer to a request with an `Origin`, errors included,
allows the origins of the `cors_origins` setting: any (`*`, the default, without
credentials), or the ones listed (with credentials).
Fields and calls marked "liverec extension" are not in FLS's documentation.
Request bodies: JSON whatever the Content-Type says (Agora's samples send none, or a form
type); at most 64 KiB (413 `body_too_large` beyond).
"""

# An FLS path with an empty appid or entry point does not match any route; FLS answers
# such a request with 400 (a parameter is invalid), not 404.
_EMPTY_SEGMENT = re.compile(r"^/v1/projects/(|[^/]*/fls/entry_points/)(/|$)")


# What FLS clients send (Agora's HMAC scheme signs Date, Digest and Host; Host is the
# browser's own, listed for clients that ask anyway), and what a player sends for a range.
CORS_ALLOW_HEADERS = "Authorization, Content-Type, Date, Digest, Host, Range, If-Range"
# How long a browser may keep a preflight's answer (Chromium keeps at most 2 hours).
CORS_MAX_AGE = "600"
# What a page may read of an answer besides the CORS-safelisted headers.
CORS_EXPOSE_HEADERS = "Content-Length, Content-Range, ETag, WWW-Authenticate, X-Request-ID"
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


class _LiverecApi(FastAPI):
    """FastAPI whose OpenAPI schema lists the statuses the server answers, and only those.

    FastAPI adds a 422 to every operation with parameters, but install_error_handlers turns
    every validation error into a 400 (documented with ErrorBody on each route): the 422s
    and their schemas are dropped. BodyLimit, installed here for the whole app, refuses any
    body over its limit: every operation that takes a body documents that 413, whichever
    router it is in and whatever its decorator says."""

    def openapi(self) -> dict[str, Any]:
        schema = super().openapi()  # cached by FastAPI: these edits are made once
        too_large = {
            "description": ERROR_DESCRIPTIONS[413],
            "content": {
                "application/json": {
                    "schema": {"$ref": f"#/components/schemas/{ErrorBody.__name__}"}
                }
            },
        }
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                responses.pop("422", None)
                if "requestBody" in operation:
                    responses.setdefault("413", too_large)
        components = schema.get("components", {}).get("schemas", {})
        if "#/components/schemas/HTTPValidationError" not in json.dumps(schema.get("paths")):
            components.pop("HTTPValidationError", None)
            components.pop("ValidationError", None)
        docs.declare_security(schema)
        return schema


class _MethodsAndCors:
    """Pure ASGI middleware: `OPTIONS`, the `Allow` of a 405, and CORS, from every route
    of a path.

    Starlette answers a method a path does not take from the first route whose path
    matches, so `Allow` named that route's methods only (`OPTIONS .../fls/entry_points`
    answered 405 `Allow: GET`, though POST is allowed too). Here the methods of a path are
    what the app's routing takes there, each method asked of it in turn (FastAPI nests
    included routers, so their routes are not a flat list to read): an `OPTIONS` request
    no route takes itself is answered 204 with them in `Allow` and the CORS preflight
    headers, without authentication (a browser sends no credentials in a preflight), and a
    405 gets them in its `Allow`. A path no route takes is left to the router: 404 JSON.
    Other requests pay nothing for this: the routes are asked only for OPTIONS and 405.

    Every answer to a request with an `Origin` (errors too: an expired signed link's 401
    must be readable by hls.js, which otherwise reports "status 0") allows the configured
    origins (`cors_origins`): `*`, the default, lets any page read answers but send no
    cookies (a page of another origin can call the API only with credentials it has);
    a list lets those origins only, echoed with `Access-Control-Allow-Credentials`."""

    def __init__(
        self, app: ASGIApp, routes: Sequence[BaseRoute], origins: Sequence[str] = ("*",)
    ) -> None:
        self.app = app
        self.routes = routes  # the app's own list: routes added later are seen
        self.origins = tuple(origins)

    def cors_headers(self, scope: Scope) -> dict[str, str]:
        """The Access-Control-Allow-* headers for this request's Origin ({} without one)."""
        origin = next((v for k, v in scope.get("headers", ()) if k.lower() == b"origin"), None)
        if origin is None:
            return {}
        if "*" in self.origins:
            return {"Access-Control-Allow-Origin": "*"}
        text = origin.decode("latin-1")
        if text.lower() not in self.origins:
            return {"Vary": "Origin"}
        return {
            "Access-Control-Allow-Origin": text,
            "Access-Control-Allow-Credentials": "true",
            "Vary": "Origin",
        }

    def takes(self, scope: Scope, method: str) -> bool:
        """Whether a route takes `method` at this request's path. Asked on a copy of the
        scope: matching writes FastAPI's routing state into the scope it is given."""
        probe = {k: v for k, v in scope.items() if k != "fastapi"}
        probe["method"] = method
        return any(route.matches(probe)[0] == Match.FULL for route in self.routes)

    def allowed(self, scope: Scope) -> list[str]:
        """The methods taken at this request's path, and OPTIONS (answered here) if any."""
        methods = [m for m in _METHODS if self.takes(scope, m)]
        return [*methods, "OPTIONS"] if methods else []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS" and not self.takes(scope, "OPTIONS"):
            allowed = self.allowed(scope)
            if allowed:
                allow = ", ".join(allowed)
                headers = {
                    "Allow": allow,
                    **self.cors_headers(scope),
                    "Access-Control-Allow-Methods": allow,
                    "Access-Control-Allow-Headers": CORS_ALLOW_HEADERS,
                    "Access-Control-Max-Age": CORS_MAX_AGE,
                }
                await Response(status_code=204, headers=headers)(scope, receive, send)
                return
        cors = self.cors_headers(scope)

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", ()))
                headers = MutableHeaders(scope=message)
                if message["status"] == 405:
                    allowed = self.allowed(scope)
                    if allowed:
                        headers["Allow"] = ", ".join(allowed)
                if "*" not in self.origins and "Access-Control-Allow-Origin" not in cors:
                    del headers["Access-Control-Allow-Origin"]  # a route's own `*`
                for name, value in cors.items():
                    if name == "Vary":
                        headers.add_vary_header("Origin")
                    else:
                        headers[name] = value
                if "Access-Control-Allow-Origin" in cors:
                    headers["Access-Control-Expose-Headers"] = CORS_EXPOSE_HEADERS
            await send(message)

        await self.app(scope, receive, sending)


def create_app(ctx: ApiContext | None) -> FastAPI:
    """The app; `ctx` None builds it for its OpenAPI schema only."""
    # /docs is served from the package (api/docs.py); ReDoc would load from a CDN.
    app = _LiverecApi(
        title="liverec",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
    )
    app.state.ctx = ctx
    install_error_handlers(app)
    # Every FLS route authenticates, checks the project and calls the catalog: it can
    # answer these whatever it does (its own decorator adds 413 for a body and its notes).
    fls_errors = error_responses(*API_ERRORS)
    app.include_router(fls.router, responses=fls_errors)
    app.include_router(admin.router, responses=fls_errors)
    app.include_router(streams.router, responses=fls_errors)
    app.include_router(settings.router, responses=fls_errors)
    app.include_router(outputs.router, responses=fls_errors)
    app.include_router(callbacks.router, responses=fls_errors)
    app.include_router(locks.router, responses=fls_errors)
    app.include_router(made.router, responses=fls_errors)
    app.include_router(thumbnails.router, responses=fls_errors)
    app.include_router(internal.router)
    app.include_router(files.router)
    app.include_router(play.router)  # /play: time-shift playlists (liverec extension)
    docs.install(app)  # /docs and its assets, from the package
    app.include_router(health.router)  # /healthz, /readyz, /metrics: no credentials

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

    app.add_middleware(JsonBodies)
    # Added after the others, so it runs before them: nothing reads a body before it is
    # bounded.
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)
    # Outside even the body limit (it reads no body), so that its 413 carries CORS too.
    app.add_middleware(
        _MethodsAndCors,
        routes=app.router.routes,
        origins=ctx.cors_origins if ctx is not None else ("*",),
    )
    # Outermost: request IDs and request metrics see every answer.
    app.add_middleware(Observe, ctx=ctx)
    return app


def create_internal_app(ctx: ApiContext) -> FastAPI:
    """An ingest worker's app (workers.py): the calls between nodes only (api/internal.py),
    signed, so that other nodes reach its live media and the API process its metrics."""
    app = FastAPI(title="liverec internal", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.ctx = ctx
    install_error_handlers(app)
    app.include_router(internal.router)
    return app


def openapi_json() -> str:
    """The API's OpenAPI schema as the repo keeps it in docs/openapi.json."""
    return json.dumps(create_app(None).openapi(), indent=2, sort_keys=True) + "\n"
