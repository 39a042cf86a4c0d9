"""End to end: MP4 record files on a real `liverec serve` with real ffmpeg pushes: switched
on by the settings API and by `liverec entry-points set`, sliced, listed by mp4_list,
served with byte ranges, and what a kill -9 mid-slice leaves published at the next start.
(The writer's exact timestamps, slicing rules, S3 and PostgreSQL: tests/outputs.)"""

from __future__ import annotations

import io
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import av
import httpx
import pytest

from support.api import client, error, z
from support.mediagen import make_media, read_frame_number
from support.recordings import finished, liverec_cli
from support.server import APP_ID, LiverecProcess, push, start_push

pytestmark = pytest.mark.slow  # real `liverec serve` processes, real ffmpeg pushes

FPS = 25
EPS = f"/v1/projects/{APP_ID}/fls/entry_points"
SLICE_SECONDS = 4  # the server's slice limit here, so a 10 s push makes three slices


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiverecProcess]:
    proc = LiverecProcess(
        tmp_path_factory.mktemp("data"), env={"LIVEREC_MP4_SLICE_SECONDS": str(SLICE_SECONDS)}
    ).start()
    yield proc
    proc.terminate()


@pytest.fixture(scope="module")
def http(srv: LiverecProcess) -> Iterator[httpx.Client]:
    with client(srv) as c:
        assert c.post(EPS, params={"id": "mp4"}).status_code == 201
        yield c


def mp4_list(http: httpx.Client, ep: str, stream: str, since: datetime) -> list[dict[str, Any]]:
    resp = http.get(
        f"{EPS}/{ep}/admin/record/standard/regions/na/mp4_list",
        params={
            "start_time": z(since - timedelta(minutes=1)),
            "end_time": z(datetime.now(UTC) + timedelta(minutes=1)),
            "stream_name": stream,
        },
    )
    assert resp.status_code == 200, resp.text
    items: list[dict[str, Any]] = resp.json()["list"]
    return items


def wait_listed(
    http: httpx.Client, ep: str, stream: str, since: datetime, count: int = 1
) -> list[dict[str, Any]]:
    """The listing once `count` slices are in it (they are published after the push ends)."""
    deadline = time.monotonic() + 30
    while True:
        items = mp4_list(http, ep, stream, since)
        if len(items) >= count or time.monotonic() > deadline:
            return items
        time.sleep(0.2)


def frames_of(data: bytes) -> list[int]:
    with av.open(io.BytesIO(data), mode="r", format="mp4") as container:
        return [read_frame_number(f) for f in container.decode(video=0)]


def test_slices_listed_served_with_ranges_and_every_frame_once(
    http: httpx.Client, srv: LiverecProcess, tmp_path: Path
) -> None:
    settings = EPS + "/mp4/settings/record/standard/regions/na"
    assert http.patch(settings, json={"mp4Config": {"enabled": True}}).status_code == 200
    media = make_media(tmp_path / "cam.flv", 10, fps=FPS, gop=FPS)  # a keyframe a second
    started = datetime.now(UTC)
    assert push(srv.url("mp4", "cam"), media).returncode == 0
    [rec] = finished(srv.stream_dir("cam", "mp4"))
    items = wait_listed(http, "mp4", "cam", started, count=3)
    session = rec.path.stem  # {sessionid}_{sessiondate}: the HLS recording's own
    names = [item["fileName"] for item in items]
    assert len(names) >= 3, items
    for slice_id, name in enumerate(names):
        assert re.fullmatch(rf"record/mp4/cam/{session}_{slice_id}_\d{{17}}\.mp4", name), names
    # Each slice plays on its own, starts on a keyframe, and together they hold every
    # frame of the push once, in order.
    frames: list[int] = []
    for item in items:
        resp = httpx.get(item["url"])
        assert resp.status_code == 200 and resp.headers["content-type"] == "video/mp4"
        got = frames_of(resp.content)
        assert got and got[0] % FPS == 0, got[:3]
        frames += got
    assert frames == list(range(len(frames))) and len(frames) >= 10 * FPS - FPS, frames[-3:]
    assert frames == rec.frames()
    # Times: consecutive, each slice's filedate its own start, within the slice limit + a GOP.
    starts = [datetime.fromisoformat(i["startTime"].replace("Z", "+00:00")) for i in items]
    ends = [datetime.fromisoformat(i["endTime"].replace("Z", "+00:00")) for i in items]
    for (s, e), item in zip(zip(starts, ends, strict=True), items, strict=True):
        assert timedelta(0) < e - s <= timedelta(seconds=SLICE_SECONDS + 1 + 1), item
        filedate = s.strftime("%Y%m%d%H%M%S") + f"{s.microsecond // 1000:03d}"
        assert item["fileName"].endswith(f"_{filedate}.mp4"), item
    for earlier, later in pairwise(zip(starts, ends, strict=True)):
        assert abs((later[0] - earlier[1]).total_seconds()) <= 1, (earlier, later)
    assert abs((starts[0] - rec.start).total_seconds()) <= 1
    # Byte ranges, as a browser seeking asks for them.
    url = items[0]["url"]
    whole = httpx.get(url).content
    part = httpx.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == whole[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(whole)}"
    assert httpx.get(url, headers={"Range": f"bytes={len(whole)}-"}).status_code == 416
    # HLS was recorded as well, and the listing checks its input like preview_list.
    error(
        http.get(
            f"{EPS}/mp4/admin/record/standard/regions/na/mp4_list",
            params={"start_time": "yesterday", "end_time": z(started), "stream_name": "cam"},
        ),
        400,
    )


def test_switched_by_the_cli_and_off_by_default(
    http: httpx.Client, srv: LiverecProcess, tmp_path: Path
) -> None:
    out = liverec_cli(srv.data_dir, "entry-points", "add", "cli", "--mp4", "--no-hls")
    assert "recording in na: hls=off mp4=on" in out, out
    assert http.get(EPS + "/cli/settings/record/standard/regions/na").json() == {
        "hlsConfig": {"enabled": False},
        "mp4Config": {"enabled": True},
    }
    listed = liverec_cli(srv.data_dir, "entry-points", "list")
    assert re.search(r"^cli\t.*\thls=off\tmp4=on\tsnapshots=off\b", listed, re.M), listed
    media = make_media(tmp_path / "short.flv", 3, fps=FPS, gop=FPS)
    started = datetime.now(UTC)
    assert push(srv.url("cli", "only"), media, realtime=False).returncode == 0
    assert push(srv.url("mp4", "other"), media, realtime=False).returncode == 0
    [item] = wait_listed(http, "cli", "only", started)
    assert frames_of(httpx.get(item["url"]).content) == list(range(3 * FPS))
    assert not list(srv.stream_dir("only", "cli").glob("*.m3u8"))  # HLS off: no playlist
    # A bad interval is refused before anything changes.
    bad = subprocess.run(
        [
            *(sys.executable, "-m", "liverec", "entry-points", "add", "cli2"),
            *("--snapshot-interval", "3", "--data-dir", str(srv.data_dir)),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and "5-300" in bad.stderr, bad
    assert "cli2" not in liverec_cli(srv.data_dir, "entry-points", "list")
    # An entry point without mp4 on records no MP4.
    assert liverec_cli(srv.data_dir, "entry-points", "add", "plain")
    assert push(srv.url("plain", "cam"), media, realtime=False).returncode == 0
    finished(srv.stream_dir("cam", "plain"))
    time.sleep(0.5)
    assert mp4_list(http, "plain", "cam", started) == []


def test_a_kill_mid_slice_leaves_a_playable_slice_published_at_the_next_start(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    node = LiverecProcess(data).start()
    try:
        with client(node) as c:
            assert c.post(EPS, params={"id": "crash"}).status_code == 201
            path = EPS + "/crash/settings/record/standard/regions/na"
            assert c.patch(path, json={"mp4Config": {"enabled": True}}).status_code == 200
        media = make_media(tmp_path / "long.flv", 30, fps=FPS, gop=FPS)
        started = datetime.now(UTC)
        publisher = start_push(node.url("crash", "cam"), media)
        spool = data / "spool" / "mp4"
        deadline = time.monotonic() + 30
        while not any(p.stat().st_size > 50_000 for p in spool.glob("*.mp4")):
            assert time.monotonic() < deadline, node.output
            time.sleep(0.2)
        time.sleep(1.0)
        node.kill()  # SIGKILL, mid-slice
        publisher.kill()
        publisher.wait(10)
        node.start()
        with client(node) as c:
            [item] = wait_listed(c, "crash", "cam", started)
        frames = frames_of(httpx.get(item["url"]).content)
        # What was spooled plays from the first frame, with nothing missing inside it.
        assert frames[:1] == [0] and frames == list(range(len(frames))) and len(frames) > FPS
        assert not list(spool.glob("*.mp4"))  # the spool is empty once it is published
    finally:
        node.terminate()


def test_switched_on_mid_publish_at_the_next_keyframe(
    http: httpx.Client, srv: LiverecProcess, tmp_path: Path
) -> None:
    assert http.post(EPS, params={"id": "switch"}).status_code == 201
    media = make_media(tmp_path / "switch.flv", 8, fps=FPS, gop=FPS)
    started = datetime.now(UTC)
    publisher = start_push(srv.url("switch", "cam"), media)
    folder = srv.stream_dir("cam", "switch")
    deadline = time.monotonic() + 20
    while not list(folder.glob("*.ts")):
        assert time.monotonic() < deadline, srv.output
        time.sleep(0.1)
    path = EPS + "/switch/settings/record/standard/regions/na"
    assert http.patch(path, json={"mp4Config": {"enabled": True}}).status_code == 200
    assert publisher.wait(60) == 0, publisher.stderr
    recs = finished(folder, count=2)  # the recorder with MP4 took over in a new recording
    hls = [n for rec in recs for n in rec.frames()]
    assert hls == list(range(8 * FPS)), hls  # nothing lost or repeated at the switch
    items = wait_listed(http, "switch", "cam", started)
    mp4 = [n for item in items for n in frames_of(httpx.get(item["url"]).content)]
    # From the keyframe the new recorder started at, to the end, as its HLS recording.
    assert mp4 and mp4[0] > 0 and mp4[0] % FPS == 0 and mp4 == list(range(mp4[0], 8 * FPS))
    assert mp4 == recs[-1].frames()
