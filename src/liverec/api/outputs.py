"""Listings of the recording outputs other than HLS (liverec extensions): MP4 record files
and periodic snapshots of a stream in a time range, each with a signed `url`."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from liverec.api.access import Scope, stream_scope
from liverec.api.auth import get_context
from liverec.api.signing import signed_link
from liverec.api.times import format_time, parse_range, whole_seconds
from liverec.layout import StreamRef

EP = "/v1/projects/{appid}/fls/entry_points/{entry_point}/admin"
router = APIRouter(prefix=EP, tags=["recording outputs (liverec extensions)"])


class Mp4Item(BaseModel):
    fileName: str = Field(description="record/{ep}/{stream}/..._{sliceid}_{filedate}.mp4")
    startTime: str
    endTime: str
    position: int = Field(description="seconds from startTime to the first instant in range")
    url: str = Field(description="signed, expiring URL (byte ranges supported)")


class Mp4List(BaseModel):
    list: list[Mp4Item]


class SnapshotItem(BaseModel):
    fileName: str = Field(description="snapshot/{ep}/{stream}/{sessionid}_..._{filedate}.jpg")
    time: str = Field(description="the wall clock of the frame it shows")
    url: str


class SnapshotList(BaseModel):
    list: list[SnapshotItem]


def _url(request: Request, stream: StreamRef, file_name: str) -> str:
    return signed_link(request, get_context(request), stream, file_name)


@router.get("/record/standard/regions/{region}/mp4_list", response_model=Mp4List)
async def mp4_list(
    request: Request,
    scope: Annotated[Scope, Depends(stream_scope)],
    start_time: Annotated[str, Query()],
    end_time: Annotated[str, Query()],
    stream_name: Annotated[str, Query()],
) -> Mp4List:
    """liverec extension: the stream's finished MP4 record files that overlap [start_time,
    end_time], oldest first, in preview_list's item shape."""
    start, end = parse_range(start_time, end_time)
    stream = scope.stream(stream_name)
    files = await asyncio.to_thread(
        get_context(request).catalog.mp4_files_overlapping, stream, start, end
    )
    return Mp4List(
        list=[
            Mp4Item(
                fileName=f.name,
                startTime=format_time(f.start_time),
                endTime=format_time(f.end_time),
                position=whole_seconds(start - f.start_time),
                url=_url(request, stream, f.name),
            )
            for f in files
        ]
    )


@router.get("/snapshot/standard/regions/{region}/list", response_model=SnapshotList)
async def snapshot_list(
    request: Request,
    scope: Annotated[Scope, Depends(stream_scope)],
    start_time: Annotated[str, Query()],
    end_time: Annotated[str, Query()],
    stream_name: Annotated[str, Query()],
) -> SnapshotList:
    """liverec extension: the stream's periodic snapshots whose frame time is in
    [start_time, end_time], oldest first (a thumbnail strip along a timeline)."""
    start, end = parse_range(start_time, end_time)
    stream = scope.stream(stream_name)
    shots = await asyncio.to_thread(
        get_context(request).catalog.snapshot_files_between, stream, start, end
    )
    return SnapshotList(
        list=[
            SnapshotItem(
                fileName=s.name, time=format_time(s.time), url=_url(request, stream, s.name)
            )
            for s in shots
        ]
    )
