"""Segments written to disk while they grow, instead of held in memory.

A `Part` is one segment being cut: the muxer's frames are kept until CHUNK bytes wait,
then appended to a file of the process's own part directory with one writev (to the page
cache: cheap enough on the event loop). `finish()` writes the rest; a store's `put_part`
then makes the file the object: LocalStore fsyncs it and renames it into place (atomic, as
a put), others upload its bytes. So a stream holds at most CHUNK bytes of its open segment
in memory, and nothing of the segments waiting to be stored (1.5 MB each at 3 Mbit/s and
4 s: at 100 streams that was most of the RSS per stream).

A part the disk refuses (ENOSPC, EIO) falls back to memory, whole, and the store's put is
then retried as before. A part made without a directory lives in memory from the start.

Part directories: `{base}/{token}/`, one per process, with a `.lock` file the process
holds flock'ed for its life. kill -9 loses at most the open segment: its part file stays
behind, never listed (stores list no part directory), and the next process to open a
`PartDir` on the same base finds the lock free and deletes the directory. Processes that
share a base (ingest workers, nodes on one disk) never touch each other's live parts."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import itertools
import logging
import os
import secrets
import shutil
import threading
import time
from pathlib import Path
from typing import Protocol, runtime_checkable

from liverec.errors import StorageError

log = logging.getLogger(__name__)

CHUNK = 64 * 1024  # frames kept before a write: ~6 writes/s per stream at 3 Mbit/s
LOCK_NAME = ".lock"
ORPHAN_SECONDS = 60.0  # a part directory without a lock this old is a dead process's


class Part:
    """One segment's bytes (see the module docstring). Appended and finished on one
    thread; `read()` may be called from any; `release()` once nobody needs it."""

    def __init__(self, path: Path | None) -> None:
        self.path = path  # the file: its part name, then the object it was moved to
        self.size = 0
        self.stored = False  # moved to its object: release() leaves the file
        self._fd: int | None = None
        self._frames: list[bytes] = []  # not yet written
        self._pending = 0
        self._flushed = 0  # bytes in the file
        self._mem: bytearray | None = None if path is not None else bytearray()
        self._released = False
        self._lock = threading.Lock()  # the file and _frames against read() elsewhere

    @property
    def in_file(self) -> bool:
        """Its bytes are in a file (not held in memory)."""
        return self._mem is None and not self._released

    def append(self, data: bytes) -> None:
        self.size += len(data)
        if self._mem is not None:
            self._mem += data
            return
        self._frames.append(data)
        self._pending += len(data)
        if self._pending >= CHUNK:
            self._flush()

    def finish(self) -> None:
        """The segment is whole: write what waits (the store's put fsyncs it)."""
        if self._frames and self._mem is None:
            self._flush()

    def read(self) -> bytes:
        """Its bytes so far (whole frames). Once stored, from the object it was moved to;
        StorageError if it is gone."""
        with self._lock:
            if self._mem is not None:
                return bytes(self._mem)
            if self._fd is not None:
                head = os.pread(self._fd, self._flushed, 0) if self._flushed else b""
                return head + b"".join(self._frames)
            if not self._released and not self.stored:
                return b"".join(self._frames)
            path = self.path if self.stored else None
        if path is None:
            raise StorageError("the segment is no longer held")
        try:
            return path.read_bytes()
        except OSError as exc:
            raise StorageError(f"cannot read {path.name}: {exc}") from exc

    def move(self, target: Path, *, fsync: bool) -> bool:
        """Make the file `target` (fsync, then rename over it); False when it cannot be
        renamed there (in memory, released, or another file system): put its bytes."""
        with self._lock:
            if self._mem is not None or self._released or self.stored or self.path is None:
                return False
            if self._frames or self._fd is None:  # not finished, or empty
                self._write_locked()
                if self._mem is not None:
                    return False
            assert self._fd is not None
            if fsync:
                os.fsync(self._fd)
            try:
                os.replace(self.path, target)
            except OSError as exc:
                if exc.errno == errno.EXDEV:
                    return False
                raise
            self.path = target
            self.stored = True
            # Read from its object from now on: a segment held through a catalog outage
            # keeps no descriptor open.
            os.close(self._fd)
            self._fd = None
            return True

    def release(self) -> None:
        """Done with it: close the file, and delete it unless it became the object. (A
        part in memory keeps its bytes until it is dropped.)"""
        with self._lock:
            if self._released:
                return
            self._released = True
            self._frames = []
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            if not self.stored and self.path is not None:
                with contextlib.suppress(OSError):
                    self.path.unlink()

    # -- internals -------------------------------------------------------------------------

    @staticmethod
    def _open(path: Path) -> int:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)

    def _flush(self) -> None:
        with self._lock:
            if not self._released and self._mem is None:
                self._write_locked()

    def _write_locked(self) -> None:
        """Append the waiting frames to the file (holding the lock)."""
        assert self.path is not None
        try:
            if self._fd is None:
                self._fd = self._open(self.path)
            if self._frames:
                _write_all(self._fd, self._frames, self._pending)
        except OSError as exc:
            log.warning("segment part %s: %s; keeping it in memory", self.path, exc)
            self._to_memory()
            return
        self._flushed += self._pending
        self._frames = []
        self._pending = 0

    def _to_memory(self) -> None:
        """The disk refused a write: hold the whole segment in memory from now on."""
        mem = bytearray()
        if self._fd is not None:
            try:
                mem += os.pread(self._fd, self._flushed, 0) if self._flushed else b""
            except OSError as exc:  # what was written is lost: the segment is damaged
                log.error("segment part %s cannot be read back: %s", self.path, exc)
            os.close(self._fd)
            self._fd = None
        for frame in self._frames:
            mem += frame
        self._frames = []
        self._mem = mem
        if self.path is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
            self.path = None


def _write_all(fd: int, frames: list[bytes], total: int) -> None:
    done = os.writev(fd, frames)
    if done < total:  # a short write (a signal, a nearly full disk): the rest in one piece
        rest = memoryview(b"".join(frames))[done:]
        while rest:
            rest = rest[os.write(fd, rest) :]


def _older_than(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime > seconds
    except OSError:
        return False


def memory_part() -> Part:
    """A part held in memory (no directory to write it to)."""
    return Part(None)


def bytes_part(data: bytes) -> Part:
    """A finished part in memory holding `data`."""
    part = Part(None)
    part.append(data)
    return part


@runtime_checkable
class PartStore(Protocol):
    """A store that takes segments as parts."""

    def new_part(self) -> Part: ...

    def put_part(self, key: str, part: Part, content_type: str) -> None:
        """Store the part's bytes at `key`, as `put` would; the part may become the
        object (then `part.stored`)."""
        ...


class PartDir:
    """This process's directory of parts under `base` (see the module docstring). Made on
    the first part; dead processes' directories are deleted when it is made, and by
    `sweep()`."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self._dir: Path | None = None
        self._lock_fd: int | None = None
        self._names = itertools.count()
        self._mutex = threading.Lock()

    def new_part(self) -> Part:
        """A new part in this process's directory; in memory if it cannot be made."""
        try:
            directory = self._own()
        except OSError as exc:
            log.warning(
                "no segment part directory under %s (%s): segments in memory", self.base, exc
            )
            return memory_part()
        return Part(directory / f"{next(self._names)}.part")

    def sweep(self) -> int:
        """Delete the directories of processes that are gone; returns how many."""
        try:
            entries = list(self.base.iterdir())
        except OSError:
            return 0
        swept = 0
        for entry in entries:
            if entry == self._dir or not entry.is_dir():
                continue
            try:
                fd = os.open(entry / LOCK_NAME, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                # Killed before it took its lock, or taking it right now: old means dead.
                if not _older_than(entry, ORPHAN_SECONDS):
                    continue
                fd = None
            except OSError:
                continue
            try:
                if fd is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                shutil.rmtree(entry, ignore_errors=True)
                swept += 1
                log.info("deleted the segment parts of an ended process: %s", entry)
            except BlockingIOError:
                pass  # its process lives
            finally:
                if fd is not None:
                    os.close(fd)
        return swept

    def close(self) -> None:
        """Give the directory up (the next sweep deletes what is left in it)."""
        with self._mutex:
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def _own(self) -> Path:
        with self._mutex:
            if self._dir is not None:
                return self._dir
            self.base.mkdir(parents=True, exist_ok=True)
            directory = self.base / f"{os.getpid()}-{secrets.token_hex(4)}"
            directory.mkdir()
            fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._lock_fd = fd
            self._dir = directory
        self.sweep()
        return directory
