"""Whether this node can do its work now (`GET /readyz`, api/health.py): the catalog
answers, the store answers, the disk has the minimum free space.

Each check is a blocking call that raises when its dependency is not usable. `ready()`
runs them at once, each in a thread of its own, and waits `timeout` seconds at most in
all: a dependency that hangs (a PostgreSQL server that takes the connection and never
answers, an S3 endpoint that black-holes) is reported as timed out, never waited out. A
check still hanging from an earlier call is not started again (reported as still hanging),
so a load balancer polling a dead dependency cannot pile up threads. Answers are kept
`keep` seconds, so a storm of probes costs one round of checks.

Other parts add their own conditions with `add(name, check)`: the storage guard's "disk
full, publishes refused" state, for one."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from liverec.storage import BlobStore

__all__ = ["PROBE_KEY", "Readiness", "ReadyReport", "disk_check", "storage_check"]

READY_TIMEOUT = 2.0  # seconds /readyz waits for its checks in all
PROBE_KEY = "liverec-readyz-probe"  # a key looked up (never written) to reach the store

Check = Callable[[], object]  # raises when not usable; what it returns is ignored


@dataclass(frozen=True)
class ReadyReport:
    """Each dependency's state: "ok", or what is wrong with it."""

    checks: dict[str, str] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return all(state == "ok" for state in self.checks.values())

    @property
    def failed(self) -> list[str]:
        return [name for name, state in self.checks.items() if state != "ok"]


class Readiness:
    def __init__(self, timeout: float = READY_TIMEOUT, keep: float = 1.0) -> None:
        self.timeout = timeout
        self.keep = keep
        self._checks: dict[str, Check] = {}
        self._running: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self._last: tuple[float, ReadyReport] | None = None

    def add(self, name: str, check: Check) -> None:
        """Report `name` not ready whenever `check()` raises (its message says why)."""
        self._checks[name] = check

    def ready(self) -> ReadyReport:
        """Run the checks (or answer the last result, if younger than `keep`). Blocks at
        most `timeout` seconds."""
        with self._lock:
            if self._last is not None and time.monotonic() - self._last[0] < self.keep:
                return self._last[1]
        results: dict[str, str] = {}
        started: dict[str, threading.Thread] = {}
        with self._lock:
            for name, check in self._checks.items():
                previous = self._running.get(name)
                if previous is not None and previous.is_alive():
                    results[name] = "timed out (an earlier check is still waiting)"
                    continue
                thread = threading.Thread(
                    target=self._run, args=(name, check, results), daemon=True
                )
                self._running[name] = started[name] = thread
                thread.start()
        deadline = time.monotonic() + self.timeout
        for name, thread in started.items():
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                results.setdefault(name, f"timed out after {self.timeout:g} s")
        report = ReadyReport({name: results.get(name, "ok") for name in self._checks})
        with self._lock:
            self._last = (time.monotonic(), report)
        return report

    @staticmethod
    def _run(name: str, check: Check, results: dict[str, str]) -> None:
        try:
            check()
        except Exception as exc:
            results[name] = str(exc) or type(exc).__name__
        else:
            results.setdefault(name, "ok")


def storage_check(store: BlobStore, root: Path | None) -> Check:
    """The store answers a lookup (S3: a HEAD); on local disk, its root is a directory
    liverec may write in."""

    def check() -> None:
        if root is not None and not (root.is_dir() and os.access(root, os.W_OK | os.X_OK)):
            raise OSError(f"storage root {root} is missing or not writable")
        store.exists(PROBE_KEY)

    return check


def disk_check(root: Path, min_free: int) -> Check:
    """The filesystem of `root` has at least `min_free` bytes free for liverec's user."""

    def check() -> None:
        st = os.statvfs(root)
        free = st.f_bavail * st.f_frsize
        if free < min_free:
            raise OSError(
                f"{free} bytes free on the storage filesystem, under the minimum "
                f"storage_min_free={min_free}"
            )

    return check
