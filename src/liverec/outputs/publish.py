"""Publishing a finished slice file to the store as one object, without holding it in
memory: the slice must appear whole or not at all.

- A store on local disk (`local_path` gives a path): the spool file is hard-linked (copied
  when the spool is on another file system) to a temporary name in the target's directory,
  fsynced, renamed over the target, and the directory fsynced; the temporary name carries
  the store's temporary prefix, so listings never show it. Nothing is read into memory.
- An S3 store (it exposes `client`, `bucket` and `prefix`) and a file larger than
  `single_put`: a multipart upload of `part_size` parts, which S3 makes visible only on
  CompleteMultipartUpload (aborted on failure, so no parts are left billed).
- Anything else: one `put` of the file's bytes.

Errors surface as StorageError (or OSError for the spool file); the caller retries."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from liverec.errors import StorageError
from liverec.storage import check_key
from liverec.storage.local import TMP_PREFIX

SINGLE_PUT = 64 * 1024 * 1024  # larger files go to S3 in parts
PART_SIZE = 64 * 1024 * 1024  # S3 wants >= 5 MiB per part but the last, <= 10,000 parts


class Mp4Store(Protocol):
    """What publishing needs of a BlobStore."""

    def put(self, key: str, data: bytes, content_type: str) -> None: ...

    def local_path(self, key: str) -> Path | None: ...


@runtime_checkable
class MultipartStore(Protocol):
    """What an S3 store exposes for uploads in parts (storage/s3.py's S3Store)."""

    @property
    def client(self) -> Any: ...

    @property
    def bucket(self) -> str: ...

    @property
    def prefix(self) -> str: ...


def publish_file(
    store: Mp4Store,
    key: str,
    path: Path,
    content_type: str,
    *,
    single_put: int = SINGLE_PUT,
    part_size: int = PART_SIZE,
) -> int:
    """Store the file at `path` as the object `key`, atomically; returns its size."""
    size = path.stat().st_size
    target = store.local_path(key)
    if target is not None:
        _link_into_place(path, target)
    elif isinstance(store, MultipartStore) and size > single_put:
        _multipart(store, key, path, content_type, part_size)
    else:
        store.put(key, path.read_bytes(), content_type)
    return size


def _link_into_place(source: Path, target: Path) -> None:
    try:
        _make_dirs(target.parent)
        tmp = target.parent / f"{TMP_PREFIX}{secrets.token_hex(8)}"
        try:
            try:
                os.link(source, tmp)  # same file system: no copy (the data is fsynced)
            except OSError:
                shutil.copyfile(source, tmp)
                _fsync_file(tmp)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(target.parent)
    except OSError as exc:
        raise StorageError(f"cannot publish {target}: {exc}") from exc


def _multipart(
    store: MultipartStore, key: str, path: Path, content_type: str, part_size: int
) -> None:
    client, bucket = store.client, store.bucket
    full = store.prefix + check_key(key)
    try:
        upload = client.create_multipart_upload(Bucket=bucket, Key=full, ContentType=content_type)
    except Exception as exc:  # botocore's, which only storage/ may name
        raise StorageError(f"S3 multipart upload of {key!r} could not start: {exc}") from exc
    upload_id = upload["UploadId"]
    try:
        parts = []
        with open(path, "rb") as fh:
            number = 1
            while chunk := fh.read(part_size):
                answer = client.upload_part(
                    Bucket=bucket, Key=full, PartNumber=number, UploadId=upload_id, Body=chunk
                )
                parts.append({"ETag": answer["ETag"], "PartNumber": number})
                number += 1
        client.complete_multipart_upload(
            Bucket=bucket, Key=full, UploadId=upload_id, MultipartUpload={"Parts": parts}
        )
    except Exception as exc:
        with contextlib.suppress(Exception):
            client.abort_multipart_upload(Bucket=bucket, Key=full, UploadId=upload_id)
        if isinstance(exc, OSError | StorageError):
            raise
        raise StorageError(f"S3 multipart upload of {key!r} failed: {exc}") from exc


def _make_dirs(directory: Path) -> None:
    """mkdir -p, fsyncing each new directory's parent so that its entry is durable (as
    LocalStore.put does)."""
    missing: list[Path] = []
    current = directory
    while not current.exists():
        missing.append(current)
        current = current.parent
    for new in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made by a concurrent put
            new.mkdir()
        _fsync_dir(new.parent)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
