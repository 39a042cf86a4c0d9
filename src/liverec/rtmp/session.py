"""One RTMP connection's command logic: connect, createStream, publish, media, unpublish.

The session is fed whole RTMP messages and answers with messages to send; it does no socket
I/O itself (the asyncio server does). Publishing is authorised through a `PublishHandler` the
service provides, and media goes to the `MediaSink` that handler returns."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from liverec.errors import LiverecError, MediaError, ProtocolError, RefusedError
from liverec.logs import clip
from liverec.media import amf0
from liverec.rtmp import messages as m
from liverec.rtmp.chunk import Message

log = logging.getLogger(__name__)

WINDOW_ACK_SIZE = 2_500_000
OUT_CHUNK_SIZE = 4096
PUBLISH_STREAM_ID = 1
REJECTED = "NetStream.Publish.Rejected"
# What the encoder is told when the publish fails on our side (storage, catalog, a bug).
_INTERNAL = RefusedError(REJECTED, "internal error")
# A refusal's description may quote what the client sent: logged this long at most.
DESCRIPTION_CLIP = 256


@dataclass(frozen=True, slots=True)
class PublishRequest:
    """What a publisher asked for, as the protocol carried it."""

    app: str  # the entry point, query string removed
    stream_name: str  # query string removed
    query: dict[str, str]  # from the stream name, the app and the tcUrl (first wins)
    tc_url: str
    host: str  # tcUrl host, for the push-domain -> project mapping
    peer: str


class MediaSink(Protocol):
    """Receives one publish's media; timestamps are unwrapped milliseconds."""

    def on_metadata(self, metadata: dict[str, Any]) -> None: ...

    def on_audio(self, timestamp: int, payload: bytes) -> None: ...

    def on_video(self, timestamp: int, payload: bytes) -> None: ...

    async def close(self) -> None: ...


class PublishHandler(Protocol):
    async def start_publish(self, request: PublishRequest) -> MediaSink:
        """Return the sink for this publish, or raise RefusedError."""
        ...


class TimestampUnwrapper:
    """Turns 32-bit RTMP timestamps into a signed 64-bit timeline.

    Each step is the signed 32-bit difference to the previous one, so wrap-around continues
    upward and a jump back stays a jump back (the recorder turns it into a discontinuity)."""

    def __init__(self) -> None:
        self._last_raw: int | None = None
        self._last = 0

    def __call__(self, raw: int) -> int:
        if self._last_raw is None:
            self._last = raw
        else:
            delta = ((raw - self._last_raw + 0x80000000) & 0xFFFFFFFF) - 0x80000000
            self._last += delta
        self._last_raw = raw
        return self._last


def _status(code: str, description: str, level: str = "status") -> dict[str, amf0.Amf0Value]:
    return {"level": level, "code": code, "description": description}


def split_query(value: str) -> tuple[str, dict[str, str]]:
    path, _, query = value.partition("?")
    return path, dict(parse_qsl(query, keep_blank_values=True))


class Session:
    """State of one connection. `handle()` returns the messages to send back.

    After `handle()`, `closing` tells the server to flush and close the connection (an error
    status, if any, is the last message returned). `publishes_ended` counts the publishes that
    have ended: a connection may publish again after one ends, and the server's idle deadline
    restarts from each end."""

    def __init__(self, handler: PublishHandler, peer: str) -> None:
        self.handler = handler
        self.peer = peer
        self.app = ""
        self.tc_url = ""
        self.app_query: dict[str, str] = {}
        self.sink: MediaSink | None = None
        self.publishing = False
        self.closing = False
        # Acknowledge received bytes only once the publisher set a window (as nginx-rtmp):
        # ffmpeg never does, reads our messages only now and then, and closes right after
        # its last write; an unread acknowledgement turns that close into a reset that
        # throws away the media still in flight, the end of the push.
        self.peer_window = 0
        self.stream_name = ""
        # The message stream the publish came on: its statuses go there, as clients match
        # them by it (GStreamer's rtmp2sink waits for onStatus on that stream id only).
        self.stream_id = PUBLISH_STREAM_ID
        self.publishes_ended = 0
        self.connected = False  # `connect` was answered
        self._unwrap = TimestampUnwrapper()

    async def handle(self, msg: Message) -> list[Message]:
        kind = msg.type_id
        if kind in (m.AUDIO, m.VIDEO):
            return await self._media(kind, msg.timestamp, msg.payload)
        if kind == m.AGGREGATE:
            out: list[Message] = []
            for sub in m.parse_aggregate(msg):
                if sub.type_id in (m.AUDIO, m.VIDEO) and not self.closing:
                    out += await self._media(sub.type_id, sub.timestamp, sub.payload)
            return out
        if kind in (m.COMMAND_AMF0, m.COMMAND_AMF3):
            return await self._command(msg)
        if kind in (m.DATA_AMF0, m.DATA_AMF3):
            return await self._data(msg)
        if kind == m.WINDOW_ACK_SIZE and len(msg.payload) >= 4:
            self.peer_window = max(1, int.from_bytes(msg.payload[:4], "big"))
            return []
        if kind == m.USER_CONTROL and len(msg.payload) >= 6:
            event = int.from_bytes(msg.payload[:2], "big")
            if event == 6:  # PingRequest -> PingResponse with the same timestamp
                return [Message(m.USER_CONTROL, 0, 0, b"\x00\x07" + msg.payload[2:6])]
            return []
        # Set chunk size and abort are applied by the chunk reader; ack, bandwidth, shared
        # objects and unknown types are ignored, as servers commonly do.
        return []

    async def _media(self, kind: int, raw_ts: int, payload: bytes) -> list[Message]:
        failure = self.media(kind, raw_ts, payload)
        return [] if failure is None else await self.sink_failed(failure)

    def media(self, kind: int, raw_ts: int, payload: bytes) -> Exception | None:
        """Hand one audio or video message to the sink, synchronously (the server's fast
        path calls it from its read callback). Bad media is logged and dropped; any other
        error is returned, and the caller ends the publish with `sink_failed`."""
        sink = self.sink
        if sink is None or not payload:
            return None  # media before publish: dropped, as nothing is being recorded yet
        ts = self._unwrap(raw_ts)
        return self._sink_call(sink.on_video if kind == m.VIDEO else sink.on_audio, ts, payload)

    def _sink_call(self, method: Callable[..., None], *args: Any) -> Exception | None:
        """Call the sink; bad media is logged and dropped, any other error is returned."""
        try:
            method(*args)
        except MediaError as exc:
            log.warning("%s %s: bad media dropped: %s", self.peer, clip(self.stream_name), exc)
        except Exception as exc:
            return exc
        return None

    async def sink_failed(self, exc: Exception) -> list[Message]:
        """End the publish after the sink raised `exc`.

        A refusal (e.g. a codec other than H.264/AAC) and a failure of the sink itself (storage,
        or a bug tripped by odd metadata) both end this publish the same way: the recording is
        closed and the encoder gets an error status instead of a bare disconnect."""
        if isinstance(exc, RefusedError):
            log.warning(
                "publish refused: %s/%s from %s: %s",
                clip(self.app),
                clip(self.stream_name),
                self.peer,
                clip(exc.description, DESCRIPTION_CLIP),
            )
            return await self._abort(exc)
        self._log_failure(exc, "recording")
        return await self._abort(_INTERNAL)

    def _log_failure(self, exc: Exception, what: str) -> None:
        if isinstance(exc, LiverecError):  # an expected kind of failure: one line
            log.warning(
                "publish %s/%s from %s: %s failed: %s",
                clip(self.app),
                clip(self.stream_name),
                self.peer,
                what,
                exc,
            )
        else:  # a bug: with its traceback (exc may come from an earlier callback)
            log.error(
                "publish %s/%s from %s: %s failed",
                clip(self.app),
                clip(self.stream_name),
                self.peer,
                what,
                exc_info=exc,
            )

    async def _abort(self, exc: RefusedError) -> list[Message]:
        """End the publish on our side: close the recording, answer `exc`, then hang up."""
        self.closing = True
        try:
            await self.end_publish()
        except Exception:
            log.exception("%s %s: closing the recording failed", self.peer, clip(self.stream_name))
        return [self.refusal(exc, self.stream_id)]

    async def _data(self, msg: Message) -> list[Message]:
        payload = msg.payload[1:] if msg.type_id == m.DATA_AMF3 else msg.payload
        try:
            values = amf0.decode_all(payload)
        except MediaError:
            return []
        if values and values[0] == "@setDataFrame":
            values = values[1:]
        sink = self.sink
        if len(values) >= 2 and values[0] == "onMetaData" and sink is not None:
            meta = values[1]
            if isinstance(meta, dict):
                failure = self._sink_call(sink.on_metadata, meta)
                return [] if failure is None else await self.sink_failed(failure)
        return []

    async def _command(self, msg: Message) -> list[Message]:
        name, txn, args = m.parse_command(msg)
        if name == "connect":
            return self._connect(txn, args)
        if name == "createStream":
            return [m.command("_result", txn, None, float(PUBLISH_STREAM_ID))]
        if name == "publish":
            return await self._publish(args, msg.stream_id or PUBLISH_STREAM_ID)
        if name in ("FCUnpublish", "deleteStream", "closeStream"):
            await self.end_publish()
            return []
        if name in ("releaseStream", "FCPublish"):
            out = [m.command("_result", txn, None, None)]
            if name == "FCPublish":
                stream = args[1] if len(args) > 1 and isinstance(args[1], str) else ""
                out.append(
                    m.command("onFCPublish", 0.0, None, _status("NetStream.Publish.Start", stream))
                )
            return out
        if name in ("play", "play2"):
            self.closing = True
            return [
                m.command(
                    "onStatus",
                    0.0,
                    None,
                    _status("NetStream.Play.Failed", "liverec records; it does not play", "error"),
                    stream_id=msg.stream_id,
                )
            ]
        return []  # _checkbw, getStreamLength and other calls: no answer needed

    def _connect(self, txn: float, args: list[amf0.Amf0Value]) -> list[Message]:
        obj = args[0] if args and isinstance(args[0], dict) else {}
        app = obj.get("app")
        tc_url = obj.get("tcUrl")
        self.app, self.app_query = split_query(app if isinstance(app, str) else "")
        self.app = self.app.strip("/")
        self.tc_url = tc_url if isinstance(tc_url, str) else ""
        self.connected = True
        return [
            m.window_ack_size(WINDOW_ACK_SIZE),
            m.set_peer_bandwidth(WINDOW_ACK_SIZE, 2),
            m.set_chunk_size(OUT_CHUNK_SIZE),
            m.command(
                "_result",
                txn,
                {"fmsVer": "FMS/3,0,1,123", "capabilities": 31.0},
                {
                    **_status("NetConnection.Connect.Success", "Connection succeeded."),
                    "objectEncoding": 0.0,
                },
            ),
        ]

    def _request(self, raw_name: str) -> PublishRequest:
        name, query = split_query(raw_name)
        split = urlsplit(self.tc_url)
        tc_query = dict(parse_qsl(split.query, keep_blank_values=True))
        merged = {**tc_query, **self.app_query, **query}
        return PublishRequest(
            app=self.app,
            stream_name=name,
            query=merged,
            tc_url=self.tc_url,
            host=split.hostname or "",
            peer=self.peer,
        )

    async def _publish(self, args: list[amf0.Amf0Value], stream_id: int) -> list[Message]:
        if self.publishing:
            raise ProtocolError("publish twice on one connection")
        raw = args[1] if len(args) > 1 and isinstance(args[1], str) else ""
        request = self._request(raw)
        self.stream_name = request.stream_name
        self.stream_id = stream_id
        try:
            self.sink = await self.handler.start_publish(request)
        except RefusedError as exc:
            log.warning(
                "publish refused: %s/%s from %s: %s",
                clip(request.app),
                clip(request.stream_name),
                self.peer,
                clip(exc.description, DESCRIPTION_CLIP),
            )
            self.closing = True
            return [self.refusal(exc, stream_id)]
        except Exception as exc:  # the catalog or storage is down, or a bug
            self._log_failure(exc, "starting the recording")
            self.closing = True
            return [self.refusal(_INTERNAL, stream_id)]
        self.publishing = True
        self._unwrap = TimestampUnwrapper()  # a new publish is a new timeline
        log.info(
            "publish started: %s/%s from %s",
            clip(request.app),
            clip(request.stream_name),
            self.peer,
        )
        return [
            m.stream_begin(stream_id),
            m.command(
                "onStatus",
                0.0,
                None,
                _status("NetStream.Publish.Start", f"{request.stream_name} is now published."),
                stream_id=stream_id,
            ),
        ]

    @staticmethod
    def refusal(exc: RefusedError, stream_id: int = PUBLISH_STREAM_ID) -> Message:
        """The error status that ends a publish, on the publish's message stream.

        ffmpeg fails on any status of level "error" and prints "Server error: <description>"
        (its first 255 bytes; rtmpproto.c handle_invoke_status). OBS acts on the code:
        Rejected or Denied closes and logs code and description (librtmp HandleInvoke), other
        codes wait for the hang-up. GStreamer's rtmp2sink takes only an onStatus on the
        publish's stream id and fails with the whole info object (rtmpclient.c)."""
        return m.command(
            "onStatus",
            0.0,
            None,
            _status(exc.code, exc.description, "error"),
            stream_id=stream_id,
        )

    async def end_publish(self) -> None:
        sink, self.sink = self.sink, None
        if sink is not None:
            self.publishing = False
            self.publishes_ended += 1
            log.info(
                "publish ended: %s/%s from %s", clip(self.app), clip(self.stream_name), self.peer
            )
            await sink.close()


# Sent by the server when a publishing connection ends on an unexpected error.
INTERNAL_ERROR = Session.refusal(_INTERNAL)
