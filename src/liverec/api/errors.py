"""Error answers: every non-200 answer is JSON `{"message": ..., "reason": ...}`, `message`
first (Agora's gateway key). Routes raise ApiError for what they mean; the rest of the
exception tree is mapped here, and anything unexpected is a 500 that leaks no detail."""

from __future__ import annotations

import http
import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from liverec.errors import (
    CatalogError,
    CatalogTimeoutError,
    CatalogUnavailableError,
    ConflictError,
    InvalidKeyError,
    LiverecError,
    NotFoundError,
    SchemaError,
    StorageError,
    StorageTimeoutError,
)
from liverec.logs import clip
from liverec.storage import ObjectNotFoundError

log = logging.getLogger(__name__)

WWW_AUTHENTICATE = 'Basic realm="liverec"'

_REASONS = {
    400: "invalid_parameter",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    416: "range_not_satisfiable",
    429: "too_many_requests",
    503: "unavailable",
    504: "timeout",
}
# The catalog and the stores map their drivers' errors into these (catalog/db.py,
# storage/s3.py); nothing here knows a driver.
_TIMEOUT_TYPES: tuple[type[BaseException], ...] = (
    TimeoutError,
    CatalogTimeoutError,
    StorageTimeoutError,
)


class ErrorBody(BaseModel):
    """The body of every non-2xx answer (error_response builds it). The OpenAPI schema
    documents it with no other keys, so a client may rely on exactly these two."""

    model_config = ConfigDict(extra="forbid")
    message: str = Field(description="what is wrong, for a person (never a secret or a path)")
    reason: str = Field(description="a short machine code, e.g. invalid_region, not_found")


# What each error status means on any route; a route's own causes go in `notes`.
ERROR_DESCRIPTIONS = {
    400: "A path, query or body parameter is invalid (reason invalid_parameter, or a "
    "narrower one: invalid_region, invalid_stream_name, invalid_file_name, invalid_time).",
    401: "Missing, malformed or wrong credentials (reason unauthorized); "
    "WWW-Authenticate says how to authenticate.",
    404: "Not found (reason not_found): no such path, or no such project for these "
    "credentials (one the credential is not granted is answered as one that does not exist).",
    413: "The request body is larger than 64 KiB (reason body_too_large).",
    416: "The byte range is past the end of the file (reason range_not_satisfiable); "
    "Content-Range gives the file's size.",
    429: "Too many failed authentications or signed links from this address, or on this "
    "customer ID from this address (reason too_many_requests): refused without a check "
    "until Retry-After seconds have passed; the lockout grows with each further one. "
    "liverec extension.",
    500: "An internal error (reason internal); the message has no detail.",
    503: "The catalog database or the storage is unavailable (reason unavailable; the "
    "message says which); the call may be retried. liverec extension.",
    504: "The catalog database or the storage did not answer in time (reason timeout; the "
    "message says which); the call may be retried.",
}
_ERROR_HEADERS: dict[int, dict[str, dict[str, object]]] = {
    401: {
        "WWW-Authenticate": {
            "description": f"always `{WWW_AUTHENTICATE}`",
            "required": True,
            "schema": {"type": "string"},
        }
    },
    429: {
        "Retry-After": {
            "description": "seconds until the lockout ends",
            "required": True,
            "schema": {"type": "integer"},
        }
    },
    416: {
        "Content-Range": {
            "description": "`bytes */{size}`",
            "required": True,
            "schema": {"type": "string"},
        }
    },
}
# Every route that authenticates, looks up a project and calls the catalog can answer these
# (400 also for an empty appid or entry point, or a bad Content-Length, before routing).
# 429: a lockout after failed credentials (api/guard.py).
API_ERRORS = (400, 401, 404, 429, 500, 503, 504)
# ... and a route that takes a body also 413 (api/limits.py).
BODY_ERRORS = (*API_ERRORS, 413)


def error_responses(
    *statuses: int, notes: Mapping[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route decorator: each status answered with ErrorBody as JSON,
    described once here (plus the route's own `notes`, e.g. which 404 reasons it gives), so
    the OpenAPI schema lists every status the route can really answer."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in sorted(statuses):
        description = ERROR_DESCRIPTIONS[status]
        if notes and status in notes:
            description = f"{description} {notes[status]}"
        out[status] = {"model": ErrorBody, "description": description}
        if status in _ERROR_HEADERS:
            out[status]["headers"] = _ERROR_HEADERS[status]
    unknown = set(notes or ()) - set(statuses)
    if unknown:
        raise ValueError(f"notes for statuses not answered: {sorted(unknown)}")
    return out


class ApiError(Exception):
    """An answer a route means to give: status, a short machine `reason`, a human `message`."""

    def __init__(
        self, status: int, reason: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.headers = dict(headers or {})


def error_response(
    status: int, reason: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """The JSON error answer; a 401 always says how to authenticate."""
    out = dict(headers or {})
    if status == 401:
        out.setdefault("WWW-Authenticate", WWW_AUTHENTICATE)
    return JSONResponse({"message": message, "reason": reason}, status_code=status, headers=out)


def is_timeout(exc: BaseException) -> bool:
    """True if the error, or one it was raised from, is a timeout."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < 16:
        seen.add(id(current))
        if isinstance(current, _TIMEOUT_TYPES):
            return True
        current = current.__cause__ or current.__context__
    return False


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc` and the errors it was raised from, nearest first."""
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in found and len(found) < 16:
        found.append(current)
        current = current.__cause__ or current.__context__
    return found


def dependency(exc: BaseException) -> str | None:
    """Which dependency failed, by the error or one it came from: "the catalog database",
    "the storage", or None."""
    for err in _chain(exc):
        if isinstance(err, CatalogUnavailableError) and not isinstance(err, SchemaError):
            return "the catalog database"
        if isinstance(err, StorageError) and not isinstance(
            err, ObjectNotFoundError | InvalidKeyError
        ):
            return "the storage"
    return None


class _Outages:
    """Logs a dependency's outage once when requests start failing on it, and once when
    one succeeds again, instead of a line (and a traceback) per request."""

    def __init__(self) -> None:
        self.down: dict[str, str] = {}  # dependency -> what the first failure said

    def failed(self, what: str, exc: BaseException) -> None:
        if what not in self.down:
            self.down[what] = type(exc).__name__
            log.error("%s is failing (requests answer 503/504): %s", what, exc)

    def answered(self, path: str, status: int) -> None:
        """A request answered: a success of a route that needs the dependency ends its
        outage (every /v1 route authenticates through the catalog; /files reads the
        storage)."""
        if not self.down or status >= 500:
            return
        needs = ["the catalog database"] if path.startswith("/v1/") else []
        if path.startswith("/files/") and status < 300:
            needs += ["the catalog database", "the storage"]
        for what in needs:
            if self.down.pop(what, None) is not None:
                log.warning("%s answers again", what)


def classify(exc: BaseException) -> tuple[int, str, str]:
    """(status, reason, message) for an exception no route turned into an ApiError."""
    if isinstance(exc, ApiError):
        return exc.status, exc.reason, exc.message
    what = dependency(exc)
    if is_timeout(exc):
        return 504, "timeout", f"{what or 'a storage or database call'} did not answer in time"
    if isinstance(exc, ObjectNotFoundError):
        return 404, "not_found", "no such file"  # its text would show internal store keys
    if isinstance(exc, NotFoundError):
        return 404, "not_found", str(exc)
    if isinstance(exc, InvalidKeyError):
        return 400, "invalid_parameter", str(exc)
    if isinstance(exc, ConflictError):
        return 409, "conflict", str(exc)
    if what is not None:
        return 503, "unavailable", f"{what} is unavailable; try again later"
    if isinstance(exc, CatalogError) and not isinstance(exc, SchemaError | CatalogUnavailableError):
        # The catalog refuses a value the caller gave (a name, a time): the caller's fault.
        # A schema that is not at head is ours, a 500.
        return 400, "invalid_parameter", str(exc)
    return 500, "internal", "internal error"


def _log(request_line: str, exc: BaseException, status: int, outages: _Outages) -> None:
    # Only the method and path: never headers (credentials) or bodies; the path clipped
    # (a client chooses it, and its length).
    request_line = clip(request_line, 200)
    what = dependency(exc)
    if status in (503, 504) and what is not None:
        outages.failed(what, exc)
    elif status == 500:
        log.error("%s failed", request_line, exc_info=exc)
    elif status == 504:
        log.warning("%s timed out: %s", request_line, type(exc).__name__, exc_info=exc)


async def _on_exception(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, ApiError):
        return error_response(exc.status, exc.reason, exc.message, exc.headers)
    status, reason, message = classify(exc)
    _log(f"{request.method} {request.url.path}", exc, status, request.app.state.outages)
    return error_response(status, reason, message)


def _field_name(loc: tuple[Any, ...]) -> str:
    # loc is ("query", "start_time") or ("body", "startTime") or ("body",).
    parts = [str(p) for p in loc[1:]] if len(loc) > 1 else [str(p) for p in loc]
    return ".".join(parts)


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if not errors:
        return error_response(400, "invalid_parameter", "invalid request")
    first = errors[0]
    if first.get("type") == "json_invalid":
        message = "the request body is not valid JSON"
    else:
        field = _field_name(tuple(first.get("loc", ())))
        message = f"invalid parameter {field}: {first.get('msg', 'invalid value')}"
    return error_response(400, "invalid_parameter", message)


async def _on_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    try:
        default = http.HTTPStatus(status).phrase
    except ValueError:
        default = ""
    detail = str(exc.detail) if exc.detail and exc.detail != default else ""
    if status == 404:
        message = detail or "no such path"
    elif status == 405:
        message = detail or f"method {request.method} is not allowed here"
    else:
        message = detail or default.lower() or "error"
    reason = _REASONS.get(status, "internal" if status >= 500 else "error")
    return error_response(status, reason, message, exc.headers)


class _CatchAll:
    """Turns an exception that escaped every handler into a JSON 500/504, so it never
    reaches Starlette's plain-text error page (which also re-raises it to the server)."""

    def __init__(self, app: ASGIApp, outages: _Outages) -> None:
        self.app = app
        self.outages = outages

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                self.outages.answered(str(scope.get("path", "")), int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:  # too late for an answer: let the server drop the connection
                raise
            status, reason, message = classify(exc)
            path = f"{scope.get('method', '?')} {scope.get('path', '?')}"
            _log(path, exc, status, self.outages)
            await error_response(status, reason, message)(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    """Make every error answer of `app` the JSON shape above. Call before the app starts."""
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(HTTPException, _on_http_exception)
    for exc_type in (ApiError, LiverecError, TimeoutError):
        app.add_exception_handler(exc_type, _on_exception)
    # One per app: what a dependency's outage has logged so far.
    app.state.outages = _Outages()
    app.add_middleware(_CatchAll, outages=app.state.outages)
