"""Push admission rules: stream names and FLS push signatures.

The FLS push signature: `?ts={unix expiry}&sign={md5(authKey + urlPath + ts)}` with urlPath
`/{entry_point}/{stream_name}`."""

from __future__ import annotations

import hashlib
import hmac
import time

from liverec.errors import RefusedError
from liverec.media.names import stream_name_problem

BAD_NAME = "NetStream.Publish.BadName"
UNAUTHORIZED = "NetStream.Publish.Unauthorized"


def check_stream_name(name: str) -> str:
    """`name`, or RefusedError (BadName) unless it passes the one stream-name rule."""
    problem = stream_name_problem(name)
    if problem is not None:
        raise RefusedError(BAD_NAME, problem)
    return name


def push_signature(auth_key: str, entry_point: str, stream_name: str, ts: str) -> str:
    url_path = f"/{entry_point}/{stream_name}"
    return hashlib.md5((auth_key + url_path + ts).encode(), usedforsecurity=False).hexdigest()


def signed_push_query(auth_key: str, entry_point: str, stream_name: str, expires: int) -> str:
    ts = str(expires)
    return f"ts={ts}&sign={push_signature(auth_key, entry_point, stream_name, ts)}"


def check_push_signature(
    auth_key: str,
    entry_point: str,
    stream_name: str,
    query: dict[str, str],
    now: float | None = None,
) -> None:
    ts = query.get("ts", "")
    sign = query.get("sign", "")
    if not ts or not sign:
        raise RefusedError(UNAUTHORIZED, "this entry point needs a signed push URL (ts, sign)")
    if not ts.isdigit() or len(ts) > 12:
        raise RefusedError(UNAUTHORIZED, "bad ts in the push URL")
    expected = push_signature(auth_key, entry_point, stream_name, ts)
    if not hmac.compare_digest(expected.encode(), sign.lower().encode()):
        raise RefusedError(UNAUTHORIZED, "wrong push signature")
    if int(ts) < (time.time() if now is None else now):
        raise RefusedError(UNAUTHORIZED, "the push URL has expired")
