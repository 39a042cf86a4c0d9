"""The console's routes: the page, its static files, and signing in and out.

    GET    /console/            the page (index.html); /console redirects here
    GET    /console/static/...  its CSS, JavaScript and the vendored hls.js
    POST   /console/session     sign in: {"customerId", "secret"}, checked exactly as HTTP
                                Basic is (catalog.verify_basic); sets the session cookie
    GET    /console/session     who is signed in, and the CSRF token (for a reloaded page)
    DELETE /console/session     sign out (needs the CSRF token)

Everything else the page does is the public API (/v1, /files, /play) with the session
cookie: api/auth.py `authenticate` takes it in place of an Authorization header. These
routes are not in the OpenAPI schema: they are the page's own, not the API's."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from importlib import resources
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, FastAPI, Header, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.staticfiles import StaticFiles

from liverec.api import session as sessions
from liverec.api.auth import get_context
from liverec.api.context import ApiContext
from liverec.api.errors import ApiError
from liverec.config import is_wildcard

router = APIRouter(include_in_schema=False)
STATIC = "/console/static"
SIGN_IN_HEADER = "X-Liverec-Console"  # a header no cross-site form can send


class SignIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    customerId: str = Field(min_length=1, max_length=128)
    secret: str = Field(min_length=1, max_length=1024)


class SessionInfo(BaseModel):
    customerId: str
    appIds: list[str]
    csrfToken: str
    expires: str  # RFC 3339, UTC
    region: str  # the region this node records into
    rtmpUrl: str  # where publishers push: rtmp://host:port


def _index() -> str:
    return resources.files("liverec.console").joinpath("static/index.html").read_text("utf-8")


def _csp(ctx: ApiContext) -> str:
    """Only this server's own assets; signed links may point at the public URL's origin."""
    extra = ""
    if ctx.public_url:
        parts = urlsplit(ctx.public_url)
        extra = f" {parts.scheme}://{parts.netloc}"
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        f"img-src 'self' data: blob:{extra}; media-src 'self' blob:{extra}; "
        f"connect-src 'self'{extra}; worker-src 'self' blob:; object-src 'none'; "
        "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    )


@router.get("/console")
async def console_redirect(request: Request) -> RedirectResponse:
    return RedirectResponse(request.url.path + "/", status_code=308)


@router.get("/console/")
async def console_page(request: Request) -> HTMLResponse:
    html = await asyncio.to_thread(_index)
    return HTMLResponse(
        html,
        headers={
            "Content-Security-Policy": _csp(get_context(request)),
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
        },
    )


def _secure(request: Request, ctx: ApiContext) -> bool:
    return request.url.scheme == "https" or ctx.public_url.startswith("https://")


def _rtmp_url(request: Request, ctx: ApiContext) -> str:
    parts = urlsplit(ctx.rtmp_url)
    host = parts.netloc.rpartition(":")[0] if parts.port else parts.netloc
    if is_wildcard(host.strip("[]")):
        page_host = request.url.hostname or "localhost"
        page_host = f"[{page_host}]" if ":" in page_host else page_host
        return f"{parts.scheme}://{page_host}" + (f":{parts.port}" if parts.port else "")
    return ctx.rtmp_url


def _app_ids(ctx: ApiContext, customer_id: str) -> list[str]:
    return [
        p.app_id
        for p in ctx.catalog.list_projects()
        if ctx.catalog.credential_can_access(customer_id, p.app_id)
    ]


async def _info(request: Request, ctx: ApiContext, session: sessions.Session) -> SessionInfo:
    app_ids = await asyncio.to_thread(_app_ids, ctx, session.customer_id)
    expires = datetime.fromtimestamp(session.expires, UTC)
    return SessionInfo(
        customerId=session.customer_id,
        appIds=app_ids,
        csrfToken=sessions.csrf_token(sessions.session_key(ctx.url_key), session.token),
        expires=expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
        region=ctx.region,
        rtmpUrl=_rtmp_url(request, ctx),
    )


def _own_page(request: Request) -> None:
    """The session routes answer only the console's own page (and scripts): a page of
    another origin must not sign in, nor read the CSRF token, whatever CORS allows."""
    if not sessions.same_origin(request.headers.get("sec-fetch-site")):
        raise ApiError(403, "cross_origin", "only the console's own page can use its session")


def _current(request: Request) -> sessions.Session:
    _own_page(request)
    ctx = get_context(request)
    token = request.cookies.get(sessions.COOKIE, "")
    found = sessions.open_session(sessions.session_key(ctx.url_key), token, ctx.clock().timestamp())
    if found is None:
        raise ApiError(401, "no_session", "not signed in", {"WWW-Authenticate": sessions.CHALLENGE})
    return found


@router.post("/console/session")
async def sign_in(
    request: Request,
    response: Response,
    body: SignIn,
    marker: Annotated[str | None, Header(alias=SIGN_IN_HEADER)] = None,
) -> SessionInfo:
    _own_page(request)
    ctx = get_context(request)
    if marker is None:
        # A cross-site form cannot set a header: no one can be signed in to another's
        # account by a page they visit.
        raise ApiError(403, "csrf_refused", f"sign in from the console page ({SIGN_IN_HEADER})")
    # scrypt, ~30 ms of CPU: off the event loop, as for Basic.
    credential = await asyncio.to_thread(ctx.catalog.verify_basic, body.customerId, body.secret)
    if credential is None:
        raise ApiError(
            401,
            "unauthorized",
            "wrong customer ID or secret",
            {"WWW-Authenticate": sessions.CHALLENGE},
        )
    key = sessions.session_key(ctx.url_key)
    session = sessions.issue(key, credential.customer_id, ctx.clock().timestamp())
    response.set_cookie(
        sessions.COOKIE,
        session.token,
        max_age=sessions.LIFETIME,
        path="/",
        httponly=True,
        samesite="strict",
        secure=_secure(request, ctx),
    )
    response.headers["Cache-Control"] = "no-store"
    return await _info(request, ctx, session)


@router.get("/console/session")
async def whoami(
    request: Request, response: Response, session: Annotated[sessions.Session, Depends(_current)]
) -> SessionInfo:
    response.headers["Cache-Control"] = "no-store"
    return await _info(request, get_context(request), session)


@router.delete("/console/session")
async def sign_out(
    request: Request,
    response: Response,
    session: Annotated[sessions.Session, Depends(_current)],
    csrf: Annotated[str | None, Header(alias=sessions.CSRF_HEADER)] = None,
) -> dict[str, str]:
    ctx = get_context(request)
    try:
        sessions.authorize(
            sessions.session_key(ctx.url_key),
            session.token,
            "DELETE",
            csrf,
            ctx.clock().timestamp(),
        )
    except sessions.SessionRefused as exc:
        raise ApiError(exc.status, exc.reason, str(exc)) from None
    sessions.sign_out(session, ctx.clock().timestamp())
    response.delete_cookie(
        sessions.COOKIE, path="/", httponly=True, samesite="strict", secure=_secure(request, ctx)
    )
    return {"message": "signed out"}


def install(app: FastAPI) -> None:
    """Add the console's routes and static files to the app."""
    app.include_router(router)
    app.mount(STATIC, StaticFiles(packages=[("liverec.console", "static")]), name="console")
