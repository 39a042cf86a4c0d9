"""Ingest workers end to end: a real `liverec serve --workers 2` (the API process and two
ingest worker processes on one RTMP port, one SQLite catalog), fed by real ffmpeg pushes.
Which worker holds a publish is the online streams' nodeId (`{node}-w{i}`)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from liverec.api.internal import METRICS_PATH, internal_headers
from liverec.catalog import SecretBox
from support.api import base_path, client, jpeg_frame, z
from support.mediagen import make_media
from support.recordings import finished, recordings
from support.server import (
    APP_ID,
    CUSTOMER_ID,
    CUSTOMER_SECRET,
    LiverecProcess,
    push,
    start_push,
)
from support.tls import make_cert

pytestmark = pytest.mark.slow  # real `liverec serve` processes, real ffmpeg pushes

FPS = 25
LEASE = 3.0
EP = f"/v1/projects/{APP_ID}/fls/entry_points/live"
BASE = base_path()
WORKER_LINE = re.compile(r"ingest worker (\d) \(pid (\d+)\) listening, node (\S+)")


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiverecProcess]:
    proc = LiverecProcess(
        tmp_path_factory.mktemp("data"),
        env={"LIVEREC_LEASE_SECONDS": str(LEASE)},
        args=["--workers", "2"],
    ).start()
    yield proc
    if proc.proc is not None and proc.proc.poll() is None:
        proc.terminate()


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("media")
    return {
        "av6": make_media(d / "av6.flv", 6, fps=FPS, gop=25),
        "av12": make_media(d / "av12.flv", 12, fps=FPS, gop=25),
        "av30": make_media(d / "av30.flv", 30, fps=FPS, gop=25),  # ended early by a ban
    }


def wait_for(pred: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def online(srv: LiverecProcess) -> dict[str, str]:
    """Stream name -> the node ID of the worker holding its publish."""
    with client(srv) as c:
        resp = c.get(EP + "/reports/online_streams")
    assert resp.status_code == 200, resp.text
    return {s["name"]: s["nodeId"] for s in resp.json()["streamList"]}


def worker_of(node_id: str) -> int:
    match = re.fullmatch(r"[0-9a-f]{32}-w(\d)", node_id)
    assert match, node_id
    return int(match.group(1))


def workers(srv: LiverecProcess) -> dict[int, tuple[int, str]]:
    """Worker index -> (pid, node URL) of its latest start, from the log."""
    found: dict[int, tuple[int, str]] = {}
    for line in srv.lines:
        match = WORKER_LINE.search(line)
        if match:
            found[int(match.group(1))] = (int(match.group(2)), match.group(3))
    return found


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def metric(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


def idle(text: str) -> str | None:
    return text if metric(text, "liverec_live_publishes") == 0 else None


def scrape(srv: LiverecProcess) -> str:
    resp = httpx.get(f"http://127.0.0.1:{srv.http_port}/metrics")
    assert resp.status_code == 200
    return resp.text


def worker_metrics(srv: LiverecProcess, index: int) -> str:
    """A worker's own figures, over its private, signed listener."""
    key = SecretBox.from_key_file(srv.data_dir / "secret.key").derive("node-rpc")
    _, url = workers(srv)[index]
    resp = httpx.get(url + METRICS_PATH, headers=internal_headers(key, "GET", METRICS_PATH))
    assert resp.status_code == 200, resp.text
    return resp.text


def refusals(srv: LiverecProcess, index: int) -> float:
    text = worker_metrics(srv, index)
    return metric(text, "liverec_publishes_refused_total", reason="stream_busy")


def all_online(srv: LiverecProcess, names: Iterable[str]) -> dict[str, str] | None:
    found = online(srv)
    return found if set(names) <= set(found) else None


def spread(
    srv: LiverecProcess, media: Path, prefix: str, least: int
) -> dict[str, subprocess.Popen[str]]:
    """At least `least` pushes, more until each worker holds one (the kernel spreads
    connections over the workers by hash, so a few more may be needed)."""
    pushes: dict[str, subprocess.Popen[str]] = {}
    while len(pushes) < 24:
        for _ in range(least if not pushes else 2):
            name = f"{prefix}{len(pushes)}"
            pushes[name] = start_push(srv.url(stream=name), media)
        held = wait_for(lambda: all_online(srv, pushes))
        if {worker_of(held[name]) for name in pushes} == {0, 1}:
            return pushes
    raise AssertionError("the pushes all landed on one worker")


def test_publishers_on_every_worker_a_second_publisher_refused_on_any(
    srv: LiverecProcess, media: dict[str, Path]
) -> None:
    before = scrape(srv)
    pushes = spread(srv, media["av12"], "cam", 6)
    held = online(srv)
    text = scrape(srv)
    assert metric(text, "liverec_live_publishes") == len(pushes)
    # A second publisher of a live stream, wherever the kernel sends it: refused.
    target = "cam0"
    refused_by: set[int] = set()
    for _ in range(30):
        busy = [refusals(srv, i) for i in (0, 1)]
        result = push(srv.url(stream=target), media["av6"], realtime=False, timeout=30)
        assert result.returncode != 0
        after = [refusals(srv, i) for i in (0, 1)]
        refused_by |= {i for i in (0, 1) if after[i] > busy[i]}
        if refused_by == {0, 1}:
            break
    assert refused_by == {0, 1}
    assert online(srv)[target] == held[target]  # the first publisher goes on
    for name, proc in pushes.items():
        assert proc.wait(60) == 0, (name, proc.stderr.read() if proc.stderr else "")
    for name in pushes:
        [rec] = finished(srv.stream_dir(name))
        assert rec.frames() == list(range(12 * FPS)), name
    # The API process's /metrics sums its workers' ingest figures.
    text = wait_for(lambda: idle(scrape(srv)))
    grew = {
        name: metric(text, name, **labels) - metric(before, name, **labels)
        for name, labels in (
            ("liverec_publishes_accepted_total", {}),
            ("liverec_ingest_frames_total", {"kind": "video"}),
        )
    }
    assert grew == {
        "liverec_publishes_accepted_total": len(pushes),
        "liverec_ingest_frames_total": len(pushes) * 12 * FPS,
    }
    refused = metric(text, "liverec_publishes_refused_total", reason="stream_busy")
    assert refused - metric(before, "liverec_publishes_refused_total", reason="stream_busy") >= 2
    assert metric(text, "liverec_segments_stored_total") >= len(pushes)
    # The API process's own figures are not summed with the workers'.
    assert [v for (name, _), v in samples(text).items() if name == "liverec_build_info"] == [1]


def media_known(c: httpx.Client) -> dict[str, Any] | None:
    for item in c.get(EP + "/reports/online_streams").json()["streamList"]:
        if item["name"] == "edge" and item["width"] and item["audioCodec"]:
            assert isinstance(item, dict)
            return item
    return None


def test_api_calls_through_the_api_process_reach_the_worker(
    srv: LiverecProcess, media: dict[str, Path], tmp_path: Path
) -> None:
    with client(srv) as c:
        # Recording off for the stream; a task switches it on while it is live on a worker.
        assert c.delete(BASE + "/tasks", params={"id": "edge"}).status_code == 200
        proc = start_push(srv.url(stream="edge"), media["av30"])
        try:
            wait_for(lambda: "edge" in online(srv))
            holder = online(srv)["edge"]
            worker_of(holder)
            # The console's live list: what the worker wrote of the publish and its media.
            live = wait_for(lambda: media_known(c))
            assert (live["videoCodec"], live["audioCodec"]) == ("H264", "AAC")
            assert (live["width"], live["height"], live["clientIp"]) == (320, 240, "127.0.0.1")
            time.sleep(1.5)
            assert not recordings(srv.stream_dir("edge"))
            assert c.put(BASE + "/tasks", params={"id": "edge"}).status_code == 200
            wait_for(lambda: recordings(srv.stream_dir("edge")))
            start = datetime.now(UTC) - timedelta(minutes=5)
            listed = wait_for(
                lambda: c.get(
                    BASE + "/preview_list",
                    params={
                        "start_time": z(start),
                        "end_time": z(datetime.now(UTC)),
                        "stream_name": "edge",
                    },
                ).json()["list"]
            )
            assert len(listed) == 1
            # A snapshot at the live edge: the worker's segment being written, fetched by
            # the API process over the worker's private listener.
            time.sleep(1.0)
            when = datetime.now(UTC) - timedelta(milliseconds=300)
            shot = c.post(BASE + "/snapshot/edge", json={"time": z(when), "fileName": "e.jpg"})
            assert shot.status_code == 200, shot.text
            answered = datetime.fromisoformat(shot.json()["time"].replace("Z", "+00:00"))
            # The frame shown then (to the frame: test_streams.py), or, on a loaded host
            # whose worker lags its publisher, the newest it had.
            assert when - timedelta(seconds=1) <= answered <= when
            jpeg = c.get(shot.json()["url"])
            assert jpeg.status_code == 200
            number, width, _ = jpeg_frame(jpeg.content, tmp_path)
            assert width == 320 and number > 0
            # A ban asked of the API process ends the publish on the worker.
            assert c.patch(EP + "/admin/banned_streams/edge").status_code == 200
            proc.wait(10)
            assert proc.returncode != 0
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=10)
        srv.wait_for_log(r"publish live/edge ended: stream live/edge is banned")
        [rec] = finished(srv.stream_dir("edge"))
        frames = rec.frames()
        assert frames == list(range(frames[0], frames[0] + len(frames)))
        # The worker ended the publish row: the history shows it.
        history = wait_for(
            lambda: c.get(EP + "/reports/publish_history", params={"stream_name": "edge"}).json()[
                "publishHistory"
            ]
        )
        assert [h["name"] for h in history] == ["edge"]
        assert c.delete(EP + "/admin/banned_streams/edge").status_code == 200


def test_kill_9_of_a_worker_loses_only_its_open_segments(
    srv: LiverecProcess, media: dict[str, Path]
) -> None:
    pushes = spread(srv, media["av12"], "k", 4)
    held = online(srv)
    victim = worker_of(held["k0"])
    pid, _ = workers(srv)[victim]
    mark = len(srv.lines)
    time.sleep(5)  # a durable segment or more on each, the next being written
    os.kill(pid, signal.SIGKILL)
    killed_at = datetime.now(UTC)
    srv.wait_for_log(rf"ingest worker {victim} \(pid {pid}\) ended \(exit code -9\)", start=mark)
    srv.wait_for_log(rf"ingest worker {victim} \(pid \d+\) listening", start=mark)
    assert workers(srv)[victim][0] != pid
    for name, proc in pushes.items():
        code = proc.wait(60)
        mine = worker_of(held[name]) == victim
        assert (code != 0) == mine, (name, code)
        [rec] = finished(srv.stream_dir(name))
        frames = rec.frames()
        if not mine:
            assert frames == list(range(12 * FPS)), name
            continue
        # Closed at its last durable segment: whole from the start, at most the segment
        # being written (4 s target, cut at the next keyframe) lost.
        assert frames == list(range(len(frames))), name
        assert rec.playlist.endlist
        recorded_until = rec.start + timedelta(seconds=rec.duration)
        assert killed_at - recorded_until <= timedelta(seconds=4 + 1 + 1), name
    assert any("left open by a stopped node" in line for line in srv.lines[mark:])
    # The killed worker's streams are free again: a new publisher records whole.
    again = next(name for name in pushes if worker_of(held[name]) == victim)
    assert push(srv.url(stream=again), media["av6"]).returncode == 0
    recs = finished(srv.stream_dir(again), count=2)
    assert recs[-1].frames() == list(range(6 * FPS))


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rpartition(")")[2].split()[0] != "Z"


def test_sigterm_stops_every_worker_cleanly(tmp_path: Path, media: dict[str, Path]) -> None:
    node = LiverecProcess(tmp_path / "data", args=["--workers", "2"]).start()
    try:
        pushes = spread(node, media["av12"], "t", 4)
        time.sleep(2)
        pids = [pid for pid, _ in workers(node).values()]
        assert node.terminate() == 0
        assert not [pid for pid in pids if running(pid)]
        for name, proc in pushes.items():
            proc.wait(30)
            [rec] = finished(node.stream_dir(name), timeout=5)
            frames = rec.frames()
            assert frames == list(range(len(frames))) and frames, name
        assert "ingest worker 0 stopped (exit code 0)" in node.output
        assert "ingest worker 1 stopped (exit code 0)" in node.output
    finally:
        node.kill()


def test_workers_do_not_outlive_the_api_process(tmp_path: Path) -> None:
    node = LiverecProcess(tmp_path / "data", args=["--workers", "2"]).start()
    pids = [pid for pid, _ in workers(node).values()]
    assert len(pids) == 2
    node.kill()  # SIGKILL: nothing is stopped in order
    wait_for(lambda: not [pid for pid in pids if running(pid)])


def test_over_https_the_api_process_reaches_its_workers(
    tmp_path: Path, media: dict[str, Path]
) -> None:
    cert = make_cert(tmp_path)
    node = LiverecProcess(
        tmp_path / "data",
        args=["--workers", "2", "--tls-cert", str(cert.cert), "--tls-key", str(cert.key)],
    ).start()
    try:
        with httpx.Client(
            base_url=f"https://127.0.0.1:{node.http_port}",
            auth=(CUSTOMER_ID, CUSTOMER_SECRET),
            verify=cert.client_context(),
            timeout=30,
        ) as c:
            proc = start_push(node.url(stream="tls"), media["av12"])
            try:
                wait_for(lambda: recordings(node.stream_dir("tls")))
                time.sleep(1.0)
                # The workers' private listeners serve HTTPS with the same certificate.
                assert all(url.startswith("https://") for _, url in workers(node).values())
                text = c.get("/metrics").text
                assert metric(text, "liverec_live_publishes") == 1
                when = datetime.now(UTC) - timedelta(milliseconds=300)
                shot = c.post(BASE + "/snapshot/tls", json={"time": z(when), "fileName": "t.jpg"})
                assert shot.status_code == 200, shot.text
            finally:
                proc.kill()
                proc.communicate(timeout=10)
    finally:
        if node.proc is not None and node.proc.poll() is None:
            assert node.terminate() == 0
