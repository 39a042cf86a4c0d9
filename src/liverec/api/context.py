"""What the HTTP API runs on: built by service.py, passed to every route.

The API does not import post-processing (a sibling layer): service.py hands it the clip and
snapshot makers, which must fit the Protocols below (postprocess.ClipWriter and
postprocess.SnapshotWriter do)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from liverec.api.guard import Guard
from liverec.api.viewers import Viewers
from liverec.catalog import Catalog
from liverec.layout import StreamRef
from liverec.playback.cache import EntryCache
from liverec.storage import BlobStore


class ClipInfo(Protocol):
    """What a clip covers, as the cutting answer reports it."""

    @property
    def file_name(self) -> str: ...  # record/{entry_point}/{stream_name}/{fileName}
    @property
    def start(self) -> datetime: ...
    @property
    def end(self) -> datetime: ...
    @property
    def duration(self) -> float: ...  # seconds


class SnapshotInfo(Protocol):
    """The frame a snapshot shows, as the snapshot answer reports it."""

    @property
    def file_name(self) -> str: ...  # record/{entry_point}/{stream_name}/{fileName}
    @property
    def time(self) -> datetime: ...
    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...


class ClipMaker(Protocol):
    """Write the clip playlist; ConflictError for a taken fileName, NotFoundError when no
    recorded segment overlaps [start, end]."""

    def __call__(
        self,
        stream: StreamRef,
        *,
        file_name: str,
        start: datetime,
        end: datetime | None,
        precise: bool = False,
    ) -> ClipInfo: ...


class SnapshotMaker(Protocol):
    """Write the JPEG of the frame shown at `time` (None: the latest); ConflictError for a
    taken fileName, NotFoundError when no recording holds `time`."""

    def __call__(
        self, stream: StreamRef, *, file_name: str, time: datetime | None
    ) -> SnapshotInfo: ...


class ThumbnailMaker(Protocol):
    """The JPEG of a live stream's edge at most `width` wide; None when it is not live."""

    def __call__(self, stream: StreamRef, width: int) -> bytes | None: ...


class LiveSegmentLike(Protocol):
    @property
    def start_time(self) -> datetime: ...
    @property
    def data(self) -> bytes: ...


class LocalLive(Protocol):
    """This node's own live media (publishing.Publishing), for api/internal.py."""

    def live_segment(self, stream: StreamRef, at: datetime | None) -> LiveSegmentLike | None: ...


class ReadyReportLike(Protocol):
    @property
    def ready(self) -> bool: ...
    @property
    def failed(self) -> list[str]: ...
    @property
    def checks(self) -> dict[str, str]: ...


class Probes(Protocol):
    """What /readyz asks (readiness.Readiness): blocking, bounded in time."""

    def ready(self) -> ReadyReportLike: ...


class MetricsSink(Protocol):
    """What /metrics renders and the request middleware counts into (metrics.Metrics)."""

    def render(self) -> bytes: ...

    def api_request(self, route: str, method: str, status: int, seconds: float) -> None: ...


@dataclass(frozen=True)
class ApiContext:
    catalog: Catalog
    store: BlobStore
    region: str  # the one region this node records into
    url_key: bytes  # signs expiring file URLs; the same on every node
    clock: Callable[[], datetime]  # aware UTC
    make_clip: ClipMaker
    make_snapshot: SnapshotMaker
    node_id: str = ""
    hmac_skew: float = 300.0  # seconds a signed request's Date may be off
    url_ttl: float = 3600.0  # lifetime of the signed `url` fields we hand out
    redirect_downloads: bool = False  # object storage: 307 to a presigned URL
    # The base of the signed `url` fields (scheme, host, optional path prefix, no trailing
    # slash) when clients reach the API through a proxy; empty: the request's base URL.
    public_url: str = ""
    viewers: Viewers | None = None  # counts who fetches playlists and segments
    local_live: LocalLive | None = None  # this node's live media, for other nodes
    node_key: bytes = b""  # signs calls between nodes (api/internal.py)
    # Health and metrics (api/health.py, api/observe.py); None: /readyz answers ready with
    # no checks, /metrics 404. `metrics_token` set: /metrics wants it as a Bearer token.
    probes: Probes | None = None
    metrics: MetricsSink | None = None
    metrics_token: str = ""
    # Origins whose pages may read answers (config.parse_cors_origins): ("*",) any, without
    # credentials; else those only, with credentials (api/app.py's CORS middleware).
    cors_origins: tuple[str, ...] = ("*",)
    # Where publishers push (`rtmp://host:port`, no path), for the console's "copy for OBS";
    # a wildcard host (0.0.0.0, [::]) is replaced by the host the page was reached at.
    rtmp_url: str = ""
    # Failed-credential and signed-link limits, the HMAC replay cache (api/guard.py); None:
    # none (tests that build a context by hand).
    guard: Guard | None = None
    # Thumbnails of live streams (postprocess.LiveThumbnails); None: the route answers 404.
    thumbnails: ThumbnailMaker | None = None
    # Closed recordings' time-shift playlist entries (playback/cache.py), by default 32 MiB.
    play_cache: EntryCache = field(default_factory=EntryCache)
