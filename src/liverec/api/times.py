"""Times on the wire: RFC 3339 with an offset in requests, UTC with milliseconds in answers.

The one parser is media.m3u8.parse_time (it also takes FLS's own `2019-01-07T12:00+08`);
here its MediaError becomes a 400 that names the field."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from liverec.api.errors import ApiError
from liverec.errors import MediaError
from liverec.media import m3u8
from liverec.media.m3u8 import format_time

__all__ = ["format_time", "not_in_future", "parse_range", "parse_time", "whole_seconds"]


def parse_time(value: str, field: str) -> datetime:
    """`value` as an aware UTC datetime; ApiError 400 `invalid_time` if it is not a time
    with an offset."""
    try:
        return m3u8.parse_time(value)
    except MediaError as exc:
        raise ApiError(400, "invalid_time", f"{field}: {exc}") from None


def parse_range(start_time: str, end_time: str) -> tuple[datetime, datetime]:
    """The `start_time` and `end_time` query parameters of a listing; 400 `invalid_time` if
    either is not a time or the end is before the start."""
    start = parse_time(start_time, "start_time")
    end = parse_time(end_time, "end_time")
    if end < start:
        raise ApiError(400, "invalid_time", "end_time is before start_time")
    return start, end


def not_in_future(value: datetime, now: datetime, field: str) -> None:
    # One second of grace: a client that asks for "now" from its own clock is not wrong.
    if value > now + timedelta(seconds=1):
        raise ApiError(400, "invalid_time", f"{field} is later than now")


def whole_seconds(delta: timedelta) -> int:
    return max(0, math.floor(delta.total_seconds()))
