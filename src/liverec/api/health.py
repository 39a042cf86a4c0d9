"""Health and metrics (liverec extensions, not in FLS):

    GET /healthz   the process is alive and serving HTTP; touches nothing else
    GET /readyz    the node can work: the catalog and the store answer, the disk has its
                   minimum free space (readiness.py); 503 naming what failed, within a
                   bounded time (the checks' timeout), never a hang
    GET /metrics   Prometheus text (metrics.py); behind `Authorization: Bearer <token>`
                   when the `metrics_token` setting is set

None of them takes FLS credentials: a load balancer or Prometheus asks them. They answer
nothing about projects, streams or files."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from liverec.api.context import ApiContext
from liverec.api.errors import ApiError, error_responses

__all__ = ["METRICS_CONTENT_TYPE", "router"]

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_EXT = "liverec extension: "
_TAG = "health and metrics (liverec extension)"

router = APIRouter(tags=[_TAG])


class Alive(BaseModel):
    status: str = Field(default="ok", description="always `ok`")
    node: str = Field(description="this node's ID")


class Ready(BaseModel):
    status: str = Field(default="ready", description="always `ready`")
    checks: dict[str, str] = Field(description="each dependency checked: `ok`")


class NotReady(BaseModel):
    message: str = Field(description="what is not ready, in words")
    reason: str = Field(default="not_ready", description="always `not_ready`")
    failed: list[str] = Field(description="the dependencies that failed: catalog, storage, disk")
    checks: dict[str, str] = Field(description="each dependency: `ok`, or what is wrong with it")


def _context(request: Request) -> ApiContext | None:
    ctx = getattr(request.app.state, "ctx", None)
    return ctx if isinstance(ctx, ApiContext) else None


@router.get(
    "/healthz",
    summary="Liveness",
    description=_EXT + "the process is alive and serving HTTP. No credentials; touches "
    "neither the catalog nor the store.",
)
async def healthz(request: Request) -> Alive:
    ctx = _context(request)
    return Alive(node=ctx.node_id if ctx else "")


@router.get(
    "/readyz",
    summary="Readiness",
    description=_EXT + "the node can do its work: the catalog and the store answer and the "
    "storage disk has at least `storage_min_free` bytes free. No credentials. 503 names "
    "the dependencies that failed; a dependency that does not answer within the check "
    "timeout (2 s) counts as failed.",
    response_model=Ready,
    responses={503: {"model": NotReady, "description": "a dependency is not usable"}},
)
def readyz(request: Request) -> Ready | JSONResponse:
    # A plain `def`: the checks block (bounded), so FastAPI runs this in a worker thread.
    ctx = _context(request)
    if ctx is None or ctx.probes is None:
        return Ready(checks={})
    report = ctx.probes.ready()
    if report.ready:
        return Ready(checks=report.checks)
    failed = report.failed
    body = NotReady(
        message="not ready: " + "; ".join(f"{name}: {report.checks[name]}" for name in failed),
        failed=failed,
        checks=report.checks,
    )
    return JSONResponse(body.model_dump(), status_code=503)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    description=_EXT + "this node's metrics in Prometheus text format (see the README "
    "for the names). With the `metrics_token` setting, it wants "
    "`Authorization: Bearer <token>`; without, no credentials.",
    response_class=Response,
    responses={
        200: {
            "description": "the metrics",
            "content": {METRICS_CONTENT_TYPE.split(";")[0]: {"schema": {"type": "string"}}},
        },
        **error_responses(401, 404),
    },
)
def metrics(request: Request) -> Response:
    # A plain `def`: rendering reads the parts' state from a worker thread, off the loop
    # that ingest runs on.
    ctx = _context(request)
    if ctx is None or ctx.metrics is None:
        raise ApiError(404, "not_found", "metrics are not served by this app")
    if ctx.metrics_token:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode("utf-8", "replace"), ctx.metrics_token.encode()
        ):
            raise ApiError(
                401,
                "unauthorized",
                "metrics need Authorization: Bearer <metrics token>",
                headers={"WWW-Authenticate": 'Bearer realm="liverec metrics"'},
            )
    return Response(ctx.metrics.render(), media_type=METRICS_CONTENT_TYPE)
