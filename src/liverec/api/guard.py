"""Failed credentials and signatures: rate limits with a growing lockout, one log line per
customer ID and address per interval, and the HMAC replay cache.

- Per address: `ip_failures` failures within `window` seconds lock the address out for
  `lockout` seconds, doubling with each further lockout up to `lockout_max`. While locked
  out, the address's requests are answered 429 with Retry-After before any check (no
  scrypt either).
- Per customer ID: `customer_failures` failures (from any address) lock the customer ID
  out the same way, but only for the addresses that failed on it: an address with no
  failure for that customer ID is never refused by it, so the right secret from another
  address keeps working while someone guesses.
- Signed file and play links: a wrong signature counts against the address (own limiter,
  same thresholds); an expired link does not (players hold old links honestly).
- HMAC replay: a signature already accepted is refused until its Date leaves the window.
  The cache is per node (a bounded map in memory): sharing it through the catalog would put
  a database write on every signed request. With several nodes behind one address, a
  captured request can be replayed once per node within the window.

Everything is bounded: each map keeps at most `max_keys` entries, oldest dropped first.
Nothing here logs a secret; user strings are cut to 64 characters and repr()'d."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from liverec.api.errors import ApiError

log = logging.getLogger(__name__)

MAX_LOGGED = 64
Refusal = Callable[[str], None]


def clip(text: str, limit: int = MAX_LOGGED) -> str:
    """`text` for a log line: at most `limit` characters, repr()'d (no control chars)."""
    return repr(text[:limit] + ("..." if len(text) > limit else ""))


@dataclass(frozen=True)
class GuardSettings:
    ip_failures: int = 20  # failures per window from one address before a lockout
    customer_failures: int = 50  # failures per window on one customer ID
    window: float = 60.0  # seconds failures are counted over
    lockout: float = 1.0  # the first lockout; each further one doubles
    lockout_max: float = 300.0
    log_interval: float = 60.0  # one failure line per customer ID and address per interval
    replay_entries: int = 100_000  # the HMAC replay cache's size; 0: no replay check
    max_keys: int = 100_000


@dataclass
class _Record:
    fails: list[float] = field(default_factory=list)
    strikes: int = 0
    locked_until: float = 0.0
    last: float = 0.0


class Limiter:
    """Failures per key; `limit` of them within `window` start a lockout of `lockout`
    seconds, doubling per lockout (reset after a quiet `lockout_max` + `window`)."""

    def __init__(self, limit: int, settings: GuardSettings, clock: Callable[[], float]) -> None:
        self.limit = max(1, limit)
        self.s = settings
        self.clock = clock
        self.records: OrderedDict[str, _Record] = OrderedDict()

    def locked(self, key: str) -> float:
        """Seconds `key` is still locked out for; 0: not locked."""
        record = self.records.get(key)
        if record is None:
            return 0.0
        return max(0.0, record.locked_until - self.clock())

    def failed(self, key: str) -> float:
        """Count a failure; the lockout it starts, in seconds (0: none)."""
        now = self.clock()
        record = self.records.pop(key, None) or _Record()
        self.records[key] = record  # most recent last
        while len(self.records) > self.s.max_keys:
            self.records.popitem(last=False)
        if record.last and now - record.last > self.s.lockout_max + self.s.window:
            record.strikes = 0
        record.last = now
        record.fails = [t for t in record.fails if now - t < self.s.window]
        record.fails.append(now)
        if len(record.fails) < self.limit:
            return 0.0
        record.fails.clear()
        record.strikes += 1
        lock = min(self.s.lockout_max, math.ldexp(self.s.lockout, min(record.strikes - 1, 30)))
        record.locked_until = now + lock
        return lock


class ReplayCache:
    """Signatures seen, each until the time its request stops being acceptable."""

    def __init__(self, entries: int, clock: Callable[[], float]) -> None:
        self.entries = entries
        self.clock = clock
        self.seen: OrderedDict[bytes, float] = OrderedDict()

    def first_use(self, signature: bytes, valid_until: float) -> bool:
        """False if `signature` was seen and is still valid; else remember it, True."""
        if self.entries <= 0:
            return True
        now = self.clock()
        until = self.seen.get(signature)
        if until is not None and until >= now:
            return False
        while self.seen:  # drop the expired at the front (roughly in time order)
            first, first_until = next(iter(self.seen.items()))
            if first_until >= now:
                break
            del self.seen[first]
        self.seen[signature] = valid_until
        while len(self.seen) > self.entries:
            self.seen.popitem(last=False)
        return True


def too_many(seconds: float, what: str) -> ApiError:
    retry = max(1, math.ceil(seconds))
    return ApiError(
        429,
        "too_many_requests",
        f"too many failed {what}; retry after {retry} s",
        {"Retry-After": str(retry)},
    )


class Guard:
    """The API's limits on failures (one per node; api/auth.py and api/signing.py call it).
    `on_refusal(reason)` counts refusals (metrics.Metrics.refused)."""

    def __init__(
        self,
        settings: GuardSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        on_refusal: Refusal | None = None,
    ) -> None:
        self.s = settings or GuardSettings()
        self.clock = clock
        self.wall = wall
        self.on_refusal = on_refusal
        self.ips = Limiter(self.s.ip_failures, self.s, clock)
        self.customers = Limiter(self.s.customer_failures, self.s, clock)
        self.links = Limiter(self.s.ip_failures, self.s, clock)
        self.pushes = Limiter(self.s.ip_failures, self.s, clock)
        self.push_lock = threading.Lock()
        # customer ID -> the addresses that failed on it lately (last failure time)
        self.failed_from: OrderedDict[str, OrderedDict[str, float]] = OrderedDict()
        self.logged: OrderedDict[tuple[str, str], tuple[float, int]] = OrderedDict()
        self.replays = ReplayCache(self.s.replay_entries, wall)

    def refused(self, reason: str) -> None:
        if self.on_refusal is not None:
            self.on_refusal(reason)

    # -- API credentials --------------------------------------------------------------

    def _tainted(self, customer_id: str, ip: str) -> bool:
        addresses = self.failed_from.get(customer_id)
        if not addresses or ip not in addresses:
            return False
        return self.clock() - addresses[ip] < self.s.window + self.s.lockout_max

    def check_auth(self, ip: str, customer_id: str | None) -> None:
        """Raise the 429 if `ip`, or `customer_id` for this address, is locked out."""
        wait = self.ips.locked(ip)
        if not wait and customer_id is not None and self._tainted(customer_id, ip):
            wait = self.customers.locked(customer_id)
        if wait:
            self.refused("auth_locked")
            raise too_many(wait, "authentications")

    def auth_failed(self, ip: str, customer_id: str | None, why: str) -> None:
        """Count a refused credential (401) from `ip` claiming `customer_id`."""
        self.refused("auth_failed")
        cid = customer_id or ""
        self._log_failure(cid, ip, why)
        ip_lock = self.ips.failed(ip)
        if ip_lock:
            log.warning(
                "authentication: %s locked out for %g s after %d failures",
                clip(ip),
                ip_lock,
                self.ips.limit,
            )
        if customer_id is None:
            return
        addresses = self.failed_from.pop(customer_id, None) or OrderedDict()
        self.failed_from[customer_id] = addresses
        addresses.pop(ip, None)
        addresses[ip] = self.clock()
        while len(addresses) > 1024:
            addresses.popitem(last=False)
        while len(self.failed_from) > self.s.max_keys:
            self.failed_from.popitem(last=False)
        cid_lock = self.customers.failed(customer_id)
        if cid_lock:
            log.warning(
                "authentication: customer ID %s locked out for %g s after %d failures, "
                "for the addresses that failed on it",
                clip(customer_id),
                cid_lock,
                self.customers.limit,
            )

    def auth_succeeded(self, ip: str, customer_id: str) -> None:
        """The right secret from `ip`: it is no longer one that failed on this ID."""
        addresses = self.failed_from.get(customer_id)
        if addresses:
            addresses.pop(ip, None)

    def _log_failure(self, customer_id: str, ip: str, why: str) -> None:
        key = (customer_id[:MAX_LOGGED], ip)
        now = self.clock()
        last = self.logged.get(key)
        if last is not None and now - last[0] < self.s.log_interval:
            self.logged[key] = (last[0], last[1] + 1)
            return
        more = last[1] if last is not None else 0
        self.logged.pop(key, None)
        self.logged[key] = (now, 0)
        while len(self.logged) > self.s.max_keys:
            self.logged.popitem(last=False)
        log.warning(
            "authentication failed: customer ID %s from %s: %s%s",
            clip(customer_id),
            clip(ip),
            clip(why, 120),
            f" ({more} more failures since the last line)" if more else "",
        )

    # -- HMAC replay ------------------------------------------------------------------

    def first_use(self, signature: bytes, valid_until: float) -> bool:
        """False (and counted) for an HMAC signature already accepted within its window."""
        if self.replays.first_use(signature, valid_until):
            return True
        self.refused("hmac_replay")
        return False

    # -- signed links -----------------------------------------------------------------

    def check_link(self, ip: str) -> None:
        wait = self.links.locked(ip)
        if wait:
            self.refused("link_locked")
            raise too_many(wait, "signed links")

    def link_failed(self, ip: str) -> None:
        self.refused("link_bad_signature")
        lock = self.links.failed(ip)
        if lock:
            log.warning(
                "signed links: %s locked out for %g s after %d bad signatures",
                clip(ip),
                lock,
                self.links.limit,
            )

    # -- push signatures (rtmp/) ------------------------------------------------------

    def push_allowed(self, ip: str) -> float:
        """Seconds `ip` is locked out of push signatures for (0: allowed). From a thread
        (admission runs off the loop): its own limiter, under a lock."""
        with self.push_lock:
            wait = self.pushes.locked(ip)
        if wait:
            self.refused("push_locked")
        return wait

    def push_failed(self, ip: str) -> None:
        self.refused("push_bad_signature")
        with self.push_lock:
            lock = self.pushes.failed(ip)
        if lock:
            log.warning(
                "push signatures: %s locked out for %g s after %d bad signatures",
                clip(ip),
                lock,
                self.links.limit,
            )
