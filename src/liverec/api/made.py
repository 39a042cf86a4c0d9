"""Listings of what the API made for a stream (liverec extensions): the clips of the cutting
call and the snapshots of the snapshot call, newest first, each with a signed link. GET on
the paths that make (POST) and release (DELETE) them, so a script, or the console, can find
them again from anywhere."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from liverec.api.access import Scope, stream_scope
from liverec.api.auth import get_context
from liverec.api.errors import API_ERRORS, error_responses
from liverec.api.fls import BASE
from liverec.api.signing import signed_link
from liverec.api.times import format_time, parse_range
from liverec.catalog.made import MAX_LISTED, MadeFile
from liverec.layout import StreamRef

router = APIRouter(tags=["made files (liverec extension)"])
_EXT = "liverec extension. "
DEFAULT_DAYS = 7


class MadeClip(BaseModel):
    fileName: str = Field(description="as given to the cutting call")
    createdTime: str
    startTime: str | None = Field(None, description="the range the clip covers, if known")
    endTime: str | None = None
    url: str


class MadeClipList(BaseModel):
    list: list[MadeClip]


class MadeSnapshot(BaseModel):
    fileName: str = Field(description="as given to the snapshot call")
    createdTime: str
    url: str


class MadeSnapshotList(BaseModel):
    list: list[MadeSnapshot]


_WINDOW = (
    " Made between `start_time` and `end_time` (RFC 3339; default: the last "
    f"{DEFAULT_DAYS} days), newest first, at most `limit` (1-{MAX_LISTED})."
)


async def _made(
    request: Request,
    stream: StreamRef,
    kind: str,
    start_time: str | None,
    end_time: str | None,
    limit: int,
) -> list[tuple[MadeFile, str]]:
    ctx = get_context(request)
    now = ctx.clock()
    start, end = parse_range(
        start_time or format_time(now - timedelta(days=DEFAULT_DAYS)),
        end_time or format_time(now),
    )
    found = await asyncio.to_thread(ctx.catalog.made_files, stream, kind, start, end, limit)
    return [(f, signed_link(request, ctx, stream, stream.file(f.file_name))) for f in found]


@router.get(
    BASE + "/cutting/{stream_name}",
    response_model=MadeClipList,
    description=_EXT + "The clips the cutting call made of the stream." + _WINDOW,
    responses=error_responses(*API_ERRORS),
)
async def list_clips(
    request: Request,
    stream_name: str,
    scope: Annotated[Scope, Depends(stream_scope)],
    start_time: Annotated[str | None, Query()] = None,
    end_time: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LISTED)] = 100,
) -> MadeClipList:
    found = await _made(request, scope.stream(stream_name), "clip", start_time, end_time, limit)
    return MadeClipList(
        list=[
            MadeClip(
                fileName=f.file_name,
                createdTime=format_time(f.created),
                startTime=None if f.start is None else format_time(f.start),
                endTime=None if f.end is None else format_time(f.end),
                url=url,
            )
            for f, url in found
        ]
    )


@router.get(
    BASE + "/snapshot/{stream_name}",
    response_model=MadeSnapshotList,
    description=_EXT + "The snapshots the snapshot call made of the stream." + _WINDOW,
    responses=error_responses(*API_ERRORS),
)
async def list_snapshots(
    request: Request,
    stream_name: str,
    scope: Annotated[Scope, Depends(stream_scope)],
    start_time: Annotated[str | None, Query()] = None,
    end_time: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LISTED)] = 100,
) -> MadeSnapshotList:
    found = await _made(request, scope.stream(stream_name), "snapshot", start_time, end_time, limit)
    return MadeSnapshotList(
        list=[
            MadeSnapshot(fileName=f.file_name, createdTime=format_time(f.created), url=url)
            for f, url in found
        ]
    )
