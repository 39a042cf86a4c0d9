"""Calling a real liverec's HTTP API as an FLS client would."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import av
import httpx

from support.mediagen import read_frame_number
from support.recordings import Recorded
from support.server import APP_ID, CUSTOMER_ID, CUSTOMER_SECRET, LiverecProcess


def z(t: datetime) -> str:
    """A time as liverec answers it: UTC, milliseconds, Z."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def base_path(app_id: str = APP_ID, entry_point: str = "live", region: str = "na") -> str:
    return (
        f"/v1/projects/{app_id}/fls/entry_points/{entry_point}/admin/record/standard"
        f"/regions/{region}"
    )


def client(
    srv: LiverecProcess, auth: tuple[str, str] | None = (CUSTOMER_ID, CUSTOMER_SECRET)
) -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{srv.http_port}", auth=auth, timeout=30)


def error(resp: httpx.Response, status: int) -> dict[str, Any]:
    """Check an error answer: its status, a JSON body with `message` first and a reason."""
    assert resp.status_code == status, (resp.status_code, resp.text)
    body = resp.json()
    assert isinstance(body, dict) and next(iter(body)) == "message" and "reason" in body, body
    return body


@dataclass(frozen=True)
class Frame:
    wall: datetime
    number: int


def frame_times(rec: Recorded) -> list[Frame]:
    """The wall-clock time and number of every video frame of a recording, computed the
    way HLS defines it: a segment's EXT-X-PROGRAM-DATE-TIME is the time of its first media,
    and timestamps inside the segment give the offsets from there."""
    out = []
    for seg in rec.playlist.segments:
        assert seg.program_date_time is not None
        path = rec.path.parent / seg.uri
        with av.open(str(path)) as c:
            # The segment's first frame in file order starts it; PyAV may hand out an audio
            # packet first, so take the smallest timestamp (exact, as a Fraction).
            origin = min(
                (p.dts * p.time_base for p in c.demux() if p.dts is not None), default=None
            )
        assert origin is not None
        with av.open(str(path)) as c:
            for frame in c.decode(video=0):
                offset = float(frame.time) - origin
                out.append(
                    Frame(
                        seg.program_date_time + timedelta(seconds=offset), read_frame_number(frame)
                    )
                )
    return out


def jpeg_frame(data: bytes, tmp: Path) -> tuple[int, int, int]:
    """(frame number, width, height) of a JPEG."""
    path = tmp / "shot.jpg"
    path.write_bytes(data)
    with av.open(str(path)) as c:
        frame = next(c.decode(video=0))
        return read_frame_number(frame), frame.width, frame.height
