"""FLS stream management and reports: bans, online streams, publish history, publish
quality and play statistics, under `/v1/projects/{appid}/fls/entry_points/{entry_point}`.

Shapes as FLS documents them. Where its docs contradict themselves, the reading a client is
least likely to break on (each route's description says which): report time ranges that run
past now end now instead of being refused, `stream_name` is a filter that may be left out,
and publish_quality answers its array under both documented names with both spellings of
the frame rate."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from liverec.api.access import Scope, entry_point_scope
from liverec.api.auth import get_context
from liverec.api.errors import API_ERRORS, BODY_ERRORS, ApiError, error_responses
from liverec.api.times import format_time, parse_time
from liverec.catalog import Publish

EP = "/v1/projects/{appid}/fls/entry_points/{entry_point}"
router = APIRouter(prefix=EP)
BAN_DEFAULT = timedelta(days=7)
# What every route here can answer besides 200: an unknown entry point is a 404 too.
_NO_ENTRY_POINT = "Or no such entry point (reason entry_point_not_found)."
_ERRORS = error_responses(*API_ERRORS, notes={404: _NO_ENTRY_POINT})
_REPORT_ERRORS = error_responses(
    *API_ERRORS,
    notes={
        400: "Also reason invalid_time: the range is reversed, too long or too old.",
        404: _NO_ENTRY_POINT,
    },
)


class Ok(BaseModel):
    message: str = Field(description="liverec extension: FLS documents no body")


class BanRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    resumeTime: str | None = Field(
        None, description="RFC 3339; when the ban ends by itself (default: in seven days)"
    )


class BannedStream(BaseModel):
    name: str
    resumeTime: str


class BannedStreamList(BaseModel):
    bannedStreamList: list[BannedStream]


@router.patch(
    "/admin/banned_streams/{stream_name}",
    response_model=Ok,
    tags=["stream management"],
    responses=error_responses(
        *BODY_ERRORS,
        notes={
            400: "Also reason invalid_time: resumeTime is not in the future.",
            404: _NO_ENTRY_POINT,
        },
    ),
)
async def ban_stream(
    request: Request,
    stream_name: str,
    scope: Annotated[Scope, Depends(entry_point_scope)],
    body: Annotated[BanRequest | None, Body()] = None,
) -> Ok:
    """Ban a stream: its live publish is ended within about two seconds on whichever node
    holds it, and new publishes are refused (RTMP `NetStream.Publish.Rejected`) until
    resumeTime. The ban ends by itself then."""
    ctx = get_context(request)
    stream = scope.stream(stream_name)
    now = ctx.clock()
    if body is not None and body.resumeTime:
        resume = parse_time(body.resumeTime, "resumeTime")
        if resume <= now:
            raise ApiError(400, "invalid_time", "resumeTime is not in the future")
    else:
        resume = now + BAN_DEFAULT
    await asyncio.to_thread(ctx.catalog.ban_stream, stream, resume)
    return Ok(message=f"stream {stream_name} banned until {format_time(resume)}")


@router.delete(
    "/admin/banned_streams/{stream_name}",
    response_model=Ok,
    tags=["stream management"],
    responses=_ERRORS,
)
async def unban_stream(
    request: Request, stream_name: str, scope: Annotated[Scope, Depends(entry_point_scope)]
) -> Ok:
    """Lift a ban (no error if the stream was not banned)."""
    stream = scope.stream(stream_name)
    await asyncio.to_thread(get_context(request).catalog.unban_stream, stream)
    return Ok(message=f"stream {stream_name} unbanned")


@router.get(
    "/admin/banned_streams",
    response_model=BannedStreamList,
    tags=["stream management"],
    responses=_ERRORS,
)
async def banned_streams(
    request: Request, scope: Annotated[Scope, Depends(entry_point_scope)]
) -> BannedStreamList:
    """The entry point's streams banned now, by name."""
    banned = await asyncio.to_thread(
        get_context(request).catalog.banned_streams, scope.app_id, scope.entry_point
    )
    return BannedStreamList(
        bannedStreamList=[
            BannedStream(name=name, resumeTime=format_time(resume)) for name, resume in banned
        ]
    )


# -- reports ------------------------------------------------------------------------------


class OnlineStream(BaseModel):
    name: str
    startTime: str
    videoCodec: str | None = Field(None, description="liverec extension")
    audioCodec: str | None = Field(None, description="liverec extension")
    width: int | None = Field(None, description="liverec extension: pixels")
    height: int | None = Field(None, description="liverec extension: pixels")
    frameRate: float | None = Field(None, description="liverec extension: frames/s")
    bitrate: int | None = Field(None, description="liverec extension: bits/s, last seconds")
    clientIp: str = Field(description="liverec extension: the publisher's address")
    nodeId: str = Field(description="liverec extension: the node recording it")


class OnlineStreams(BaseModel):
    streamList: list[OnlineStream]


class OnlineSince(BaseModel):
    startTime: str


class PublishRecord(BaseModel):
    name: str
    startTime: str
    endTime: str
    duration: int = Field(description="whole seconds from startTime to endTime")


class PublishHistory(BaseModel):
    publishHistory: list[PublishRecord]


class QualityRecord(BaseModel):
    name: str
    time: str
    bitrate: int = Field(description="bits/s over the minute")
    frameRate: float
    framerate: float = Field(description="the same, as FLS's example spells it")
    cdnIp: str = Field(description="the node that received the publish")
    clientIp: str


class PublishQuality(BaseModel):
    publishHistory: list[QualityRecord] = Field(description="the name FLS's table gives")
    QualityHistory: list[QualityRecord] = Field(description="the name FLS's example gives")


class PlayRecord(BaseModel):
    name: str
    time: str
    linkNum: int = Field(description="distinct viewers (address and user agent) that minute")


class PlayStatistic(BaseModel):
    playStatistic: list[PlayRecord]


def _online(publish: Publish) -> OnlineStream:
    return OnlineStream(
        name=publish.stream_name,
        startTime=format_time(publish.start_time),
        videoCodec=publish.video_codec,
        audioCodec=publish.audio_codec,
        width=publish.width,
        height=publish.height,
        frameRate=publish.fps,
        bitrate=publish.bitrate,
        clientIp=publish.client_ip,
        nodeId=publish.node_id,
    )


@router.get(
    "/reports/online_streams", response_model=OnlineStreams, tags=["reports"], responses=_ERRORS
)
async def online_streams(
    request: Request, scope: Annotated[Scope, Depends(entry_point_scope)]
) -> OnlineStreams:
    """The entry point's streams being published now, on any node, oldest first."""
    live = await asyncio.to_thread(
        get_context(request).catalog.online_publishes, scope.app_id, scope.entry_point
    )
    return OnlineStreams(streamList=[_online(p) for p in live])


@router.get(
    "/reports/online_streams/{stream_name}",
    response_model=OnlineSince,
    tags=["reports"],
    responses=error_responses(
        *API_ERRORS,
        notes={404: f"{_NO_ENTRY_POINT} Or the stream is not being published (not_online)."},
    ),
)
async def online_stream(
    request: Request, stream_name: str, scope: Annotated[Scope, Depends(entry_point_scope)]
) -> OnlineSince:
    """When the stream's live publish started; 404 when it is not being published."""
    name = scope.stream(stream_name).stream_name
    live = await asyncio.to_thread(
        get_context(request).catalog.online_publishes, scope.app_id, scope.entry_point
    )
    for publish in live:
        if publish.stream_name == name:
            return OnlineSince(startTime=format_time(publish.start_time))
    raise ApiError(404, "not_online", f"stream {stream_name} is not being published")


def _window(
    now: datetime,
    start_s: str | None,
    end_s: str | None,
    *,
    default: timedelta,
    span: timedelta,
    look_back: timedelta,
) -> tuple[datetime, datetime]:
    """A report's [start, end]: `default` back from now when start_time is left out; an end
    past now ends now; refused (400) when longer than `span` or starting before `look_back`
    from now."""
    end = min(parse_time(end_s, "end_time"), now) if end_s else now
    start = parse_time(start_s, "start_time") if start_s else end - default
    if end < start:
        raise ApiError(400, "invalid_time", "end_time is before start_time")
    if end - start > span:
        raise ApiError(400, "invalid_time", f"the range may span at most {_span_text(span)}")
    if start < now - look_back:
        raise ApiError(
            400, "invalid_time", f"start_time may be at most {_span_text(look_back)} ago"
        )
    return start, end


def _span_text(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{hours / 24:g} days" if hours >= 24 else f"{hours:g} hours"


def _stream_filter(scope: Scope, stream_name: str | None) -> str | None:
    return None if not stream_name else scope.stream(stream_name).stream_name


TimeQuery = Annotated[str | None, Query(description="RFC 3339")]


@router.get(
    "/reports/publish_history",
    response_model=PublishHistory,
    tags=["reports"],
    responses=_REPORT_ERRORS,
)
async def publish_history(
    request: Request,
    scope: Annotated[Scope, Depends(entry_point_scope)],
    start_time: TimeQuery = None,
    end_time: TimeQuery = None,
    stream_name: Annotated[str | None, Query(description="one stream (optional here)")] = None,
) -> PublishHistory:
    """Ended publishes that ended in the range, newest end first. Default range: the last
    7 days; at most 30 days long, within the last 60 days. FLS documents stream_name as
    required; here it may be left out (all the entry point's streams)."""
    ctx = get_context(request)
    start, end = _window(
        ctx.clock(),
        start_time,
        end_time,
        default=timedelta(days=7),
        span=timedelta(days=30),
        look_back=timedelta(days=60),
    )
    rows = await asyncio.to_thread(
        ctx.catalog.publish_history,
        scope.app_id,
        scope.entry_point,
        start,
        end,
        _stream_filter(scope, stream_name),
    )
    return PublishHistory(
        publishHistory=[
            PublishRecord(
                name=p.stream_name,
                startTime=format_time(p.start_time),
                endTime=format_time(p.end_time),
                duration=round((p.end_time - p.start_time).total_seconds()),
            )
            for p in rows
            if p.end_time is not None
        ]
    )


@router.get(
    "/reports/publish_quality",
    response_model=PublishQuality,
    tags=["reports"],
    responses=_REPORT_ERRORS,
)
async def publish_quality(
    request: Request,
    scope: Annotated[Scope, Depends(entry_point_scope)],
    start_time: TimeQuery = None,
    end_time: TimeQuery = None,
    stream_name: Annotated[str | None, Query(description="one stream (optional here)")] = None,
) -> PublishQuality:
    """One point a minute per publish (bitrate, frame rate, node and client addresses),
    newest first. Default range: the last 6 hours; at most 6 hours long, within the last 6
    days. FLS's docs name the array `publishHistory` in a table and `QualityHistory` in an
    example, and spell the rate `frameRate` and `framerate`: both are answered."""
    ctx = get_context(request)
    start, end = _window(
        ctx.clock(),
        start_time,
        end_time,
        default=timedelta(hours=6),
        span=timedelta(hours=6),
        look_back=timedelta(days=6),
    )
    points = await asyncio.to_thread(
        ctx.catalog.quality_points,
        scope.app_id,
        scope.entry_point,
        start,
        end,
        _stream_filter(scope, stream_name),
    )
    records = [
        QualityRecord(
            name=p.stream_name,
            time=format_time(p.time),
            bitrate=p.bitrate,
            frameRate=round(p.frame_rate, 3),
            framerate=round(p.frame_rate, 3),
            cdnIp=p.node_id,
            clientIp=p.client_ip,
        )
        for p in points
    ]
    return PublishQuality(publishHistory=records, QualityHistory=records)


@router.get(
    "/reports/stream_play_statistic",
    response_model=PlayStatistic,
    tags=["reports"],
    responses=_REPORT_ERRORS,
)
async def stream_play_statistic(
    request: Request,
    scope: Annotated[Scope, Depends(entry_point_scope)],
    start_time: TimeQuery = None,
    end_time: TimeQuery = None,
    stream_name: Annotated[str | None, Query(description="one stream (optional here)")] = None,
) -> PlayStatistic:
    """Distinct viewers fetching a stream's playlists and segments through liverec, per
    minute, newest first. Default range: the last 2 hours; at most 2 hours long, within the
    last 30 days."""
    ctx = get_context(request)
    start, end = _window(
        ctx.clock(),
        start_time,
        end_time,
        default=timedelta(hours=2),
        span=timedelta(hours=2),
        look_back=timedelta(days=30),
    )
    points = await asyncio.to_thread(
        ctx.catalog.play_points,
        scope.app_id,
        scope.entry_point,
        start,
        end,
        _stream_filter(scope, stream_name),
    )
    return PlayStatistic(
        playStatistic=[
            PlayRecord(name=p.stream_name, time=format_time(p.time), linkNum=p.viewers)
            for p in points
        ]
    )
