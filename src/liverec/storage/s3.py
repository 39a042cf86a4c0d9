"""A blob store in an S3-compatible bucket (AWS S3, MinIO, Ceph), through boto3.

Each key is checked with check_key and stored as `{prefix}/{key}`. A put is one PutObject,
which S3 applies atomically: readers see the old object or the new one. Transient failures
are retried by botocore's "standard" retry mode (backoff with jitter); what still fails
becomes a StorageError, or a StorageTimeoutError when the server did not answer in time.

boto3 is imported only when a store is built, so processes on local storage never load it.
Credentials and region come from boto3's default chain (AWS_* variables, config files)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from botocore.exceptions import (  # type: ignore[import-untyped,unused-ignore]
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    ReadTimeoutError,
)

from liverec.errors import ConfigError, InvalidKeyError, StorageError, StorageTimeoutError
from liverec.storage.base import BlobStore, ObjectNotFoundError
from liverec.storage.keys import check_key, check_prefix

__all__ = ["S3Store", "StorageTimeoutError"]

# Legacy bucket names may hold capitals and underscores; MinIO and Ceph accept them too.
_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{2,254}")
_NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound"})
_BOTO_ERRORS = (BotoCoreError, ClientError)


class S3Store(BlobStore):
    #: Keys asked for per ListObjectsV2 page (S3 returns at most 1000).
    list_page_size = 1000

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        client: Any = None,
        retries: int = 5,
        timeout: float = 10.0,
    ) -> None:
        if not _BUCKET.fullmatch(bucket):
            raise ConfigError(f"invalid S3 bucket name {bucket!r}")
        root = prefix.strip("/")
        if root:
            try:
                check_key(root)
            except InvalidKeyError as exc:
                raise ConfigError(f"invalid S3 key prefix {prefix!r}: {exc}") from None
        if retries < 0 or timeout <= 0:
            raise ConfigError("S3 retries must be >= 0 and timeout > 0")
        self._bucket = bucket
        self._root = f"{root}/" if root else ""
        self._owns_client = client is None
        self._client: Any = (
            client
            if client is not None
            else _make_client(endpoint_url, region_name, retries, timeout)
        )

    @property
    def bucket(self) -> str:
        return self._bucket

    @property
    def prefix(self) -> str:
        """The key prefix inside the bucket, '' or ending in '/'."""
        return self._root

    @property
    def client(self) -> Any:
        """The boto3 S3 client (thread-safe; shared by every call of this store)."""
        return self._client

    def close(self) -> None:
        """Close the HTTP connections of a client this store made itself."""
        if self._owns_client:
            self._client.close()

    def _full(self, key: str) -> str:
        return self._root + check_key(key)

    def _error(self, action: str, key: str, exc: Exception) -> StorageError:
        where = f"s3://{self._bucket}/{self._root}{key}"
        if isinstance(exc, ConnectTimeoutError | ReadTimeoutError):
            return StorageTimeoutError(f"S3 {action} {where} timed out: {exc}")
        return StorageError(f"S3 {action} {where} failed: {exc}")

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        full = self._full(key)
        try:
            self._client.put_object(
                Bucket=self._bucket, Key=full, Body=bytes(data), ContentType=content_type
            )
        except _BOTO_ERRORS as exc:
            raise self._error("put", key, exc) from exc

    def get(self, key: str) -> bytes:
        return self.get_range(key, 0, None)

    def get_range(self, key: str, start: int, end: int | None) -> bytes:
        if start < 0 or (end is not None and end < start):
            raise StorageError(f"bad byte range [{start}, {end}) for {key!r}")
        full = self._full(key)
        if end == start:
            # HTTP cannot ask for zero bytes; still say whether the object is there.
            self._head(key, full)
            return b""
        args: dict[str, str] = {}
        if start > 0 or end is not None:
            last = "" if end is None else str(end - 1)
            args["Range"] = f"bytes={start}-{last}"
        try:
            response = self._client.get_object(Bucket=self._bucket, Key=full, **args)
            body = response["Body"]
            try:
                data: bytes = body.read()
            finally:
                body.close()
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND:
                raise ObjectNotFoundError(f"no object {key!r}") from None
            if _code(exc) == "InvalidRange" or _status(exc) == 416:
                return b""  # the object exists and start is at or past its end
            raise self._error("get", key, exc) from exc
        except BotoCoreError as exc:
            raise self._error("get", key, exc) from exc
        if args and "ContentRange" not in response:
            data = data[start:end]  # the server ignored Range and sent the whole object
        return data

    def _head(self, key: str, full: str) -> dict[str, Any]:
        try:
            head: dict[str, Any] = self._client.head_object(Bucket=self._bucket, Key=full)
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND:
                raise ObjectNotFoundError(f"no object {key!r}") from None
            raise self._error("head", key, exc) from exc
        except BotoCoreError as exc:
            raise self._error("head", key, exc) from exc
        return head

    def size(self, key: str) -> int:
        return int(self._head(key, self._full(key))["ContentLength"])

    def exists(self, key: str) -> bool:
        try:
            self._head(key, self._full(key))
        except ObjectNotFoundError:
            return False
        return True

    def delete(self, key: str) -> None:
        full = self._full(key)
        try:
            # S3 answers 204 for a missing key too, so delete is idempotent.
            self._client.delete_object(Bucket=self._bucket, Key=full)
        except _BOTO_ERRORS as exc:
            raise self._error("delete", key, exc) from exc

    def list(self, prefix: str) -> list[str]:
        check_prefix(prefix)
        cut = len(self._root)
        keys: list[str] = []
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self._bucket,
                Prefix=self._root + prefix,
                PaginationConfig={"PageSize": self.list_page_size},
            )
            for page in pages:
                keys.extend(item["Key"][cut:] for item in page.get("Contents", ()))
        except _BOTO_ERRORS as exc:
            raise self._error("list", prefix, exc) from exc
        return sorted(keys)

    def local_path(self, key: str) -> Path | None:
        check_key(key)
        return None

    def presigned_get(self, key: str, expires: int = 300, content_type: str | None = None) -> str:
        """A URL anyone can GET the object with for `expires` seconds (the API may redirect
        to it instead of streaming). `content_type` overrides the stored Content-Type of the
        response. The object's existence is not checked."""
        params = {"Bucket": self._bucket, "Key": self._full(key)}
        if content_type is not None:
            params["ResponseContentType"] = content_type
        try:
            url: str = self._client.generate_presigned_url(
                "get_object", Params=params, ExpiresIn=expires
            )
        except _BOTO_ERRORS as exc:
            raise self._error("presign", key, exc) from exc
        return url


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _make_client(
    endpoint_url: str | None, region_name: str | None, retries: int, timeout: float
) -> Any:
    import boto3  # type: ignore[import-untyped,unused-ignore]
    from botocore.config import Config  # type: ignore[import-untyped,unused-ignore]

    config = Config(
        retries={"mode": "standard", "max_attempts": retries},
        connect_timeout=timeout,
        read_timeout=timeout,
        signature_version="s3v4",
        # Recorders put from several threads at once; botocore's default pool is 10.
        max_pool_connections=32,
        # Most S3-compatible servers want bucket-in-path; AWS keeps its default style.
        s3={"addressing_style": "path"} if endpoint_url else None,
    )
    # A session of our own: boto3's default session is not thread-safe to build clients on.
    session = boto3.session.Session()
    try:
        return session.client(
            "s3", endpoint_url=endpoint_url, region_name=region_name, config=config
        )
    except (*_BOTO_ERRORS, ValueError) as exc:  # ValueError: a malformed endpoint URL
        raise ConfigError(f"cannot build an S3 client: {exc}") from exc
