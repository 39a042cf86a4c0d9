"""The live edge of every stream, from any node: a postprocess.LiveSource.

A snapshot at an instant inside the segment being written needs the recorder's media,
which only the node that holds the publish has. `LiveMedia` asks this node's live
publishes first; for a stream another node holds (the catalog's live lease says which), it
fetches that node's uncatalogued segment over its internal API (api/internal.py), signed
with a key every node derives from the shared secret key, and decodes it here. A node that
cannot be reached is reported as "no live media" (the snapshot answers 404), not an error."""

from __future__ import annotations

import logging
import ssl
import urllib.error
import urllib.request
from datetime import datetime
from typing import Protocol
from urllib.parse import quote, urlencode

from liverec.api.internal import SEGMENT_START, internal_headers, live_segment_path
from liverec.errors import MediaError
from liverec.layout import StreamRef
from liverec.media.m3u8 import format_time, parse_time
from liverec.postprocess import LiveSegment, LiveSource

log = logging.getLogger(__name__)

MAX_SEGMENT_BYTES = 64 * 1024 * 1024  # more than any segment the segmenter lets grow


class NodeDirectory(Protocol):
    def live_holder(self, stream: StreamRef) -> str | None: ...

    def node_api_url(self, node_id: str) -> str | None: ...


class LiveMedia:
    """A LiveSource: this node's live publishes, then the node that holds the stream."""

    def __init__(
        self,
        local: LiveSource,
        nodes: NodeDirectory,
        *,
        node_id: str,
        key: bytes,
        timeout: float = 5.0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.tls = tls  # for https node URLs; None: the system's trust store
        self.local = local
        self.nodes = nodes
        self.node_id = node_id
        self.key = key
        self.timeout = timeout

    def live_segment(self, stream: StreamRef, at: datetime | None) -> LiveSegment | None:
        found = self.local.live_segment(stream, at)
        if found is not None:
            return found
        holder = self.nodes.live_holder(stream)
        if holder is None or holder == self.node_id:
            return None
        base = self.nodes.node_api_url(holder)
        if base is None:
            return None
        return self._fetch(base, stream, at)

    def _fetch(self, base: str, stream: StreamRef, at: datetime | None) -> LiveSegment | None:
        path = live_segment_path(stream)
        query = urlencode({"at": format_time(at)}) if at is not None else ""
        target = path + (f"?{query}" if query else "")
        request = urllib.request.Request(  # noqa: S310 (the URL is a node's, from the catalog)
            base.rstrip("/") + quote(target, safe="/?=&:%"),
            headers=internal_headers(self.key, "GET", target),
        )
        try:
            with urllib.request.urlopen(  # noqa: S310
                request, timeout=self.timeout, context=self.tls
            ) as resp:
                data = resp.read(MAX_SEGMENT_BYTES + 1)
                start = resp.headers.get(SEGMENT_START, "")
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                log.warning("live media of %s from %s: HTTP %d", stream, base, exc.code)
            return None
        except (OSError, ValueError) as exc:
            log.warning("live media of %s from %s failed: %s", stream, base, exc)
            return None
        if len(data) > MAX_SEGMENT_BYTES or not start:
            return None
        try:
            return LiveSegment(parse_time(start), data)
        except MediaError:
            return None
