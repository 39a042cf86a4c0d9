"""A store that keeps writing through an outage of the store behind it: what cannot be put
is spooled to local disk and uploaded, in order, when the store answers again.

Used for the recorder's writes (segments and playlists), so a storage outage shorter than
the spool's room loses no media: a put that fails goes to the spool and returns (durable,
fsynced); while anything is spooled, later puts queue behind it, so objects reach the
store in the order they were written (a playlist after its segments). A put of a key
already spooled replaces it (a playlist rewritten during the outage is uploaded once, as
its last version). Only when the spool is full does a put fail (StorageError), and the
recorder drops that segment and marks the gap.

Spool files are `{seq:012d}.spool`: one JSON header line (key, content type), then the
bytes. They survive a crash or kill -9: the next start uploads them.

Retention may trim a segment while it waits here (its catalog row goes, and the sweep's
delete finds no blob): `orphan(key)`, asked after each upload from the spool, says so, and
the upload is deleted again (asked after, not before: a sweep that deletes the row later
finds the blob). Reads are not served
from the spool: during an outage the store cannot be read either, and once it answers the
spool drains in seconds.

Segments come as parts (storage/parts.py): the store's own when it takes them (LocalStore:
renamed into place), else files under `{spool_dir}/parts/` whose bytes are put (S3)."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from liverec.errors import InvalidKeyError, LiverecError, StorageError
from liverec.storage.base import BlobStore
from liverec.storage.keys import check_key
from liverec.storage.parts import Part, PartDir, PartStore

log = logging.getLogger(__name__)

SUFFIX = ".spool"
RETRY_FIRST = 0.5  # seconds before the first upload retry, doubling
RETRY_MAX = 15.0


@dataclass(frozen=True, slots=True)
class _Entry:
    seq: int
    key: str
    content_type: str
    size: int
    path: Path


class SpoolFullError(StorageError):
    """The store is failing and the spool has no room for the object."""


class SpooledWriter(PartStore):
    """`put` through to `store`, or into the spool at `spool_dir` (at most `max_bytes`)
    while the store fails. `start()` uploads what an earlier run left; `close()` stops the
    uploader (what is left stays for the next start)."""

    def __init__(
        self,
        store: BlobStore,
        spool_dir: Path,
        *,
        max_bytes: int,
        retry_first: float = RETRY_FIRST,
        retry_max: float = RETRY_MAX,
        orphan: Callable[[str], bool] | None = None,
    ) -> None:
        if max_bytes < 0:
            raise ValueError("the spool's size limit cannot be negative")
        self.store = store
        self.spool_dir = Path(spool_dir)
        self.max_bytes = max_bytes
        self.retry_first = retry_first
        self.retry_max = retry_max
        self.orphan = orphan  # retention dropped the key meanwhile (see the docstring)
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}  # by key; insertion order is upload order
        self._bytes = 0
        self._seq = 0
        self._wake = threading.Condition(self._lock)
        self._closing = False
        self._thread: threading.Thread | None = None
        self.uploaded = 0  # objects uploaded from the spool, since start
        self._parts = None if isinstance(store, PartStore) else PartDir(self.spool_dir / "parts")

    # -- the store's writes ----------------------------------------------------------------

    def put(self, key: str, data: bytes, content_type: str) -> None:
        check_key(key)
        with self._lock:
            behind = bool(self._entries)
        if not behind:
            try:
                self.store.put(key, data, content_type)
                return
            except InvalidKeyError:
                raise
            except (StorageError, OSError) as exc:
                log.error("storage failing, spooling to %s: %s", self.spool_dir, exc)
        self._spool(key, data, content_type)

    def new_part(self) -> Part:
        if self._parts is None:
            assert isinstance(self.store, PartStore)
            return self.store.new_part()
        return self._parts.new_part()

    def put_part(self, key: str, part: Part, content_type: str) -> None:
        """`put` of a part: the store takes it as a part when it can."""
        check_key(key)
        with self._lock:
            behind = bool(self._entries)
        if not behind:
            try:
                if isinstance(self.store, PartStore):
                    self.store.put_part(key, part, content_type)
                else:
                    self.store.put(key, part.read(), content_type)
                return
            except InvalidKeyError:
                raise
            except (StorageError, OSError) as exc:
                log.error("storage failing, spooling to %s: %s", self.spool_dir, exc)
        self._spool(key, part.read(), content_type)

    def local_path(self, key: str) -> Path | None:
        return self.store.local_path(key)

    def backlog(self) -> tuple[int, int]:
        """(objects, bytes) waiting in the spool."""
        with self._lock:
            return len(self._entries), self._bytes

    # -- start and stop --------------------------------------------------------------------

    def start(self) -> int:
        """Take up what an earlier run spooled and start the uploader; returns how many
        objects are waiting."""
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        for tmp in self.spool_dir.glob(f"*{SUFFIX}.tmp"):
            tmp.unlink(missing_ok=True)  # never completed: its put failed
        if self._parts is not None:
            self._parts.sweep()  # segments an earlier run was cutting when it died
        found: list[_Entry] = []
        for path in sorted(self.spool_dir.glob(f"*{SUFFIX}")):
            try:
                seq = int(path.name.removesuffix(SUFFIX))
                with path.open("rb") as f:
                    header = json.loads(f.readline())
                    offset = f.tell()
                size = path.stat().st_size - offset
                found.append(_Entry(seq, str(header["key"]), str(header["type"]), size, path))
            except (OSError, ValueError, KeyError, TypeError):
                log.exception("%s: not a spool file; left alone", path)
        with self._lock:
            for entry in found:
                old = self._entries.pop(entry.key, None)
                if old is not None:  # a later version of the same key wins
                    self._bytes -= old.size
                    old.path.unlink(missing_ok=True)
                self._entries[entry.key] = entry
                self._bytes += entry.size
                self._seq = max(self._seq, entry.seq)
            waiting = len(self._entries)
            self._thread = threading.Thread(target=self._upload, name="storage-spool", daemon=True)
            self._thread.start()
        if waiting:
            log.warning("%d objects from an earlier run wait in the storage spool", waiting)
        return waiting

    def close(self, timeout: float = 10.0) -> None:
        with self._lock:
            self._closing = True
            self._wake.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
        count, size = self.backlog()
        if count:
            log.warning("%d objects (%d bytes) left in the storage spool", count, size)

    # -- internals -------------------------------------------------------------------------

    def _spool(self, key: str, data: bytes, content_type: str) -> None:
        with self._lock:
            old = self._entries.get(key)
            freed = old.size if old is not None else 0
            if self._bytes - freed + len(data) > self.max_bytes:
                raise SpoolFullError(
                    f"storage unavailable and its spool is full ({self.max_bytes} bytes)"
                )
            self._seq += 1
            seq = self._seq
        path = self.spool_dir / f"{seq:012d}{SUFFIX}"
        header = json.dumps({"key": key, "type": content_type}).encode() + b"\n"
        try:
            self.spool_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            with tmp.open("wb") as f:
                f.write(header)
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            raise StorageError(
                f"storage unavailable and the spool cannot be written: {exc}"
            ) from exc
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old.size
                old.path.unlink(missing_ok=True)
            self._entries[key] = _Entry(seq, key, content_type, len(data), path)
            self._bytes += len(data)
            self._wake.notify_all()

    def _upload(self) -> None:
        delay = self.retry_first
        while True:
            with self._lock:
                while not self._entries and not self._closing:
                    self._wake.wait()
                if self._closing:
                    return
                entry = next(iter(self._entries.values()))
            try:
                with entry.path.open("rb") as f:
                    f.readline()
                    data = f.read()
            except FileNotFoundError:
                with self._lock:  # replaced by a later version meanwhile, or removed
                    self._drop(entry)
                continue
            except OSError:
                log.exception("%s: cannot read the spool file; left alone", entry.path)
                with self._lock:
                    self._drop(entry)
                continue
            try:
                self.store.put(entry.key, data, entry.content_type)
            except InvalidKeyError:
                log.exception("%s: refused by the store; left in the spool", entry.key)
                with self._lock:
                    self._entries.pop(entry.key, None)
                    self._bytes -= entry.size
                continue
            except (StorageError, OSError) as exc:
                log.debug("storage still failing (%s); retrying in %.1f s", exc, delay)
                with self._lock:
                    if not self._closing:
                        self._wake.wait(delay)
                delay = min(delay * 2, self.retry_max)
                continue
            try:
                if self.orphan is not None and self.orphan(entry.key):
                    self.store.delete(entry.key)
                    log.info("%s: retention dropped it while spooled; deleted", entry.key)
            except (LiverecError, OSError) as exc:  # kept: uploaded and asked again
                log.warning("cannot tell whether %s is still wanted: %s", entry.key, exc)
                with self._lock:
                    if not self._closing:
                        self._wake.wait(delay)
                delay = min(delay * 2, self.retry_max)
                continue
            delay = self.retry_first
            with self._lock:
                self._drop(entry)
                self.uploaded += 1
                empty = not self._entries
            if empty:
                log.warning("storage back: the spool is uploaded (%d objects)", self.uploaded)

    def _drop(self, entry: _Entry) -> None:
        """Forget an uploaded entry (unless a later version replaced it). Holds the lock."""
        if self._entries.get(entry.key) is entry:
            del self._entries[entry.key]
            self._bytes -= entry.size
        entry.path.unlink(missing_ok=True)
