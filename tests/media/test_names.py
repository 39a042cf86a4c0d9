"""The one rule for stream names and clip/snapshot file names."""

from __future__ import annotations

import pytest

from liverec.media.names import (
    CLIP_EXTENSIONS,
    SNAPSHOT_EXTENSIONS,
    file_name_problem,
    stream_name_problem,
)


@pytest.mark.parametrize("name", ["cam1", "a", "A-b_c.d", "x" * 128, "...", ".a", "a..b"])
def test_good_stream_names(name: str) -> None:
    assert stream_name_problem(name) is None


@pytest.mark.parametrize(
    "name", ["", ".", "..", "x" * 129, "a/b", "a b", "a?b", "a%2e", "ü", "a\u2028", "a\x00"]
)
def test_bad_stream_names(name: str) -> None:
    problem = stream_name_problem(name)
    assert problem is not None and "[A-Za-z0-9_.-]" in problem


@pytest.mark.parametrize(
    ("name", "extensions"),
    [
        ("clip.m3u8", CLIP_EXTENSIONS),
        ("CLIP.M3U8", CLIP_EXTENSIONS),
        ("a.b-c_d.m3u8", CLIP_EXTENSIONS),
        ("x" * 195 + ".m3u8", CLIP_EXTENSIONS),
        ("shot.jpg", SNAPSHOT_EXTENSIONS),
        ("shot.jpeg", SNAPSHOT_EXTENSIONS),
        ("shot.jpg", ("jpg",)),  # an extension given without its dot
    ],
)
def test_good_file_names(name: str, extensions: tuple[str, ...]) -> None:
    assert file_name_problem(name, extensions) is None


@pytest.mark.parametrize(
    ("name", "extensions", "says"),
    [
        ("", CLIP_EXTENSIONS, "1-200 characters"),
        ("x" * 196 + ".m3u8", CLIP_EXTENSIONS, "1-200 characters"),
        (".m3u8", CLIP_EXTENSIONS, "not starting with '.'"),
        ("..", CLIP_EXTENSIONS, "not starting with '.'"),
        (".clip.m3u8", CLIP_EXTENSIONS, "not starting with '.'"),
        ("a/b.m3u8", CLIP_EXTENSIONS, "[A-Za-z0-9_.-]"),
        ("a\\b.m3u8", CLIP_EXTENSIONS, "[A-Za-z0-9_.-]"),
        ("a\u2028b.m3u8", CLIP_EXTENSIONS, "[A-Za-z0-9_.-]"),
        ("a b.m3u8", CLIP_EXTENSIONS, "[A-Za-z0-9_.-]"),
        ("a?.m3u8", CLIP_EXTENSIONS, "[A-Za-z0-9_.-]"),
        ("a#.m3u8", CLIP_EXTENSIONS, "[A-Za-z0-9_.-]"),
        ("a%20.m3u8", CLIP_EXTENSIONS, "[A-Za-z0-9_.-]"),
        ("clip", CLIP_EXTENSIONS, "must end with .m3u8"),
        ("clip.m3u8.jpg", CLIP_EXTENSIONS, "must end with .m3u8"),
        ("shot.png", SNAPSHOT_EXTENSIONS, "must end with .jpg or .jpeg"),
    ],
)
def test_bad_file_names(name: str, extensions: tuple[str, ...], says: str) -> None:
    problem = file_name_problem(name, extensions)
    assert problem is not None and says in problem


def test_a_long_name_is_not_echoed_whole() -> None:
    problem = file_name_problem("x" * 10_000, CLIP_EXTENSIONS)
    assert problem is not None and len(problem) < 400
