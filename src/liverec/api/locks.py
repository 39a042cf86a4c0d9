"""Retention's API (liverec extensions, none of them in FLS): locked ranges that retention
never deletes, releasing clips and snapshots made through the API, and an entry point's
retention period.

Locks are per stream: `streamName` + [startTime, endTime] + an optional expireTime, JSON in
the FLS camelCase style. Clips hold what they reference until released (DELETE on the
cutting path with `fileName`); snapshots made through the API stay until released the same
way on the snapshot path. The catalog forgets the file first and lists its blobs to delete
in the same transaction; they are deleted at once, and a failure there leaves them to the
next retention sweep (liverec/retention.py)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from liverec.api.access import Scope, entry_point_scope, stream_scope
from liverec.api.admin import ENTRY_POINTS
from liverec.api.auth import get_context
from liverec.api.errors import API_ERRORS, BODY_ERRORS, ApiError, error_responses
from liverec.api.fls import BASE
from liverec.api.times import format_time, parse_time
from liverec.catalog import Lock
from liverec.errors import InvalidKeyError, InvalidValueError, NotFoundError, StorageError
from liverec.layout import StreamRef
from liverec.media.names import CLIP_EXTENSIONS, SNAPSHOT_EXTENSIONS
from liverec.retention import format_retention, parse_retention
from liverec.storage import check_name

router = APIRouter(tags=["retention (liverec extension)"])
_EXT = "liverec extension. "
_NO_ENTRY_POINT = {404: "Or no such entry point (reason entry_point_not_found)."}


class LockRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    streamName: StrictStr
    startTime: StrictStr = Field(description="RFC 3339 with an offset")
    endTime: StrictStr = Field(description="RFC 3339 with an offset; not before startTime")
    expireTime: StrictStr | None = Field(
        None, description="RFC 3339; the lock ends then (left out: until deleted)"
    )


class LockInfo(BaseModel):
    lockId: int
    streamName: str
    startTime: str
    endTime: str
    expireTime: str | None = None


class LockList(BaseModel):
    locks: list[LockInfo]


class Released(BaseModel):
    message: str = "ok"


class RetentionSetting(BaseModel):
    retentionSeconds: int = Field(description="media older than this is deleted; 0: kept forever")
    retention: str = Field(description="the same as `7d`, `36h`, ... or `forever`")


class RetentionPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    retention: StrictStr | StrictInt = Field(
        description="seconds, or `36h`, `7d`, `4w`; 0 or `forever`: keep forever"
    )


def _lock_info(lock: Lock) -> LockInfo:
    return LockInfo(
        lockId=lock.id,
        streamName=lock.stream.stream_name,
        startTime=format_time(lock.start),
        endTime=format_time(lock.end),
        expireTime=None if lock.expires is None else format_time(lock.expires),
    )


@router.post(
    BASE + "/locks",
    response_model=LockInfo,
    status_code=201,
    description=_EXT + "Lock [startTime, endTime] of a stream: retention (by age or by size) "
    "never deletes a segment that overlaps it, until expireTime or until the lock is deleted.",
    responses=error_responses(*BODY_ERRORS, notes=_NO_ENTRY_POINT),
)
async def add_lock(
    request: Request, body: LockRequest, scope: Annotated[Scope, Depends(stream_scope)]
) -> LockInfo:
    ctx = get_context(request)
    stream = scope.stream(body.streamName)
    start = parse_time(body.startTime, "startTime")
    end = parse_time(body.endTime, "endTime")
    if end < start:
        raise ApiError(400, "invalid_time", "endTime is before startTime")
    expires = None
    if body.expireTime is not None:
        expires = parse_time(body.expireTime, "expireTime")
        if expires <= ctx.clock():
            raise ApiError(400, "invalid_time", "expireTime is not in the future")
    try:
        lock = await asyncio.to_thread(ctx.catalog.add_lock, stream, start, end, expires)
    except InvalidValueError as exc:
        raise ApiError(400, "invalid_time", str(exc)) from None
    return _lock_info(lock)


@router.get(
    BASE + "/locks",
    response_model=LockList,
    description=_EXT + "The locks of the entry point (of one stream with stream_name) that "
    "have not expired, by startTime.",
    responses=error_responses(*API_ERRORS, notes=_NO_ENTRY_POINT),
)
async def list_locks(
    request: Request,
    scope: Annotated[Scope, Depends(stream_scope)],
    stream_name: Annotated[str | None, Query(description="only this stream's")] = None,
) -> LockList:
    ctx = get_context(request)
    name = scope.stream(stream_name).stream_name if stream_name is not None else None
    locks = await asyncio.to_thread(
        ctx.catalog.locks, scope.app_id, scope.entry_point, scope.region, name
    )
    return LockList(locks=[_lock_info(lock) for lock in locks])


@router.delete(
    BASE + "/locks",
    response_model=Released,
    description=_EXT + "Delete the lock `id` (retention may then delete what it covered).",
    responses=error_responses(*API_ERRORS, notes={404: "Or no such lock (reason not_found)."}),
)
async def delete_lock(
    request: Request,
    scope: Annotated[Scope, Depends(stream_scope)],
    id: Annotated[int, Query(description="the lockId", ge=1, le=2**62)],
) -> Released:
    ctx = get_context(request)
    try:
        await asyncio.to_thread(ctx.catalog.delete_lock, scope.app_id, scope.entry_point, id)
    except NotFoundError:
        raise ApiError(404, "not_found", f"lock {id} does not exist") from None
    return Released(message=f"lock {id} deleted")


def _checked(name: str, extensions: tuple[str, ...]) -> str:
    try:
        return check_name(name, extensions)
    except InvalidKeyError as exc:
        raise ApiError(400, "invalid_file_name", f"invalid fileName: {exc}") from None


async def _release(
    request: Request, stream: StreamRef, file_name: str, kind: str, names: list[str]
) -> Released:
    ctx = get_context(request)
    keys = [stream.key(stream.file(name)) for name in names]
    try:
        await asyncio.to_thread(ctx.catalog.delete_file, stream, file_name, kind, keys)
    except NotFoundError:
        raise ApiError(404, "not_found", f"no {kind} {file_name} in {stream.folder}") from None

    def delete_blobs() -> None:
        for key in keys:
            # Listed in the catalog: if this fails, the next retention sweep deletes it.
            with contextlib.suppress(StorageError, OSError):
                ctx.store.delete(key)

    await asyncio.to_thread(delete_blobs)
    return Released(message=f"{kind} {file_name} deleted")


@router.delete(
    BASE + "/cutting/{stream_name}",
    response_model=Released,
    description=_EXT + "Release (delete) the clip `fileName` made by the cutting call: its "
    "playlist and any segment cut for it go, and retention may then delete the recorded "
    "segments it referenced.",
    responses=error_responses(*API_ERRORS, notes={404: "Or no such clip (reason not_found)."}),
)
async def delete_clip(
    request: Request,
    stream_name: str,
    scope: Annotated[Scope, Depends(stream_scope)],
    fileName: Annotated[str, Query(description="the clip's fileName, e.g. x.m3u8")],
) -> Released:
    stream = scope.stream(stream_name)
    name = _checked(fileName, CLIP_EXTENSIONS)
    base = name.removesuffix(".m3u8")
    names = [name, f"{base}_head.ts", f"{base}_tail.ts"]  # cut segments, if it is precise
    return await _release(request, stream, name, "clip", names)


@router.delete(
    BASE + "/snapshot/{stream_name}",
    response_model=Released,
    description=_EXT + "Release (delete) the snapshot `fileName` made by the snapshot call.",
    responses=error_responses(*API_ERRORS, notes={404: "Or no such snapshot (reason not_found)."}),
)
async def delete_snapshot(
    request: Request,
    stream_name: str,
    scope: Annotated[Scope, Depends(stream_scope)],
    fileName: Annotated[str, Query(description="the snapshot's fileName, e.g. x.jpg")],
) -> Released:
    stream = scope.stream(stream_name)
    name = _checked(fileName, SNAPSHOT_EXTENSIONS)
    return await _release(request, stream, name, "snapshot", [name])


@router.get(
    ENTRY_POINTS + "/{entry_point}/settings/retention",
    response_model=RetentionSetting,
    description=_EXT + "How long the entry point's recorded media is kept.",
    responses=error_responses(*API_ERRORS, notes=_NO_ENTRY_POINT),
)
async def get_retention(
    request: Request, scope: Annotated[Scope, Depends(entry_point_scope)]
) -> RetentionSetting:
    ep = await asyncio.to_thread(
        get_context(request).catalog.get_entry_point, scope.app_id, scope.entry_point
    )
    return RetentionSetting(retentionSeconds=ep.retention, retention=format_retention(ep.retention))


@router.patch(
    ENTRY_POINTS + "/{entry_point}/settings/retention",
    response_model=RetentionSetting,
    description=_EXT + "Set how long the entry point's recorded media is kept: media older "
    "than this (by its end) is deleted by the next retention sweep, except what locks, "
    "clips and live recordings' newest segments protect.",
    responses=error_responses(*BODY_ERRORS, notes=_NO_ENTRY_POINT),
)
async def set_retention(
    request: Request, body: RetentionPatch, scope: Annotated[Scope, Depends(entry_point_scope)]
) -> RetentionSetting:
    try:
        seconds = (
            body.retention if isinstance(body.retention, int) else parse_retention(body.retention)
        )
        ep = await asyncio.to_thread(
            lambda: get_context(request).catalog.update_entry_point(
                scope.app_id, scope.entry_point, retention=seconds
            )
        )
    except (ValueError, InvalidValueError) as exc:
        raise ApiError(400, "invalid_parameter", f"retention: {exc}") from None
    return RetentionSetting(retentionSeconds=ep.retention, retention=format_retention(ep.retention))
