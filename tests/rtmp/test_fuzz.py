"""Property tests: hostile bytes only ever raise our errors, memory stays bounded, and any
split of a valid stream reads back the same messages."""

from __future__ import annotations

import contextlib
import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from liverec.errors import MediaError, ProtocolError
from liverec.media import amf0
from liverec.rtmp import messages as m
from liverec.rtmp.chunk import MIN_CHUNK_SIZE, ChunkReader, ChunkWriter, Message, basic_header
from liverec.rtmp.handshake import ServerHandshake

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

CSIDS = st.sampled_from([2, 3, 4, 6, 63, 64, 319, 320, 65599])
messages_st = st.builds(
    Message,
    type_id=st.sampled_from([8, 9, 18, 20]),
    stream_id=st.integers(0, 2**32 - 1),
    timestamp=st.integers(0, 2**32 - 1),
    payload=st.binary(max_size=700),
)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def feed_pieces(reader: ChunkReader, pieces: list[bytes]) -> list[Message]:
    out: list[Message] = []
    for piece in pieces:
        out += reader.feed(piece)
        # Only an incomplete header is held beyond the capped partial messages' bytes, and
        # the running count the cap is checked against matches what is really held.
        held = [st.payload for st in reader._streams.values() if st.payload is not None]
        assert reader.buffered_bytes == len(reader._pending) + sum(map(len, held))
        assert reader.buffered_bytes <= reader.max_buffered + 18
    return out


def compressing_encode(msgs: list[tuple[int, Message]], chunk_size: int) -> bytes:
    """A writer that picks fmt0/1/2/3 the way ffmpeg's ff_rtmp_packet_write does, so the
    reader's delta rules are checked against a real sender's."""
    prev: dict[int, tuple[Message, int]] = {}  # csid -> (message, timestamp field sent)
    out = bytearray()
    for csid, msg in msgs:
        last = prev.get(csid)
        if last and last[0].stream_id == msg.stream_id and msg.timestamp >= last[0].timestamp:
            field = msg.timestamp - last[0].timestamp
            same_shape = (last[0].type_id, len(last[0].payload)) == (msg.type_id, len(msg.payload))
            fmt = (3 if field == last[1] else 2) if same_shape else 1
        else:
            fmt, field = 0, msg.timestamp
        ext = field >= 0xFFFFFF
        header = basic_header(fmt, csid)
        if fmt < 3:
            header += (0xFFFFFF if ext else field).to_bytes(3, "big")
        if fmt < 2:
            header += len(msg.payload).to_bytes(3, "big") + bytes((msg.type_id,))
        if fmt == 0:
            header += msg.stream_id.to_bytes(4, "little")
        ext_bytes = field.to_bytes(4, "big") if ext else b""
        out += header + ext_bytes + msg.payload[:chunk_size]
        for off in range(chunk_size, len(msg.payload), chunk_size):
            out += basic_header(3, csid) + ext_bytes + msg.payload[off : off + chunk_size]
        prev[csid] = (msg, field)
    return bytes(out)


@FAST
@given(data=st.binary(max_size=2000), cuts=st.lists(st.integers(0, 2000), max_size=5))
def test_random_bytes_to_chunk_reader(data: bytes, cuts: list[int]) -> None:
    reader = ChunkReader(max_message_size=4096, max_chunk_streams=4, max_buffered=6000)
    with contextlib.suppress(ProtocolError):
        feed_pieces(reader, split(data, cuts))


@FAST
@given(
    msgs=st.lists(st.tuples(CSIDS, messages_st), max_size=8),
    mutations=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=6),
    cuts=st.lists(st.integers(0, 10**6), max_size=4),
)
def test_mutated_streams_to_chunk_reader(
    msgs: list[tuple[int, Message]], mutations: list[tuple[int, int]], cuts: list[int]
) -> None:
    data = bytearray(compressing_encode(msgs, 128))
    for pos, byte in mutations:
        if data:
            data[pos % len(data)] = byte
    reader = ChunkReader(max_message_size=4096, max_chunk_streams=4, max_buffered=6000)
    with contextlib.suppress(ProtocolError):
        feed_pieces(reader, split(bytes(data), cuts))


@FAST
@given(
    msgs=st.lists(st.tuples(CSIDS, messages_st), max_size=10),
    chunk_size=st.integers(MIN_CHUNK_SIZE, 1000),
    cuts=st.lists(st.integers(0, 10**6), max_size=8),
)
def test_writer_round_trip_any_split(
    msgs: list[tuple[int, Message]], chunk_size: int, cuts: list[int]
) -> None:
    writer = ChunkWriter()
    wire = writer.encode(m.set_chunk_size(chunk_size), 2)
    writer.chunk_size = chunk_size
    wire += b"".join(writer.encode(msg, csid) for csid, msg in msgs)
    got = feed_pieces(ChunkReader(), split(wire, cuts))
    assert got == [m.set_chunk_size(chunk_size)] + [msg for _, msg in msgs]


@FAST
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from([4, 6, 64]),
            st.sampled_from([8, 9]),
            st.integers(0, 0x1000020),  # deltas, some needing the extended field
            st.sampled_from([0, 5, 200]),  # few sizes, so fmt2/fmt3 headers happen
            st.integers(0, 1),
        ),
        max_size=15,
    ),
    cuts=st.lists(st.integers(0, 10**6), max_size=6),
)
def test_compressed_headers_round_trip(
    steps: list[tuple[int, int, int, int, int]], cuts: list[int]
) -> None:
    clock: dict[int, int] = {}
    msgs = []
    for csid, type_id, delta, size, stream_id in steps:
        ts = clock.get(csid, 0) + delta
        if ts >= 2**32:
            continue
        clock[csid] = ts
        msgs.append((csid, Message(type_id, stream_id, ts, bytes([ts & 0xFF]) * size)))
    wire = compressing_encode(msgs, 128)
    assert feed_pieces(ChunkReader(), split(wire, cuts)) == [msg for _, msg in msgs]


@FAST
@given(data=st.binary(max_size=4000), cuts=st.lists(st.integers(0, 4000), max_size=4))
def test_random_bytes_to_handshake(data: bytes, cuts: list[int]) -> None:
    hs = ServerHandshake()
    sent = 0
    try:
        for piece in split(data, cuts):
            sent += len(hs.feed(piece))
            assert len(hs._buf) <= 1 + 1536  # the never-more-than-a-packet bound
    except ProtocolError:
        return
    assert sent in (0, 3073)
    assert hs.done == (len(data) >= 3073)


@FAST
@given(data=st.binary(max_size=500))
def test_random_bytes_to_amf0(data: bytes) -> None:
    with contextlib.suppress(MediaError):
        amf0.decode_all(data)


amf0_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@FAST
@given(values=st.lists(amf0_values, max_size=4))
def test_amf0_round_trip(values: list[amf0.Amf0Value]) -> None:
    assert amf0.decode_all(amf0.encode(*values)) == values


@FAST
@given(
    values=st.lists(amf0_values, min_size=1, max_size=3),
    mutations=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=4),
    cut=st.integers(0, 10**6),
)
def test_mutated_amf0(
    values: list[amf0.Amf0Value], mutations: list[tuple[int, int]], cut: int
) -> None:
    data = bytearray(amf0.encode(*values))
    for pos, byte in mutations:
        data[pos % len(data)] = byte
    with contextlib.suppress(MediaError):
        amf0.decode_all(bytes(data[: cut % (len(data) + 1)]), max_depth=8, max_items=64)


@FAST
@given(type_id=st.sampled_from([17, 20, 22]), payload=st.binary(max_size=300))
def test_random_command_and_aggregate_payloads(type_id: int, payload: bytes) -> None:
    msg = Message(type_id, 1, 0, payload)
    try:
        if type_id == 22:
            subs = m.parse_aggregate(msg)
            assert sum(len(s.payload) for s in subs) <= len(payload)
        else:
            m.parse_command(msg)
    except ProtocolError:
        pass
