"""The FastAPI application factory."""

from __future__ import annotations

from typing import Protocol

from fastapi import FastAPI

from liverec import __version__


class Backend(Protocol):
    """What the HTTP API needs from the running service."""

    node_id: str


def create_app(backend: Backend) -> FastAPI:
    app = FastAPI(title="liverec", version=__version__)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "node": backend.node_id}

    return app
