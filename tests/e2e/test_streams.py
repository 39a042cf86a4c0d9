"""End to end: FLS stream management and reports on a real `liverec serve` with real
pushes: bans (a live publish ended, new ones refused, expiry), online streams with their
media, publish history and quality checked against what was pushed, a recording task on a
live stream, and viewers per minute."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.api import base_path, client, error, frame_times, jpeg_frame, z
from support.mediagen import decode_frames, make_media, read_flv_tags
from support.recordings import finished
from support.rtmpclient import RtmpPublisher
from support.server import APP_ID, LiverecProcess, push, start_push

pytestmark = pytest.mark.slow  # real `liverec serve` processes, real ffmpeg pushes

FPS = 25
EP = f"/v1/projects/{APP_ID}/fls/entry_points/live"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiverecProcess]:
    proc = LiverecProcess(tmp_path_factory.mktemp("data")).start()
    yield proc
    proc.terminate()


@pytest.fixture(scope="module")
def http(srv: LiverecProcess) -> Iterator[httpx.Client]:
    with client(srv) as c:
        yield c


@pytest.fixture(scope="module")
def long_media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """25 s of noise at a known rate: 320x240, 25 fps."""
    return make_media(
        tmp_path_factory.mktemp("media") / "long.flv", 25, fps=FPS, gop=25, bitrate=400_000
    )


def pushed_bitrate(media: Path) -> float:
    """The bits per second of audio and video tag bodies in the file, as pushed."""
    tags = [t for t in read_flv_tags(media) if t.type in (8, 9)]
    seconds = (tags[-1].timestamp - tags[0].timestamp) / 1000
    return sum(len(t.payload) for t in tags) * 8 / seconds


def wait_for(pred: Callable[[], Any], timeout: float = 20.0, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("condition not met in time")


def online(http: httpx.Client) -> dict[str, dict[str, Any]]:
    resp = http.get(EP + "/reports/online_streams")
    assert resp.status_code == 200, resp.text
    return {item["name"]: item for item in resp.json()["streamList"]}


def media_known(http: httpx.Client, name: str) -> dict[str, Any] | None:
    """The stream's online entry once its media is known, else None."""
    live = online(http).get(name)
    return live if live and live["videoCodec"] else None


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=10)


def test_a_ban_ends_the_live_publish_and_refuses_new_ones(
    http: httpx.Client, srv: LiverecProcess, long_media: Path
) -> None:
    started = datetime.now(UTC)
    proc = start_push(srv.url(stream="cam"), long_media)
    other = start_push(srv.url(stream="other"), long_media)  # not banned: goes on
    try:
        # Online from the publish; its media is written once the first frames arrive.
        live = wait_for(lambda: media_known(http, "cam"))
        assert (live["videoCodec"], live["audioCodec"]) == ("H264", "AAC")
        assert (live["width"], live["height"]) == (320, 240)
        assert live["clientIp"] == "127.0.0.1" and live["nodeId"]
        since = http.get(EP + "/reports/online_streams/cam")
        assert since.status_code == 200 and since.json() == {"startTime": live["startTime"]}
        error(http.get(EP + "/reports/online_streams/nobody"), 404)
        # The figures a live publish shows, after its first ten seconds.
        rate = pushed_bitrate(long_media)
        figures = wait_for(lambda: (online(http).get("cam") or {}).get("bitrate"), 25)
        assert abs(figures - rate) / rate < 0.10, (figures, rate)
        assert abs(online(http)["cam"]["frameRate"] - FPS) < 1.5
        banned_at = time.monotonic()
        resp = http.patch(EP + "/admin/banned_streams/cam")
        assert resp.status_code == 200, resp.text
        # Ended within about two seconds (the node polls its live streams every second).
        wait_for(lambda: proc.poll() is not None, timeout=4.0, every=0.05)
        print(f"ban to publisher closed: {time.monotonic() - banned_at:.2f} s")
        assert proc.returncode != 0
        time.sleep(1.5)  # another poll of the live controls
        assert other.poll() is None and "other" in online(http)
    finally:
        stop(proc)
        stop(other)
    wait_for(lambda: "cam" not in online(http))
    listed = http.get(EP + "/admin/banned_streams").json()["bannedStreamList"]
    assert [item["name"] for item in listed] == ["cam"]
    resume = datetime.fromisoformat(listed[0]["resumeTime"].replace("Z", "+00:00"))
    assert timedelta(days=6, hours=23) < resume - started < timedelta(days=7, minutes=5)
    # A new publish is refused while the ban lasts, and nothing is recorded.
    before = set(srv.stream_dir("cam").glob("*.m3u8"))
    refused = push(srv.url(stream="cam"), long_media, timeout=30)
    assert refused.returncode != 0
    assert set(srv.stream_dir("cam").glob("*.m3u8")) == before
    srv.wait_for_log(r"banned until")
    # Its history and its quality, checked against what was pushed.
    history = http.get(
        EP + "/reports/publish_history", params={"stream_name": "cam", "start_time": z(started)}
    )
    assert history.status_code == 200, history.text
    [record] = history.json()["publishHistory"]
    assert record["name"] == "cam" and 10 <= record["duration"] <= 25
    quality = http.get(EP + "/reports/publish_quality", params={"stream_name": "cam"}).json()
    points = quality["publishHistory"]
    assert points and quality["QualityHistory"] == points
    assert abs(points[0]["bitrate"] - rate) / rate < 0.10, (points, rate)
    assert abs(points[0]["frameRate"] - FPS) < 1.0 and points[0]["clientIp"] == "127.0.0.1"
    # Lifted: publishing works again; an expired ban needs nothing.
    assert http.delete(EP + "/admin/banned_streams/cam").status_code == 200
    assert http.get(EP + "/admin/banned_streams").json() == {"bannedStreamList": []}
    short = make_media(long_media.parent / "short.flv", 2, fps=FPS, gop=25)
    soon = z(datetime.now(UTC) + timedelta(seconds=2))
    assert http.patch(EP + "/admin/banned_streams/cam", json={"resumeTime": soon}).status_code == (
        200
    )
    time.sleep(2.5)
    assert push(srv.url(stream="cam"), short).returncode == 0


def test_ban_input_is_checked(http: httpx.Client) -> None:
    past = z(datetime.now(UTC) - timedelta(minutes=1))
    error(http.patch(EP + "/admin/banned_streams/x", json={"resumeTime": past}), 400)
    error(http.patch(EP + "/admin/banned_streams/x", json={"resumeTime": "soon"}), 400)
    error(http.patch(EP + "/admin/banned_streams/a%20b"), 400)
    other = f"/v1/projects/{APP_ID}/fls/entry_points/nosuch"
    error(http.patch(other + "/admin/banned_streams/x"), 404)
    error(
        http.get(
            EP + "/reports/publish_quality",
            params={"start_time": z(datetime.now(UTC) - timedelta(hours=7))},
        ),
        400,
    )  # longer than 6 hours


def test_a_recording_task_starts_recording_a_live_stream(
    http: httpx.Client, srv: LiverecProcess, long_media: Path
) -> None:
    eps = f"/v1/projects/{APP_ID}/fls/entry_points"
    assert http.post(eps, params={"id": "quiet"}).status_code == 201
    off = http.patch(eps + "/quiet/settings/record/standard/auto", json={"enabled": False})
    assert off.status_code == 200
    media = make_media(long_media.parent / "numbered.flv", 14, fps=FPS, gop=25)
    proc = start_push(srv.url("quiet", "cam"), media)
    try:
        wait_for(lambda: "cam" in online_in(http, "quiet"))
        time.sleep(3)
        asked = datetime.now(UTC)
        task = http.put(base_path(entry_point="quiet") + "/tasks", params={"id": "cam"})
        assert task.status_code == 200, task.text
        proc.communicate(timeout=60)
    finally:
        stop(proc)
    [rec] = finished(srv.stream_dir("cam", "quiet"))
    # Recorded from the first keyframe after the task: not from the publish's start.
    assert asked - timedelta(seconds=0.5) <= rec.start <= asked + timedelta(seconds=3)
    frames = [n for _, n in decode_frames(str(rec.path))]
    assert frames[0] > 0 and frames[0] % 25 == 0  # a keyframe: one every 25 frames
    assert frames == list(range(frames[0], frames[0] + len(frames)))  # none lost after it
    assert frames[-1] == 14 * FPS - 1


def online_in(http: httpx.Client, entry_point: str) -> set[str]:
    resp = http.get(f"/v1/projects/{APP_ID}/fls/entry_points/{entry_point}/reports/online_streams")
    return {item["name"] for item in resp.json()["streamList"]}


def test_viewers_per_minute(http: httpx.Client, srv: LiverecProcess, long_media: Path) -> None:
    media = make_media(long_media.parent / "watch.flv", 2, fps=FPS, gop=25)
    assert push(srv.url(stream="watched"), media).returncode == 0
    [rec] = finished(srv.stream_dir("watched"))
    start = datetime.now(UTC) - timedelta(minutes=5)
    listing = http.get(
        base_path() + "/preview_list",
        params={"start_time": z(start), "end_time": z(datetime.now(UTC)), "stream_name": "watched"},
    ).json()["list"]
    url = listing[0]["url"]
    for agent in ("hls.js", "ffmpeg", "hls.js"):  # two viewers, one of them twice
        assert httpx.get(url, headers={"User-Agent": agent}).status_code == 200
    params = {"stream_name": "watched"}

    def counted() -> int:
        points = http.get(EP + "/reports/stream_play_statistic", params=params).json()
        return sum(p["linkNum"] for p in points["playStatistic"])

    assert wait_for(lambda: counted() == 2, timeout=30, every=1.0)
    assert rec.path.exists()


def test_a_snapshot_at_the_live_edge(
    http: httpx.Client, srv: LiverecProcess, long_media: Path, tmp_path: Path
) -> None:
    media = make_media(tmp_path / "edge.flv", 12, fps=FPS, gop=50)
    proc = start_push(srv.url(stream="edge"), media)
    shots: list[tuple[dict[str, Any], int]] = []
    try:
        wait_for(lambda: "edge" in online(http))
        time.sleep(6)  # a segment or so stored; the newest frames are still in memory
        for i, when in enumerate((datetime.now(UTC) - timedelta(milliseconds=500), None)):
            body: dict[str, Any] = {"fileName": f"edge{i}.jpg"}
            if when is not None:
                body["time"] = z(when)
            resp = http.post(base_path() + "/snapshot/edge", json=body)
            assert resp.status_code == 200, resp.text
            number, width, height = jpeg_frame(httpx.get(resp.json()["url"]).content, tmp_path)
            assert (width, height) == (320, 240)
            shots.append((resp.json(), number))
            if when is not None:  # the frame shown then: at most one frame interval before
                shown = parse_z(resp.json()["time"])
                assert when - timedelta(milliseconds=41) <= shown <= when
        # The console's thumbnail of the live edge: the pushed picture, scaled down.
        thumb = http.get(EP + "/reports/online_streams/edge/thumbnail.jpg")
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
        number, width, height = jpeg_frame(thumb.content, tmp_path)  # 320 wide: as pushed
        assert (width, height) == (320, 240) and 0 < number < 12 * FPS
        small = http.get(EP + "/reports/online_streams/edge/thumbnail.jpg", params={"width": 160})
        assert jpeg_frame(small.content, tmp_path)[1:] == (160, 120)
        assert (
            http.get(EP + "/reports/online_streams/edge/thumbnail.jpg?width=5").status_code == 400
        )
        gone = http.get(EP + "/reports/online_streams/nobody/thumbnail.jpg")
        assert gone.status_code == 404 and gone.json()["reason"] == "not_live"
        proc.communicate(timeout=60)
    finally:
        stop(proc)
    # Each live-edge snapshot is exactly the frame recorded at the time it answered.
    [rec] = finished(srv.stream_dir("edge"))
    frames = {z(f.wall): f.number for f in frame_times(rec)}
    for answer, number in shots:
        assert frames[answer["time"]] == number


def parse_z(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_a_publish_that_sends_codec_configurations_but_no_frame_shows_its_media(
    http: httpx.Client, srv: LiverecProcess, long_media: Path
) -> None:
    # The media is written at the first frame (one transaction for all the sequence
    # headers), or, when none comes, a second after the headers.
    headers = [
        t for t in read_flv_tags(long_media) if t.type in (8, 9) and t.payload[1:2] == b"\x00"
    ]
    assert sorted(t.type for t in headers) == [8, 9]
    pub = RtmpPublisher("127.0.0.1", srv.rtmp_port)
    try:
        assert pub.connect_and_publish("live", "headers-only") == "NetStream.Publish.Start"
        [video] = [t for t in headers if t.type == 9]
        [audio] = [t for t in headers if t.type == 8]
        pub.send_tag(video)
        live = wait_for(lambda: (online(http).get("headers-only") or {}).get("videoCodec"))
        assert live == "H264"
        # A configuration after the first one was written waits (and is written) anew.
        pub.send_tag(audio)
        assert wait_for(lambda: online(http)["headers-only"].get("audioCodec")) == "AAC"
        assert online(http)["headers-only"]["videoCodec"] == "H264"
        pub.unpublish()
    finally:
        pub.close()
    wait_for(lambda: "headers-only" not in online(http))
