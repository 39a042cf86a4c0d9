"""Storage keys: every key a store sees passes check_key; every clip or snapshot file name a
user gives passes check_name. Keys are relative, '/'-separated paths that are safe both as
S3 keys and as paths under a local root."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from liverec.errors import InvalidKeyError
from liverec.media.names import file_name_problem

MAX_KEY_BYTES = 1024
MAX_PART_BYTES = 255


def _utf8_len(text: str) -> int:
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:  # lone surrogates
        raise InvalidKeyError("key is not valid Unicode") from None


def _has_control(text: str) -> bool:
    return any(unicodedata.category(ch) == "Cc" for ch in text)


def check_key(key: str) -> str:
    """Return `key` if it is a safe storage key, else raise InvalidKeyError: relative,
    '/'-separated, no empty, '.' or '..' part, no backslash, no control character, each part
    at most 255 bytes and the whole at most 1024 bytes (UTF-8)."""
    if not isinstance(key, str) or not key:
        raise InvalidKeyError("key is empty")
    if _utf8_len(key) > MAX_KEY_BYTES:
        raise InvalidKeyError(f"key is longer than {MAX_KEY_BYTES} bytes")
    if _has_control(key):
        raise InvalidKeyError(f"key has a control character: {key!r}")
    if "\\" in key:
        raise InvalidKeyError(f"key has a backslash: {key!r}")
    if key.startswith("/"):
        raise InvalidKeyError(f"key is absolute: {key!r}")
    for part in key.split("/"):
        if part in ("", ".", ".."):
            raise InvalidKeyError(f"key has an empty, '.' or '..' part: {key!r}")
        if _utf8_len(part) > MAX_PART_BYTES:
            raise InvalidKeyError(f"a key part is longer than {MAX_PART_BYTES} bytes")
    return key


def check_prefix(prefix: str) -> str:
    """A listing prefix: '' (everything), or a key, or a key followed by '/'."""
    if prefix == "":
        return prefix
    check_key(prefix[:-1] if prefix.endswith("/") else prefix)
    return prefix


def check_name(name: str, extensions: Sequence[str]) -> str:
    """Return `name` if it is a valid clip or snapshot file name with one of `extensions`
    (the one rule, media.names: 1-200 of [A-Za-z0-9_.-], no leading dot); else raise
    InvalidKeyError."""
    problem = file_name_problem(name, extensions)
    if problem is not None:
        raise InvalidKeyError(problem)
    return name
