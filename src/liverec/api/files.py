"""File serving: recording playlists, segments, clips and snapshots by the name the API
gave (`record/{entry_point}/{stream_name}/{file}`), behind the API's credentials or a
signed, expiring link (api/signing.py). Single byte ranges; HEAD. Every FLS region is
served, not only the one this node records into: store keys carry their region, and the FLS
routes take any region, so every `url` they hand out must work from any node.

A local file is opened once and everything (size, ETag, bytes) comes from that open file:
a live playlist replaced while it is sent is sent whole, old or new, never a mix."""

from __future__ import annotations

import asyncio
import functools
import os
import re
import stat
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Annotated, BinaryIO, Protocol, runtime_checkable

from fastapi import APIRouter, Depends, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import RedirectResponse, StreamingResponse
from starlette.types import Receive, Scope, Send

from liverec.api.access import Region, check_region
from liverec.api.auth import authenticate, client_address, get_context, require_project
from liverec.api.context import ApiContext
from liverec.api.errors import ApiError, error_responses
from liverec.api.signing import SIGNED_PREFIX, stream_folder_of, verify
from liverec.errors import InvalidKeyError, StorageError
from liverec.layout import file_part, parse_name, project_root
from liverec.media.m3u8 import PLAYLIST_TYPE
from liverec.media.names import JPEG_TYPE, MP4_TYPE
from liverec.media.ts import TS_TYPE
from liverec.storage import BlobStore, ObjectNotFoundError, check_key

CONTENT_TYPES = {
    "m3u8": PLAYLIST_TYPE,
    "ts": TS_TYPE,
    "jpg": JPEG_TYPE,
    "jpeg": JPEG_TYPE,
    "mp4": MP4_TYPE,
}
CHUNK = 512 * 1024
_RANGE = re.compile(r"bytes=(\d{0,19})-(\d{0,19})", re.IGNORECASE)

router = APIRouter(tags=["files"])


class RangeNotSatisfiableError(Exception):
    """The Range asks only for bytes past the end (answered 416)."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The [start, end) a `Range` header asks of `size` bytes, or None to send the whole
    file (no header, another unit, several ranges, or bad syntax: all may be ignored, RFC
    9110 14.2). RangeNotSatisfiableError when it asks only for bytes past the end."""
    if header is None:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first, last = match.group(1), match.group(2)
    if first:
        start = int(first)
        if last and int(last) < start:
            return None  # invalid syntax: ignored
        if start >= size:
            raise RangeNotSatisfiableError
        end = min(int(last) + 1, size) if last else size
        return start, end
    if not last:
        return None  # "bytes=-"
    suffix = int(last)
    if suffix == 0 or size == 0:
        raise RangeNotSatisfiableError
    return max(0, size - suffix), size


def _media_type(file_name: str) -> str:
    """Check the name's shape (400) and that it is a kind of file we serve (404)."""
    try:
        stream_folder_of(file_name)
    except InvalidKeyError as exc:
        raise ApiError(400, "invalid_file_name", str(exc)) from None
    name = file_part(file_name)
    ext = name.rpartition(".")[2].lower()
    # Dot files include the stores' temporary files, which are never served.
    if name.startswith(".") or "." not in name or ext not in CONTENT_TYPES:
        raise ApiError(404, "not_found", "no such file")
    return CONTENT_TYPES[ext]


def _open_local(path: Path) -> tuple[BinaryIO, os.stat_result] | None:
    """The open regular file and its stat, or None if there is none."""
    try:
        # O_NONBLOCK: opening a FIFO planted in the store must not hang.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    except OSError as exc:
        raise StorageError(f"cannot open a stored file: {exc.strerror}") from exc
    fh = os.fdopen(fd, "rb")
    try:
        info = os.fstat(fh.fileno())
    except BaseException:
        fh.close()
        raise
    if not stat.S_ISREG(info.st_mode):
        fh.close()
        return None
    return fh, info


def _read_at(fh: BinaryIO, pos: int, length: int) -> bytes:
    fh.seek(pos)
    return fh.read(length)


def _get_range(store: BlobStore, key: str, pos: int, length: int) -> bytes:
    return store.get_range(key, pos, pos + length)


class _BlobResponse(StreamingResponse):
    """Streams [start, end) through `read(pos, length)` (run in a thread) and calls
    `close` once the answer is done, sent or not."""

    def __init__(
        self,
        read: Callable[[int, int], bytes],
        close: Callable[[], None],
        start: int,
        end: int,
        status: int,
        headers: dict[str, str],
    ) -> None:
        self._close = close
        super().__init__(self._chunks(read, start, end), status_code=status, headers=headers)

    @staticmethod
    async def _chunks(
        read: Callable[[int, int], bytes], start: int, end: int
    ) -> AsyncIterator[bytes]:
        pos = start
        while pos < end:
            data = await asyncio.to_thread(read, pos, min(CHUNK, end - pos))
            if not data:
                raise StorageError("a stored file is shorter than its size")
            pos += len(data)
            yield data

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._close()


def _noop() -> None:
    pass


@dataclass(frozen=True)
class _Blob:
    """A file found in the store: its size and how to read it (`read`, or `whole` bytes)."""

    size: int
    read: Callable[[int, int], bytes] | None = None
    whole: bytes | None = None
    close: Callable[[], None] = _noop
    etag: str | None = None
    last_modified: str | None = None


def _locate(store: BlobStore, key: str, playlist: bool) -> _Blob | None:
    """The file at `key`, or None if there is none (or it leads out of the store)."""
    try:
        path = store.local_path(key)
        if path is not None:
            opened = _open_local(path)
            if opened is None:
                return None
            fh, info = opened
            return _Blob(
                size=info.st_size,
                read=functools.partial(_read_at, fh),
                close=fh.close,
                etag=f'"{info.st_ino:x}-{info.st_mtime_ns:x}-{info.st_size:x}"',
                last_modified=formatdate(info.st_mtime, usegmt=True),
            )
        if playlist:
            # A remote playlist may be replaced between two calls: one GET, then slices.
            whole = store.get(key)
            return _Blob(size=len(whole), whole=whole)
        return _Blob(size=store.size(key), read=functools.partial(_get_range, store, key))
    except (ObjectNotFoundError, InvalidKeyError):  # InvalidKeyError: a symlink out
        return None


async def serve_blob(request: Request, store: BlobStore, key: str, media_type: str) -> Response:
    """Answer GET or HEAD for the object at `key`: 200, 206 for a byte range, 404, 416."""
    blob = await asyncio.to_thread(_locate, store, key, media_type == PLAYLIST_TYPE)
    if blob is None:
        raise ApiError(404, "not_found", "no such file")
    headers = {
        "Content-Type": media_type,
        "Accept-Ranges": "bytes",
        # Playlists change while recording (and must be re-read); the rest never do.
        "Cache-Control": "no-cache" if media_type == PLAYLIST_TYPE else "private, max-age=86400",
    }
    if blob.etag is not None and blob.last_modified is not None:
        headers["ETag"] = blob.etag
        headers["Last-Modified"] = blob.last_modified
    size, close = blob.size, blob.close
    try:
        wanted = request.headers.get("range")
        if_range = request.headers.get("if-range")
        if if_range is not None and (blob.etag is None or if_range.strip() != blob.etag):
            wanted = None  # the client's copy is another version: send it all
        try:
            span = parse_range(wanted, size)
        except RangeNotSatisfiableError:
            raise ApiError(
                416,
                "range_not_satisfiable",
                f"the range is past the end of the file ({size} bytes)",
                {"Content-Range": f"bytes */{size}"},
            ) from None
        start, end = span if span is not None else (0, size)
        status = 200
        if span is not None:
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        headers["Content-Length"] = str(end - start)
        if request.method == "HEAD":
            close()
            return Response(status_code=status, headers=headers)
        if blob.whole is not None:
            return Response(content=blob.whole[start:end], status_code=status, headers=headers)
        assert blob.read is not None
        return _BlobResponse(blob.read, close, start, end, status, headers)
    except BaseException:
        close()
        raise


_MEDIA_TYPES = sorted(set(CONTENT_TYPES.values()))


def _header(description: str, required: bool = True) -> dict[str, object]:
    return {"description": description, "required": required, "schema": {"type": "string"}}


def _file_responses(signed: bool) -> dict[int | str, dict[str, object]]:
    """What a file route answers (serve_blob, deliver and the checks before them): the
    file, a byte range of it, a redirect, or an ErrorBody. A signed link is checked by its
    signature (401 bad_signature or expired), not against a project, and its answers carry
    Access-Control-Allow-Origin for web players on other origins."""
    content = {t: {"schema": {"type": "string", "format": "binary"}} for t in _MEDIA_TYPES}
    cors = (
        {
            "Access-Control-Allow-Origin": _header(
                "`*`, or the request's Origin if cors_origins lists it"
            )
        }
        if signed
        else {}
    )
    served = {
        **cors,
        "Accept-Ranges": _header("`bytes`"),
        "Cache-Control": _header("`no-cache` for playlists, else `private, max-age=86400`"),
        "Content-Length": _header("the size of what is sent"),
        "ETag": _header("only from a local store: for If-Range", required=False),
    }
    return {
        200: {
            "description": "The file, typed by its extension: "
            + ", ".join(f"{ext} {t}" for ext, t in CONTENT_TYPES.items())
            + ".",
            "content": content,
            "headers": served,
        },
        206: {
            "description": "The byte range the single-range `Range` header asked for.",
            "content": content,
            "headers": {**served, "Content-Range": _header("`bytes {first}-{last}/{size}`")},
        },
        307: {
            "description": "Only when the node redirects downloads from object storage (never "
            "for a playlist): the file at a presigned URL valid for five minutes.",
            "headers": {**cors, "Location": _header("the presigned URL")},
        },
        **error_responses(
            400,
            401,
            404,
            416,
            429,
            500,
            504,
            notes={
                400: "Also reason invalid_file_name: not a record/... or snapshot/... name.",
                404: "Also: no such file, or not a kind of file that is served.",
                **({401: "Here: reason bad_signature or expired."} if signed else {}),
            },
        ),
    }


@runtime_checkable
class Presigner(Protocol):
    def presigned_get(
        self, key: str, expires: int = 300, content_type: str | None = None
    ) -> str: ...


def _count_viewer(
    request: Request, ctx: ApiContext, app_id: str, region: str, file_name: str, media_type: str
) -> None:
    """A playlist or segment fetched: its stream has a viewer this minute."""
    if ctx.viewers is None or media_type not in (PLAYLIST_TYPE, TS_TYPE):
        return
    parsed = parse_name(file_name)
    address = request.client.host if request.client else ""
    ctx.viewers.saw(
        parsed.stream(app_id, region), address, request.headers.get("user-agent", "")[:256]
    )


async def deliver(request: Request, ctx: ApiContext, key: str, media_type: str) -> Response:
    """Stream the file, or (object storage, when configured) redirect to a presigned URL so
    the bytes do not pass through this node. Playlists are always served here: a player
    resolves their relative segment URIs against this URL, which carries our signature."""
    store = ctx.store
    playlist = media_type == PLAYLIST_TYPE
    if ctx.redirect_downloads and not playlist and isinstance(store, Presigner):
        if not await asyncio.to_thread(store.exists, key):
            raise ApiError(404, "not_found", "no such file")
        url = await asyncio.to_thread(store.presigned_get, key, 300, media_type)
        return RedirectResponse(url, status_code=307)
    return await serve_blob(request, store, key, media_type)


def _key(region: str, app_id: str, file_name: str) -> str:
    """The store key of a file the API named (InvalidKeyError, a 400, if unsafe)."""
    return check_key(project_root(region, app_id) + file_name)


async def get_signed_file(
    request: Request,
    expires: Annotated[int, PathParam(description="Unix time the link expires at", ge=0)],
    sig: str,
    app_id: str,
    region: Region,
    file_name: str,
) -> Response:
    ctx = get_context(request)
    media_type = _media_type(file_name)
    verify(ctx, expires, sig, app_id, region, file_name, client=client_address(request))
    check_region(region)
    response = await deliver(request, ctx, _key(region, app_id, file_name), media_type)
    _count_viewer(request, ctx, app_id, region, file_name, media_type)
    # A web player on another origin fetches these links.
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


async def get_file(
    request: Request,
    app_id: str,
    region: Region,
    file_name: str,
    customer_id: Annotated[str, Depends(authenticate)],
) -> Response:
    ctx = get_context(request)
    await require_project(request, customer_id, app_id)
    check_region(region)
    media_type = _media_type(file_name)
    response = await deliver(request, ctx, _key(region, app_id, file_name), media_type)
    _count_viewer(request, ctx, app_id, region, file_name, media_type)
    return response


# The signed route goes first: `{expires:int}` keeps an app named "s" reachable below.
_SIGNED_PATH = SIGNED_PREFIX + "/{expires:int}/{sig}/{app_id}/{region}/{file_name:path}"
_PATH = "/files/{app_id}/{region}/{file_name:path}"
# The request headers serve_blob reads, documented (FastAPI sees no parameter for them).
_RANGE_HEADERS = {
    "parameters": [
        {
            "name": "Range",
            "in": "header",
            "required": False,
            "description": "One byte range, `bytes={first}-{last}`, `bytes={first}-` or "
            "`bytes=-{suffix}` (206); past the end: 416. Another unit, several ranges or bad "
            "syntax: ignored, the whole file is sent.",
            "schema": {"type": "string"},
        },
        {
            "name": "If-Range",
            "in": "header",
            "required": False,
            "description": "An ETag: the Range is honoured only if the file still has it.",
            "schema": {"type": "string"},
        },
    ]
}
_EXTENSION = (
    "liverec extension (FLS serves recordings from the customer's CDN, not its API): "
    "`file_name` is a name the API gave (`record/{entry_point}/{stream_name}/{file}` or "
    "`snapshot/...`). A single byte range (`Range`, `If-Range`) is answered 206; HEAD "
    "answers like GET without the body."
)
for _path, _endpoint, _summary, _description, _signed in (
    (
        _SIGNED_PATH,
        get_signed_file,
        "Download a file by a signed, expiring link",
        f"{_EXTENSION} No credentials: the link's signature covers the stream's folder, so "
        "a player can follow a playlist's relative segment URIs.",
        True,
    ),
    (
        _PATH,
        get_file,
        "Download a recording, clip or snapshot file",
        f"{_EXTENSION} With the API's credentials.",
        False,
    ),
):
    router.add_api_route(
        _path,
        _endpoint,
        methods=["GET"],
        summary=_summary,
        description=_description,
        response_class=Response,
        responses=_file_responses(_signed),
        openapi_extra=_RANGE_HEADERS,
    )
    # HEAD answers like GET without a body; kept out of the schema (one operation each).
    router.add_api_route(
        _path,
        _endpoint,
        methods=["HEAD"],
        name=f"{_endpoint.__name__}_head",
        include_in_schema=False,
        response_class=Response,
    )
