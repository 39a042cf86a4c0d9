"""AMF0 encoding and decoding (the value format of RTMP commands and FLV script data).

Decoding is defensive: the bytes come from untrusted publishers, so every malformed or
truncated input raises Amf0Error, and nesting depth and item count are bounded."""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

from liverec.errors import MediaError

NUMBER = 0x00
BOOLEAN = 0x01
STRING = 0x02
OBJECT = 0x03
MOVIECLIP = 0x04
NULL = 0x05
UNDEFINED = 0x06
REFERENCE = 0x07
ECMA_ARRAY = 0x08
OBJECT_END = 0x09
STRICT_ARRAY = 0x0A
DATE = 0x0B
LONG_STRING = 0x0C
UNSUPPORTED = 0x0D
RECORDSET = 0x0E
XML_DOCUMENT = 0x0F
TYPED_OBJECT = 0x10
AVMPLUS = 0x11

Amf0Value: TypeAlias = float | bool | str | dict[str, "Amf0Value"] | list["Amf0Value"] | None
# What `encode` accepts: read-only containers, so `dict[str, str]` or a tuple also fit.
Amf0Input: TypeAlias = float | bool | str | Mapping[str, "Amf0Input"] | Sequence["Amf0Input"] | None

_F64 = struct.Struct(">d")


class Amf0Error(MediaError):
    """AMF0 bytes are malformed, truncated, too deep or too large, or a value is unencodable."""


class EcmaArray(dict[str, Any]):
    """A dict that encodes as an AMF0 ECMA array (0x08), as onMetaData is usually sent.

    Decoded ECMA arrays come back as EcmaArray, so they compare equal to plain dicts and
    re-encode the way they arrived."""


def decode_all(data: bytes, max_depth: int = 32, max_items: int = 4096) -> list[Amf0Value]:
    """Decode consecutive AMF0 values until `data` ends."""
    decoder = _Decoder(data, max_depth, max_items)
    values: list[Amf0Value] = []
    try:
        while decoder.pos < decoder.end:
            values.append(decoder.value(0))
    except RecursionError:  # only if a caller raised max_depth past Python's own limit
        raise Amf0Error("AMF0 nesting too deep") from None
    return values


class _Decoder:
    __slots__ = ("data", "end", "items", "max_depth", "max_items", "pos")

    def __init__(self, data: bytes, max_depth: int, max_items: int) -> None:
        self.data = memoryview(data).cast("B")
        self.pos = 0
        self.end = len(self.data)
        self.items = 0
        self.max_depth = max_depth
        self.max_items = max_items

    def take(self, n: int) -> memoryview:
        start = self.pos
        if n > self.end - start:
            raise Amf0Error(f"AMF0 truncated: need {n} bytes at offset {start}")
        self.pos = start + n
        return self.data[start : start + n]

    def u8(self) -> int:
        if self.pos >= self.end:
            raise Amf0Error(f"AMF0 truncated at offset {self.pos}")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def f64(self) -> float:
        value: float = _F64.unpack(self.take(8))[0]
        return value

    def text(self, n: int) -> str:
        return bytes(self.take(n)).decode("utf-8", errors="replace")

    def value(self, depth: int) -> Amf0Value:
        self.items += 1
        if self.items > self.max_items:
            raise Amf0Error(f"AMF0 has more than {self.max_items} values")
        marker = self.u8()
        if marker == NUMBER:
            return self.f64()
        if marker == BOOLEAN:
            return self.u8() != 0
        if marker == STRING:
            return self.text(self.uint(2))
        if marker in (NULL, UNDEFINED):
            return None
        if marker == OBJECT:
            return self.properties(depth, {})
        if marker == ECMA_ARRAY:
            self.take(4)  # the count is only a hint; the end marker is what ends the array
            return self.properties(depth, EcmaArray())
        if marker == STRICT_ARRAY:
            return self.strict_array(depth)
        if marker == DATE:
            ms = self.f64()
            self.take(2)  # time zone, reserved: always 0
            return ms
        if marker in (LONG_STRING, XML_DOCUMENT):
            return self.text(self.uint(4))
        if marker == TYPED_OBJECT:
            self.text(self.uint(2))  # the class name has no use here
            return self.properties(depth, {})
        if marker == OBJECT_END:
            raise Amf0Error(f"AMF0 object end marker out of place at offset {self.pos - 1}")
        raise Amf0Error(f"AMF0 marker 0x{marker:02x} not supported at offset {self.pos - 1}")

    def properties(self, depth: int, out: dict[str, Amf0Value]) -> dict[str, Amf0Value]:
        if depth >= self.max_depth:
            raise Amf0Error(f"AMF0 nesting deeper than {self.max_depth}")
        while True:
            key_len = self.uint(2)
            if key_len == 0 and self.pos < self.end and self.data[self.pos] == OBJECT_END:
                self.pos += 1
                return out
            key = self.text(key_len)
            out[key] = self.value(depth + 1)

    def strict_array(self, depth: int) -> list[Amf0Value]:
        if depth >= self.max_depth:
            raise Amf0Error(f"AMF0 nesting deeper than {self.max_depth}")
        count = self.uint(4)
        # Each element takes at least one byte: refuse a count the data cannot hold before
        # looping, so a forged count costs nothing.
        if count > self.end - self.pos:
            raise Amf0Error(f"AMF0 strict array of {count} items exceeds the data")
        return [self.value(depth + 1) for _ in range(count)]


def encode(*values: Amf0Input) -> bytes:
    """Encode values back to back. int encodes as number, tuple as strict array."""
    out = bytearray()
    for value in values:
        _encode_into(out, value)
    return bytes(out)


def _encode_into(out: bytearray, value: Amf0Input) -> None:
    # bool first: bool is an int subclass and must not become a number.
    if isinstance(value, bool):
        out += bytes((BOOLEAN, 1 if value else 0))
    elif isinstance(value, int | float):
        try:
            packed = _F64.pack(float(value))
        except OverflowError:
            raise Amf0Error(f"AMF0 number out of range: {value}") from None
        out.append(NUMBER)
        out += packed
    elif isinstance(value, str):
        raw = value.encode("utf-8")
        if len(raw) <= 0xFFFF:
            out.append(STRING)
            out += len(raw).to_bytes(2, "big")
        elif len(raw) <= 0xFFFFFFFF:
            out.append(LONG_STRING)
            out += len(raw).to_bytes(4, "big")
        else:
            raise Amf0Error("AMF0 string too long")
        out += raw
    elif value is None:
        out.append(NULL)
    elif isinstance(value, Mapping):
        if isinstance(value, EcmaArray):
            out.append(ECMA_ARRAY)
            out += len(value).to_bytes(4, "big")
        else:
            out.append(OBJECT)
        for key, item in value.items():
            if not isinstance(key, str):
                raise Amf0Error(f"AMF0 object key must be str, not {type(key).__name__}")
            raw_key = key.encode("utf-8")
            if len(raw_key) > 0xFFFF:
                raise Amf0Error("AMF0 object key too long")
            out += len(raw_key).to_bytes(2, "big")
            out += raw_key
            _encode_into(out, item)
        out += b"\x00\x00\x09"
    elif isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        out.append(STRICT_ARRAY)
        out += len(value).to_bytes(4, "big")
        for item in value:
            _encode_into(out, item)
    else:
        raise Amf0Error(f"cannot encode {type(value).__name__} as AMF0")
