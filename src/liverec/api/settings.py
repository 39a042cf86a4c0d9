"""FLS recording-output settings per entry point and region: standard recording's HLS and
MP4 outputs, and standard (periodic) snapshots.

Applied to publishes that start after the change, and to live ones at their next keyframe
(the node holding each live publish polls the catalog every second)."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from liverec.api.access import Scope, stream_scope
from liverec.api.auth import get_context
from liverec.api.errors import ApiError
from liverec.catalog import RecordOutputs, SnapshotSettings
from liverec.errors import InvalidValueError

EP = "/v1/projects/{appid}/fls/entry_points/{entry_point}/settings"
router = APIRouter(prefix=EP, tags=["recording settings"])


class Enabled(BaseModel):
    model_config = ConfigDict(extra="ignore")
    enabled: StrictBool


class RecordConfig(BaseModel):
    hlsConfig: Enabled
    mp4Config: Enabled


class RecordConfigPatch(BaseModel):
    model_config = ConfigDict(extra="ignore")
    hlsConfig: Enabled | None = None
    mp4Config: Enabled | None = None


def _record_config(outputs: RecordOutputs) -> RecordConfig:
    return RecordConfig(
        hlsConfig=Enabled(enabled=outputs.hls), mp4Config=Enabled(enabled=outputs.mp4)
    )


@router.get("/record/standard/regions/{region}", response_model=RecordConfig)
async def get_record_config(
    request: Request, scope: Annotated[Scope, Depends(stream_scope)]
) -> RecordConfig:
    """The entry point's standard-recording outputs in the region (default: HLS on, MP4
    off)."""
    outputs = await asyncio.to_thread(
        get_context(request).catalog.record_outputs, scope.app_id, scope.entry_point, scope.region
    )
    return _record_config(outputs)


@router.patch("/record/standard/regions/{region}", response_model=RecordConfig)
async def set_record_config(
    request: Request, body: RecordConfigPatch, scope: Annotated[Scope, Depends(stream_scope)]
) -> RecordConfig:
    """Switch the HLS and MP4 outputs (a part left out keeps its value). MP4 record files
    are `record/{entry_point}/{stream}/{sessionid}_{sessiondate}_{sliceid}_{filedate}.mp4`,
    a new slice every hour or 2 GiB; listed by the mp4_list extension call."""
    outputs = await asyncio.to_thread(
        get_context(request).catalog.set_record_outputs,
        scope.app_id,
        scope.entry_point,
        scope.region,
        hls=None if body.hlsConfig is None else body.hlsConfig.enabled,
        mp4=None if body.mp4Config is None else body.mp4Config.enabled,
    )
    return _record_config(outputs)


class SnapshotConfig(BaseModel):
    enabled: bool
    enableModeration: bool = Field(
        description="stored and answered; liverec does no content moderation"
    )
    snapshotInterval: int = Field(description="seconds between snapshots, 5-300")


class SnapshotConfigPatch(BaseModel):
    model_config = ConfigDict(extra="ignore")
    enabled: StrictBool
    snapshotInterval: StrictInt | None = Field(None, description="seconds, 5-300 (default 10)")
    enableModeration: StrictBool | None = Field(
        None, description="accepted and stored; liverec does no content moderation"
    )


def _snapshot_config(settings: SnapshotSettings) -> SnapshotConfig:
    return SnapshotConfig(
        enabled=settings.enabled,
        enableModeration=settings.moderation,
        snapshotInterval=settings.interval,
    )


@router.get("/snapshot/standard/regions/{region}", response_model=SnapshotConfig)
async def get_snapshot_config(
    request: Request, scope: Annotated[Scope, Depends(stream_scope)]
) -> SnapshotConfig:
    """The entry point's periodic snapshots in the region (default: off, every 10 s)."""
    settings = await asyncio.to_thread(
        get_context(request).catalog.snapshot_settings,
        scope.app_id,
        scope.entry_point,
        scope.region,
    )
    return _snapshot_config(settings)


@router.patch("/snapshot/standard/regions/{region}", response_model=SnapshotConfig)
async def set_snapshot_config(
    request: Request, body: SnapshotConfigPatch, scope: Annotated[Scope, Depends(stream_scope)]
) -> SnapshotConfig:
    """Periodic snapshots: while enabled, every live stream of the entry point gets a JPEG
    every snapshotInterval seconds, `snapshot/{entry_point}/{stream}/{sessionid}_
    {sessiondate}_{filedate}.jpg`, taken from live media at a keyframe; listed by the
    snapshot list extension call. enableModeration is accepted and stored only: liverec
    does no content moderation."""
    try:
        settings = await asyncio.to_thread(
            get_context(request).catalog.set_snapshot_settings,
            scope.app_id,
            scope.entry_point,
            scope.region,
            enabled=body.enabled,
            interval=body.snapshotInterval,
            moderation=body.enableModeration,
        )
    except InvalidValueError as exc:
        raise ApiError(400, "invalid_parameter", str(exc)) from None
    return _snapshot_config(settings)
