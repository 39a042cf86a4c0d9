"""Times on the wire: RFC 3339 with an offset in requests, UTC with milliseconds in answers.

FLS's own examples write times like `2019-01-07T12:00+08` (no seconds, an hour-only offset),
so those are accepted too; a time without any offset is not, since its instant is unknown."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta, timezone

from liverec.api.errors import ApiError
from liverec.media.m3u8 import format_time

__all__ = ["format_time", "not_in_future", "parse_time", "whole_seconds"]

_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?"
    r"(?:([Zz])|([+-])(\d{2})(?::?(\d{2}))?)"
)


def parse_time(value: str, field: str) -> datetime:
    match = _TIME.fullmatch(value.strip())
    if match is None:
        raise ApiError(
            400, "invalid_time", f"{field} is not an RFC 3339 time with an offset: {value[:64]!r}"
        )
    y, mo, d, h, mi, s, frac, z, sign, oh, om = match.groups()
    if z:
        tz = UTC
    else:
        minutes = int(oh) * 60 + int(om or 0)
        if int(oh) > 23 or int(om or 0) > 59:
            raise ApiError(400, "invalid_time", f"{field} has a bad offset: {value[:64]!r}")
        tz = timezone(timedelta(minutes=minutes if sign == "+" else -minutes))
    micro = int((frac or "0").ljust(6, "0")[:6])
    try:
        local = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s or 0), micro, tz)
    except ValueError:
        message = f"{field} is not a valid date: {value[:64]!r}"
        raise ApiError(400, "invalid_time", message) from None
    return local.astimezone(UTC)


def not_in_future(value: datetime, now: datetime, field: str) -> None:
    # One second of grace: a client that asks for "now" from its own clock is not wrong.
    if value > now + timedelta(seconds=1):
        raise ApiError(400, "invalid_time", f"{field} is later than now")


def whole_seconds(delta: timedelta) -> int:
    return max(0, math.floor(delta.total_seconds()))
