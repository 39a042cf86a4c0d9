"""Message builders, command parsing and aggregate splitting."""

from __future__ import annotations

import pytest

from liverec.errors import ProtocolError
from liverec.media import amf0
from liverec.rtmp import messages as m
from liverec.rtmp.chunk import ChunkReader, ChunkWriter, Message


def test_type_constants() -> None:
    assert (m.SET_CHUNK_SIZE, m.ABORT, m.ACK, m.USER_CONTROL, m.WINDOW_ACK_SIZE) == (1, 2, 3, 4, 5)
    assert (m.SET_PEER_BANDWIDTH, m.AUDIO, m.VIDEO, m.DATA_AMF3) == (6, 8, 9, 15)
    assert (m.SHARED_OBJECT_AMF3, m.COMMAND_AMF3, m.DATA_AMF0) == (16, 17, 18)
    assert (m.SHARED_OBJECT_AMF0, m.COMMAND_AMF0, m.AGGREGATE) == (19, 20, 22)


def test_control_builders() -> None:
    assert m.set_chunk_size(4096) == Message(1, 0, 0, b"\x00\x00\x10\x00")
    assert m.window_ack_size(2_500_000) == Message(5, 0, 0, b"\x00\x26\x25\xa0")
    assert m.set_peer_bandwidth(2_500_000) == Message(6, 0, 0, b"\x00\x26\x25\xa0\x02")
    assert m.set_peer_bandwidth(10, limit_type=0).payload == b"\x00\x00\x00\x0a\x00"
    assert m.acknowledgement(2**32 + 5) == Message(3, 0, 0, b"\x00\x00\x00\x05")
    assert m.stream_begin(1) == Message(4, 0, 0, b"\x00\x00\x00\x00\x00\x01")


@pytest.mark.parametrize(
    "build",
    [
        lambda: m.set_chunk_size(0),
        lambda: m.set_chunk_size(2**31),
        lambda: m.window_ack_size(-1),
        lambda: m.set_peer_bandwidth(1, limit_type=3),
    ],
)
def test_control_builders_reject_bad_values(build: object) -> None:
    with pytest.raises(ValueError):
        build()  # type: ignore[operator]


def test_command_builder_and_parse_round_trip() -> None:
    msg = m.command("_result", 1, {"fmsVer": "FMS/3,0,1,123"}, {"code": "ok"}, stream_id=0)
    assert msg.type_id == 20
    assert msg.payload == amf0.encode("_result", 1.0, {"fmsVer": "FMS/3,0,1,123"}, {"code": "ok"})
    assert m.parse_command(msg) == ("_result", 1.0, [{"fmsVer": "FMS/3,0,1,123"}, {"code": "ok"}])


def test_data_message() -> None:
    msg = m.data_message("|RtmpSampleAccess", False, False, stream_id=1)
    assert msg == Message(18, 1, 0, amf0.encode("|RtmpSampleAccess", False, False))


def test_parse_ffmpeg_publish_through_the_chunk_layer() -> None:
    # ffmpeg: publish(txn 5, null, "stream?ts=1&sign=x", "live") on csid 8, stream 1.
    payload = (
        b"\x02\x00\x07publish"
        + b"\x00\x40\x14\x00\x00\x00\x00\x00\x00"
        + b"\x05"
        + b"\x02\x00\x12stream?ts=1&sign=x"
        + b"\x02\x00\x04live"
    )
    data = b"\x08" + b"\x00\x00\x00" + len(payload).to_bytes(3, "big") + b"\x14"
    data += (1).to_bytes(4, "little") + payload
    [msg] = ChunkReader().feed(data)
    assert msg.stream_id == 1
    assert m.parse_command(msg) == ("publish", 5.0, [None, "stream?ts=1&sign=x", "live"])


def test_parse_amf3_command() -> None:
    body = amf0.encode("createStream", 2, None)
    assert m.parse_command(Message(17, 0, 0, b"\x00" + body)) == ("createStream", 2.0, [None])
    # Some senders leave out the format byte; the AMF0 body alone still parses.
    assert m.parse_command(Message(17, 0, 0, body)) == ("createStream", 2.0, [None])


@pytest.mark.parametrize(
    "msg",
    [
        Message(20, 0, 0, b""),
        Message(20, 0, 0, amf0.encode("connect")),
        Message(20, 0, 0, amf0.encode(1, 1)),
        Message(20, 0, 0, amf0.encode("connect", "1")),
        Message(20, 0, 0, amf0.encode("connect", True)),
        Message(20, 0, 0, amf0.encode("connect", 1)[:-1]),
        Message(20, 0, 0, b"\x07\x00\x00"),
        Message(18, 0, 0, amf0.encode("onMetaData", 1)),
    ],
)
def test_parse_command_rejects_malformed(msg: Message) -> None:
    with pytest.raises(ProtocolError):
        m.parse_command(msg)


def flv_tag(type_id: int, ts: int, data: bytes, back_pointer: bool = True) -> bytes:
    tag = (
        bytes((type_id,))
        + len(data).to_bytes(3, "big")
        + (ts & 0xFFFFFF).to_bytes(3, "big")
        + bytes((ts >> 24,))
        + b"\x00\x00\x00"
        + data
    )
    return tag + (len(tag).to_bytes(4, "big") if back_pointer else b"")


def test_parse_aggregate_rebases_timestamps() -> None:
    payload = flv_tag(9, 1000, b"\x17\x01v") + flv_tag(8, 1033, b"\xaf\x01a")
    msgs = m.parse_aggregate(Message(22, 1, 5000, payload))
    assert msgs == [Message(9, 1, 5000, b"\x17\x01v"), Message(8, 1, 5033, b"\xaf\x01a")]


def test_parse_aggregate_high_timestamp_byte_and_wrap() -> None:
    payload = flv_tag(9, 0x01000000, b"a") + flv_tag(9, 0x01000010, b"b")
    msgs = m.parse_aggregate(Message(22, 1, 0xFFFFFFF8, payload))
    assert [x.timestamp for x in msgs] == [0xFFFFFFF8, 0x8]


def test_parse_aggregate_final_back_pointer_may_be_missing() -> None:
    payload = flv_tag(9, 0, b"a") + flv_tag(9, 40, b"b", back_pointer=False)
    assert [x.payload for x in m.parse_aggregate(Message(22, 1, 0, payload))] == [b"a", b"b"]


def test_parse_empty_aggregate() -> None:
    assert m.parse_aggregate(Message(22, 1, 0, b"")) == []


@pytest.mark.parametrize(
    "payload",
    [
        flv_tag(9, 0, b"abc")[:5],  # inside the tag header
        flv_tag(9, 0, b"abc")[:12],  # inside the data
        flv_tag(9, 0, b"abc")[:-2],  # inside the back pointer
        flv_tag(22, 0, b"abc"),  # nested aggregate
    ],
)
def test_parse_aggregate_rejects_malformed(payload: bytes) -> None:
    with pytest.raises(ProtocolError):
        m.parse_aggregate(Message(22, 1, 0, payload))


def test_parse_aggregate_rejects_other_types() -> None:
    with pytest.raises(ProtocolError):
        m.parse_aggregate(Message(9, 1, 0, b""))


def test_server_reply_sequence_encodes_and_reads_back() -> None:
    writer = ChunkWriter()
    sent = [
        m.window_ack_size(5_000_000),
        m.set_peer_bandwidth(5_000_000),
        m.set_chunk_size(4096),
        m.command("_result", 1, {"fmsVer": "FMS/3,0,1,123", "capabilities": 31}, None),
    ]
    wire = b""
    for msg in sent:
        wire += writer.encode(msg, 2 if msg.type_id < 8 else 3)
        if msg.type_id == m.SET_CHUNK_SIZE:
            writer.chunk_size = 4096
    assert ChunkReader().feed(wire) == sent
