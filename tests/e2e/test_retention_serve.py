"""End to end: a real `liverec serve` sweeping every second, a real ffmpeg push, an entry point
that keeps 10 s. The live recording loses its head while it is recorded (its playlist starts
later, every file it lists is there), preview_list answers the new start, and the API still
serves what remains."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from liverec.media.m3u8 import parse, parse_time
from support.api import base_path, client, z
from support.mediagen import make_media
from support.recordings import liverec_cli
from support.server import LiverecProcess, start_push

pytestmark = pytest.mark.slow  # a real `liverec serve`, a real ffmpeg push


def _listed_all_there(folder: Path) -> int:
    """The EXT-X-MEDIA-SEQUENCE of the one playlist in `folder`, every segment it lists
    being there."""
    [playlist] = folder.glob("*.m3u8")
    pl = parse(playlist.read_text())
    for entry in pl.segments:
        assert (folder / entry.uri).exists(), entry.uri
    return pl.media_sequence


def _the_recording(http: httpx.Client, began: datetime) -> dict[str, Any]:
    """preview_list's one recording of `cam` since `began`."""
    resp = http.get(
        base_path() + "/preview_list",
        params={
            "start_time": z(began - timedelta(minutes=1)),
            "end_time": z(datetime.now(UTC)),
            "stream_name": "cam",
        },
    )
    assert resp.status_code == 200, resp.text
    [item] = resp.json()["list"]
    assert isinstance(item, dict)
    return item


def test_retention_trims_a_live_recording_and_the_api_serves_the_rest(tmp_path: Path) -> None:
    media = make_media(tmp_path / "av.flv", 30, fps=25, gop=25)
    srv = LiverecProcess(tmp_path / "data", env={"LIVEREC_RETENTION_INTERVAL": "1"}).start()
    try:
        liverec_cli(
            srv.data_dir,
            "entry-points",
            "set",
            "live",
            "--target-duration",
            "1",
            "--retention",
            "10s",
        )
        began = datetime.now(UTC)
        push = start_push(srv.url(stream="cam"), media)
        folder = srv.stream_dir("cam")
        seen_trimmed = False
        with client(srv) as http:
            while push.poll() is None:
                time.sleep(1.0)
                if not folder.exists() or not list(folder.glob("*.m3u8")):
                    continue
                sequence = _listed_all_there(folder)
                if sequence > 0:
                    seen_trimmed = True
                    text = next(folder.glob("*.m3u8")).read_text()
                    assert "#EXT-X-PLAYLIST-TYPE:EVENT" not in text
                    assert "#EXT-X-TARGETDURATION:" in text
                    item = _the_recording(http, began)
                    start = parse_time(item["startTime"])
                    # Its first frame came after `began`, and at least one 1 s segment
                    # is gone: how much later the push starts depends on the machine.
                    assert start > began + timedelta(seconds=1)
                    assert start >= datetime.now(UTC) - timedelta(seconds=10 + 1 + 5)
            assert push.wait(30) == 0
            assert seen_trimmed, srv.output
            # Ended: the closed recording keeps its last 10 s for a moment, and the API
            # serves its playlist and a segment by the URL preview_list gives. ffmpeg's exit
            # only means its bytes are in the kernel's socket buffers, which hold some 20 s
            # of this small push: a server starved on a loaded machine may still be reading
            # it (a CI run once had 12 of 30 segments at the exit). Wait while the recording
            # grows; fail when it has made no progress for 30 s.
            progress, deadline = -1, time.monotonic() + 30
            while True:
                item = _the_recording(http, began)
                pl = httpx.get(item["url"], timeout=10)
                assert pl.status_code == 200, pl.text
                served = parse(pl.text)
                if served.endlist:
                    break
                if served.media_sequence + len(served.segments) != progress:
                    progress = served.media_sequence + len(served.segments)
                    deadline = time.monotonic() + 30
                if time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert served.media_sequence > 0 and served.endlist, (pl.text, srv.output)
            # The newest segment: the oldest may pass the 10 s retention between the two GETs.
            newest = item["url"].rsplit("/", 1)[0] + "/" + served.segments[-1].uri
            seg = httpx.get(newest, timeout=10)  # the signed link covers the folder
            assert seg.status_code == 200 and seg.content[:1] == b"G", seg.status_code
            # A little later all of it is past the retention period: gone, playlist too.
            deadline = time.monotonic() + 90  # the live head's files wait 60 s
            while time.monotonic() < deadline and list(folder.glob("*")):
                time.sleep(0.5)
            assert not list(folder.glob("*")), sorted(p.name for p in folder.glob("*"))
            assert "retention deleted" in srv.output
    finally:
        srv.kill()
