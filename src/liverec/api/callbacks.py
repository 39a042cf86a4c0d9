"""Callback settings and failed callbacks (liverec extensions), and FLS's publish webhook
settings (`settings/streamauth/webhook`), under `/v1/projects/{appid}/fls/settings`.

What liverec sends to the configured URLs is documented on the PUT and PATCH calls as
OpenAPI callbacks: the method, headers and JSON bodies, exactly."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from liverec.api.access import project_scope
from liverec.api.auth import get_context
from liverec.api.errors import API_ERRORS, BODY_ERRORS, ApiError, error_responses
from liverec.api.times import format_time
from liverec.catalog import CallbackSettings, DeadNotice, WebhookSettings
from liverec.errors import InvalidValueError, NotFoundError
from liverec.events import EVENT_NAMES, FLS_EVENT_TYPES, SUBSCRIBABLE_EVENT_TYPES, EventType

SETTINGS = "/v1/projects/{appid}/fls/settings"
MAX_ID = 2**63 - 1  # a catalog id (a signed 64-bit integer): larger is a 400, not a 500
router = APIRouter(prefix=SETTINGS)

_EXT = "liverec extension: "
_CALLBACK_TAG = "callbacks (liverec extension)"
_NO_ENTRY_POINT = "Or no such entry point (reason entry_point_not_found)."
_EVENTS_DOC = (
    "FLS's event types: 1 publish_start, 2 publish_end, 11 publish_media_info, 101 "
    "new_standard_record_file, 102 new_standard_snapshot_file; liverec's extensions: 1001 "
    "new_clip_file (a clip made by the cutting call), 1002 new_api_snapshot_file (a snapshot "
    "made by the snapshot call), 1003 record_file_deleted (a recording deleted by retention)."
)


# -- what liverec sends (OpenAPI callbacks) ------------------------------------------------


class NoticePayload(BaseModel):
    """The payload of a callback: `eventName`, `entryPoint` and `streamName` always, and
    the fields of its event type. Numbers are JSON numbers (FLS's table types them as
    integers; Agora's own example of event 11 sends them as strings)."""

    model_config = ConfigDict(extra="allow")
    eventName: str = Field(description="publish_start, publish_end, publish_media_info, ...")
    entryPoint: str
    streamName: str
    domain: str | None = Field(None, description="1, 2, 11: the host the publisher pushed to")
    clientIp: str | None = Field(None, description="1, 2: the publisher's address")
    nodeIp: str | None = Field(None, description="1, 2: the address of the liverec node")
    videoCodec: str | None = Field(None, description='11: "H264", or "" without video')
    audioCodec: str | None = Field(None, description='11: "AAC", or "" without audio')
    videoFps: int | None = Field(None, description="11: frames/s from onMetaData, 0: unknown")
    videoRate: int | None = Field(None, description="11: bits/s from onMetaData, 0: unknown")
    width: int | None = Field(None, description="11: pixels")
    height: int | None = Field(None, description="11: pixels")
    fileName: str | None = Field(
        None,
        description="101: `record/{ep}/{stream}/{sessionid}_{sessiondate}.m3u8` (an HLS "
        "recording, once closed) or `..._{sliceid}_{filedate}.mp4` (an MP4 slice, once "
        "complete); 102: `snapshot/{ep}/{stream}/{sessionid}_{sessiondate}_{filedate}.jpg`; "
        "1001, 1002, 1003: the file's name under the project root",
    )
    startTime: str | None = Field(None, description="1001: RFC 3339, what the clip covers")
    endTime: str | None = Field(None, description="1001: RFC 3339")
    time: str | None = Field(None, description="1002: RFC 3339, the frame's time")
    reason: str | None = Field(None, description='1003: "retention"')


class Notice(BaseModel):
    noticeId: str = Field(description="the same on every try of one event (deduplicate by it)")
    productId: int = Field(7, description="7: Fusion Live Streaming")
    eventType: int = Field(description=_EVENTS_DOC)
    notifyMs: int = Field(description="Unix ms of this try (each retry has a new one)")
    payload: NoticePayload


class WebhookRequest(BaseModel):
    host: str = Field(description="the push domain: the host of the publisher's tcUrl")
    entryPoint: str
    streamName: str
    cdnIp: str = Field(description="the address of the liverec node asking")
    clientIp: str = Field(description="the publisher's address")
    token: str = Field(description='the push URL query\'s `token` ("" when it has none)')
    requestId: str = Field(description="unique per request")


_callbacks = APIRouter()


@_callbacks.post(
    "{$request.body#/url}",
    response_model=None,
    response_description="Any 2xx: delivered (the answer's body is not read).",
    responses={"default": {"description": "Any other answer, or none in 10 s: retried."}},
)
def callback_notice(
    body: Notice,
    signature: Annotated[
        str, Header(alias="Agora-Signature", description="hex HMAC-SHA1 of the raw body")
    ],
    signature_v2: Annotated[
        str, Header(alias="Agora-Signature-V2", description="hex HMAC-SHA256 of the raw body")
    ],
) -> None:
    """liverec POSTs each event to the URL with `Content-Type:
    application/json;charset=utf-8`, signed with the secret (HMAC keyed with it, of the
    exact raw body). Any 2xx answer within 10 s is success; anything else is retried
    with exponential backoff (2 s doubling, at most 5 min between tries, with jitter) for
    24 hours, then kept as a failed callback (GET .../callback/failed). At least once: a
    receiver may get an event twice (same noticeId). The events of one stream are sent one
    at a time, in order."""


_webhook_calls = APIRouter()


@_webhook_calls.post(
    "{$request.body#/url}",
    response_model=None,
    response_description="The publish may go ahead.",
    responses={"default": {"description": "Any other status (401: FLS's deny): refused."}},
)
def webhook_request(
    body: WebhookRequest,
    signature: Annotated[
        str | None,
        Header(alias="Agora-Signature", description="hex HMAC-SHA1 (when a secret is set)"),
    ] = None,
    signature_v2: Annotated[
        str | None,
        Header(alias="Agora-Signature-V2", description="hex HMAC-SHA256 (likewise)"),
    ] = None,
) -> None:
    """Sent for each publish while the webhook is enabled, with `Content-Type:
    application/json;charset=utf-8`, signed like callbacks. 200 allows the publish; any
    other status (401: deny) refuses it with RTMP status NetStream.Publish.Unauthorized.
    No answer within 3 s: refused (unless the node runs with webhook_fail_open). An answer
    is reused for 5 s for the same stream, client address and token."""


# -- callback settings ---------------------------------------------------------------------


class CallbackConfigRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    url: StrictStr = Field(description="http:// or https:// URL the events are POSTed to")
    secret: StrictStr | None = Field(
        None, description="signs the events; needed the first time, left out: kept"
    )
    eventTypes: list[StrictInt] | None = Field(
        None, description=f"the events to send (default: FLS's 1, 2, 11, 101, 102). {_EVENTS_DOC}"
    )
    enabled: StrictBool = True
    entryPoint: StrictStr | None = Field(
        None,
        description="set an entry point's own configuration, which replaces the project's "
        "for its streams (also as a query parameter)",
    )


class CallbackConfig(BaseModel):
    entryPoint: str | None = Field(description="whose configuration: null for the project's")
    url: str
    eventTypes: list[int]
    enabled: bool
    secretSet: bool = Field(description="a secret is stored (it is never returned)")


def _config(settings: CallbackSettings) -> CallbackConfig:
    return CallbackConfig(
        entryPoint=settings.entry_point,
        url=settings.url,
        eventTypes=list(settings.event_types),
        enabled=settings.enabled,
        secretSet=bool(settings.secret),
    )


EntryPointQuery = Annotated[
    str | None,
    Query(
        alias="entryPoint",
        description="an entry point's configuration instead of the project's",
    ),
]


def _not_found_entry_point(entry_point: str) -> ApiError:
    return ApiError(
        404, "entry_point_not_found", f"entry point {entry_point[:64]!r} does not exist"
    )


@router.put(
    "/callback",
    response_model=CallbackConfig,
    tags=[_CALLBACK_TAG],
    callbacks=_callbacks.routes,
    description=_EXT + "where the project's events go (FLS configures this in its console). "
    "A project has one configuration; an entry point may have its own (`entryPoint`), "
    "which replaces the project's as a whole for that entry point's streams. Events of "
    "streams with no configuration, or a disabled one, are not kept.",
    responses=error_responses(
        *BODY_ERRORS,
        notes={
            400: "Also for an unknown event type, a URL that is not http(s), no secret the "
            "first time, or two different entryPoint values.",
            404: _NO_ENTRY_POINT,
        },
    ),
)
async def put_callback(
    request: Request,
    body: CallbackConfigRequest,
    appid: Annotated[str, Depends(project_scope)],
    entry_point: EntryPointQuery = None,
) -> CallbackConfig:
    if entry_point and body.entryPoint and entry_point != body.entryPoint:
        raise ApiError(400, "invalid_parameter", "entryPoint differs in the query and the body")
    ep = entry_point or body.entryPoint or None
    types = list(FLS_EVENT_TYPES) if body.eventTypes is None else body.eventTypes
    unknown = sorted(set(types) - set(SUBSCRIBABLE_EVENT_TYPES))
    if unknown:
        raise ApiError(400, "invalid_parameter", f"unknown event types {unknown[:10]}")
    try:
        settings = await asyncio.to_thread(
            get_context(request).catalog.set_callback_settings,
            appid,
            ep,
            url=body.url,
            secret=body.secret,
            event_types=types,
            enabled=body.enabled,
        )
    except NotFoundError:
        raise _not_found_entry_point(ep or "") from None
    except InvalidValueError as exc:
        raise ApiError(400, "invalid_parameter", str(exc)) from None
    return _config(settings)


@router.get(
    "/callback",
    response_model=CallbackConfig,
    tags=[_CALLBACK_TAG],
    description=_EXT + "the configuration that applies: with `entryPoint`, the entry "
    "point's own, else the project's (`entryPoint` null in the answer).",
    responses=error_responses(
        *API_ERRORS, notes={404: "Or none is set (reason callback_not_set)."}
    ),
)
async def get_callback(
    request: Request,
    appid: Annotated[str, Depends(project_scope)],
    entry_point: EntryPointQuery = None,
) -> CallbackConfig:
    settings = await asyncio.to_thread(
        get_context(request).catalog.callback_settings, appid, entry_point or None
    )
    if settings is None:
        raise ApiError(404, "callback_not_set", "no callback is configured")
    return _config(settings)


class Ok(BaseModel):
    message: str


@router.delete(
    "/callback",
    response_model=Ok,
    tags=[_CALLBACK_TAG],
    description=_EXT + "remove the project's configuration, or with `entryPoint` the entry "
    "point's own (its streams then use the project's). Events still queued for it are kept "
    "as failed callbacks when their turn comes.",
    responses=error_responses(
        *API_ERRORS, notes={404: "Or there is none (reason callback_not_set)."}
    ),
)
async def delete_callback(
    request: Request,
    appid: Annotated[str, Depends(project_scope)],
    entry_point: EntryPointQuery = None,
) -> Ok:
    gone = await asyncio.to_thread(
        get_context(request).catalog.delete_callback_settings, appid, entry_point or None
    )
    if not gone:
        raise ApiError(404, "callback_not_set", "no such callback configuration")
    return Ok(message="callback configuration deleted")


# -- failed callbacks ----------------------------------------------------------------------


class FailedCallback(BaseModel):
    id: int = Field(description="redeliver it with POST .../callback/failed/redeliver?id=")
    noticeId: str
    eventType: int
    eventName: str
    entryPoint: str
    streamName: str
    payload: dict[str, Any]
    createdTime: str = Field(description="when the event happened")
    failedTime: str = Field(description="when it was given up")
    attempts: int
    lastError: str = Field(description="what the last try got, e.g. HTTP 500")


class FailedCallbackList(BaseModel):
    failedList: list[FailedCallback]


def _event_name(event_type: int) -> str:
    """FLS's name of a callback event type ("" for a type it does not name)."""
    return EVENT_NAMES[EventType(event_type)] if event_type in EVENT_NAMES else ""


def _failed(dead: DeadNotice) -> FailedCallback:
    try:
        payload = json.loads(dead.payload)
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        payload = {}
    return FailedCallback(
        id=dead.id,
        noticeId=dead.notice_id,
        eventType=dead.event_type,
        eventName=_event_name(dead.event_type) or str(payload.get("eventName", "")),
        entryPoint=dead.entry_point,
        streamName=dead.stream_name,
        payload=payload,
        createdTime=format_time(dead.created_at),
        failedTime=format_time(dead.failed_at),
        attempts=dead.attempts,
        lastError=dead.last_error,
    )


@router.get(
    "/callback/failed",
    response_model=FailedCallbackList,
    tags=[_CALLBACK_TAG],
    description=_EXT + "the project's callbacks that were given up (still failing 24 hours "
    "after the event, or sent while no configuration applied), newest first.",
    responses=error_responses(*API_ERRORS),
)
async def failed_callbacks(
    request: Request,
    appid: Annotated[str, Depends(project_scope)],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="only ids below this (paging)")
    ] = None,
) -> FailedCallbackList:
    dead = await asyncio.to_thread(
        get_context(request).catalog.dead_notices, appid, limit=limit, before_id=before
    )
    return FailedCallbackList(failedList=[_failed(d) for d in dead])


class DeliveredCallback(BaseModel):
    id: int
    noticeId: str
    eventType: int
    eventName: str
    entryPoint: str
    streamName: str
    createdTime: str = Field(description="when the event happened")
    deliveredTime: str = Field(description="when the receiver took it")
    attempts: int = Field(description="tries it took, this one included")


class DeliveredCallbackList(BaseModel):
    deliveredList: list[DeliveredCallback]


@router.get(
    "/callback/delivered",
    response_model=DeliveredCallbackList,
    tags=[_CALLBACK_TAG],
    description=_EXT + "the project's callbacks its receivers took, newest first (the "
    "newest 10,000 of the server are kept).",
    responses=error_responses(*API_ERRORS),
)
async def delivered_callbacks(
    request: Request,
    appid: Annotated[str, Depends(project_scope)],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="only ids below this (paging)")
    ] = None,
) -> DeliveredCallbackList:
    found = await asyncio.to_thread(
        get_context(request).catalog.delivered_notices, appid, limit=limit, before_id=before
    )
    return DeliveredCallbackList(
        deliveredList=[
            DeliveredCallback(
                id=d.id,
                noticeId=d.notice_id,
                eventType=d.event_type,
                eventName=_event_name(d.event_type),
                entryPoint=d.entry_point,
                streamName=d.stream_name,
                createdTime=format_time(d.created_at),
                deliveredTime=format_time(d.delivered_at),
                attempts=d.attempts,
            )
            for d in found
        ]
    )


@router.post(
    "/callback/failed/redeliver",
    response_model=Ok,
    tags=[_CALLBACK_TAG],
    description=_EXT + "send a failed callback again: it goes after its stream's queued "
    "events, with its noticeId and a new 24-hour retry window.",
    responses=error_responses(
        *API_ERRORS, notes={404: "Or no such failed callback (reason callback_not_found)."}
    ),
)
async def redeliver_callback(
    request: Request,
    appid: Annotated[str, Depends(project_scope)],
    id: Annotated[int, Query(ge=1, le=MAX_ID, description="the failed callback's id")],
) -> Ok:
    try:
        await asyncio.to_thread(get_context(request).catalog.redeliver_notice, appid, id)
    except NotFoundError:
        raise ApiError(404, "callback_not_found", f"no failed callback {id}") from None
    return Ok(message=f"failed callback {id} queued again")


# -- the publish webhook (FLS) -------------------------------------------------------------


class WebhookPatch(BaseModel):
    model_config = ConfigDict(extra="ignore")
    enabled: StrictBool
    url: StrictStr | None = Field(None, description="left out: kept; needed to enable")
    secret: StrictStr | None = Field(
        None, description='signs the requests; left out: kept, "": none'
    )


class WebhookConfig(BaseModel):
    enabled: bool
    url: str
    secret: str = Field(description="as FLS answers it")


def _webhook(settings: WebhookSettings) -> WebhookConfig:
    return WebhookConfig(enabled=settings.enabled, url=settings.url, secret=settings.secret)


@router.patch(
    "/streamauth/webhook",
    response_model=WebhookConfig,
    tags=["stream authentication"],
    callbacks=_webhook_calls.routes,
    responses=error_responses(
        *BODY_ERRORS,
        notes={400: "Also when it would be enabled without a url, or the url is not http(s)."},
    ),
)
async def patch_webhook(
    request: Request, body: WebhookPatch, appid: Annotated[str, Depends(project_scope)]
) -> WebhookConfig:
    """Origin (webhook) authentication of publishes: while enabled, a publish to any entry
    point of the project goes ahead only if `url` answers 200 (see the callback for what
    liverec sends)."""
    try:
        settings = await asyncio.to_thread(
            get_context(request).catalog.set_publish_webhook,
            appid,
            enabled=body.enabled,
            url=body.url,
            secret=body.secret,
        )
    except InvalidValueError as exc:
        raise ApiError(400, "invalid_parameter", str(exc)) from None
    return _webhook(settings)


@router.get(
    "/streamauth/webhook",
    response_model=WebhookConfig,
    tags=["stream authentication"],
    responses=error_responses(*API_ERRORS),
)
async def get_webhook(
    request: Request, appid: Annotated[str, Depends(project_scope)]
) -> WebhookConfig:
    """The project's publish webhook (default: off, no url)."""
    settings = await asyncio.to_thread(get_context(request).catalog.publish_webhook, appid)
    return _webhook(settings)
