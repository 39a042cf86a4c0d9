"""Every API request: an ID (for the logs, and answered as `X-Request-ID`), and its count
and time in the metrics, by route template.

The route label is the template the request matched (`/files/{app_id}/{region}/{file_name}`),
never the raw path, which would make a series per file name; a request no route took is
`unmatched`. The time runs from the request's arrival to the last byte of the answer.

A client may send its own `X-Request-ID` (a proxy's, to follow one request through both
logs); one that is not 1-128 characters of `[A-Za-z0-9._:-]` is replaced by a new one."""

from __future__ import annotations

import re
import time
import uuid

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from liverec.api.context import ApiContext
from liverec.logs import request_id_var

__all__ = ["REQUEST_ID", "Observe"]

REQUEST_ID = "X-Request-ID"
_ID_OK = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
UNMATCHED = "unmatched"
_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"x-request-id":
            text = str(value.decode("latin-1"))
            if _ID_OK.match(text):
                return text
            break
    return uuid.uuid4().hex


def route_template(scope: Scope) -> str:
    """The path template of the route that took the request (set by the router)."""
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(path) if isinstance(path, str) else UNMATCHED


class Observe:
    """Pure ASGI middleware, outermost: it sees every answer, the 413s and OPTIONS too."""

    def __init__(self, app: ASGIApp, ctx: ApiContext | None) -> None:
        self.app = app
        self.metrics = ctx.metrics if ctx is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        request_id = _request_id(scope)
        token = request_id_var.set(request_id)
        status = 500  # an app that fails before it answers: the server answers 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = list(message.get("headers", ()))
                MutableHeaders(scope=message)[REQUEST_ID] = request_id
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            request_id_var.reset(token)
            if self.metrics is not None:
                self.metrics.api_request(
                    route_template(scope),
                    scope["method"] if scope["method"] in _METHODS else "other",
                    status,
                    time.perf_counter() - began,
                )
