"""The chunk stream against byte fixtures built by hand from the RTMP spec (section 5.3)."""

from __future__ import annotations

import random
import tracemalloc

import pytest

from liverec.errors import ProtocolError
from liverec.media import amf0
from liverec.rtmp.chunk import MIN_CHUNK_SIZE, ChunkReader, ChunkWriter, Message, basic_header


def u24(n: int) -> bytes:
    return n.to_bytes(3, "big")


def u32(n: int) -> bytes:
    return n.to_bytes(4, "big")


def h0(ts: int, length: int, type_id: int, sid: int) -> bytes:
    """fmt0 message header: timestamp, length, type, stream id (little endian)."""
    return u24(ts) + u24(length) + bytes((type_id,)) + sid.to_bytes(4, "little")


def h1(delta: int, length: int, type_id: int) -> bytes:
    return u24(delta) + u24(length) + bytes((type_id,))


def feed_all(data: bytes, reader: ChunkReader | None = None) -> list[Message]:
    return (reader or ChunkReader()).feed(data)


def assert_split_invariant(data: bytes, expected: list[Message]) -> None:
    """Every two-way split and the byte-by-byte feed give the same messages."""
    for cut in range(len(data) + 1):
        r = ChunkReader()
        assert r.feed(data[:cut]) + r.feed(data[cut:]) == expected, cut
    r = ChunkReader()
    got: list[Message] = []
    for i in range(len(data)):
        got += r.feed(data[i : i + 1])
    assert got == expected


CONNECT = amf0.encode(
    "connect",
    1,
    {
        "app": "live",
        "type": "nonprivate",
        "flashVer": "FMLE/3.0 (compatible; Lavf61.7.100)",
        "tcUrl": "rtmp://127.0.0.1:1935/live",
    },
)


def test_connect_split_over_two_128_byte_chunks() -> None:
    assert 128 < len(CONNECT) <= 256
    data = b"\x03" + h0(0, len(CONNECT), 20, 0) + CONNECT[:128] + b"\xc3" + CONNECT[128:]
    expected = [Message(20, 0, 0, CONNECT)]
    assert feed_all(data) == expected
    assert_split_invariant(data, expected)


def test_header_types_and_timestamp_deltas() -> None:
    data = (
        b"\x04" + h0(1000, 3, 8, 1) + b"AAA"
        + b"\x84" + u24(23) + b"BBB"  # fmt2: delta only
        + b"\xc4" + b"CCC"  # fmt3 new message: same delta again
        + b"\x44" + h1(20, 2, 9) + b"DD"  # fmt1: delta, length, type
        + b"\xc4" + b"EE"
    )  # fmt: skip
    expected = [
        Message(8, 1, 1000, b"AAA"),
        Message(8, 1, 1023, b"BBB"),
        Message(8, 1, 1046, b"CCC"),
        Message(9, 1, 1066, b"DD"),
        Message(9, 1, 1086, b"EE"),
    ]
    assert feed_all(data) == expected
    assert_split_invariant(data, expected)


def test_fmt3_after_fmt0_uses_the_fmt0_timestamp_as_delta() -> None:
    # Spec 5.3.1.2.4; ffmpeg's writer emits fmt3 here when the delta equals that timestamp.
    data = b"\x05" + h0(40, 1, 8, 1) + b"a" + b"\xc5" + b"b"
    assert feed_all(data) == [Message(8, 1, 40, b"a"), Message(8, 1, 80, b"b")]


def test_extended_timestamp_repeated_on_fmt3_chunks() -> None:
    payload = bytes(range(256)) + bytes(44)
    ext = u32(0x01000000)
    data = (
        b"\x06" + h0(0xFFFFFF, 300, 9, 1) + ext + payload[:128]
        + b"\xc6" + ext + payload[128:256]
        + b"\xc6" + ext + payload[256:]
        # A new message in fmt3: extended field present, carrying the delta.
        + b"\xc6" + ext + payload[:128] + b"\xc6" + ext + payload[128:256]
        + b"\xc6" + ext + payload[256:]
        # fmt1 without extended timestamp: later fmt3 chunks carry none either.
        + b"\x46" + h1(10, 130, 9) + payload[:128] + b"\xc6" + payload[128:130]
    )  # fmt: skip
    expected = [
        Message(9, 1, 0x01000000, payload),
        Message(9, 1, 0x02000000, payload),
        Message(9, 1, 0x0200000A, payload[:130]),
    ]
    assert feed_all(data) == expected
    assert_split_invariant(data, expected)


def test_timestamps_wrap_at_32_bits() -> None:
    data = b"\x04" + h0(0xFFFFFF, 1, 8, 1) + u32(0xFFFFFFF0) + b"a" + b"\x84" + u24(0x20) + b"b"
    assert feed_all(data) == [Message(8, 1, 0xFFFFFFF0, b"a"), Message(8, 1, 0x10, b"b")]


@pytest.mark.parametrize(
    ("csid", "first", "cont"),
    [
        (2, b"\x02", b"\xc2"),
        (63, b"\x3f", b"\xff"),
        (64, b"\x00\x00", b"\xc0\x00"),
        (319, b"\x00\xff", b"\xc0\xff"),
        (320, b"\x01\x00\x01", b"\xc1\x00\x01"),
        (65599, b"\x01\xff\xff", b"\xc1\xff\xff"),
    ],
)
def test_basic_header_forms(csid: int, first: bytes, cont: bytes) -> None:
    payload = bytes(200)
    data = first + h0(7, 200, 9, 1) + payload[:128] + cont + payload[128:]
    expected = [Message(9, 1, 7, payload)]
    assert feed_all(data) == expected
    assert basic_header(0, csid) == first
    assert basic_header(3, csid) == cont
    assert ChunkWriter().encode(expected[0], csid) == data
    assert_split_invariant(data, expected)


def test_interleaved_chunk_streams() -> None:
    a, v = b"a" * 300, b"v" * 300
    data = (
        b"\x04" + h0(0, 300, 8, 1) + a[:128]
        + b"\x06" + h0(0, 300, 9, 1) + v[:128]
        + b"\xc4" + a[128:256] + b"\xc6" + v[128:256]
        + b"\xc6" + v[256:] + b"\xc4" + a[256:]
    )  # fmt: skip
    expected = [Message(9, 1, 0, v), Message(8, 1, 0, a)]
    assert feed_all(data) == expected


def set_chunk_size(n: int) -> bytes:
    return b"\x02" + h0(0, 4, 1, 0) + u32(n)


def test_set_chunk_size_mid_stream() -> None:
    big = bytes(range(256)) * 16  # 4096 bytes: one chunk at the new size
    small = b"x" * 200
    data = (
        b"\x03" + h0(0, 200, 20, 0) + small[:128] + b"\xc3" + small[128:]
        + set_chunk_size(4096)
        + b"\x06" + h0(5, 4096, 9, 1) + big
        + b"\x06" + h0(6, 4100, 9, 1) + big + b"\xc6" + b"tail"
    )  # fmt: skip
    expected = [
        Message(20, 0, 0, small),
        Message(1, 0, 0, u32(4096)),
        Message(9, 1, 5, big),
        Message(9, 1, 6, big + b"tail"),
    ]
    reader = ChunkReader()
    assert reader.feed(data) == expected
    assert reader.chunk_size == 4096
    # Pieces of varied sizes rather than all cuts: the fixture is long.
    rng = random.Random(7)
    for _ in range(50):
        r, got, pos = ChunkReader(), [], 0
        while pos < len(data):
            n = rng.randint(1, 700)
            got += r.feed(data[pos : pos + n])
            pos += n
        assert got == expected


@pytest.mark.parametrize("size", [0, 1, 63, 2**31, 0xFFFFFFFF, 16 * 1024 * 1024 + 1])
def test_bad_chunk_size_raises(size: int) -> None:
    with pytest.raises(ProtocolError, match="chunk size"):
        feed_all(set_chunk_size(size))


def test_smallest_chunk_size_is_accepted() -> None:
    reader = ChunkReader()
    reader.feed(set_chunk_size(MIN_CHUNK_SIZE))
    assert reader.chunk_size == MIN_CHUNK_SIZE == 64
    msg = Message(9, 1, 0, bytes(range(200)))
    assert reader.feed(ChunkWriter(MIN_CHUNK_SIZE).encode(msg, 6)) == [msg]


def test_chunk_size_limit_is_configurable() -> None:
    assert feed_all(set_chunk_size(1000), ChunkReader(max_chunk_size=1000))
    with pytest.raises(ProtocolError):
        feed_all(set_chunk_size(1001), ChunkReader(max_chunk_size=1000))


def test_short_control_payload_raises() -> None:
    with pytest.raises(ProtocolError):
        feed_all(b"\x02" + h0(0, 2, 1, 0) + b"\x10\x00")
    with pytest.raises(ProtocolError):
        feed_all(b"\x02" + h0(0, 1, 2, 0) + b"\x04")


def test_abort_drops_the_partial_message() -> None:
    abort = b"\x02" + h0(0, 4, 2, 0) + u32(4)
    data = (
        b"\x04" + h0(0, 300, 8, 1) + bytes(128)
        + abort
        + b"\x04" + h0(50, 2, 8, 1) + b"ok"
    )  # fmt: skip
    reader = ChunkReader(max_chunk_streams=2)
    assert reader.feed(data) == [Message(2, 0, 0, u32(4)), Message(8, 1, 50, b"ok")]
    assert reader.buffered_bytes == 0


def test_abort_of_an_idle_chunk_stream_is_harmless() -> None:
    data = b"\x02" + h0(0, 4, 2, 0) + u32(9) + b"\x04" + h0(1, 1, 8, 1) + b"z"
    assert feed_all(data)[1] == Message(8, 1, 1, b"z")


def test_zero_length_message() -> None:
    data = b"\x04" + h0(3, 0, 8, 1) + b"\xc4"
    assert feed_all(data) == [Message(8, 1, 3, b""), Message(8, 1, 6, b"")]
    assert_split_invariant(data, [Message(8, 1, 3, b""), Message(8, 1, 6, b"")])


def test_new_header_mid_message_drops_the_partial() -> None:
    data = b"\x04" + h0(0, 300, 8, 1) + bytes(128) + b"\x04" + h0(9, 1, 8, 1) + b"n"
    reader = ChunkReader(max_chunk_streams=1)
    assert reader.feed(data) == [Message(8, 1, 9, b"n")]


def test_message_over_the_size_limit_raises() -> None:
    reader = ChunkReader(max_message_size=1000)
    assert reader.feed(b"\x04" + h0(0, 1000, 9, 1)) == []
    with pytest.raises(ProtocolError, match="exceeds"):
        ChunkReader(max_message_size=1000).feed(b"\x04" + h0(0, 1001, 9, 1))
    reader = ChunkReader(max_message_size=1000)
    # The message before the bad header is returned; the error is raised after it.
    assert reader.feed(b"\x04" + h0(0, 1, 9, 1) + b"x" + b"\x44" + h1(0, 1001, 9)) == [
        Message(9, 1, 0, b"x")
    ]
    with pytest.raises(ProtocolError, match="exceeds"):
        reader.check()


def test_too_many_partial_chunk_streams_raises() -> None:
    reader = ChunkReader(max_chunk_streams=3)
    data = b"".join(bytes((c,)) + h0(0, 300, 9, 1) + bytes(128) for c in (3, 4, 5))
    assert reader.feed(data) == []
    with pytest.raises(ProtocolError, match="partial"):
        reader.feed(b"\x06" + h0(0, 300, 9, 1))


def test_default_partial_chunk_streams_limit_is_8() -> None:
    reader = ChunkReader()
    data = b"".join(bytes((c,)) + h0(0, 300, 9, 1) + bytes(128) for c in range(3, 11))
    assert reader.feed(data) == []
    with pytest.raises(ProtocolError, match="more than 8 chunk streams"):
        reader.feed(b"\x0b" + h0(0, 300, 9, 1))


def partial(csid: int, announced: int, chunks: int, size: int) -> bytes:
    """The first `chunks` whole chunks of `size` bytes of a message on chunk stream csid."""
    head = bytes((csid,)) + h0(0, announced, 9, 1) + bytes(size)
    return head + (bytes((0xC0 | csid,)) + bytes(size)) * (chunks - 1)


def test_total_of_partial_messages_is_capped() -> None:
    reader = ChunkReader(max_buffered=1000, max_message_size=900)
    reader.feed(set_chunk_size(100))
    assert reader.feed(partial(3, 900, 6, 100) + partial(4, 900, 4, 100)) == []
    assert reader.buffered_bytes == 1000
    with pytest.raises(ProtocolError, match="more than 1000 bytes of unfinished messages"):
        reader.feed(partial(5, 900, 1, 100))


def test_completed_and_dropped_messages_free_the_budget() -> None:
    reader = ChunkReader(max_buffered=1000, max_message_size=900)
    reader.feed(set_chunk_size(100))
    abort = b"\x02" + h0(0, 4, 2, 0) + u32(4)
    for _ in range(5):  # each round would overflow the cap if nothing were freed
        reader.feed(partial(3, 800, 7, 100))  # completed below, reaching the cap
        reader.feed(partial(4, 900, 1, 100))  # aborted below
        reader.feed(partial(5, 900, 1, 100))  # dropped by a new header below
        assert reader.buffered_bytes == 900
        done = reader.feed(b"\xc3" + bytes(100) + abort + b"\x05" + h0(0, 0, 9, 1))
        assert [msg.payload for msg in done] == [bytes(800), u32(4), b""]
        assert reader.buffered_bytes == 0


def test_default_total_is_16_mib_of_bytes_received() -> None:
    mib = 1024 * 1024
    reader = ChunkReader()
    reader.feed(set_chunk_size(mib))
    assert reader.feed(partial(3, 7 * mib, 6, mib) + partial(4, 7 * mib, 6, mib)) == []
    assert reader.feed(partial(5, 7 * mib, 4, mib)) == []
    assert reader.buffered_bytes == 16 * mib
    with pytest.raises(ProtocolError, match=f"more than {16 * mib} bytes"):
        reader.feed(b"\xc5" + bytes(mib))


def test_announced_lengths_are_not_allocated_up_front() -> None:
    # Seven chunk streams each announcing an 8 MiB message and sending one 128-byte chunk
    # cost about 1 KiB, not 56 MiB; an eighth sending 10 bytes of its chunk adds 10 bytes.
    reader = ChunkReader()
    data = b"".join(partial(c, 8 * 1024 * 1024, 1, 128) for c in range(3, 10))
    data += partial(10, 8 * 1024 * 1024, 1, 10)
    tracemalloc.start()
    try:
        assert reader.feed(data) == []
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert reader.buffered_bytes == 7 * 128 + 10
    assert peak < 64 * 1024


def test_completed_chunk_streams_do_not_count_as_partial() -> None:
    reader = ChunkReader(max_chunk_streams=1)
    data = b"".join(bytes((c,)) + h0(0, 1, 9, 1) + b"x" for c in range(3, 40))
    assert len(reader.feed(data)) == 37


@pytest.mark.parametrize("first", [b"\x44", b"\x84", b"\xc4"])
def test_compressed_header_on_an_unseen_chunk_stream_raises(first: bytes) -> None:
    with pytest.raises(ProtocolError, match="before any fmt 0"):
        ChunkReader().feed(first + bytes(16))


def test_bytes_received_and_bounded_buffer() -> None:
    payload = bytes(1_000_000)
    data = ChunkWriter(4096).encode(Message(9, 1, 0, payload), 6)
    reader = ChunkReader()
    reader.feed(set_chunk_size(4096))
    got: list[Message] = []
    for pos in range(0, len(data), 1000):
        got += reader.feed(data[pos : pos + 1000])
        # Held: the payload received so far plus at most one incomplete header.
        assert reader.buffered_bytes <= pos + 1000
        assert reader.buffered_bytes - len(payload[: pos + 1000]) <= 18
    assert got == [Message(9, 1, 0, payload)]
    assert reader.buffered_bytes == 0
    assert reader.bytes_received == len(data) + 16


def test_writer_bytes() -> None:
    msg = Message(20, 0, 0, b"p" * 300)
    expected = b"\x03" + h0(0, 300, 20, 0) + b"p" * 128 + b"\xc3" + b"p" * 128 + b"\xc3" + b"p" * 44
    assert ChunkWriter().encode(msg, 3) == expected


def test_writer_extended_timestamp() -> None:
    msg = Message(9, 1, 0xFFFFFF, b"q" * 130)
    ext = u32(0xFFFFFF)
    expected = b"\x06" + h0(0xFFFFFF, 130, 9, 1) + ext + b"q" * 128 + b"\xc6" + ext + b"qq"
    assert ChunkWriter().encode(msg, 6) == expected
    assert ChunkReader().feed(expected) == [msg]


def test_writer_chunk_size_is_settable() -> None:
    writer = ChunkWriter()
    writer.chunk_size = 100
    assert writer.encode(Message(8, 1, 0, bytes(150)), 4).count(b"\xc4") == 1
    with pytest.raises(ValueError):
        writer.chunk_size = 0


@pytest.mark.parametrize(
    ("msg", "csid"),
    [
        (Message(8, 1, 0, b""), 1),
        (Message(8, 1, 0, b""), 65600),
        (Message(300, 1, 0, b""), 4),
        (Message(8, 2**32, 0, b""), 4),
    ],
)
def test_writer_rejects_unencodable(msg: Message, csid: int) -> None:
    with pytest.raises(ValueError):
        ChunkWriter().encode(msg, csid)


def test_writer_to_reader_round_trip_with_chunk_size_change() -> None:
    rng = random.Random(1)
    writer = ChunkWriter()
    out = bytearray()
    expected = []
    for i in range(200):
        if i == 50:
            change = Message(1, 0, 0, u32(1000))
            out += writer.encode(change, 2)
            writer.chunk_size = 1000
            expected.append(change)
        msg = Message(rng.choice((8, 9, 18)), 1, i * 33, rng.randbytes(rng.randint(0, 3000)))
        out += writer.encode(msg, rng.choice((4, 6, 64, 400)))
        expected.append(msg)
    reader, got, pos = ChunkReader(), [], 0
    while pos < len(out):
        n = rng.randint(1, 5000)
        got += reader.feed(bytes(out[pos : pos + n]))
        pos += n
    assert got == expected


def _mixed_wire(seed: int) -> tuple[bytes, list[Message]]:
    rng = random.Random(seed)
    writer = ChunkWriter(chunk_size=4096)
    out = writer.encode(Message(1, 0, 0, u32(4096)), 2)
    expected = [Message(1, 0, 0, u32(4096))]
    for i in range(60):
        msg = Message(rng.choice((8, 9)), 1, i * 33, rng.randbytes(rng.choice((0, 5, 700, 9000))))
        out += writer.encode(msg, rng.choice((4, 6)))
        expected.append(msg)
    return out, expected


@pytest.mark.parametrize("limit", [1, 2, 7, 256])
def test_a_limit_stops_after_that_many_messages_and_consumed_says_where(limit: int) -> None:
    wire, expected = _mixed_wire(limit)
    rng = random.Random(limit)
    reader, got, pos = ChunkReader(), [], 0
    while pos < len(wire):
        data = wire[pos : pos + rng.randint(1, 20000)]
        msgs = reader.feed(data, limit)
        assert len(msgs) <= limit
        assert reader.consumed <= len(data)
        if reader.consumed < len(data):  # stopped early: only at the limit
            assert len(msgs) == limit
        got += msgs
        pos += reader.consumed
    assert got == expected
    assert reader.bytes_received == len(wire)  # bytes fed again are counted once


def test_without_a_limit_a_feed_takes_all_its_bytes() -> None:
    wire, expected = _mixed_wire(3)
    reader = ChunkReader()
    assert reader.feed(wire[:5000]) + reader.feed(wire[5000:]) == expected
    assert reader.consumed == len(wire) - 5000


def test_a_protocol_error_after_messages_returns_them_first() -> None:
    writer = ChunkWriter()
    good = [Message(8, 1, 0, b"aac"), Message(9, 1, 33, b"avc" * 100)]
    wire = b"".join(writer.encode(msg, 4) for msg in good)
    bad = b"\x45" + h1(0, 10, 9)  # fmt 1 on chunk stream 5, which has had no fmt 0
    reader = ChunkReader()
    assert reader.feed(wire + bad) == good  # the media before the error is kept
    with pytest.raises(ProtocolError, match="before any fmt 0"):
        reader.check()
    with pytest.raises(ProtocolError, match="before any fmt 0"):
        reader.feed(b"")  # and the reader stays failed


def test_a_bad_set_chunk_size_at_the_end_of_a_feed_is_raised_by_check() -> None:
    writer = ChunkWriter()
    wire = writer.encode(Message(8, 1, 0, b"aac"), 4) + writer.encode(Message(1, 0, 0, u32(1)), 2)
    reader = ChunkReader()
    assert reader.feed(wire) == [Message(8, 1, 0, b"aac")]
    with pytest.raises(ProtocolError, match="chunk size 1 out of range"):
        reader.check()


def test_a_reader_without_an_error_checks_clean() -> None:
    reader = ChunkReader()
    reader.feed(ChunkWriter().encode(Message(8, 1, 0, b"x"), 4))
    reader.check()


def test_a_chunk_of_another_stream_before_a_messages_last_chunk_is_read_in_order() -> None:
    # A message's chunks read in one go must all be its own: here only the last
    # continuation is preceded by another chunk stream's (whole) message.
    a, n = bytes(range(256)) + b"a" * 44, b"n" * 10
    data = (
        b"\x04" + h0(0, 300, 8, 1) + a[:128]
        + b"\xc4" + a[128:256]
        + b"\x06" + h0(5, 10, 9, 1) + n
        + b"\xc4" + a[256:]
    )  # fmt: skip
    expected = [Message(9, 1, 5, n), Message(8, 1, 0, a)]
    assert feed_all(data) == expected
    assert_split_invariant(data, expected)


def test_a_message_whose_chunks_all_arrived_is_consumed_to_its_end() -> None:
    writer = ChunkWriter(128)
    first, second = Message(9, 1, 0, bytes(range(256)) * 2), Message(8, 1, 3, b"x" * 129)
    one = writer.encode(first, 6)
    reader = ChunkReader()
    assert reader.feed(one + writer.encode(second, 300), 1) == [first]
    assert reader.consumed == len(one)
    assert reader.buffered_bytes == 0
    assert reader.feed(writer.encode(second, 300)) == [second]


def test_the_total_limit_counts_bytes_held_between_feeds_not_a_message_read_whole() -> None:
    payload = bytes(300)
    data = ChunkWriter(128).encode(Message(9, 1, 0, payload), 6)
    assert ChunkReader(max_buffered=200).feed(data) == [Message(9, 1, 0, payload)]
    with pytest.raises(ProtocolError, match="more than 200 bytes of unfinished messages"):
        ChunkReader(max_buffered=200).feed(data[:-10])  # 290 bytes would be held
