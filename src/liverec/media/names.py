"""The one rule for names users give: stream names and clip/snapshot file names.

Both end up as a path part of storage keys and as a part of URLs (a clip playlist lists its
segments by relative URI), so only characters that need no escaping anywhere are allowed.
The checks return what is wrong, or None: each layer raises its own error with that text
(the catalog a CatalogError, storage an InvalidKeyError, the API a 400, RTMP a refusal)."""

from __future__ import annotations

import re
from collections.abc import Sequence

MAX_STREAM_NAME = 128
MAX_FILE_NAME = 200
CLIP_EXTENSIONS = (".m3u8",)
SNAPSHOT_EXTENSIONS = (".jpg", ".jpeg")
# The content type of snapshot files (playlists and segments: media.m3u8, media.ts).
JPEG_TYPE = "image/jpeg"
MP4_TYPE = "video/mp4"  # of MP4 record files

STREAM_NAME = re.compile(rf"[A-Za-z0-9_.-]{{1,{MAX_STREAM_NAME}}}")
# No leading dot: that rules out "." and "..", and hidden (and temporary) files.
_FILE_NAME = re.compile(rf"[A-Za-z0-9_-][A-Za-z0-9_.-]{{0,{MAX_FILE_NAME - 1}}}")


def _shown(value: str, limit: int) -> str:
    return repr(value[:limit] + ("..." if len(value) > limit else ""))


def stream_name_problem(name: str) -> str | None:
    """None if `name` is a valid stream name (1-128 of [A-Za-z0-9_.-], not "." or ".."),
    else what is wrong with it."""
    # "." and ".." match the character set but would name a folder above the stream's.
    if STREAM_NAME.fullmatch(name) and name not in (".", ".."):
        return None
    return (
        f"invalid stream name {_shown(name, MAX_STREAM_NAME)}: "
        f"use 1-{MAX_STREAM_NAME} of [A-Za-z0-9_.-], not '.' or '..'"
    )


def file_name_problem(name: str, extensions: Sequence[str]) -> str | None:
    """None if `name` is a valid clip or snapshot file name: 1-200 characters of
    [A-Za-z0-9_.-], no leading dot, ending in one of `extensions` (compared
    case-insensitively, with or without their dot) after a non-empty stem; else what is
    wrong."""
    shown = _shown(name, MAX_FILE_NAME)
    if not _FILE_NAME.fullmatch(name):
        return (
            f"file name {shown} must be 1-{MAX_FILE_NAME} characters of [A-Za-z0-9_.-], "
            "not starting with '.'"
        )
    wanted = ["." + ext.lower().removeprefix(".") for ext in extensions]
    lower = name.lower()
    if not any(lower.endswith(ext) and len(name) > len(ext) for ext in wanted):
        return f"file name {shown} must end with {' or '.join(wanted)}"
    return None
