"""Running out of file descriptors: the listeners pause and resume, and say so once.

When accept() fails for want of a descriptor (EMFILE, ENFILE, ENOBUFS, ENOMEM), asyncio's
selector loop (3.11) logs a traceback and schedules a retry for each of up to `backlog`
further tries in the same round, so an exhausted node writes thousands of tracebacks a
second and its retries multiply. `GuardedLoop` stops the round at the first failure, takes
the listener off the selector, retries it once after ACCEPT_RETRY_DELAY, and logs one line
per episode (per listening socket) when accepting works again: how long it was paused and
how many tries failed. Both listeners of `liverec serve` (RTMP and HTTP) accept this way.

`raise_nofile_limit()` lifts the soft RLIMIT_NOFILE to the hard one at start."""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

ACCEPT_RETRY_DELAY = 1.0
# Still out of descriptors after this long: a line saying so (then again after as long).
STILL_PAUSED_EVERY = 60.0
# An episode ends once accepting has worked this long without a failure (a backlog of
# connections, each taking a descriptor, often runs out again at once: the same episode).
QUIET_TO_END = 3.0
OUT_OF_RESOURCES = frozenset((errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM))


def raise_nofile_limit() -> tuple[int, int]:
    """Raise the soft limit on open files to the hard one; return (soft, hard) now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit from %d to %d: %s", soft, hard, exc)
    return soft, hard


@dataclass
class _Episode:
    started: float
    failed: int = 0
    reported: float = 0.0  # when the last "still paused" line was logged
    last_failed: float = 0.0
    ending: bool = False  # a check that it ended is scheduled


class AcceptPauses:
    """Episodes of accept() failing for want of resources, per listening socket."""

    def __init__(self, call_later: Callable[[float, Callable[[], None]], object]) -> None:
        self._episodes: dict[int, _Episode] = {}
        self._call_later = call_later
        self.episodes = 0  # ended, since start

    def failed(self, sock: socket.socket, exc: OSError) -> None:
        now = time.monotonic()
        episode = self._episodes.get(sock.fileno())
        if episode is None:
            episode = self._episodes[sock.fileno()] = _Episode(now, reported=now)
        episode.failed += 1
        episode.last_failed = now
        if now - episode.reported >= STILL_PAUSED_EVERY:
            episode.reported = now
            log.warning(
                "accept on %s still paused after %.0f s: %s (%d tries failed so far)",
                _where(sock),
                now - episode.started,
                exc.strerror,
                episode.failed,
            )

    def accepted(self, sock: socket.socket) -> None:
        episode = self._episodes.get(sock.fileno())
        if episode is None or episode.ending:
            return
        episode.ending = True
        self._call_later(QUIET_TO_END, lambda: self._maybe_ended(sock, episode))

    def _maybe_ended(self, sock: socket.socket, episode: _Episode) -> None:
        episode.ending = False
        if self._episodes.get(sock.fileno()) is not episode:
            return
        if time.monotonic() - episode.last_failed < QUIET_TO_END:
            episode.ending = True  # it failed again meanwhile: look again later
            self._call_later(QUIET_TO_END, lambda: self._maybe_ended(sock, episode))
            return
        del self._episodes[sock.fileno()]
        self.episodes += 1
        log.warning(
            "accept on %s was paused for %.1f s: out of file descriptors or memory "
            "(%d tries failed); accepting again",
            _where(sock),
            episode.last_failed - episode.started + ACCEPT_RETRY_DELAY,
            episode.failed,
        )


def _where(sock: socket.socket) -> str:
    try:
        name = sock.getsockname()
    except OSError:
        return "?"
    return f"{name[0]}:{name[1]}" if isinstance(name, tuple) else str(name)


class GuardedLoop(asyncio.SelectorEventLoop):
    """The selector event loop, its accept loop mended (see the module's docstring).

    Overrides a private method of asyncio (same signature 3.11-3.13): the rest of the
    accepting (`_accept_connection2`, `_start_serving`) is asyncio's own."""

    def __init__(self) -> None:
        super().__init__()
        self.accept_pauses = AcceptPauses(self.call_later)

    def _accept_connection(
        self,
        protocol_factory: Any,
        sock: socket.socket,
        sslcontext: Any = None,
        server: Any = None,
        backlog: int = 100,
        *rest: Any,
    ) -> None:
        for _ in range(backlog):
            try:
                conn, addr = sock.accept()
                conn.setblocking(False)
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                if exc.errno not in OUT_OF_RESOURCES:
                    raise  # the loop logs and ignores it, as asyncio does
                self.accept_pauses.failed(sock, exc)
                self._remove_reader(sock.fileno())  # type: ignore[attr-defined]
                self.call_later(
                    ACCEPT_RETRY_DELAY,
                    self._start_serving,  # type: ignore[attr-defined]
                    protocol_factory,
                    sock,
                    sslcontext,
                    server,
                    backlog,
                    *rest,
                )
                return
            self.accept_pauses.accepted(sock)
            self.create_task(
                self._accept_connection2(  # type: ignore[attr-defined]
                    protocol_factory, conn, {"peername": addr}, sslcontext, server, *rest
                )
            )
