"""Delivery of the callback outbox (catalog/outbox.py): a worker on every node sends the
notices to their project's (or entry point's) callback URL, at least once, in order per
stream, and never slows ingest or the API.

- Its own threads (`workers` at a time, 8 by default) and its own loop task: a receiver
  that hangs holds a delivery thread for at most `timeout` (10 s) per try, nothing else.
  Enqueueing is one insert in the caller's transaction; the worker only reads the outbox.
- It claims due stream queues (`claim_notices`, leased), and for each sends the head, then
  the next, ... (`notice_delivered` hands over the next one under the same lease) until the
  queue is empty, a try fails, or it sent `share` notices (then the queue goes back, due:
  streams take turns).
- A try: POST the signed body with a fresh `notifyMs` (the noticeId is the one enqueued).
  HTTP 2xx is done; anything else (another status, a timeout, a refused connection) is a
  failure: the queue is due again after an exponential backoff with jitter (2 s, 4 s, ...
  up to `max_backoff`, each between half and all of it), and the notice is given up (a dead
  notice: `liverec callbacks failed`, the failed-callbacks API) once it failed and is
  older than `keep_for` (24 h). A notice whose configuration was removed or switched off
  is given up at its turn.
- Crashes: a killed node's leases run out (`lease` seconds, three tries' worth) and any
  node's worker claims those queues; at its own start a node gives back the leases it held
  (`recover`), so its restart resends at once what it was sending."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from liverec.catalog import CallbackSettings, ClaimedNotice
from liverec.events.http import HttpAnswer, post
from liverec.events.notices import EventType, event_name
from liverec.events.signing import CONTENT_TYPE, notice_body, signatures

log = logging.getLogger(__name__)

Post = Callable[[str, bytes, Mapping[str, str], float], HttpAnswer]


class OutboxCatalog(Protocol):
    """What delivery needs of the catalog."""

    def claim_notices(
        self, node_id: str, limit: int, lease_seconds: float
    ) -> list[ClaimedNotice]: ...

    def notice_delivered(
        self, claim: ClaimedNotice, lease_seconds: float
    ) -> ClaimedNotice | None: ...

    def notice_failed(
        self,
        claim: ClaimedNotice,
        error: str,
        *,
        retry_in: float,
        keep_for: float,
        lease_seconds: float,
    ) -> tuple[bool, ClaimedNotice | None]: ...

    def release_notice_claim(self, claim: ClaimedNotice) -> None: ...

    def release_notice_leases(self, node_id: str) -> int: ...

    def callback_settings(
        self, app_id: str, entry_point: str | None = None, *, inherit: bool = True
    ) -> CallbackSettings | None: ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    timeout: float = 10.0  # seconds a try may take, all of it
    keep_for: float = 24 * 3600.0  # seconds after which a failed notice is given up
    first_backoff: float = 2.0
    max_backoff: float = 300.0

    @property
    def lease(self) -> float:
        """How long a claim lasts without news: three tries, at least 30 s."""
        return max(30.0, 3 * self.timeout)

    def backoff(self, tries: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds before the next try after `tries` failed ones: exponential, capped,
        with equal jitter (half fixed, half random) so that streams failing together do
        not retry together."""
        ceiling = min(self.max_backoff, self.first_backoff * 2.0 ** min(max(tries, 1) - 1, 30))
        return ceiling / 2 + rand() * ceiling / 2


def describe(answer: HttpAnswer) -> str:
    return f"HTTP {answer.status} {answer.reason}".strip()


def _post_signed(
    url: str, secret: str, body: bytes, timeout: float, poster: Post
) -> tuple[HttpAnswer | None, str | None]:
    """POST a signed body: (the answer, None), or (None, what went wrong: no secret, no
    URL query in it)."""
    headers = {"Content-Type": CONTENT_TYPE, **signatures(body, secret)}
    try:
        return poster(url, body, headers, timeout), None
    except TimeoutError:
        return None, f"no answer within {timeout:g} s"
    except (OSError, ValueError) as exc:
        return None, f"{type(exc).__name__}: {exc}"[:200]
    except Exception as exc:  # an answer that is not HTTP, ...
        return None, f"bad answer: {type(exc).__name__}"


def send_notice(
    claim: ClaimedNotice, settings: CallbackSettings, timeout: float, poster: Post = post
) -> str | None:
    """One try: None when the receiver took it (2xx), else what went wrong."""
    body = notice_body(claim.notice_id, claim.event_type, claim.payload, _now_ms())
    answer, error = _post_signed(settings.url, settings.secret, body, timeout, poster)
    if answer is None:
        return error
    return None if answer.ok else describe(answer)


def send_test(
    settings: CallbackSettings,
    entry_point: str,
    stream_name: str,
    timeout: float = 10.0,
    poster: Post = post,
) -> tuple[HttpAnswer | None, str | None]:
    """Send a signed test event (1000 callback_test, liverec extension) now, not through
    the outbox: (the receiver's answer, None) or (None, why there is none)."""
    payload = {
        "eventName": event_name(EventType.CALLBACK_TEST),
        "entryPoint": entry_point,
        "streamName": stream_name,
    }
    body = notice_body(
        uuid.uuid4().hex,
        EventType.CALLBACK_TEST,
        json.dumps(payload, ensure_ascii=False),
        _now_ms(),
    )
    return _post_signed(settings.url, settings.secret, body, timeout, poster)


def _now_ms() -> int:
    return int(time.time() * 1000)


class CallbackDelivery:
    """This node's delivery worker. `run()` needs a running event loop; the sending is
    done in its own threads."""

    def __init__(
        self,
        catalog: OutboxCatalog,
        *,
        node_id: str,
        policy: RetryPolicy | None = None,
        workers: int = 8,
        poll: float = 0.5,
        share: int = 100,
        poster: Post = post,
    ) -> None:
        self.catalog = catalog
        self.node_id = node_id
        self.policy = policy or RetryPolicy()
        self.workers = workers
        self.poll = poll
        self.share = share
        self.poster = poster
        self._stopping = threading.Event()
        self._pool: ThreadPoolExecutor | None = None

    def recover(self) -> int:
        """At start: give back the queues a previous run of this node held."""
        return self.catalog.release_notice_leases(self.node_id)

    async def run(self) -> None:
        """Claim and send until cancelled (or `stop`)."""
        loop = asyncio.get_running_loop()
        # One thread more than the senders: claiming never waits behind a hung receiver.
        pool = self._pool = ThreadPoolExecutor(self.workers + 1, thread_name_prefix="callbacks")
        running: set[asyncio.Future[None]] = set()
        try:
            while not self._stopping.is_set():
                free = self.workers - len(running)
                claims: list[ClaimedNotice] = []
                if free > 0:
                    try:
                        claims = await loop.run_in_executor(
                            pool, self.catalog.claim_notices, self.node_id, free, self.policy.lease
                        )
                    except Exception:
                        log.exception("claiming callbacks failed")
                for claim in claims:
                    task = loop.run_in_executor(pool, self.deliver, claim)
                    running.add(task)
                    task.add_done_callback(running.discard)
                if claims and len(claims) == free:
                    continue  # every free thread got a queue: more may be due
                if running:  # until a thread is free again, or the next poll
                    await asyncio.wait(
                        set(running), timeout=self.poll, return_when=asyncio.FIRST_COMPLETED
                    )
                else:
                    await asyncio.sleep(self.poll)
        finally:
            self._stopping.set()
            pool.shutdown(wait=False, cancel_futures=True)

    def stop(self) -> None:
        """Stop claiming; the chains being sent end after their current try."""
        self._stopping.set()

    def deliver(self, claim: ClaimedNotice) -> None:
        """Send a claimed queue's notices in order (in a delivery thread)."""
        try:
            self._deliver(claim)
        except Exception:
            # The catalog failed: the lease runs out and the queue is claimed again.
            log.exception("delivering callbacks of %s/%s failed", claim.app_id, claim.stream_name)

    def _deliver(self, first: ClaimedNotice) -> None:
        policy = self.policy
        configs: dict[tuple[str, str], CallbackSettings | None] = {}
        claim: ClaimedNotice | None = first
        sent = 0
        while claim is not None:
            if self._stopping.is_set() or sent >= self.share:
                self.catalog.release_notice_claim(claim)
                return
            key = (claim.app_id, claim.entry_point)
            if key not in configs:
                configs[key] = self.catalog.callback_settings(*key)
            settings = configs[key]
            if settings is None or not settings.enabled:
                error: str | None = "callbacks are off for this entry point"
                keep_for = 0.0
            else:
                error = send_notice(claim, settings, policy.timeout, self.poster)
                keep_for = policy.keep_for
            sent += 1
            if error is None:
                claim = self.catalog.notice_delivered(claim, policy.lease)
                continue
            tries = claim.attempts + 1
            given_up, claim_next = self.catalog.notice_failed(
                claim,
                error,
                retry_in=policy.backoff(tries),
                keep_for=keep_for,
                lease_seconds=policy.lease,
            )
            where = _where(settings)
            if given_up:
                log.warning(
                    "callback %s (event %d, %s/%s) to %s given up after %d tries: %s",
                    claim.notice_id,
                    claim.event_type,
                    claim.entry_point,
                    claim.stream_name,
                    where,
                    tries,
                    error,
                )
            else:
                log.info(
                    "callback %s (event %d) to %s failed (try %d): %s",
                    claim.notice_id,
                    claim.event_type,
                    where,
                    tries,
                    error,
                )
            claim = claim_next


def _where(settings: CallbackSettings | None) -> str:
    """The receiver as logs name it: scheme, host and port (no path or query, which may
    carry a token)."""
    if settings is None:
        return "(no callback URL)"
    parts = urlsplit(settings.url)
    host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")
