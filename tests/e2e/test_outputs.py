"""End to end: recording-output settings and periodic snapshots on a real `liverec serve`
with real pushes (MP4 record files: tests/outputs and tests/e2e/test_mp4_files.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import httpx
import pytest

from support.api import client, error, frame_times, jpeg_frame, z
from support.mediagen import make_media
from support.recordings import finished
from support.server import APP_ID, LiverecProcess, push

pytestmark = pytest.mark.slow  # real `liverec serve` processes, real ffmpeg pushes

FPS = 25
EPS = f"/v1/projects/{APP_ID}/fls/entry_points"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiverecProcess]:
    proc = LiverecProcess(tmp_path_factory.mktemp("data")).start()
    yield proc
    proc.terminate()


@pytest.fixture(scope="module")
def http(srv: LiverecProcess) -> Iterator[httpx.Client]:
    with client(srv) as c:
        for ep in ("shots", "settings"):
            assert c.post(EPS, params={"id": ep}).status_code == 201
        yield c


def test_record_settings_round_trip_and_bad_ones(http: httpx.Client) -> None:
    path = EPS + "/settings/settings/record/standard/regions/na"
    assert http.get(path).json() == {
        "hlsConfig": {"enabled": True},
        "mp4Config": {"enabled": False},
    }
    resp = http.patch(path, json={"mp4Config": {"enabled": True}})
    assert resp.status_code == 200, resp.text
    both = {"hlsConfig": {"enabled": True}, "mp4Config": {"enabled": True}}
    assert resp.json() == both and http.get(path).json() == both
    # Another region has its own settings.
    assert http.get(path.replace("/na", "/eu")).json()["mp4Config"] == {"enabled": False}
    bad: object
    for bad in (
        {"mp4Config": {"enabled": "yes"}},
        {"hlsConfig": {"enabled": 1}},
        {"hlsConfig": True},
        {"mp4Config": {}},
    ):
        error(http.patch(path, json=bad), 400)
    error(http.patch(path.replace("/na", "/xx"), json={"mp4Config": {"enabled": False}}), 400)
    error(http.patch(EPS + "/nosuch/settings/record/standard/regions/na", json={}), 404)
    assert http.get(path).json() == both  # nothing changed


def test_snapshot_settings_round_trip_and_bad_ones(http: httpx.Client) -> None:
    path = EPS + "/settings/settings/snapshot/standard/regions/na"
    assert http.get(path).json() == {
        "enabled": False,
        "enableModeration": False,
        "snapshotInterval": 10,
    }
    on = {"enabled": True, "snapshotInterval": 30, "enableModeration": True}
    resp = http.patch(path, json=on)
    assert resp.status_code == 200 and resp.json() == on
    assert http.patch(path, json={"enabled": False}).json() == {**on, "enabled": False}
    for bad in (
        {"enabled": True, "snapshotInterval": 4},
        {"enabled": True, "snapshotInterval": 301},
        {"enabled": True, "snapshotInterval": "ten"},
        {"enabled": True, "snapshotInterval": 7.5},
        {"snapshotInterval": 10},  # enabled is required
        {"enabled": "true"},
    ):
        error(http.patch(path, json=bad), 400)
    assert http.get(path).json() == {**on, "enabled": False}


def test_periodic_snapshots_on_schedule(
    http: httpx.Client, srv: LiverecProcess, tmp_path: Path
) -> None:
    settings = EPS + "/shots/settings/snapshot/standard/regions/na"
    assert http.patch(settings, json={"enabled": True, "snapshotInterval": 5}).status_code == 200
    media = make_media(tmp_path / "shots.flv", 17, fps=FPS, gop=FPS)  # a keyframe a second
    assert push(srv.url("shots", "cam"), media).returncode == 0
    [rec] = finished(srv.stream_dir("cam", "shots"))
    listed = http.get(
        EPS + "/shots/admin/snapshot/standard/regions/na/list",
        params={
            "start_time": z(rec.start - timedelta(minutes=1)),
            "end_time": z(datetime.now(UTC)),
            "stream_name": "cam",
        },
    )
    assert listed.status_code == 200, listed.text
    items = listed.json()["list"]
    assert len(items) >= 3, items  # at about 5, 10 and 15 s
    frames = {z(f.wall): f.number for f in frame_times(rec)}
    session = rec.path.stem  # {sessionid}_{sessiondate}, as the recording's own name
    times = []
    for item in items:
        assert re.fullmatch(rf"snapshot/shots/cam/{session}_\d{{14}}\.jpg", item["fileName"]), item
        shot = httpx.get(item["url"])
        assert shot.status_code == 200 and shot.headers["content-type"] == "image/jpeg"
        number, width, height = jpeg_frame(shot.content, tmp_path)
        # Exactly the frame shown at the listed time, and a keyframe (one every 25 frames).
        assert frames[item["time"]] == number and number % FPS == 0
        assert (width, height) == (320, 240)
        times.append(datetime.fromisoformat(item["time"].replace("Z", "+00:00")))
    # Every interval, each within one GOP (1 s) of its scheduled instant.
    for earlier, later in pairwise(times):
        assert abs((later - earlier).total_seconds() - 5) <= 1.0 + 0.1, times
    assert (times[0] - rec.start).total_seconds() <= 5 + 1.0 + 0.5
