"""Key and file-name validation: everything unsafe is an InvalidKeyError."""

from __future__ import annotations

import pytest

from liverec.errors import InvalidKeyError
from liverec.storage import check_key, check_name, check_prefix

GOOD_KEYS = [
    "a",
    "na/app/record/live/cam1/abc_20261123120000000.m3u8",
    "a/b.c/d-e_f",
    ".hidden/x",
    "...",
    "ünïcode/名前.ts",
    "x" * 255,
    "/".join(["y" * 200] * 5),  # 1004 bytes
]

BAD_KEYS = [
    "",
    "/abs",
    "a//b",
    "a/",
    "./a",
    "a/./b",
    "..",
    "../a",
    "a/../b",
    "a/..",
    "a\\b",
    "..\\a",
    "a\x00b",
    "a\nb",
    "a\tb",
    "a\x7fb",
    "a\x85b",  # C1 control
    "x" * 256,  # one part over 255 bytes
    "é" * 128,  # 256 bytes in UTF-8
    "/".join(["y" * 200] * 6),  # over 1024 bytes
    "a\ud800b",  # lone surrogate
]


@pytest.mark.parametrize("key", GOOD_KEYS)
def test_good_keys_pass(key: str) -> None:
    assert check_key(key) == key


@pytest.mark.parametrize("key", BAD_KEYS)
def test_bad_keys_are_refused(key: str) -> None:
    with pytest.raises(InvalidKeyError):
        check_key(key)


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("clip.m3u8", True),
        ("CLIP.M3U8", True),
        ("a.b.m3u8", True),
        ("-_x.m3u8", True),
        ("x" * 195 + ".m3u8", True),  # 200 characters
        ("x" * 196 + ".m3u8", False),  # 201
        ("clip.mp4", False),
        ("clip", False),
        (".m3u8", False),  # no stem
        (".hidden.m3u8", False),
        ("dir/clip.m3u8", False),
        ("..", False),
        ("clip.m3u8\x00.jpg", False),
        ("c\\lip.m3u8", False),
        ("a\u2028b.m3u8", False),  # a line separator: passed the old check, then a 500
        ("a b.m3u8", False),  # characters a playlist's relative URI would need escaped
        ("a?b.m3u8", False),
        ("a#b.m3u8", False),
        ("a%41.m3u8", False),
        ("名前.m3u8", False),
    ],
)
def test_names_follow_the_one_file_name_rule(name: str, ok: bool) -> None:
    if ok:
        assert check_name(name, (".m3u8",)) == name
        assert check_name(name, ("m3u8", "jpg")) == name
    else:
        with pytest.raises(InvalidKeyError):
            check_name(name, (".m3u8",))


def test_the_extension_must_be_one_of_those_given() -> None:
    assert check_name("shot.JPEG", (".jpg", ".jpeg")) == "shot.JPEG"
    with pytest.raises(InvalidKeyError, match=r"\.jpg or \.jpeg"):
        check_name("shot.m3u8", (".jpg", ".jpeg"))


def test_prefixes() -> None:
    assert check_prefix("") == ""
    assert check_prefix("a/b/") == "a/b/"
    assert check_prefix("a/b") == "a/b"
    for bad in ("/", "../", "a//", "/a/"):
        with pytest.raises(InvalidKeyError):
            check_prefix(bad)
    with pytest.raises(InvalidKeyError):
        check_key("na/app/" + "/etc/passwd")
