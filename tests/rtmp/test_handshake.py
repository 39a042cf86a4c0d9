"""The plain RTMP handshake, server side (RTMP spec 5.2)."""

from __future__ import annotations

import pytest

from liverec.errors import ProtocolError
from liverec.rtmp.handshake import HANDSHAKE_SIZE, ServerHandshake

C1 = bytes(range(256)) * 6  # time, zero, random: any 1536 bytes
C2 = bytes(reversed(C1))
CHUNKS = b"\x03\x00\x00\x00"  # the first bytes of the chunk stream


def fixed_random(n: int) -> bytes:
    return b"\xab" * n


def test_full_handshake_in_one_feed() -> None:
    hs = ServerHandshake(random_bytes=fixed_random, time_ms=0x01020304)
    reply = hs.feed(b"\x03" + C1 + C2 + CHUNKS)
    assert len(reply) == 1 + 2 * HANDSHAKE_SIZE
    s0, s1, s2 = reply[:1], reply[1:1537], reply[1537:]
    assert s0 == b"\x03"
    assert s1[:4] == b"\x01\x02\x03\x04"  # time
    assert s1[4:8] == b"\x00\x00\x00\x00"  # zero version: plain handshake for ffmpeg/librtmp
    assert s1[8:] == b"\xab" * 1528
    assert s2 == C1
    assert hs.done
    assert hs.leftover == CHUNKS


def test_byte_by_byte_gives_the_same_reply() -> None:
    hs = ServerHandshake(random_bytes=fixed_random)
    stream = b"\x03" + C1 + C2
    replies = []
    for i in range(len(stream)):
        assert not hs.done
        replies.append(hs.feed(stream[i : i + 1]))
    assert hs.done
    assert hs.leftover == b""
    # The reply comes out exactly when C1's last byte arrives.
    assert [i for i, r in enumerate(replies) if r] == [1536]
    assert replies[1536] == ServerHandshake(fixed_random).feed(b"\x03" + C1)


def test_nothing_sent_before_c1_is_complete() -> None:
    hs = ServerHandshake(random_bytes=fixed_random)
    assert hs.feed(b"\x03" + C1[:-1]) == b""
    assert len(hs.feed(C1[-1:] + C2[:10])) == 3073
    assert not hs.done
    assert hs.feed(C2[10:]) == b""
    assert hs.done


@pytest.mark.parametrize("version", [0, 6, 8, 0x16, 0x47])  # 6/8: RTMPE, 0x16: TLS, 'G': HTTP
def test_wrong_version_is_refused_at_once(version: int) -> None:
    with pytest.raises(ProtocolError, match="version"):
        ServerHandshake().feed(bytes((version,)))


def test_data_after_done_raises() -> None:
    hs = ServerHandshake()
    hs.feed(b"\x03" + C1 + C2)
    with pytest.raises(ProtocolError):
        hs.feed(b"\x00")


def test_random_part_comes_from_the_callable() -> None:
    asked: list[int] = []

    def rnd(n: int) -> bytes:
        asked.append(n)
        return bytes(n)

    reply = ServerHandshake(random_bytes=rnd).feed(b"\x03" + C1)
    assert asked == [1528]
    assert reply[9:1537] == bytes(1528)


def test_default_random_differs_between_sessions() -> None:
    a = ServerHandshake().feed(b"\x03" + C1)
    b = ServerHandshake().feed(b"\x03" + C1)
    assert a[9:1537] != b[9:1537]
