"""RTMP ingest: the handshake and chunk-stream state machines (pure, fed bytes), message
decoding, the per-connection session, the asyncio server with its bounds on hostile
input, and FLS push authentication (pushauth.py).

Owns: the protocol. It asks a PublishHandler (service.py) whether a publish may go ahead
and feeds the MediaSink it gets back; it knows nothing of recording or the catalog.
May import: media, config, errors."""

from liverec.rtmp.server import Limits, RtmpServer
from liverec.rtmp.session import MediaSink, PublishHandler, PublishRequest

__all__ = ["Limits", "MediaSink", "PublishHandler", "PublishRequest", "RtmpServer"]
