"""Who may call what: the checks every FLS route makes before it does anything."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request

from liverec.api.auth import authenticate, get_context, require_project
from liverec.api.errors import ApiError
from liverec.config import REGIONS
from liverec.errors import NotFoundError
from liverec.layout import StreamRef
from liverec.media.names import stream_name_problem


@dataclass(frozen=True)
class Scope:
    """A standard-recording call's caller, project, entry point and region, all checked."""

    customer_id: str
    app_id: str
    entry_point: str
    region: str

    def stream(self, stream_name: str) -> StreamRef:
        """The stream `stream_name` of this scope (the name checked: 400 if invalid)."""
        return StreamRef(self.app_id, self.region, self.entry_point, check_stream_name(stream_name))


# The region path parameter: documented as the four FLS regions, but typed `str` so that
# FastAPI does not refuse another value itself (a 422 turned 400 `invalid_parameter`):
# check_region answers it with FLS's 400 `invalid_region`.
Region = Annotated[
    str,
    Path(
        description=f"the FLS region: one of {', '.join(REGIONS)} (else 400 invalid_region)",
        json_schema_extra={"enum": list(REGIONS)},
    ),
]


def check_region(region: str) -> str:
    if region not in REGIONS:
        raise ApiError(
            400,
            "invalid_region",
            f"unknown region {region[:16]!r}: use one of {', '.join(REGIONS)}",
        )
    return region


def check_stream_name(name: str) -> str:
    """`name`, or 400 `invalid_stream_name` unless it passes the one stream-name rule."""
    problem = stream_name_problem(name)
    if problem is not None:
        raise ApiError(400, "invalid_stream_name", problem)
    return name


async def project_scope(
    request: Request, appid: str, customer_id: Annotated[str, Depends(authenticate)]
) -> str:
    if not appid:
        raise ApiError(400, "invalid_parameter", "appid is empty")
    await require_project(request, customer_id, appid)
    return appid


async def _scope(
    request: Request, customer_id: str, appid: str, entry_point: str, region: str | None
) -> Scope:
    if not appid or not entry_point:
        raise ApiError(400, "invalid_parameter", "appid and entry_point must not be empty")
    if region is not None:
        check_region(region)
    await require_project(request, customer_id, appid)
    ctx = get_context(request)
    try:
        await asyncio.to_thread(ctx.catalog.get_entry_point, appid, entry_point)
    except NotFoundError:
        raise ApiError(
            404, "entry_point_not_found", f"entry point {entry_point[:64]!r} does not exist"
        ) from None
    return Scope(
        customer_id=customer_id,
        app_id=appid,
        entry_point=entry_point,
        region=ctx.region if region is None else region,
    )


async def stream_scope(
    request: Request,
    appid: str,
    entry_point: str,
    region: Region,
    customer_id: Annotated[str, Depends(authenticate)],
) -> Scope:
    """The project, entry point and region of a standard-recording call, all checked."""
    return await _scope(request, customer_id, appid, entry_point, region)


async def entry_point_scope(
    request: Request,
    appid: str,
    entry_point: str,
    customer_id: Annotated[str, Depends(authenticate)],
) -> Scope:
    """The project and entry point of a stream-management or report call (no region in
    the path: streams are named per entry point; the node's region is used), checked."""
    return await _scope(request, customer_id, appid, entry_point, None)
