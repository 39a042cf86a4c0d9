"""Scale-out end to end: two real `liverec serve` nodes on one PostgreSQL catalog and one
S3-compatible bucket (moto's server on loopback)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from liverec.catalog import SecretBox
from support.api import base_path, client, jpeg_frame, z
from support.mediagen import decode_frames, make_media
from support.pg import PG_ADMIN_URL, PgServer
from support.s3server import S3Server, create_bucket
from support.server import (
    APP_ID,
    CUSTOMER_ID,
    CUSTOMER_SECRET,
    LiverecProcess,
    push,
    start_push,
)

pytestmark = pytest.mark.slow  # real `liverec serve` processes, real ffmpeg pushes

FPS = 25
BASE = base_path()
LEASE = 3.0


class Cluster:
    def __init__(self, root: Path) -> None:
        self.pg = PgServer(PG_ADMIN_URL)
        self.db_url = self.pg.create()
        self.s3 = S3Server().start()
        create_bucket(self.s3.endpoint_url, "liverec")
        env = {
            **self.s3.env(),
            "LIVEREC_DATABASE_URL": self.db_url,
            "LIVEREC_STORAGE_URL": "s3://liverec/media",
            "LIVEREC_SECRET_KEY": SecretBox.generate_key(),  # shared by every node
            "LIVEREC_LEASE_SECONDS": str(LEASE),
        }
        self.a = LiverecProcess(root / "a", env=env)
        # B sends segment and snapshot downloads straight to the bucket (presigned).
        self.b = LiverecProcess(root / "b", env=env | {"LIVEREC_S3_REDIRECT": "true"})

    def start(self) -> Cluster:
        self.a.start()
        self.b.start()
        return self

    def stop(self) -> None:
        for node in (self.a, self.b):
            if node.proc is not None and node.proc.poll() is None:
                node.terminate()
        self.s3.stop()
        self.pg.drop(self.db_url)
        self.pg.admin.dispose()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("cluster")).start()
    yield c
    c.stop()


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("media")
    return {
        "av10": make_media(d / "av10.flv", 10, fps=FPS, gop=25),
        "av4": make_media(d / "av4.flv", 4, fps=FPS, gop=25, start_number=2000),
        "av12": make_media(d / "av12.flv", 12, fps=FPS, gop=25),
    }


def listing(node: LiverecProcess, stream: str) -> list[dict[str, object]]:
    with client(node) as c:
        start = datetime.now(UTC) - timedelta(minutes=10)
        resp = c.get(
            BASE + "/preview_list",
            params={
                "start_time": z(start),
                "end_time": z(datetime.now(UTC)),
                "stream_name": stream,
            },
        )
        assert resp.status_code == 200, resp.text
        items = resp.json()["list"]
        assert isinstance(items, list)
        return items


def wait_until(pred: object, timeout: float = 20.0) -> None:
    assert callable(pred)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def test_push_to_a_read_through_b_live_and_after(cluster: Cluster, media: dict[str, Path]) -> None:
    a, b = cluster.a, cluster.b
    proc = start_push(a.url(stream="cam"), media["av10"])
    wait_until(lambda: len(listing(b, "cam")) == 1)
    [live] = listing(b, "cam")
    playlist = httpx.get(str(live["url"]))
    assert playlist.status_code == 200
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in playlist.text
    assert "#EXT-X-ENDLIST" not in playlist.text
    with client(b) as c:
        shot = c.post(BASE + "/snapshot/cam", json={"fileName": "live.jpg"})
        assert shot.status_code == 200, shot.text
        redirect = httpx.get(shot.json()["url"])
        assert redirect.status_code == 307
        assert redirect.headers["location"].startswith(cluster.s3.endpoint_url)
        jpeg = httpx.get(shot.json()["url"], follow_redirects=True)
        assert jpeg.status_code == 200 and jpeg.content[:2] == b"\xff\xd8"
        cut = c.post(
            BASE + "/cutting/cam", json={"startTime": live["startTime"], "fileName": "live.m3u8"}
        )
        assert cut.status_code == 200, cut.text
    assert proc.wait(60) == 0
    # The live playlist grew and was closed; B serves it from the bucket.
    wait_until(lambda: "#EXT-X-ENDLIST" in httpx.get(str(listing(b, "cam")[0]["url"])).text)
    [done] = listing(b, "cam")
    assert [n for _, n in decode_frames(str(done["url"]))] == list(range(10 * FPS))
    with client(b) as c:
        cut = c.post(
            BASE + "/cutting/cam",
            json={
                "startTime": done["startTime"],
                "endTime": done["endTime"],
                "fileName": "after.m3u8",
            },
        )
        assert cut.status_code == 200, cut.text
    assert [n for _, n in decode_frames(cut.json()["url"])] == list(range(10 * FPS))
    # The publisher reconnects to B: a new recording of the same stream, listed by both.
    assert push(b.url(stream="cam"), media["av4"]).returncode == 0
    wait_until(lambda: len(listing(a, "cam")) == 2)
    assert listing(a, "cam") == listing(b, "cam") or [i["fileName"] for i in listing(a, "cam")] == [
        i["fileName"] for i in listing(b, "cam")
    ]
    second = listing(a, "cam")[1]
    wait_until(lambda: "#EXT-X-ENDLIST" in httpx.get(str(second["url"])).text)
    assert [n for _, n in decode_frames(str(second["url"]))] == list(range(2000, 2000 + 4 * FPS))


def test_live_edge_snapshot_and_ban_through_the_other_node(
    cluster: Cluster, media: dict[str, Path], tmp_path: Path
) -> None:
    a, b = cluster.a, cluster.b
    ep = f"/v1/projects/{APP_ID}/fls/entry_points/live"
    proc = start_push(a.url(stream="edge"), media["av12"])
    try:
        wait_until(lambda: len(listing(b, "edge")) == 1)
        with client(b) as c:
            online = c.get(ep + "/reports/online_streams").json()["streamList"]
            assert [s["name"] for s in online] == ["edge"] and online[0]["nodeId"]
            # An instant inside the segment A is writing: B gets A's live media.
            when = datetime.now(UTC) - timedelta(milliseconds=500)
            shot = c.post(BASE + "/snapshot/edge", json={"time": z(when), "fileName": "e.jpg"})
            assert shot.status_code == 200, shot.text
            answered = datetime.fromisoformat(shot.json()["time"].replace("Z", "+00:00"))
            assert when - timedelta(milliseconds=41) <= answered <= when
            jpeg = httpx.get(shot.json()["url"], follow_redirects=True)
            number, width, _ = jpeg_frame(jpeg.content, tmp_path)
            assert width == 320
            # A ban asked of B ends the publish on A.
            assert c.patch(ep + "/admin/banned_streams/edge").status_code == 200
        proc.wait(4.0)
        assert proc.returncode != 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)
    a.wait_for_log(r"publish live/edge ended: stream live/edge is banned")
    wait_until(lambda: "#EXT-X-ENDLIST" in httpx.get(str(listing(b, "edge")[0]["url"])).text)
    [rec] = listing(b, "edge")
    # The live-edge snapshot is the frame recorded at the time it answered: frame n is
    # shown n / 25 s after the first, which comes 23 ms after the recording's start (AAC
    # priming puts audio first). The exact check is in test_streams.py, on local files.
    start = datetime.fromisoformat(str(rec["startTime"]).replace("Z", "+00:00"))
    expected = ((answered - start).total_seconds() - 0.023) * FPS
    assert abs(number - expected) < 1.1, (number, expected)
    with client(b) as c:
        assert c.delete(ep + "/admin/banned_streams/edge").status_code == 200


def test_two_nodes_racing_for_one_clip_name(cluster: Cluster, media: dict[str, Path]) -> None:
    a, b = cluster.a, cluster.b
    assert push(a.url(stream="race"), media["av4"]).returncode == 0
    wait_until(lambda: len(listing(a, "race")) == 1)
    [rec] = listing(a, "race")
    body = {"startTime": rec["startTime"], "endTime": rec["endTime"], "fileName": "one.m3u8"}
    codes: list[int] = []

    def go(node: LiverecProcess) -> None:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{node.http_port}",
            auth=(CUSTOMER_ID, CUSTOMER_SECRET),
            timeout=30,
        ) as c:
            codes.append(c.post(BASE + "/cutting/race", json=body).status_code)

    threads = [threading.Thread(target=go, args=(n,)) for n in (a, b) * 4]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [200] + [400] * 7


def test_killed_node_has_its_recording_closed_by_the_other(
    cluster: Cluster, media: dict[str, Path]
) -> None:
    a, b = cluster.a, cluster.b
    proc = start_push(a.url(stream="crash"), media["av12"])
    wait_until(lambda: len(listing(b, "crash")) == 1)
    time.sleep(5)  # two segments durable, a third being written
    a.kill()
    killed_at = datetime.now(UTC)
    proc.wait(30)
    # B's sweep sees A's lease expire and closes the recording at its last durable segment.
    wait_until(
        lambda: "#EXT-X-ENDLIST" in httpx.get(str(listing(b, "crash")[0]["url"])).text,
        timeout=LEASE * 6,
    )
    [rec] = listing(b, "crash")
    frames = [n for _, n in decode_frames(str(rec["url"]))]
    assert frames == list(range(len(frames)))
    recorded_until = datetime.fromisoformat(str(rec["endTime"]).replace("Z", "+00:00"))
    assert killed_at - recorded_until <= timedelta(seconds=4 + 1)  # at most one segment lost
    b.wait_for_log("closed recording .* of stopped node")
    # The stream name is free again once the lease is gone: B takes the next push.
    assert push(b.url(stream="crash"), media["av4"]).returncode == 0
    wait_until(lambda: len(listing(b, "crash")) == 2)
    a.start()  # A comes back and finds nothing of its own left open
    assert not [line for line in a.lines if "left open by a stopped node" in line]
