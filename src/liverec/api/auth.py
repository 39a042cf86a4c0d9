"""API authentication: HTTP Basic and Agora's HMAC-SHA256 scheme, and project access.

HMAC (the Kong-style HTTP signature Agora's gateway uses):

    Authorization: hmac username="{customer_id}", algorithm="hmac-sha256",
                   headers="host date request-line digest", signature="{base64}"

The signed text is one line per name in `headers`, in that order, joined by "\\n": the
request line as `{METHOD} {path?query} HTTP/1.1`, any other name as `{name}: {value}`;
`Digest` is `SHA-256={base64(sha256(body))}`. The key is the customer secret. The signature
must cover host, date and the request line, and also the digest when there is a body; a
Digest header that is sent is always checked against the body, signed or not.

Every failure is a 401; messages say what is wrong but never echo a secret or the header."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Annotated

from fastapi import Depends, Request

from liverec.api import session as console_session
from liverec.api.context import ApiContext
from liverec.api.errors import ApiError
from liverec.catalog import Project
from liverec.errors import NotFoundError

ALGORITHM = "hmac-sha256"
DEFAULT_SIGNED_HEADERS = ("host", "date", "request-line", "digest")
REQUIRED_SIGNED_HEADERS = ("host", "date", "request-line")
MAX_CUSTOMER_ID_LEN = 128
_PARAM = re.compile(r'\s*([A-Za-z]+)\s*=\s*"([^"]*)"\s*(?:,|$)')


def get_context(request: Request) -> ApiContext:
    """The ApiContext the app factory put on `app.state.ctx`."""
    ctx = getattr(request.app.state, "ctx", None)
    if not isinstance(ctx, ApiContext):
        raise RuntimeError("app.state.ctx is not set to an ApiContext")
    return ctx


def unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message)


# --- the HMAC scheme, shared by clients and the server ------------------------------


def http_date(when: datetime) -> str:
    """An RFC 7231 date: `Mon, 23 Nov 2026 12:00:00 GMT`."""
    return format_datetime(when.astimezone(UTC), usegmt=True)


def body_digest(body: bytes) -> str:
    return "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")


def signing_string(signed: Sequence[str], values: Mapping[str, str], request_line: str) -> str:
    return "\n".join(
        request_line if name == "request-line" else f"{name}: {values[name]}" for name in signed
    )


def _mac(secret: str, text: str) -> bytes:
    return hmac.digest(secret.encode("utf-8"), text.encode("utf-8"), hashlib.sha256)


def hmac_authorization(
    customer_id: str,
    secret: str,
    method: str,
    path_qs: str,
    host: str,
    date: datetime | str,
    body: bytes = b"",
    *,
    signed_headers: Sequence[str] = DEFAULT_SIGNED_HEADERS,
) -> dict[str, str]:
    """The headers a client sends to sign a request: Host, Date, Digest, Authorization.
    `path_qs` is the path as sent, with its query string (`/v1/x?a=1`); `date` a datetime
    or an already formatted string."""
    date_text = date if isinstance(date, str) else http_date(date)
    values = {"host": host, "date": date_text, "digest": body_digest(body)}
    unknown = [n for n in signed_headers if n != "request-line" and n not in values]
    if unknown:
        raise ValueError(f"cannot sign headers {unknown}: only host, date, digest")
    text = signing_string(signed_headers, values, f"{method.upper()} {path_qs} HTTP/1.1")
    signature = base64.b64encode(_mac(secret, text)).decode("ascii")
    authorization = (
        f'hmac username="{customer_id}", algorithm="{ALGORITHM}", '
        f'headers="{" ".join(signed_headers)}", signature="{signature}"'
    )
    return {
        "Host": host,
        "Date": date_text,
        "Digest": values["digest"],
        "Authorization": authorization,
    }


# --- server side ----------------------------------------------------------------------


def _parse_params(text: str) -> dict[str, str]:
    params: dict[str, str] = {}
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _PARAM.match(text, pos)
        if match is None or match.end() == pos:
            raise unauthorized("malformed hmac Authorization header")
        name = match.group(1).lower()
        if name in params:
            raise unauthorized(f"hmac Authorization repeats {name}")
        params[name] = match.group(2)
        pos = match.end()
    return params


def _check_date(ctx: ApiContext, value: str) -> datetime:
    try:
        sent = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        raise unauthorized("the Date header is not an HTTP date") from None
    if sent.tzinfo is None:
        sent = sent.replace(tzinfo=UTC)
    offset = (sent - ctx.clock()).total_seconds()
    if offset < -ctx.hmac_skew:
        raise unauthorized(f"the Date header is stale (more than {ctx.hmac_skew:g} s old)")
    if offset > ctx.hmac_skew:
        raise unauthorized(f"the Date header is more than {ctx.hmac_skew:g} s in the future")
    return sent


def _check_digest(value: str, body: bytes) -> None:
    sent: bytes | None = None
    for item in value.split(","):
        algo, sep, encoded = item.strip().partition("=")
        if sep and algo.strip().lower() == "sha-256":
            try:
                sent = base64.b64decode(encoded.strip(), validate=True)
            except (binascii.Error, ValueError):
                sent = None
            break
    if sent is None:
        raise unauthorized("the Digest header must be SHA-256=<base64 of the body's SHA-256>")
    if not hmac.compare_digest(sent, hashlib.sha256(body).digest()):
        raise unauthorized("the Digest header does not match the body")


def _request_lines(request: Request, version: str) -> list[str]:
    """The request line as signed: with its query string, and without it (the docs leave
    open which; Agora's Postman script signs the path alone)."""
    raw_path = request.scope.get("raw_path")
    path = raw_path.decode("latin-1") if isinstance(raw_path, bytes) else request.url.path
    query = request.scope.get("query_string", b"")
    lines = [f"{request.method} {path} HTTP/{version}"]
    if query:
        lines.insert(0, f"{request.method} {path}?{query.decode('latin-1')} HTTP/{version}")
    return lines


def _hosts(request: Request, host: str) -> list[str]:
    """The Host as sent, and the same host with its port taken off or, when it has none,
    with the scheme's default port: Agora's Postman script signs the host without a port.
    Never another host name."""
    if host.startswith("["):  # an IPv6 literal: [::1]:8080
        end = host.find("]") + 1
        name, rest = (host[:end], host[end:]) if end else (host, "")
    else:
        name = host.partition(":")[0]
        rest = host[len(name) :]
    if rest.startswith(":") and rest[1:].isdigit():
        return [host, name]
    if not rest:
        return [host, f"{host}:{443 if request.url.scheme == 'https' else 80}"]
    return [host]


async def _verify_hmac(ctx: ApiContext, request: Request, text: str) -> str:
    params = _parse_params(text)
    missing = [p for p in ("username", "algorithm", "headers", "signature") if p not in params]
    if missing:
        raise unauthorized(f"hmac Authorization lacks {', '.join(missing)}")
    customer_id = params["username"]
    if not 0 < len(customer_id) <= MAX_CUSTOMER_ID_LEN:
        raise unauthorized("hmac username is not a customer ID")
    if params["algorithm"].lower() != ALGORITHM:
        raise unauthorized(f"unsupported hmac algorithm: use {ALGORITHM}")
    signed = params["headers"].lower().split()
    body = await request.body()
    needed = [*REQUIRED_SIGNED_HEADERS, *(("digest",) if body else ())]
    unsigned = [name for name in needed if name not in signed]
    if unsigned:
        raise unauthorized(f"the signature must cover {', '.join(unsigned)}")
    values: dict[str, str] = {}
    for name in signed:
        if name == "request-line":
            continue
        value = request.headers.get(name)
        if value is None:
            raise unauthorized(f"the signed header {name} is missing")
        values[name] = value
    sent = _check_date(ctx, values["date"])
    digest = request.headers.get("digest")
    if digest is not None:
        _check_digest(digest, body)
    try:
        signature = base64.b64decode(params["signature"], validate=True)
    except (binascii.Error, ValueError):
        raise unauthorized("the signature is not base64") from None
    secret = await asyncio.to_thread(ctx.catalog.credential_secret, customer_id)
    if secret is None:
        raise unauthorized("unknown or revoked credential")
    # Clients sign "HTTP/1.1" whatever the transport; also accept the real version.
    versions = ["1.1"]
    actual = str(request.scope.get("http_version", "1.1"))
    if actual != "1.1":
        versions.append(actual)
    hosts = _hosts(request, values["host"]) if "host" in values else [""]
    for version in versions:
        for line in _request_lines(request, version):
            for host in hosts:
                variant = {**values, "host": host} if "host" in values else values
                text = signing_string(signed, variant, line)
                if hmac.compare_digest(signature, _mac(secret, text)):
                    _check_replay(ctx, request, signature, body, sent)
                    return customer_id
    raise unauthorized("the signature does not match")


# A replay of these changes nothing; and FLS clients sign with a Date to the second, so two
# identical reads within a second (Agora's samples do that) carry the same signature.
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _check_replay(
    ctx: ApiContext, request: Request, signature: bytes, body: bytes, sent: datetime
) -> None:
    """Refuse a change (not GET, HEAD or OPTIONS) this node already accepted, the same
    signature, request line and body, while its Date is in the window (a per-node cache:
    api/guard.py). The request line and body are in the key because a signature need not
    cover them: Agora's Postman script signs the path without its query, so two different
    creations (`POST .../entry_points?id=a`, `?id=b`) in one second share a signature and
    neither is a replay of the other."""
    method = request.method.upper()
    if ctx.guard is None or method in _SAFE_METHODS:
        return
    target = request.url.path + ("?" + request.url.query if request.url.query else "")
    key = hashlib.sha256(
        b"\n".join((signature, method.encode(), target.encode("utf-8", "replace"), body))
    ).digest()
    valid_until = sent.timestamp() + ctx.hmac_skew
    if not ctx.guard.first_use(key, valid_until):
        raise unauthorized(
            "this signed request was already received (replay): sign each request anew"
        )


async def _verify_basic(ctx: ApiContext, token: str) -> str:
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise unauthorized("malformed Basic credentials") from None
    customer_id, sep, secret = decoded.partition(":")
    if not sep or not customer_id or not secret:
        raise unauthorized("malformed Basic credentials: need customer_id:customer_secret")
    # scrypt: ~30 ms of CPU, off the event loop.
    credential = await asyncio.to_thread(ctx.catalog.verify_basic, customer_id, secret)
    if credential is None:
        raise unauthorized("wrong customer ID or secret")
    return credential.customer_id


def _console_session(ctx: ApiContext, request: Request) -> str | None:
    """The web console's hook (api/session.py): with no Authorization header, a valid
    console session cookie stands for its customer ID, with the same project grants as
    the secret it was signed in with; a change (not GET, HEAD or OPTIONS) also needs the
    session's CSRF token header, else 403; a browser's request from another origin: 403.
    No cookie: None (the usual 401)."""
    try:
        return console_session.authorize(
            console_session.session_key(ctx.url_key),
            request.cookies.get(console_session.COOKIE),
            request.method,
            request.headers.get(console_session.CSRF_HEADER),
            ctx.clock().timestamp(),
            request.headers.get("sec-fetch-site"),
        )
    except console_session.SessionRefused as exc:
        # Not Basic: a browser would answer that with its own password dialog.
        challenge = {"WWW-Authenticate": console_session.CHALLENGE}
        raise ApiError(exc.status, exc.reason, str(exc), challenge) from None


def client_address(request: Request) -> str:
    """The peer's address (the limits' key; behind a proxy, the proxy's)."""
    return request.client.host if request.client is not None else ""


def _claimed_customer_id(scheme: str, rest: str) -> str | None:
    """The customer ID a Basic or hmac Authorization claims, before any check; None if
    there is none to read."""
    try:
        if scheme == "basic":
            decoded = base64.b64decode(rest.strip(), validate=True).decode("utf-8")
            customer_id, sep, _ = decoded.partition(":")
            return customer_id[:MAX_CUSTOMER_ID_LEN] if sep and customer_id else None
        if scheme == "hmac":
            return _parse_params(rest).get("username", "")[:MAX_CUSTOMER_ID_LEN] or None
    except (binascii.Error, ValueError, ApiError):
        return None
    return None


async def _verify(ctx: ApiContext, request: Request, header: str) -> str:
    scheme, _, rest = header.strip().partition(" ")
    scheme = scheme.lower()
    guard = ctx.guard
    if guard is None:
        return await _verify_scheme(ctx, request, scheme, rest)
    ip = client_address(request)
    claimed = _claimed_customer_id(scheme, rest)
    guard.check_auth(ip, claimed)
    try:
        customer_id = await _verify_scheme(ctx, request, scheme, rest)
    except ApiError as exc:
        if exc.status == 401:
            guard.auth_failed(ip, claimed, exc.message)
        raise
    guard.auth_succeeded(ip, customer_id)
    return customer_id


async def _verify_scheme(ctx: ApiContext, request: Request, scheme: str, rest: str) -> str:
    if scheme == "basic":
        return await _verify_basic(ctx, rest)
    if scheme == "hmac":
        return await _verify_hmac(ctx, request, rest)
    raise unauthorized("unsupported Authorization scheme: use Basic or hmac")


async def authenticate(request: Request) -> str:
    """FastAPI dependency: the customer ID of a valid Basic or hmac Authorization, or of
    the console's session (without an Authorization header), else 401. Also kept on
    `request.state.customer_id`. With ctx.guard, failures count towards a lockout (429 with
    Retry-After; api/guard.py) and an HMAC signature is accepted once."""
    header = request.headers.get("authorization")
    ctx = get_context(request)
    if not header or not header.strip():
        customer_id = _console_session(ctx, request)
        if customer_id is None:
            raise unauthorized("missing Authorization header")
        request.state.customer_id = customer_id
        return customer_id
    customer_id = await _verify(ctx, request, header)
    request.state.customer_id = customer_id
    return customer_id


def _granted_project(ctx: ApiContext, customer_id: str, app_id: str) -> Project | None:
    if not ctx.catalog.credential_can_access(customer_id, app_id):
        return None
    try:
        return ctx.catalog.get_project(app_id)
    except NotFoundError:
        return None


async def require_project(request: Request, customer_id: str, app_id: str) -> Project:
    """The project, if the credential `customer_id` (from `authenticate`) is granted it;
    else 404, the same answer as for a project that does not exist, so that existence
    does not leak."""
    ctx = get_context(request)
    project = await asyncio.to_thread(_granted_project, ctx, customer_id, app_id)
    if project is None:
        raise ApiError(404, "not_found", f"project {app_id[:64]} not found")
    return project


async def authorized_project(
    request: Request, customer_id: Annotated[str, Depends(authenticate)]
) -> Project:
    """FastAPI dependency for routes with an `{appid}` (or `{app_id}`) path parameter."""
    app_id = request.path_params.get("appid", request.path_params.get("app_id"))
    if not isinstance(app_id, str):
        raise RuntimeError("authorized_project needs an {appid} or {app_id} path parameter")
    return await require_project(request, customer_id, app_id)
