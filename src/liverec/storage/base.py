"""The blob store protocol: what the recorder, the API and post-processing need from a
store. Calls are synchronous; async callers run them in a thread."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

from liverec.errors import NotFoundError, StorageError


class ObjectNotFoundError(NotFoundError, StorageError):
    """The key has no object (a NotFoundError, and also a StorageError)."""


@runtime_checkable
class BlobStore(Protocol):
    def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store `data` at `key`, atomically: readers see the old object or the new one,
        never a part. Durable when it returns."""
        ...

    def get(self, key: str) -> bytes:
        """The object's bytes; ObjectNotFoundError if there is none."""
        ...

    def get_range(self, key: str, start: int, end: int | None) -> bytes:
        """Bytes [start, end) of the object (end exclusive, like a slice; None: to the
        end). A range past the end is cut short, as a slice is."""
        ...

    def size(self, key: str) -> int:
        """The object's size in bytes; ObjectNotFoundError if there is none."""
        ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Remove the object; no error if there is none."""
        ...

    def list(self, prefix: str) -> list[str]:
        """Every key that starts with `prefix` (a plain string prefix), sorted."""
        ...

    def local_path(self, key: str) -> Path | None:
        """A real file path for the key when the store is on local disk (the API streams it
        with sendfile), else None. The file may not exist."""
        ...
