"""Blob storage: the BlobStore protocol, the local-disk store, the S3 store (storage.s3,
loaded only for an s3:// URL), and the safety check every key passes (keys.check_key).

Owns: how bytes are kept and fetched, and translating its drivers' errors (OSError,
botocore) into StorageError and its subclasses. Which key names what is layout's, not
storage's. May import: errors, media.names. Nothing above storage imports botocore."""

from __future__ import annotations

import os
from urllib.parse import unquote, urlparse

from liverec.errors import ConfigError
from liverec.storage.base import BlobStore, ObjectNotFoundError
from liverec.storage.keys import (
    check_key,
    check_name,
    check_prefix,
)
from liverec.storage.local import LocalStore

__all__ = [
    "BlobStore",
    "LocalStore",
    "ObjectNotFoundError",
    "check_key",
    "check_name",
    "check_prefix",
    "open_store",
]


def open_store(
    url: str, *, endpoint_url: str | None = None, timeout: float = 10.0, fsync: bool = True
) -> BlobStore:
    """`file:///absolute/path` -> LocalStore; `s3://bucket/prefix` -> S3Store at
    `endpoint_url` (settings.s3_endpoint_url; None or empty: AWS), the region from
    AWS_REGION or AWS_DEFAULT_REGION and credentials from boto3's default chain. An S3
    call is one attempt that fails after `timeout` seconds without an answer (a hung
    server must not hold an API request for minutes); the recorder, the spool and the MP4
    publisher retry on their own schedules. `fsync`: see storage/local.py (an object store's
    PUT is durable when it answers)."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise ConfigError(f"a file:// storage URL names no host: {url!r}")
        path = unquote(parsed.path)
        if not path.startswith("/"):
            raise ConfigError(f"a file:// storage URL needs an absolute path: {url!r}")
        return LocalStore(path, fsync=fsync)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ConfigError(
                f"an s3:// storage URL needs a bucket: s3://BUCKET/PREFIX, not {url!r}"
            )
        if parsed.query or parsed.fragment:
            raise ConfigError(f"an s3:// storage URL takes no query or fragment: {url!r}")
        # Imported here so that processes on local storage never load boto3.
        from liverec.storage.s3 import S3Store

        return S3Store(
            parsed.netloc,
            unquote(parsed.path),
            endpoint_url=endpoint_url or None,
            region_name=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
            retries=1,
            # Measured against a hung server: a GET fails after ~2.5x botocore's socket
            # timeout, a PUT after ~4x (connect, 100-continue, read): a quarter keeps the
            # whole call within `timeout`.
            timeout=timeout / 4,
        )
    raise ConfigError(f"unsupported storage URL {url!r}: use file:///PATH or s3://BUCKET/PREFIX")
