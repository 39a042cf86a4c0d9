"""The publish-authentication webhook (FLS's origin "streamauth" webhook): when a project
has it enabled, each publish goes ahead only if the project's URL answers 200.

What liverec sends: `POST {url}`, `Content-Type: application/json;charset=utf-8`, signed
like callbacks (`Agora-Signature`, `Agora-Signature-V2`: hex HMAC-SHA1 and HMAC-SHA256 of
the raw body keyed with the webhook's secret; unsigned when it has none), the body

    {"host", "entryPoint", "streamName", "cdnIp", "clientIp", "token", "requestId"}

`host` the push domain (tcUrl host), `cdnIp` this node's address, `clientIp` the
publisher's, `token` the push URL query's `token` ("" when none), `requestId` unique per
call. 200 allows; any other status (401 is FLS's "deny") refuses. No answer within
`timeout` (3 s), or no connection: refused, unless `fail_open`.

Answers (200 or a refusal, not a timeout) are kept `cache_seconds` for the same project,
host, entry point, stream, client address and token, so a publisher that retries at once
costs the receiver one call. The check blocks: admission calls it in a worker thread."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from liverec.catalog import WebhookSettings
from liverec.events.http import HttpAnswer, post
from liverec.events.signing import CONTENT_TYPE, signatures

log = logging.getLogger(__name__)

Post = Callable[[str, bytes, Mapping[str, str], float], HttpAnswer]
MAX_CACHED = 10_000


class WebhookCatalog(Protocol):
    def publish_webhook(self, app_id: str) -> WebhookSettings: ...


class PublishAttempt(Protocol):
    """What a publisher asked for (rtmp.session.PublishRequest fits)."""

    @property
    def host(self) -> str: ...
    @property
    def query(self) -> dict[str, str]: ...
    @property
    def peer(self) -> str: ...


@dataclass(frozen=True, slots=True)
class _Verdict:
    refusal: str | None  # None: allowed
    until: float  # monotonic


def peer_address(peer: str) -> str:
    """`1.2.3.4:5678` or `[::1]:5678` -> the address alone."""
    host, sep, port = peer.rpartition(":")
    if not sep or not port.isdigit():
        return peer
    return host.strip("[]")


class PublishWebhook:
    """Asks the project's webhook whether a publish may go ahead (admission's gate)."""

    def __init__(
        self,
        catalog: WebhookCatalog,
        *,
        timeout: float = 3.0,
        fail_open: bool = False,
        cache_seconds: float = 5.0,
        node_ip: str = "",
        poster: Post = post,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.catalog = catalog
        self.timeout = timeout
        self.fail_open = fail_open
        self.cache_seconds = cache_seconds
        self.node_ip = node_ip
        self.poster = poster
        self.clock = clock
        self._cache: dict[tuple[str, ...], _Verdict] = {}
        self._lock = threading.Lock()

    def check(
        self,
        app_id: str,
        attempt: PublishAttempt,
        entry_point: str,
        stream_name: str,
        hook: WebhookSettings | None = None,
    ) -> str | None:
        """None if the publish may go ahead (or the project has no webhook on), else why
        it may not. `hook`: the project's settings, when the caller read them already
        (admission reads them with the rest: catalog.publish_settings)."""
        if hook is None:
            hook = self.catalog.publish_webhook(app_id)
        if not hook.enabled or not hook.url:
            return None
        client_ip = peer_address(attempt.peer)
        token = attempt.query.get("token", "")
        key = (
            app_id,
            hook.url,
            hook.secret,
            attempt.host,
            entry_point,
            stream_name,
            client_ip,
            token,
        )
        now = self.clock()
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and cached.until > now:
            return cached.refusal
        body = json.dumps(
            {
                "host": attempt.host,
                "entryPoint": entry_point,
                "streamName": stream_name,
                "cdnIp": self.node_ip,
                "clientIp": client_ip,
                "token": token,
                "requestId": uuid.uuid4().hex,
            },
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode("utf-8")
        headers = {"Content-Type": CONTENT_TYPE}
        if hook.secret:
            headers.update(signatures(body, hook.secret))
        where = f"{entry_point}/{stream_name}"
        try:
            answer = self.poster(hook.url, body, headers, self.timeout)
        except TimeoutError:
            return self._unanswered(where, f"did not answer within {self.timeout:g} s")
        except (OSError, ValueError) as exc:
            return self._unanswered(where, f"could not be reached ({type(exc).__name__})")
        except Exception as exc:  # an answer that is not HTTP
            return self._unanswered(where, f"answered badly ({type(exc).__name__})")
        if answer.status == 200:
            refusal = None
        else:
            refusal = f"the publish webhook refused the publish (HTTP {answer.status})"
            log.info("publish %s refused by the webhook: HTTP %d", where, answer.status)
        self._remember(key, _Verdict(refusal, now + self.cache_seconds))
        return refusal

    def _unanswered(self, where: str, what: str) -> str | None:
        if self.fail_open:
            log.warning("publish webhook %s for %s: allowed (fail-open)", what, where)
            return None
        log.warning("publish webhook %s for %s: refused", what, where)
        return f"the publish webhook {what}"

    def _remember(self, key: tuple[str, ...], verdict: _Verdict) -> None:
        if self.cache_seconds <= 0:
            return
        with self._lock:
            if len(self._cache) >= MAX_CACHED:
                now = self.clock()
                self._cache = {k: v for k, v in self._cache.items() if v.until > now}
                if len(self._cache) >= MAX_CACHED:
                    self._cache.clear()
            self._cache[key] = verdict
