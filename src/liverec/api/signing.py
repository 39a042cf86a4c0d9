"""Signed, expiring file URLs that work in a player without credentials.

    /files/s/{expires}/{sig}/{app_id}/{region}/record/{entry_point}/{stream_name}/{file}

`sig` is HMAC-SHA256 under ctx.url_key of `{expires}:{app_id}/{region}/record/{ep}/{stream}/`,
urlsafe base64 without padding. It covers the stream's folder, not the one file, and rides
in the path: a player resolving a playlist's relative segment URIs stays under the same
signed prefix, so the segments are covered too. Anything in that folder can be fetched
with it until it expires; nothing outside it can."""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
from urllib.parse import quote

from fastapi import Request

from liverec.api.context import ApiContext
from liverec.api.errors import ApiError
from liverec.layout import StreamRef, parse_name
from liverec.storage import check_key

SIGNED_PREFIX = "/files/s"
# A bad or expired link is refused like missing credentials: 401 (reasons bad_signature,
# expired), with the WWW-Authenticate every 401 carries.
REFUSED_STATUS = 401


def stream_folder_of(file_name: str) -> str:
    """`record/{ep}/{stream}/` of `record/{ep}/{stream}/{file}` (or the `snapshot/`
    folder's); InvalidKeyError if the name is unsafe or not of that shape."""
    check_key(file_name)
    return parse_name(file_name).folder


def _signature(key: bytes, expires: int, app_id: str, region: str, folder: str) -> str:
    text = f"{expires}:{app_id}/{region}/{folder}".encode()
    mac = hmac.digest(key, text, hashlib.sha256)
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def sign_url(
    ctx: ApiContext, app_id: str, region: str, file_name: str, ttl: float | None = None
) -> str:
    """The signed path of `file_name` (`record/...`), valid for `ttl` seconds (default
    ctx.url_ttl). A path: the caller prefixes the base URL."""
    ttl = ctx.url_ttl if ttl is None else ttl
    if ttl <= 0:
        raise ValueError(f"ttl must be positive, not {ttl}")
    folder = stream_folder_of(file_name)
    expires = math.ceil(ctx.clock().timestamp() + ttl)
    sig = _signature(ctx.url_key, expires, app_id, region, folder)
    tail = quote(f"{app_id}/{region}/{file_name}", safe="/")
    return f"{SIGNED_PREFIX}/{expires}/{sig}/{tail}"


def sign_folder(ctx: ApiContext, stream: StreamRef, ttl: float) -> tuple[int, str]:
    """(expires, sig) of a link to `stream`'s folder valid for `ttl` seconds: the pair in
    `/files/s/{expires}/{sig}/...` and `/play/s/{expires}/{sig}/...` (api/play.py), both
    checked by `verify`. One HMAC for any number of files of the folder."""
    if ttl <= 0:
        raise ValueError(f"ttl must be positive, not {ttl}")
    expires = math.ceil(ctx.clock().timestamp() + ttl)
    return expires, _signature(ctx.url_key, expires, stream.app_id, stream.region, stream.folder)


def verify(
    ctx: ApiContext,
    expires: int,
    sig: str,
    app_id: str,
    region: str,
    file_name: str,
    *,
    client: str | None = None,
) -> None:
    """Raise ApiError (401, reason bad_signature or expired) unless the signature is right
    for this folder and expiry and has not expired; InvalidKeyError for an unsafe name.
    With ctx.guard and the `client` address: a wrong signature counts towards a lockout of
    the address (429, reason too_many_requests, with Retry-After; api/guard.py)."""
    guard = ctx.guard if client is not None else None
    if guard is not None and client is not None:
        guard.check_link(client)
    folder = stream_folder_of(file_name)
    expected = _signature(ctx.url_key, expires, app_id, region, folder)
    if not hmac.compare_digest(expected.encode("ascii"), sig.encode("utf-8", "replace")):
        if guard is not None and client is not None:
            guard.link_failed(client)
        raise ApiError(REFUSED_STATUS, "bad_signature", "the link's signature is not valid")
    if expires < ctx.clock().timestamp():
        raise ApiError(REFUSED_STATUS, "expired", "the link has expired")


def signed_link(request: Request, ctx: ApiContext, stream: StreamRef, file_name: str) -> str:
    """The signed URL of `file_name` handed out in answers, under the configured public URL
    when there is one: behind a proxy or load balancer the request's own base URL is the
    node's address, which the client cannot reach (the public URL's path prefix is kept)."""
    path = sign_url(ctx, stream.app_id, stream.region, file_name)
    return (ctx.public_url or str(request.base_url).rstrip("/")) + path
