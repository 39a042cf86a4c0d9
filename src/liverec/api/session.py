"""The console's session: a signed, expiring cookie, and a CSRF token bound to it.

Choice: a stateless signed token, not a server-side store. The cookie's value is
`{payload}.{mac}`, payload the urlsafe-base64 of `{customer_id}\\n{expires}\\n{nonce}`, mac
HMAC-SHA256 under a key derived from the file-URL key (the same on every node, so a
session works behind a load balancer and survives a restart). The CSRF token is
HMAC(key, "csrf\\n" + cookie value): the page gets it from the sign-in answer or from
`GET /console/session` (readable only by a same-origin page: no CORS answer allows
credentials) and sends it as `X-CSRF-Token` on every change; a cross-site form or script
can neither read it nor, the cookie being SameSite=Strict, send the cookie at all.

Signing out forgets the nonce on this node (kept until the session would have expired);
on other nodes the cookie is gone from the browser but a copy of it stays valid until it
expires: LIFETIME bounds that. A revoked credential loses its projects at once, because
every project route asks the catalog for the grant.

Pure: no request, no clock, no catalog; api/auth.py and console/routes.py feed it."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass

COOKIE = "liverec_console"
CSRF_HEADER = "X-CSRF-Token"
CHALLENGE = 'Session realm="liverec console"'  # the WWW-Authenticate of a refused session
LIFETIME = 12 * 3600  # seconds a session lasts from sign-in
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_MAX_COOKIE = 1024


class SessionRefused(Exception):
    """A session cookie was sent but does not authorize this request: `status` (401 or
    403) and a short machine `reason`; the text says what is wrong."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Session:
    customer_id: str
    expires: int  # unix seconds
    nonce: str
    token: str  # the cookie's value


def session_key(url_key: bytes) -> bytes:
    """The sessions' own key, derived from the file-URL key: a signed file link can never
    pass for a session, nor a session for a link."""
    return hmac.digest(url_key, b"liverec console session v1", hashlib.sha256)


def _mac(key: bytes, text: str) -> str:
    digest = hmac.digest(key, text.encode("utf-8"), hashlib.sha256)
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def issue(key: bytes, customer_id: str, now: float, lifetime: int = LIFETIME) -> Session:
    """A new session of `customer_id` from `now` (unix seconds)."""
    expires = int(now) + lifetime
    nonce = secrets.token_urlsafe(16)
    raw = f"{customer_id}\n{expires}\n{nonce}".encode()
    payload = base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
    return Session(customer_id, expires, nonce, f"{payload}.{_mac(key, payload)}")


def csrf_token(key: bytes, token: str) -> str:
    """The CSRF token of the session whose cookie value is `token`."""
    return _mac(key, "csrf\n" + token)


class _SignedOut:
    """Nonces signed out on this node, each kept until its session would have expired."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._until: dict[str, int] = {}

    def add(self, nonce: str, expires: int, now: float) -> None:
        with self._lock:
            self._until = {n: t for n, t in self._until.items() if t > now}
            self._until[nonce] = expires

    def __contains__(self, nonce: object) -> bool:
        with self._lock:
            return nonce in self._until


SIGNED_OUT = _SignedOut()


def open_session(key: bytes, token: str, now: float) -> Session | None:
    """The session of cookie value `token`, or None if it is forged, malformed, expired or
    signed out."""
    if not token or len(token) > _MAX_COOKIE:
        return None
    payload, sep, mac = token.partition(".")
    expected = _mac(key, payload).encode()
    if not sep or not hmac.compare_digest(mac.encode("ascii", "replace"), expected):
        return None
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    parts = raw.split("\n")
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    customer_id, expires, nonce = parts[0], int(parts[1]), parts[2]
    if expires <= now or nonce in SIGNED_OUT:
        return None
    return Session(customer_id, expires, nonce, token)


def same_origin(fetch_site: str | None) -> bool:
    """Whether a request's `Sec-Fetch-Site` allows it to use the session: absent (not a
    browser, or an old one), `same-origin`, or `none` (typed in, a bookmark)."""
    return fetch_site is None or fetch_site.lower() in ("same-origin", "none")


def sign_out(session: Session, now: float) -> None:
    SIGNED_OUT.add(session.nonce, session.expires, now)


def authorize(
    key: bytes,
    cookie: str | None,
    method: str,
    csrf: str | None,
    now: float,
    fetch_site: str | None = None,
) -> str | None:
    """The customer ID a request acts as through the console's session: None when it
    carries no session cookie (the caller then asks for credentials as before). A cookie
    that is not a live session: SessionRefused 401. A change (any method but GET, HEAD,
    OPTIONS) without the session's CSRF token in CSRF_HEADER: SessionRefused 403. A
    browser's request from another origin (its `Sec-Fetch-Site`, `fetch_site`, neither
    same-origin nor none): SessionRefused 403, even from an origin that CORS lets read
    answers with credentials (a sibling site of the same registrable domain)."""
    if cookie is None:
        return None
    if not same_origin(fetch_site):
        raise SessionRefused(
            403, "cross_origin", "the console session works only from the console's own page"
        )
    session = open_session(key, cookie, now)
    if session is None:
        raise SessionRefused(401, "session_expired", "the console session has expired: sign in")
    if method.upper() not in _SAFE_METHODS:
        expected = csrf_token(key, session.token)
        if not csrf or not hmac.compare_digest(csrf.encode("utf-8", "replace"), expected.encode()):
            raise SessionRefused(
                403, "csrf_refused", f"a change through the console session needs its {CSRF_HEADER}"
            )
    return session.customer_id
