"""FLS management calls that steer what is recorded: entry points and recording switches."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict

from liverec.api.access import Scope, project_scope, stream_scope
from liverec.api.auth import get_context
from liverec.api.errors import ApiError
from liverec.api.fls import BASE
from liverec.errors import ConflictError, InvalidValueError, NotFoundError

router = APIRouter(tags=["management"])
ENTRY_POINTS = "/v1/projects/{appid}/fls/entry_points"


class EntryPointInfo(BaseModel):
    id: str
    recordEnabled: bool
    targetDuration: float
    maxFileDuration: float
    pushAuth: bool


class EntryPointList(BaseModel):
    entryPoints: list[EntryPointInfo]


class Enabled(BaseModel):
    model_config = ConfigDict(extra="ignore")
    enabled: bool


class Ok(BaseModel):
    message: str = "ok"


@router.get(ENTRY_POINTS, response_model=EntryPointList)
async def list_entry_points(
    request: Request, appid: Annotated[str, Depends(project_scope)]
) -> EntryPointList:
    eps = await asyncio.to_thread(get_context(request).catalog.list_entry_points, appid)
    return EntryPointList(
        entryPoints=[
            EntryPointInfo(
                id=ep.name,
                recordEnabled=ep.record_enabled,
                targetDuration=ep.target_duration,
                maxFileDuration=ep.max_file_duration,
                pushAuth=bool(ep.auth_key),
            )
            for ep in eps
        ]
    )


@router.post(ENTRY_POINTS, status_code=201, response_model=Ok)
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


@router.delete(ENTRY_POINTS + "/{entry_point}", response_model=Ok)
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


@router.patch(ENTRY_POINTS + "/{entry_point}/settings/record/standard/auto", response_model=Ok)
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


async def _stream_switch(request: Request, scope: Scope, stream_name: str, on: bool) -> Ok:
    stream = scope.stream(stream_name)
    await asyncio.to_thread(get_context(request).catalog.set_stream_recording, stream, on)
    return Ok(message=f"standard recording {'on' if on else 'off'} for {stream_name}")


@router.put(BASE + "/tasks", response_model=Ok)
async def enable_stream(
    request: Request,
    scope: Annotated[Scope, Depends(stream_scope)],
    id: Annotated[str, Query(description="the stream name")],
) -> Ok:
    """Record this stream even when its entry point's standard recording is off."""
    return await _stream_switch(request, scope, id, True)


@router.delete(BASE + "/tasks", response_model=Ok)
async def disable_stream(
    request: Request,
    scope: Annotated[Scope, Depends(stream_scope)],
    id: Annotated[str, Query(description="the stream name")],
) -> Ok:
    """Do not record this stream (from its next publish on)."""
    return await _stream_switch(request, scope, id, False)


@router.delete(BASE + "/tasks/{stream_name}", response_model=Ok)
async def disable_stream_path(
    request: Request,
    stream_name: str,
    scope: Annotated[Scope, Depends(stream_scope)],
) -> Response | Ok:
    """The same as DELETE .../tasks?id=, in the path form FLS documents too."""
    return await _stream_switch(request, scope, stream_name, False)
