"""A live stream's thumbnail (a liverec extension, for the console's Streams page): a small
JPEG of its live edge, on whichever node holds the publish, refreshed every few seconds."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from liverec.api.access import Scope, entry_point_scope
from liverec.api.auth import get_context
from liverec.api.errors import API_ERRORS, ApiError, error_responses
from liverec.api.streams import EP

router = APIRouter(prefix=EP, tags=["reports"])


@router.get(
    "/reports/online_streams/{stream_name}/thumbnail.jpg",
    response_class=Response,
    description="liverec extension. A JPEG of the live stream's newest keyframe, at most "
    "`width` pixels wide (32-1280), at most ~10 s old.",
    responses={
        200: {"content": {"image/jpeg": {}}, "description": "the thumbnail"},
        **error_responses(*API_ERRORS, notes={404: "Or the stream is not live (not_live)."}),
    },
)
async def thumbnail(
    request: Request,
    stream_name: str,
    scope: Annotated[Scope, Depends(entry_point_scope)],
    width: Annotated[int, Query(ge=32, le=1280)] = 320,
) -> Response:
    ctx = get_context(request)
    stream = scope.stream(stream_name)
    jpeg = None
    if ctx.thumbnails is not None:
        jpeg = await asyncio.to_thread(ctx.thumbnails, stream, width)
    if jpeg is None:
        raise ApiError(404, "not_live", f"{stream_name} is not live here or has no video yet")
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=5"})
