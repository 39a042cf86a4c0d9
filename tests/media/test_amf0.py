"""AMF0 against hand-built bytes (AMF0 spec), plus the error and limit paths."""

from __future__ import annotations

import struct

import pytest

from liverec.errors import MediaError
from liverec.media.amf0 import Amf0Error, Amf0Value, EcmaArray, decode_all, encode


def num(x: float) -> bytes:
    return b"\x00" + struct.pack(">d", x)


def s(text: str) -> bytes:
    raw = text.encode()
    return b"\x02" + len(raw).to_bytes(2, "big") + raw


def key(text: str) -> bytes:
    raw = text.encode()
    return len(raw).to_bytes(2, "big") + raw


END = b"\x00\x00\x09"

# The connect command as ffmpeg (rtmpproto.c gen_connect) sends it when publishing.
FFMPEG_CONNECT = (
    s("connect")
    + num(1.0)
    + b"\x03"
    + key("app")
    + s("live")
    + key("type")
    + s("nonprivate")
    + key("flashVer")
    + s("FMLE/3.0 (compatible; Lavf61.7.100)")
    + key("tcUrl")
    + s("rtmp://127.0.0.1:1935/live")
    + END
)


def test_ffmpeg_connect_decodes() -> None:
    assert decode_all(FFMPEG_CONNECT) == [
        "connect",
        1.0,
        {
            "app": "live",
            "type": "nonprivate",
            "flashVer": "FMLE/3.0 (compatible; Lavf61.7.100)",
            "tcUrl": "rtmp://127.0.0.1:1935/live",
        },
    ]


def test_encode_matches_hand_built_bytes() -> None:
    obj = {
        "app": "live",
        "type": "nonprivate",
        "flashVer": "FMLE/3.0 (compatible; Lavf61.7.100)",
        "tcUrl": "rtmp://127.0.0.1:1935/live",
    }
    assert encode("connect", 1, obj) == FFMPEG_CONNECT


def test_scalars() -> None:
    data = num(-2.5) + b"\x01\x01" + b"\x01\x00" + b"\x05" + b"\x06" + s("")
    assert decode_all(data) == [-2.5, True, False, None, None, ""]


def test_bool_is_not_encoded_as_number() -> None:
    assert encode(True, False, 1, 0) == b"\x01\x01\x01\x00" + num(1) + num(0)


def test_ecma_array_strict_array_date_long_string() -> None:
    ecma = b"\x08" + (2).to_bytes(4, "big") + key("duration") + num(0) + key("width") + num(1280)
    strict = b"\x0a" + (3).to_bytes(4, "big") + num(1) + s("a") + b"\x05"
    date = b"\x0b" + struct.pack(">d", 1.7e12) + b"\x00\x00"
    long = b"\x0c" + (5).to_bytes(4, "big") + b"hello"
    values = decode_all(ecma + END + strict + date + long)
    assert values == [{"duration": 0.0, "width": 1280.0}, [1.0, "a", None], 1.7e12, "hello"]
    assert isinstance(values[0], EcmaArray)


def test_ecma_array_count_is_only_a_hint() -> None:
    # Encoders get the count wrong; the end marker decides.
    data = b"\x08" + (0).to_bytes(4, "big") + key("a") + num(1) + END
    assert decode_all(data) == [{"a": 1.0}]


def test_typed_object_and_xml() -> None:
    typed = b"\x10" + key("Cls") + key("x") + num(2) + END
    xml = b"\x0f" + (3).to_bytes(4, "big") + b"<a>"
    assert decode_all(typed + xml) == [{"x": 2.0}, "<a>"]


def test_nested_round_trip() -> None:
    value: Amf0Value = {"a": [1.0, {"b": EcmaArray(c=None, d=True)}, "x" * 70000], "": "empty key"}
    data = encode(value)
    assert b"\x0c" in data  # the long string
    assert b"\x08" in data  # the ECMA array
    assert decode_all(data) == [value]


def test_encode_tuple_as_strict_array() -> None:
    assert encode((1, "a")) == b"\x0a\x00\x00\x00\x02" + num(1) + s("a")


def test_invalid_utf8_is_replaced() -> None:
    assert decode_all(b"\x02\x00\x02\xff\xfe") == ["\ufffd\ufffd"]


@pytest.mark.parametrize(
    "data",
    [
        b"\x07\x00\x01",  # reference
        b"\x04",  # movieclip
        b"\x0d",  # unsupported
        b"\x11\x02",  # AMF3 switch
        b"\x09",  # object end out of place
        b"\x0a\xff\xff\xff\xff",  # strict array count the data cannot hold
        b"\x03" + key("a"),  # object missing its value and end
        b"\x00\x00",  # truncated number
        b"\x02\x00\x05abc",  # truncated string
        b"\x0c\xff\xff\xff\xffab",  # truncated long string
        b"\x0b" + struct.pack(">d", 1.0),  # date missing its time zone
    ],
)
def test_malformed_raises_amf0_error(data: bytes) -> None:
    with pytest.raises(Amf0Error):
        decode_all(data)


def test_every_truncation_of_an_object_raises() -> None:
    whole = encode({"a": [1, {"b": "c"}], "d": EcmaArray(e=True)})
    for n in range(1, len(whole)):
        with pytest.raises(Amf0Error):
            decode_all(whole[:n])


def test_amf0_error_is_a_media_error() -> None:
    assert issubclass(Amf0Error, MediaError)


def test_depth_limit() -> None:
    nested: dict[str, object] = {}
    deep = nested
    for _ in range(3):
        inner: dict[str, object] = {}
        deep["k"] = inner
        deep = inner
    data = encode(nested)  # type: ignore[arg-type]  # dict[str, object] is fine at runtime
    assert decode_all(data, max_depth=4) == [nested]
    with pytest.raises(Amf0Error, match="nesting"):
        decode_all(data, max_depth=3)
    with pytest.raises(Amf0Error, match="nesting"):
        decode_all(b"\x0a\x00\x00\x00\x01" * 40 + b"\x05")


def test_item_limit() -> None:
    data = encode(list(range(10)))
    assert len(decode_all(data, max_items=11)[0]) == 10  # type: ignore[arg-type]
    with pytest.raises(Amf0Error, match="more than"):
        decode_all(data, max_items=10)


@pytest.mark.parametrize("bad", [10**400, {1: "a"}, b"bytes", object()])
def test_unencodable_values(bad: object) -> None:
    with pytest.raises(Amf0Error):
        encode(bad)  # type: ignore[arg-type]
