"""FLS management calls that steer what is recorded: entry points and recording switches."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from liverec.api.access import Scope, project_scope, stream_scope
from liverec.api.auth import get_context
from liverec.api.errors import API_ERRORS, BODY_ERRORS, ApiError, error_responses
from liverec.api.fls import BASE
from liverec.errors import ConflictError, InvalidValueError, NotFoundError

router = APIRouter(tags=["management"])
ENTRY_POINTS = "/v1/projects/{appid}/fls/entry_points"
# The 404 a route with an {entry_point} (checked by the catalog or stream_scope) adds.
_NO_ENTRY_POINT = {404: "Or no such entry point (reason entry_point_not_found)."}


class EntryPointInfo(BaseModel):
    name: str
    recordEnabled: bool = Field(description="liverec extension: standard recording is on")
    targetDuration: float = Field(description="liverec extension: segment length, seconds")
    maxFileDuration: float = Field(
        description="liverec extension: a push longer than this continues in a new recording"
    )
    pushAuth: bool = Field(description="liverec extension: pushes need an FLS signature")
    retentionSeconds: int = Field(
        0,
        description="liverec extension: recorded media older than this is deleted (0: kept "
        "forever); set with PATCH .../entry_points/{entry_point}/settings/retention",
    )


class EntryPointList(BaseModel):
    entryPointList: list[EntryPointInfo]


class Enabled(BaseModel):
    model_config = ConfigDict(extra="ignore")
    enabled: bool


class Ok(BaseModel):
    message: str = Field("ok", description="liverec extension: FLS documents no body")


@router.get(ENTRY_POINTS, response_model=EntryPointList, responses=error_responses(*API_ERRORS))
async def list_entry_points(
    request: Request, appid: Annotated[str, Depends(project_scope)]
) -> EntryPointList:
    eps = await asyncio.to_thread(get_context(request).catalog.list_entry_points, appid)
    return EntryPointList(
        entryPointList=[
            EntryPointInfo(
                name=ep.name,
                recordEnabled=ep.record_enabled,
                targetDuration=ep.target_duration,
                maxFileDuration=ep.max_file_duration,
                pushAuth=bool(ep.auth_key),
                retentionSeconds=ep.retention,
            )
            for ep in eps
        ]
    )


@router.post(
    ENTRY_POINTS,
    status_code=201,
    response_model=Ok,
    responses=error_responses(
        *API_ERRORS,
        notes={400: "Also reason entry_point_exists: the name is taken."},
    ),
)
async def add_entry_point(
    request: Request,
    appid: Annotated[str, Depends(project_scope)],
    id: Annotated[str, Query(description="the entry point's name")],
) -> Ok:
    """Add an entry point (standard recording on, as for `live`)."""
    try:
        await asyncio.to_thread(get_context(request).catalog.create_entry_point, appid, id)
    except ConflictError:
        raise ApiError(400, "entry_point_exists", f"entry point {id!r} exists already") from None
    except InvalidValueError as exc:
        raise ApiError(400, "invalid_parameter", str(exc)) from None
    return Ok(message=f"entry point {id} created")


@router.delete(
    ENTRY_POINTS + "/{entry_point}",
    response_model=Ok,
    responses=error_responses(
        *API_ERRORS,
        notes={
            400: "Also for `live`, which cannot be deleted.",
            404: "Or no such entry point (reason entry_point_not_found).",
        },
    ),
)
async def delete_entry_point(
    request: Request, entry_point: str, appid: Annotated[str, Depends(project_scope)]
) -> Ok:
    """Delete an entry point; its recordings stay. `live` cannot be deleted."""
    try:
        await asyncio.to_thread(get_context(request).catalog.delete_entry_point, appid, entry_point)
    except NotFoundError:
        raise ApiError(
            404, "entry_point_not_found", f"entry point {entry_point[:64]!r} does not exist"
        ) from None
    except InvalidValueError as exc:
        raise ApiError(400, "invalid_parameter", str(exc)) from None
    return Ok(message=f"entry point {entry_point} deleted")


@router.patch(
    ENTRY_POINTS + "/{entry_point}/settings/record/standard/auto",
    response_model=Ok,
    responses=error_responses(*BODY_ERRORS, notes=_NO_ENTRY_POINT),
)
async def entry_point_recording(
    request: Request,
    entry_point: str,
    body: Enabled,
    appid: Annotated[str, Depends(project_scope)],
) -> Ok:
    """Turn standard recording on or off for every stream of an entry point."""
    try:
        await asyncio.to_thread(
            get_context(request).catalog.update_entry_point,
            appid,
            entry_point,
            record_enabled=body.enabled,
        )
    except NotFoundError:
        raise ApiError(
            404, "entry_point_not_found", f"entry point {entry_point[:64]!r} does not exist"
        ) from None
    return Ok(message=f"standard recording {'on' if body.enabled else 'off'}")


class PushAuthPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    authKey: StrictStr | None = Field(
        description="the key pushes are signed with (FLS's push signature: "
        "`?ts=&sign=md5(key + /entry_point/stream + ts)`); null or empty: pushes need no "
        "signature"
    )


class PushAuth(BaseModel):
    pushAuth: bool = Field(description="pushes need a signature; the key is never answered")


@router.patch(
    ENTRY_POINTS + "/{entry_point}/settings/push_auth",
    response_model=PushAuth,
    description="liverec extension. Set or remove the key an entry point's pushes must be "
    "signed with. Publishes already live are not affected.",
    responses=error_responses(*BODY_ERRORS, notes=_NO_ENTRY_POINT),
)
async def set_push_auth(
    request: Request,
    entry_point: str,
    body: PushAuthPatch,
    appid: Annotated[str, Depends(project_scope)],
) -> PushAuth:
    try:
        ep = await asyncio.to_thread(
            get_context(request).catalog.update_entry_point,
            appid,
            entry_point,
            auth_key=body.authKey or None,
        )
    except NotFoundError:
        raise ApiError(
            404, "entry_point_not_found", f"entry point {entry_point[:64]!r} does not exist"
        ) from None
    except InvalidValueError as exc:
        raise ApiError(400, "invalid_parameter", f"authKey: {exc}") from None
    return PushAuth(pushAuth=bool(ep.auth_key))


# A task covers a stream that is live or starts publishing within this (FLS's 24 hours).
TASK_LIFETIME = timedelta(hours=24)


async def _stream_switch(request: Request, scope: Scope, stream_name: str, on: bool) -> Ok:
    ctx = get_context(request)
    stream = scope.stream(stream_name)
    until = ctx.clock() + TASK_LIFETIME if on else None
    await asyncio.to_thread(ctx.catalog.set_stream_recording, stream, on, until=until)
    return Ok(message=f"standard recording {'on' if on else 'off'} for {stream_name}")


@router.put(
    BASE + "/tasks",
    response_model=Ok,
    responses=error_responses(*API_ERRORS, notes=_NO_ENTRY_POINT),
)
async def enable_stream(
    request: Request,
    scope: Annotated[Scope, Depends(stream_scope)],
    id: Annotated[str, Query(description="the stream name")],
) -> Ok:
    """Record this stream even when its entry point's standard recording is off: at once
    (from its next keyframe) if it is live, else its publishes that start within 24 hours.
    A publish that started in time is recorded to its end."""
    return await _stream_switch(request, scope, id, True)


@router.delete(
    BASE + "/tasks",
    response_model=Ok,
    responses=error_responses(*API_ERRORS, notes=_NO_ENTRY_POINT),
    description="liverec extension: the query form of DELETE .../tasks/{stream_name}, "
    "matching PUT's `?id=`. Do not record this stream: a recording of it that is live now "
    "ends at once.",
)
async def disable_stream(
    request: Request,
    scope: Annotated[Scope, Depends(stream_scope)],
    id: Annotated[str, Query(description="the stream name")],
) -> Ok:
    """Do not record this stream: a recording of it that is live now ends at once."""
    return await _stream_switch(request, scope, id, False)


@router.delete(
    BASE + "/tasks/{stream_name}",
    response_model=Ok,
    responses=error_responses(*API_ERRORS, notes=_NO_ENTRY_POINT),
)
async def disable_stream_path(
    request: Request,
    stream_name: str,
    scope: Annotated[Scope, Depends(stream_scope)],
) -> Response | Ok:
    """The same as DELETE .../tasks?id=, in the path form FLS documents too."""
    return await _stream_switch(request, scope, stream_name, False)
