"""End to end: /metrics, /healthz, /readyz and JSON logs of a real `liverec serve`, fed by
real ffmpeg pushes; metric values checked against what was pushed and what was recorded."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import av
import httpx
import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from liverec import __version__
from support.mediagen import make_media
from support.pg import PG_ADMIN_URL, PgServer
from support.recordings import finished, liverec_cli
from support.server import APP_ID, LiverecProcess, push, start_push

pytestmark = pytest.mark.slow  # real `liverec serve` processes, real ffmpeg pushes

TOKEN = "metrics-t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(http: httpx.Client, headers: dict[str, str] | None = None) -> Samples:
    resp = http.get("/metrics", headers=AUTH if headers is None else headers)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain")
    out: Samples = {}
    for family in text_string_to_metric_families(resp.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_media(tmp_path_factory.mktemp("media") / "av5.flv", 5, fps=25, gop=25)


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiverecProcess]:
    data = tmp_path_factory.mktemp("data")
    proc = LiverecProcess(
        data,
        env={"LIVEREC_METRICS_TOKEN": TOKEN, "LIVEREC_METRICS_STREAM_LABELS": "true"},
        args=["--log-format", "json"],
    ).start()
    liverec_cli(data, "entry-points", "add", "short", "--target-duration", "1")
    liverec_cli(data, "entry-points", "add", "secure", "--auth-key", "k3y")
    yield proc
    proc.terminate()


@pytest.fixture
def http(srv: LiverecProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://127.0.0.1:{srv.http_port}", timeout=10) as client:
        yield client


def pushed(path: Path) -> tuple[int, int, int]:
    """(video packets, audio packets, their bytes) of a media file."""
    video = audio = size = 0
    with av.open(str(path)) as c:
        for packet in c.demux():
            if not packet.size:
                continue
            size += packet.size
            if packet.stream.type == "video":
                video += 1
            else:
                audio += 1
    return video, audio, size


def test_metrics_count_what_a_push_sent_and_what_was_recorded(
    srv: LiverecProcess, http: httpx.Client, media: Path
) -> None:
    before = scrape(http)
    assert value(before, "liverec_build_info", version=__version__) == 1
    result = push(srv.url("short", "m1"), media, realtime=False)
    assert result.returncode == 0, result.stderr
    recs = finished(srv.stream_dir("m1", "short"))
    segments = [rec.path.parent / seg.uri for rec in recs for seg in rec.playlist.segments]
    assert len(segments) >= 4  # 5 s cut at 1 s
    # The playlist's ENDLIST is written before the publish has finished closing.
    deadline = time.monotonic() + 10
    while value(after := scrape(http), "liverec_live_publishes") != 0:
        assert time.monotonic() < deadline, "the publish did not end"
        time.sleep(0.1)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    video, audio, size = pushed(media)
    assert delta("liverec_publishes_accepted_total") == 1
    assert delta("liverec_ingest_frames_total", kind="video") == video
    assert delta("liverec_ingest_frames_total", kind="audio") == audio
    # FLV tags carry each packet plus a 5-byte (video) or 2-byte (audio) header, and the
    # two codec configurations.
    got = delta("liverec_ingest_bytes_total")
    assert size <= got <= size + 5 * video + 2 * audio + 200, (got, size)
    assert delta("liverec_segments_stored_total") == len(segments)
    assert delta("liverec_segment_writes_total", result="ok") == len(segments)
    assert delta("liverec_segment_writes_total", result="failed") == 0
    assert delta("liverec_segment_write_seconds_count") == len(segments)
    assert delta("liverec_segment_write_seconds_sum") > 0
    assert value(after, "liverec_live_publishes") == 0
    assert value(after, "liverec_recorder_backlog_segments") == 0
    assert ("liverec_callback_queue_depth", ()) in after
    # Storage: the filesystem as statvfs has it; the bytes under the root at least the
    # segments just stored and at most everything there now.
    st = os.statvfs(srv.data_dir)
    free = st.f_bavail * st.f_frsize
    assert abs(value(after, "liverec_storage_free_bytes") - free) < 200e6
    assert value(after, "liverec_storage_size_bytes") == st.f_blocks * st.f_frsize
    used = value(after, "liverec_storage_used_bytes")
    assert sum(p.stat().st_size for p in segments) <= used <= tree_bytes(srv.storage.parent)
    # The API request counted by route template, never by raw path.
    assert delta("liverec_http_requests_total", route="/metrics", method="GET", status="200") == 1


def test_refused_publishes_are_counted_by_reason(
    srv: LiverecProcess, http: httpx.Client, media: Path
) -> None:
    before = scrape(http)
    for url in (srv.url("nope", "x1"), srv.url("secure", "x2")):
        result = push(url, media, realtime=False, timeout=60)
        assert result.returncode != 0  # refused
    after = scrape(http)

    def delta(reason: str) -> float:
        name = "liverec_publishes_refused_total"
        return value(after, name, reason=reason) - value(before, name, reason=reason)

    assert delta("unknown_entry_point") == 1
    assert delta("push_auth") == 1
    accepted = "liverec_publishes_accepted_total"
    assert value(after, accepted) == value(before, accepted)


def test_a_live_publish_shows_with_its_stream_labels(
    srv: LiverecProcess, http: httpx.Client, media: Path
) -> None:
    ffmpeg = start_push(srv.url("live", "labelled"), media)  # real time: 5 s
    try:
        labels = {"app_id": APP_ID, "entry_point": "live", "stream": "labelled"}
        deadline = time.monotonic() + 10
        while True:
            now = scrape(http)
            frames = value(now, "liverec_stream_ingest_frames_total", kind="video", **labels)
            if frames > 0 and value(now, "liverec_live_publishes") == 1:
                break
            assert time.monotonic() < deadline, "the live publish never showed"
            time.sleep(0.2)
        assert value(now, "liverec_stream_ingest_bytes_total", **labels) > 0
        assert ("liverec_stream_recorder_backlog_segments", tuple(sorted(labels.items()))) in now
    finally:
        ffmpeg.wait(30)
    finished(srv.stream_dir("labelled"))
    # The playlist's ENDLIST is written before the publish has finished closing.
    deadline = time.monotonic() + 10
    while value(ended := scrape(http), "liverec_live_publishes") != 0:
        assert time.monotonic() < deadline, "the publish did not end"
        time.sleep(0.1)
    assert not any(name.startswith("liverec_stream_") for name, _ in ended)


def test_metrics_want_the_token_and_health_wants_nothing(http: httpx.Client) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        resp = http.get("/metrics", headers=headers)
        assert resp.status_code == 401
        assert resp.json()["reason"] == "unauthorized"
        assert resp.headers["www-authenticate"].startswith("Bearer")
    scrape(http)
    assert http.get("/healthz").json()["status"] == "ok"
    ready = http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"catalog": "ok", "storage": "ok", "disk_full": "ok"}


def test_requests_get_an_id_and_the_route_template_is_the_label(http: httpx.Client) -> None:
    mine = http.get("/healthz", headers={"X-Request-ID": "req-42.a"})
    assert mine.headers["x-request-id"] == "req-42.a"
    made = http.get("/healthz", headers={"X-Request-ID": "bad id\twith tab"})
    assert made.headers["x-request-id"] not in ("", "bad id\twith tab")
    assert len({made.headers["x-request-id"], http.get("/healthz").headers["x-request-id"]}) == 2
    secret_name = "record/live/cam/a-very-particular-name.m3u8"
    assert http.get(f"/files/{APP_ID}/na/{secret_name}").status_code == 401
    text = http.get("/metrics", headers=AUTH).text
    assert "a-very-particular-name" not in text
    files = [
        line
        for line in text.splitlines()
        if line.startswith("liverec_http_requests_total") and "/files/" in line
    ]
    assert files and all("{file_name" in line and 'status="401"' in line for line in files)


def test_json_log_lines_parse_and_name_the_stream_and_recording(
    srv: LiverecProcess, media: Path
) -> None:
    result = push(srv.url("short", "logged"), media, realtime=False)
    assert result.returncode == 0, result.stderr
    finished(srv.stream_dir("logged", "short"))
    assert push(srv.url("nope", "logged"), media, realtime=False).returncode != 0
    # stdout's few plain lines (the first start's project and secret, "liverec ready")
    # start with "liverec"; every line logged on stderr is one JSON object.
    parsed = [json.loads(line) for line in srv.lines if not line.startswith("liverec")]
    for entry in parsed:
        assert {"time", "level", "logger", "message"} <= set(entry), entry
        assert entry["time"].endswith("Z")
    started = [
        e
        for e in parsed
        if e["message"].startswith("recording started") and e.get("stream") == "short/logged"
    ]
    assert len(started) == 1, parsed
    assert started[0]["app_id"] == APP_ID
    assert started[0]["recording"].startswith("record/short/logged/")
    assert started[0]["recording"] in started[0]["message"]
    refused = [
        e
        for e in parsed
        if e["message"].startswith("publish refused") and e.get("stream") == "nope/logged"
    ]
    assert len(refused) == 1 and "app_id" not in refused[0]  # refused before its project


# -- readiness with the catalog gone ---------------------------------------------------------


@pytest.fixture
def pg_srv(tmp_path: Path) -> Iterator[tuple[LiverecProcess, str]]:
    server = PgServer(PG_ADMIN_URL)
    try:
        url = server.create()
    except sa.exc.OperationalError:
        pytest.skip("no PostgreSQL server at " + PG_ADMIN_URL)
    proc = LiverecProcess(tmp_path / "data", env={"LIVEREC_DATABASE_URL": url}).start()
    try:
        yield proc, url
    finally:
        proc.terminate()
        server.drop(url)


def _set_connections(url: str, allowed: bool) -> None:
    """Let clients into the database, or shut it to them and cut those connected."""
    name = make_url(url).database
    admin = PgServer(PG_ADMIN_URL).admin
    with admin.connect() as conn:
        conn.exec_driver_sql(
            f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS {"true" if allowed else "false"}'
        )
        if not allowed:
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )


def test_readyz_fails_quickly_naming_the_catalog_while_postgres_refuses_it(
    pg_srv: tuple[LiverecProcess, str],
) -> None:
    proc, url = pg_srv
    with httpx.Client(base_url=f"http://127.0.0.1:{proc.http_port}", timeout=15) as http:
        assert http.get("/readyz").status_code == 200
        _set_connections(url, False)
        try:
            time.sleep(1.1)  # past the answer kept from the last check
            began = time.monotonic()
            resp = http.get("/readyz")
            took = time.monotonic() - began
            assert resp.status_code == 503, resp.text
            body = resp.json()
            assert next(iter(body)) == "message"
            assert body["reason"] == "not_ready"
            assert body["failed"] == ["catalog"]
            assert body["checks"]["storage"] == "ok"
            assert "catalog" in body["message"]
            assert took < 5.0
            # Alive all the same, and the scrape still answers.
            assert http.get("/healthz").status_code == 200
            assert http.get("/metrics").status_code == 200
        finally:
            _set_connections(url, True)
        deadline = time.monotonic() + 15
        while http.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "not ready again after the catalog came back"
            time.sleep(0.3)
