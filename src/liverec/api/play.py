"""Time-shift playback (liverec extension): an HLS playlist of a stream over a time range,
built on every request from the catalog's segment index (playback/), never stored.

    GET /play/{appid}/{region}/{ep}/{stream}.m3u8?start=RFC3339[&end=RFC3339]
    GET /play/s/{expires}/{sig}/{appid}/{region}/{ep}/{stream}.m3u8?start=...[&end=...]
    GET /play/{appid}/{region}/{ep}/{stream}/link?start=...[&end=...][&expiresIn=s]

Who may ask: the API's credentials or the web console's session (`authenticate`, the one
dependency every route shares: console/session.py's cookie is accepted there), or a signed
link. A signed link is the stream folder's (api/signing.py): the pair (expires, sig) of a
`/files/s/` link of the stream also opens its `/play/s/` playlists, and the other way round;
both grant the same media.

Links in the playlist, and why a live one keeps playing: each segment URI is an absolute
signed `/files/s/` URL (under `public_url` when set), signed afresh on every request:
- EVENT (no `end`): valid for `link_lifetime` from this answer. A player reloads an EVENT
  playlist every target duration, so the links it is about to fetch are always fresh, however
  long it watches.
- VOD: valid for `link_lifetime` plus the playlist's own length, so playing it through never
  meets an expired link (a player paused longer than link_lifetime reloads the playlist).
The playlist's own URL is what must outlive link_lifetime while a live stream is watched: the
`link` call hands out a `/play/s/` URL valid for `expiresIn` seconds, by default
`link_lifetime` for a range with an end and max(link_lifetime, 24 h) for an EVENT, at most 7
days. A longer-lived playlist link grants no more than its segment links do (the stream's
media, for longer); re-signing the playlist URL itself on each answer would need the player
to follow it, which hls.js, Safari and ffmpeg do not (each reloads the URL it was given).

Bad times, an end before the start, a span over 7 days, a start or end in the future: 400
`invalid_time` / `range_too_long`; nothing recorded in the range (and not live): 404."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field

from liverec.api.access import Region, check_region, check_stream_name
from liverec.api.auth import authenticate, client_address, get_context, require_project
from liverec.api.context import ApiContext
from liverec.api.errors import ApiError, error_responses
from liverec.api.signing import SIGNED_PREFIX, sign_folder, verify
from liverec.api.times import format_time, not_in_future, parse_time
from liverec.errors import InvalidKeyError, NotFoundError
from liverec.layout import StreamRef, parse_name
from liverec.media.m3u8 import PLAYLIST_TYPE
from liverec.playback import MAX_SPAN, TimeShift, event_target
from liverec.playback.cache import Plan, plan, render_plan

router = APIRouter(tags=["playback"])

PLAY_PREFIX = "/play"
PLAY_SIGNED_PREFIX = "/play/s"
# The default lifetime of a handed-out EVENT playlist link (at least link_lifetime).
EVENT_LINK_LIFETIME = 86_400.0
MAX_LINK_LIFETIME = MAX_SPAN.total_seconds()
_EXTENSION = "liverec extension (FLS has no time-shift playback)."


@dataclass(frozen=True)
class _Range:
    start: datetime
    end: datetime | None  # None: EVENT up to the live edge


def play_stream(app_id: str, region: str, entry_point: str, stream_name: str) -> StreamRef:
    """The stream of a /play path, checked: 400 for a bad region, entry point or name."""
    check_region(region)
    check_stream_name(stream_name)
    stream = StreamRef(app_id, region, entry_point, stream_name)
    try:
        parse_name(stream.file("x.m3u8"))
    except InvalidKeyError as exc:
        raise ApiError(400, "invalid_parameter", str(exc)) from None
    if not app_id or "/" in app_id:
        raise ApiError(400, "invalid_parameter", "appid must not be empty")
    return stream


def play_range(start: str, end: str | None, now: datetime) -> _Range:
    """The asked range, checked: 400 `invalid_time` or `range_too_long`."""
    t0 = parse_time(start, "start")
    not_in_future(t0, now, "start")
    if end is None or not end.strip():
        if now - t0 > MAX_SPAN:
            raise ApiError(400, "range_too_long", f"start is more than {MAX_SPAN.days} days ago")
        return _Range(t0, None)
    t1 = parse_time(end, "end")
    if t1 < t0:
        raise ApiError(400, "invalid_time", "end is before start")
    if t1 - t0 > MAX_SPAN:
        raise ApiError(400, "range_too_long", f"the range is longer than {MAX_SPAN.days} days")
    # A VOD playlist never changes: one whose end is still to come could not be complete.
    not_in_future(t1, now, "end (leave it out to follow the live edge)")
    return _Range(t0, t1)


def _read(ctx: ApiContext, stream: StreamRef, asked: _Range) -> tuple[Plan, bool, int]:
    """(entries, ended, EVENT target). Whether the stream is still recorded is read before
    the rows: once it is not, every segment it had is catalogued, so ENDLIST never cuts one."""
    catalog = ctx.catalog
    if asked.end is not None:
        return plan(catalog, ctx.play_cache, stream, asked.start, asked.end), True, 0
    try:
        entry_point = catalog.get_entry_point(stream.app_id, stream.entry_point)
        target = event_target(entry_point.target_duration)
    except NotFoundError:
        target = 0  # an entry point deleted since: the smallest target that fits
    live = catalog.live_holder(stream) is not None or catalog.recording_open(stream)
    rows = plan(catalog, ctx.play_cache, stream, asked.start, asked.start + MAX_SPAN)
    return rows, not live, target


def _base_url(request: Request, ctx: ApiContext) -> str:
    return ctx.public_url or str(request.base_url).rstrip("/")


async def _answer(
    request: Request, ctx: ApiContext, stream: StreamRef, start: str, end: str | None
) -> Response:
    asked = play_range(start, end, ctx.clock())
    rows, ended, target = await asyncio.to_thread(_read, ctx, stream, asked)
    if rows.empty and ended:
        when = format_time(asked.start)
        span = f"between {when} and {format_time(asked.end)}" if asked.end else f"since {when}"
        raise ApiError(404, "not_found", f"no recording of {stream.stream_name} {span}")
    ttl = ctx.url_ttl
    if asked.end is not None:
        ttl += (asked.end - asked.start).total_seconds()
    expires, sig = sign_folder(ctx, stream, ttl)
    folder = quote(f"{stream.app_id}/{stream.region}/{stream.folder}", safe="/")
    prefix = f"{_base_url(request, ctx)}{SIGNED_PREFIX}/{expires}/{sig}/{folder}"
    # Bytes, one object: the ~3.6 MB of a day's playlist pass the middlewares as they are.
    body = render_plan(rows, TimeShift(prefix, event=asked.end is None, ended=ended, target=target))
    if ctx.viewers is not None:
        address = request.client.host if request.client else ""
        ctx.viewers.saw(stream, address, request.headers.get("user-agent", "")[:256])
    headers = {"Cache-Control": "no-cache"}
    if request.method == "HEAD":
        headers["Content-Length"] = str(len(body))
        return Response(status_code=200, headers=headers, media_type=PLAYLIST_TYPE)
    return Response(body, media_type=PLAYLIST_TYPE, headers=headers)


StartQuery = Annotated[
    str,
    Query(
        description="RFC 3339 with an offset: the playlist starts with the segment that holds "
        "this instant.",
        examples=["2026-11-23T12:00:00Z"],
    ),
]
EndQuery = Annotated[
    str | None,
    Query(
        description="RFC 3339 with an offset, not in the future: a VOD playlist up to the "
        "segment that holds this instant. Left out: an EVENT playlist that grows to the live "
        "edge while the stream is recorded, with EXT-X-ENDLIST once it is not.",
    ),
]


async def get_play(
    request: Request,
    appid: str,
    region: Region,
    ep: str,
    stream: str,
    start: StartQuery,
    customer_id: Annotated[str, Depends(authenticate)],
    end: EndQuery = None,
) -> Response:
    ctx = get_context(request)
    ref = play_stream(appid, region, ep, stream)
    await require_project(request, customer_id, appid)
    return await _answer(request, ctx, ref, start, end)


async def get_signed_play(
    request: Request,
    expires: Annotated[int, PathParam(description="Unix time the link expires at", ge=0)],
    sig: str,
    appid: str,
    region: Region,
    ep: str,
    stream: str,
    start: StartQuery,
    end: EndQuery = None,
) -> Response:
    ctx = get_context(request)
    ref = play_stream(appid, region, ep, stream)
    verify(ctx, expires, sig, appid, region, ref.file("x.m3u8"), client=client_address(request))
    return await _answer(request, ctx, ref, start, end)


class PlayLink(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(description="the signed /play/s/... playlist URL; no credentials needed")
    expiresAt: str = Field(description="when the playlist URL stops working, UTC")


async def get_play_link(
    request: Request,
    appid: str,
    region: Region,
    ep: str,
    stream: str,
    start: StartQuery,
    customer_id: Annotated[str, Depends(authenticate)],
    end: EndQuery = None,
    expires_in: Annotated[
        float | None,
        Query(
            alias="expiresIn",
            gt=0,
            le=MAX_LINK_LIFETIME,
            description="Seconds the playlist URL works, at most 7 days. Default: the "
            "link_lifetime setting with an end; max(link_lifetime, 24 h) without.",
        ),
    ] = None,
) -> PlayLink:
    ctx = get_context(request)
    ref = play_stream(appid, region, ep, stream)
    await require_project(request, customer_id, appid)
    play_range(start, end, ctx.clock())  # a link to a playlist that would be a 400: 400 now
    if expires_in is None:
        expires_in = ctx.url_ttl if end else max(ctx.url_ttl, EVENT_LINK_LIFETIME)
    expires, sig = sign_folder(ctx, ref, expires_in)
    tail = quote(f"{appid}/{region}/{ep}/{stream}.m3u8", safe="/")
    query = urlencode({"start": start, **({"end": end} if end else {})})
    url = f"{_base_url(request, ctx)}{PLAY_SIGNED_PREFIX}/{expires}/{sig}/{tail}?{query}"
    expires_at = datetime.fromtimestamp(expires, ctx.clock().tzinfo)
    return PlayLink(url=url, expiresAt=format_time(expires_at))


_PLAYLIST_CONTENT = {PLAYLIST_TYPE: {"schema": {"type": "string"}}}
_ERRORS_NOTES = {
    400: "Also reason range_too_long (over 7 days), and invalid_time for an end before the "
    "start, or a start or end later than now.",
    404: "Also: no recording of the stream in the range (and it is not being recorded).",
}


def _play_responses(signed: bool) -> dict[int | str, dict[str, object]]:
    notes = dict(_ERRORS_NOTES)
    if signed:
        notes[401] = "Here: reason bad_signature or expired."
    return {
        200: {
            "description": "The M3U8 playlist (EXT-X-PLAYLIST-TYPE VOD with an end, EVENT "
            "without), each segment an absolute signed /files/s/ URL.",
            "content": _PLAYLIST_CONTENT,
        },
        **error_responses(400, 401, 404, 429, 500, 503, 504, notes=notes),
    }


_PATH = PLAY_PREFIX + "/{appid}/{region}/{ep}/{stream}.m3u8"
_SIGNED_PATH = PLAY_SIGNED_PREFIX + "/{expires:int}/{sig}/{appid}/{region}/{ep}/{stream}.m3u8"
_DESCRIPTION = (
    f"{_EXTENSION} An HLS playlist of the stream from `start`, built from the catalog on "
    "each request: across recordings with EXT-X-DISCONTINUITY between them and "
    "EXT-X-PROGRAM-DATE-TIME wherever the time does not follow from the previous segment. "
    "Segment links are signed afresh on each request for the link_lifetime setting (VOD: "
    "plus the playlist's length)."
)
for _path, _endpoint, _summary, _signed in (
    (_SIGNED_PATH, get_signed_play, "Time-shift playlist by a signed link", True),
    (_PATH, get_play, "Time-shift playlist", False),
):
    router.add_api_route(
        _path,
        _endpoint,
        methods=["GET"],
        summary=_summary,
        description=_DESCRIPTION
        + (
            " No credentials: a signed link of the stream's folder (the `link` call)."
            if _signed
            else " With the API's credentials or the console's session."
        ),
        response_class=Response,
        responses=_play_responses(_signed),
        openapi_extra={"x-liverec-extension": True},
    )
    router.add_api_route(
        _path,
        _endpoint,
        methods=["HEAD"],
        name=f"{_endpoint.__name__}_head",
        include_in_schema=False,
        response_class=Response,
    )
router.add_api_route(
    PLAY_PREFIX + "/{appid}/{region}/{ep}/{stream}/link",
    get_play_link,
    methods=["GET"],
    summary="A signed time-shift playlist URL",
    description=f"{_EXTENSION} A `/play/s/...` URL of the time-shift playlist that works "
    "without credentials (hls.js, Safari, ffmpeg, a page of another origin) until "
    "`expiresAt`. The time range is checked as the playlist checks it.",
    response_model=PlayLink,
    responses=error_responses(400, 401, 404, 429, 500, 503, 504, notes=_ERRORS_NOTES),
    openapi_extra={"x-liverec-extension": True},
)
