"""RTMP message types, builders for the messages a server sends, and command/aggregate parsing."""

from __future__ import annotations

from liverec.errors import ProtocolError
from liverec.media import amf0
from liverec.media.amf0 import Amf0Error, Amf0Input, Amf0Value
from liverec.rtmp.chunk import ABORT as ABORT
from liverec.rtmp.chunk import SET_CHUNK_SIZE as SET_CHUNK_SIZE
from liverec.rtmp.chunk import Message

ACK = 3
USER_CONTROL = 4
WINDOW_ACK_SIZE = 5
SET_PEER_BANDWIDTH = 6
AUDIO = 8
VIDEO = 9
DATA_AMF3 = 15
SHARED_OBJECT_AMF3 = 16
COMMAND_AMF3 = 17
DATA_AMF0 = 18
SHARED_OBJECT_AMF0 = 19
COMMAND_AMF0 = 20
AGGREGATE = 22

STREAM_BEGIN = 0  # user control event type

# An FLV tag header inside an aggregate: type, size(3), timestamp(3), timestamp high
# byte, stream id(3); each tag is followed by a 4-byte back pointer.
_TAG_HEADER = 11
_BACK_POINTER = 4


def _u32(n: int) -> bytes:
    if not 0 <= n <= 0xFFFFFFFF:
        raise ValueError(f"{n} does not fit 32 bits")
    return n.to_bytes(4, "big")


def _control(type_id: int, payload: bytes) -> Message:
    return Message(type_id=type_id, stream_id=0, timestamp=0, payload=payload)


def set_chunk_size(n: int) -> Message:
    if not 1 <= n <= 0x7FFFFFFF:
        raise ValueError(f"chunk size {n} out of range")
    return _control(SET_CHUNK_SIZE, _u32(n))


def window_ack_size(n: int) -> Message:
    return _control(WINDOW_ACK_SIZE, _u32(n))


def set_peer_bandwidth(n: int, limit_type: int = 2) -> Message:
    """limit_type: 0 hard, 1 soft, 2 dynamic."""
    if limit_type not in (0, 1, 2):
        raise ValueError(f"bad limit type {limit_type}")
    return _control(SET_PEER_BANDWIDTH, _u32(n) + bytes((limit_type,)))


def acknowledgement(seq: int) -> Message:
    """`seq` is the byte count received so far; it wraps at 2**32 as the counter does."""
    return _control(ACK, _u32(seq & 0xFFFFFFFF))


def stream_begin(stream_id: int) -> Message:
    return _control(USER_CONTROL, STREAM_BEGIN.to_bytes(2, "big") + _u32(stream_id))


def command(name: str, transaction_id: float, *args: Amf0Input, stream_id: int = 0) -> Message:
    """An AMF0 command message (type 20)."""
    payload = amf0.encode(name, transaction_id, *args)
    return Message(type_id=COMMAND_AMF0, stream_id=stream_id, timestamp=0, payload=payload)


def data_message(*values: Amf0Input, stream_id: int) -> Message:
    """An AMF0 data message (type 18), such as onMetaData or |RtmpSampleAccess."""
    return Message(
        type_id=DATA_AMF0, stream_id=stream_id, timestamp=0, payload=amf0.encode(*values)
    )


def parse_command(msg: Message) -> tuple[str, float, list[Amf0Value]]:
    """(name, transaction id, remaining values) of a type 20 or 17 command message."""
    payload = msg.payload
    if msg.type_id == COMMAND_AMF3:
        # AMF3 commands start with a format byte (0 = the rest is AMF0); tolerate its absence.
        if payload[:1] == b"\x00":
            payload = payload[1:]
    elif msg.type_id != COMMAND_AMF0:
        raise ProtocolError(f"message type {msg.type_id} is not a command")
    try:
        values = amf0.decode_all(payload)
    except Amf0Error as exc:
        raise ProtocolError(f"malformed command: {exc}") from None
    if len(values) < 2:
        raise ProtocolError("command without a name and a transaction id")
    name, transaction_id = values[0], values[1]
    if not isinstance(name, str):
        raise ProtocolError(f"command name is {type(name).__name__}, not a string")
    if not isinstance(transaction_id, float):  # AMF0 numbers decode as float, never bool
        raise ProtocolError(f"command {name!r} transaction id is not a number")
    return name, transaction_id, values[2:]


def parse_aggregate(msg: Message) -> list[Message]:
    """Split an aggregate message into its sub-messages.

    Sub-message timestamps are rebased so the first one gets the aggregate's own timestamp
    and the rest keep their offsets from it (as nginx-rtmp does); all take the aggregate's
    stream id. The final back pointer may be missing."""
    if msg.type_id != AGGREGATE:
        raise ProtocolError(f"message type {msg.type_id} is not an aggregate")
    data = memoryview(msg.payload).cast("B")
    end = len(data)
    pos = 0
    base: int | None = None
    out: list[Message] = []
    while pos < end:
        if end - pos < _TAG_HEADER:
            raise ProtocolError("aggregate message truncated inside a tag header")
        type_id = data[pos]
        size = int.from_bytes(data[pos + 1 : pos + 4], "big")
        ts = int.from_bytes(data[pos + 4 : pos + 7], "big") | (data[pos + 7] << 24)
        pos += _TAG_HEADER
        if size > end - pos:
            raise ProtocolError(f"aggregate sub-message of {size} bytes exceeds the aggregate")
        if type_id == AGGREGATE:
            raise ProtocolError("aggregate message nested in an aggregate")
        if base is None:
            base = ts
        timestamp = (msg.timestamp + ts - base) & 0xFFFFFFFF
        out.append(Message(type_id, msg.stream_id, timestamp, bytes(data[pos : pos + size])))
        pos += size
        if end - pos < _BACK_POINTER and pos != end:
            raise ProtocolError("aggregate message truncated inside a back pointer")
        pos += _BACK_POINTER
    return out
