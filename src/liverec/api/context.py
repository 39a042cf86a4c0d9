"""What the HTTP API runs on: built by service.py, passed to every route."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from liverec.catalog import Catalog
from liverec.storage import BlobStore


@dataclass(frozen=True)
class ApiContext:
    catalog: Catalog
    store: BlobStore
    region: str  # the one region this node records into and serves
    url_key: bytes  # signs expiring file URLs; the same on every node
    clock: Callable[[], datetime]  # aware UTC
    node_id: str = ""
    hmac_skew: float = 300.0  # seconds a signed request's Date may be off
    url_ttl: float = 3600.0  # lifetime of the signed `url` fields we hand out
    redirect_downloads: bool = False  # object storage: 307 to a presigned URL
