"""Blob storage: the BlobStore protocol, the local-disk store, and safe keys."""

from __future__ import annotations

from urllib.parse import unquote, urlparse

from liverec.errors import ConfigError
from liverec.storage.base import BlobStore, ObjectNotFoundError
from liverec.storage.keys import check_key, check_name, check_prefix, project_key, stream_folder
from liverec.storage.local import LocalStore

__all__ = [
    "BlobStore",
    "LocalStore",
    "ObjectNotFoundError",
    "check_key",
    "check_name",
    "check_prefix",
    "open_store",
    "project_key",
    "stream_folder",
]


def open_store(url: str) -> BlobStore:
    """`file:///absolute/path` -> LocalStore; `s3://bucket/prefix` is not supported yet."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise ConfigError(f"a file:// storage URL names no host: {url!r}")
        path = unquote(parsed.path)
        if not path.startswith("/"):
            raise ConfigError(f"a file:// storage URL needs an absolute path: {url!r}")
        return LocalStore(path)
    if parsed.scheme == "s3":
        raise ConfigError("s3:// storage is not supported yet")
    raise ConfigError(f"unsupported storage URL {url!r}: use file:///PATH")
