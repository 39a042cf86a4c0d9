"""The FLS standard-recording post-processing API: preview_list, cutting, snapshot."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from liverec.api.access import Scope, stream_scope
from liverec.api.auth import get_context
from liverec.api.context import ApiContext
from liverec.api.errors import API_ERRORS, BODY_ERRORS, ApiError, error_responses
from liverec.api.signing import signed_link
from liverec.api.times import format_time, not_in_future, parse_range, parse_time, whole_seconds
from liverec.errors import ConflictError, InvalidKeyError, NotFoundError
from liverec.layout import StreamRef
from liverec.media.names import CLIP_EXTENSIONS, SNAPSHOT_EXTENSIONS
from liverec.storage import check_name

T = TypeVar("T")
BASE = "/v1/projects/{appid}/fls/entry_points/{entry_point}/admin/record/standard/regions/{region}"
router = APIRouter(prefix=BASE, tags=["standard recording post-processing"])


class RecordingItem(BaseModel):
    fileName: str = Field(description="the recording's playlist, relative to the project root")
    startTime: str
    endTime: str
    position: int = Field(description="seconds from startTime to the first instant in range")
    url: str = Field(description="liverec extension: signed, expiring URL of the playlist")


class PreviewList(BaseModel):
    list: list[RecordingItem]


class CuttingRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    startTime: str
    endTime: str | None = None
    fileName: str
    precise: bool = Field(False, description="liverec extension: frame-accurate boundaries")


class CuttingResult(BaseModel):
    """liverec extension: FLS documents no body for cutting's 200."""

    fileName: str
    startTime: str
    endTime: str
    duration: float
    url: str


class SnapshotRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    time: str | None = None
    fileName: str


class SnapshotResult(BaseModel):
    """liverec extension: FLS documents no body for snapshot's 200."""

    fileName: str
    time: str
    width: int
    height: int
    url: str


def _file_name(name: str, extensions: tuple[str, ...]) -> str:
    try:
        return check_name(name, extensions)
    except InvalidKeyError as exc:
        raise ApiError(400, "invalid_file_name", f"invalid fileName: {exc}") from None


def _url(request: Request, ctx: ApiContext, stream: StreamRef, file_name: str) -> str:
    return signed_link(request, ctx, stream, file_name)


@router.get(
    "/preview_list",
    response_model=PreviewList,
    responses=error_responses(
        *API_ERRORS,
        notes={404: "Or no such entry point (reason entry_point_not_found)."},
    ),
)
async def preview_list(
    request: Request,
    scope: Annotated[Scope, Depends(stream_scope)],
    start_time: Annotated[str, Query()],
    end_time: Annotated[str, Query()],
    stream_name: Annotated[str, Query()],
) -> PreviewList:
    """Every recording of the stream that overlaps [start_time, end_time], oldest first."""
    ctx = get_context(request)
    # Only cutting's endTime and snapshot's time are limited to "not after now": a whole-day
    # query during that day answers what exists so far.
    start, end = parse_range(start_time, end_time)
    stream = scope.stream(stream_name)
    recs = await asyncio.to_thread(ctx.catalog.recordings_overlapping, stream, start, end)
    return PreviewList(
        list=[
            RecordingItem(
                fileName=rec.playlist_key,
                startTime=format_time(rec.start_time),
                endTime=format_time(rec.end_time),
                position=whole_seconds(start - rec.start_time),
                url=_url(request, ctx, stream, rec.playlist_key),
            )
            for rec in recs
        ]
    )


def _times(ctx: ApiContext, start_s: str, end_s: str | None) -> tuple[datetime, datetime | None]:
    now = ctx.clock()
    start = parse_time(start_s, "startTime")
    not_in_future(start, now, "startTime")
    end = None
    if end_s:
        end = parse_time(end_s, "endTime")
        not_in_future(end, now, "endTime")
        if end < start:
            raise ApiError(400, "invalid_time", "endTime is before startTime")
    return start, end


# The refusals _postprocess maps, as cutting and snapshot document them.
_POSTPROCESS_NOTES = {
    400: "Also reason file_exists: fileName is already used.",
    404: "Or no such entry point (reason entry_point_not_found), or no recording of the "
    "stream at that time (reason no_recording).",
}


async def _postprocess(fn: Callable[..., T], stream: StreamRef, file_name: str, **kwargs: Any) -> T:
    """Run a clip or snapshot maker in a worker thread; map its refusals onto the contract."""
    try:
        return await asyncio.to_thread(functools.partial(fn, stream, file_name=file_name, **kwargs))
    except ConflictError:
        raise ApiError(400, "file_exists", f"fileName {file_name} is already used") from None
    except NotFoundError as exc:
        raise ApiError(404, "no_recording", str(exc)) from None


@router.post(
    "/cutting/{stream_name}",
    response_model=CuttingResult,
    responses=error_responses(*BODY_ERRORS, notes=_POSTPROCESS_NOTES),
)
async def cutting(
    request: Request,
    stream_name: str,
    body: CuttingRequest,
    scope: Annotated[Scope, Depends(stream_scope)],
) -> CuttingResult:
    """Cut [startTime, endTime] into a VOD M3U8 named fileName in the stream's folder."""
    ctx = get_context(request)
    stream = scope.stream(stream_name)
    file_name = _file_name(body.fileName, CLIP_EXTENSIONS)
    start, end = _times(ctx, body.startTime, body.endTime)
    clip = await _postprocess(
        ctx.make_clip, stream, file_name, start=start, end=end, precise=body.precise
    )
    return CuttingResult(
        fileName=clip.file_name,
        startTime=format_time(clip.start),
        endTime=format_time(clip.end),
        duration=round(clip.duration, 3),
        url=_url(request, ctx, stream, clip.file_name),
    )


@router.post(
    "/snapshot/{stream_name}",
    response_model=SnapshotResult,
    responses=error_responses(*BODY_ERRORS, notes=_POSTPROCESS_NOTES),
)
async def snapshot(
    request: Request,
    stream_name: str,
    body: SnapshotRequest,
    scope: Annotated[Scope, Depends(stream_scope)],
) -> SnapshotResult:
    """A JPEG of the frame shown at `time` (the latest recorded frame when empty)."""
    ctx = get_context(request)
    stream = scope.stream(stream_name)
    file_name = _file_name(body.fileName, SNAPSHOT_EXTENSIONS)
    when = None
    if body.time:
        when = parse_time(body.time, "time")
        not_in_future(when, ctx.clock(), "time")
    shot = await _postprocess(ctx.make_snapshot, stream, file_name, time=when)
    return SnapshotResult(
        fileName=shot.file_name,
        time=format_time(shot.time),
        width=shot.width,
        height=shot.height,
        url=_url(request, ctx, stream, shot.file_name),
    )
