"""End to end: the FLS API of a real `liverec serve` on recordings made by real pushes."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest

from liverec.api.auth import hmac_authorization
from support.api import Frame, base_path, client, error, frame_times, jpeg_frame, z
from support.mediagen import decode_frames, make_media
from support.recordings import Recorded, finished, liverec_cli
from support.server import APP_ID, CUSTOMER_ID, CUSTOMER_SECRET, FFMPEG, LiverecProcess, push

pytestmark = pytest.mark.slow  # real `liverec serve` processes, real ffmpeg pushes

FPS = 25
BASE = base_path()


def plus8(t: datetime) -> str:
    return t.astimezone(timezone(timedelta(hours=8))).isoformat(timespec="milliseconds")


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiverecProcess]:
    proc = LiverecProcess(tmp_path_factory.mktemp("data")).start()
    yield proc
    proc.terminate()


@pytest.fixture(scope="module")
def recs(srv: LiverecProcess, tmp_path_factory: pytest.TempPathFactory) -> list[Recorded]:
    """Two recordings of stream `cam`: frames 0-149, then (reconnect) frames 1000-1149."""
    d = tmp_path_factory.mktemp("media")
    first = make_media(d / "a.flv", 6, fps=FPS, gop=25)
    second = make_media(d / "b.flv", 6, fps=FPS, gop=25, start_number=1000)
    assert push(srv.url(stream="cam"), first).returncode == 0
    finished(srv.stream_dir("cam"), 1)
    assert push(srv.url(stream="cam"), second).returncode == 0
    return finished(srv.stream_dir("cam"), 2)


@pytest.fixture(scope="module")
def frames(recs: list[Recorded]) -> list[list[Frame]]:
    return [frame_times(r) for r in recs]


@pytest.fixture(scope="module")
def http(srv: LiverecProcess) -> Iterator[httpx.Client]:
    with client(srv) as c:
        yield c


def preview(http: httpx.Client, start: str, end: str, stream: str = "cam") -> httpx.Response:
    return http.get(
        BASE + "/preview_list", params={"start_time": start, "end_time": end, "stream_name": stream}
    )


def test_preview_list(http: httpx.Client, recs: list[Recorded]) -> None:
    a, b = recs
    resp = preview(http, z(a.start - timedelta(minutes=1)), z(datetime.now(UTC)))
    assert resp.status_code == 200, resp.text
    items = resp.json()["list"]
    assert [i["fileName"] for i in items] == [f"record/live/cam/{r.path.name}" for r in recs]
    assert items[0]["startTime"] == z(a.start) and items[1]["startTime"] == z(b.start)
    assert all(i["position"] == 0 for i in items)
    assert items[0]["endTime"] == z(a.start + timedelta(seconds=round(a.duration, 3)))
    # Starting 2.5 s into the first recording: it is listed with position 2.
    mid = a.start + timedelta(seconds=2.5)
    items = preview(http, z(mid), z(mid + timedelta(seconds=1))).json()["list"]
    assert [(i["fileName"].rsplit("/", 1)[1], i["position"]) for i in items] == [(a.path.name, 2)]
    # The same instants in +08:00 give the same answer.
    same = preview(http, plus8(mid), plus8(mid + timedelta(seconds=1))).json()["list"]
    assert same == items or [dict(i, url="") for i in same] == [dict(i, url="") for i in items]
    # Nothing before the first recording; other streams are empty.
    before = a.start - timedelta(minutes=5)
    assert preview(http, z(before), z(before + timedelta(minutes=1))).json() == {"list": []}
    assert preview(http, z(mid), z(mid), "other").json() == {"list": []}
    # The url works in a player without credentials.
    url = items[0]["url"]
    assert httpx.get(url).status_code == 200
    assert "#EXTM3U" in httpx.get(url).text


def test_snapshot_is_the_exact_frame(
    http: httpx.Client, frames: list[list[Frame]], tmp_path: Path
) -> None:
    f = frames[0][62]
    nxt = frames[0][63]
    cases = [
        (f.wall, f.number),  # exactly at the frame
        (nxt.wall - timedelta(milliseconds=1), f.number),  # just before the next
        (f.wall - timedelta(milliseconds=1), frames[0][61].number),  # just before it
    ]
    for i, (when, expected) in enumerate(cases):
        for fmt in (z, plus8):
            resp = http.post(
                BASE + "/snapshot/cam",
                json={"time": fmt(when), "fileName": f"s{i}{fmt.__name__}.jpg"},
            )
            assert resp.status_code == 200, resp.text
            body = resp.json()
            assert body["fileName"] == f"record/live/cam/s{i}{fmt.__name__}.jpg"
            shot = httpx.get(body["url"])
            assert shot.headers["content-type"] == "image/jpeg"
            number, width, height = jpeg_frame(shot.content, tmp_path)
            assert number == expected and (width, height) == (320, 240)
    # The answer's time is the frame's own: snapping to it gives the same frame.
    resp = http.post(
        BASE + "/snapshot/cam",
        json={"time": z(f.wall + timedelta(milliseconds=20)), "fileName": "again.jpg"},
    )
    assert resp.json()["time"] == z(f.wall)
    # No time: the latest recorded frame.
    resp = http.post(BASE + "/snapshot/cam", json={"fileName": "latest.jpg"})
    assert resp.status_code == 200, resp.text
    number, _, _ = jpeg_frame(httpx.get(resp.json()["url"]).content, tmp_path)
    assert number == frames[1][-1].number == 1149


def clip(
    http: httpx.Client, name: str, start: datetime, end: datetime | None, precise: bool = False
) -> httpx.Response:
    body: dict[str, object] = {"startTime": z(start), "fileName": name, "precise": precise}
    if end is not None:
        body["endTime"] = z(end)
    return http.post(BASE + "/cutting/cam", json=body)


def test_plain_clip_across_recordings_plays_in_ffmpeg(
    http: httpx.Client, recs: list[Recorded], frames: list[list[Frame]]
) -> None:
    start = frames[0][60].wall + timedelta(milliseconds=5)  # inside the first segment
    end = frames[1][30].wall
    resp = clip(http, "across.m3u8", start, end)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["fileName"] == "record/live/cam/across.m3u8"
    assert body["startTime"] == z(recs[0].start)  # the segment holding startTime
    text = httpx.get(body["url"]).text
    assert text.count("#EXT-X-DISCONTINUITY") == 1 and "#EXT-X-ENDLIST" in text
    assert text.count("#EXT-X-PROGRAM-DATE-TIME") == text.count("#EXTINF")
    got = [n for _, n in decode_frames(body["url"])]
    assert got[0] == 0 and 1030 in got and got == sorted(got)
    assert got == list(range(len([n for n in got if n < 1000]))) + [n for n in got if n >= 1000]
    played = subprocess.run(
        [FFMPEG, "-v", "error", "-i", body["url"], "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert played.returncode == 0, played.stderr
    # endTime empty: to the end of the latest recorded media.
    resp = clip(http, "to_end.m3u8", start, None)
    assert resp.status_code == 200, resp.text
    assert [n for _, n in decode_frames(resp.json()["url"])][-1] == 1149


def test_precise_clip_starts_and_ends_on_the_asked_frames(
    http: httpx.Client, frames: list[list[Frame]]
) -> None:
    first, last = frames[0][37], frames[0][121]
    resp = clip(http, "precise.m3u8", first.wall, last.wall, precise=True)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["startTime"] == z(first.wall) and body["endTime"] == z(last.wall)
    got = [n for _, n in decode_frames(body["url"])]
    assert got == list(range(37, 122))


def test_errors(http: httpx.Client, srv: LiverecProcess, frames: list[list[Frame]]) -> None:
    t = frames[0][50].wall
    good = {"startTime": z(t), "endTime": z(t + timedelta(seconds=1)), "fileName": "e.m3u8"}

    def cut(body: Mapping[str, object], base: str = BASE, stream: str = "cam") -> httpx.Response:
        return http.post(f"{base}/cutting/{stream}", json=body)

    error(cut(good, base_path(region="xx")), 400)
    error(cut({**good, "startTime": "2026-11-23T12:00:00"}), 400)  # no offset
    error(cut({**good, "startTime": "yesterday"}), 400)
    error(cut({**good, "endTime": z(t - timedelta(seconds=1))}), 400)
    future = datetime.now(UTC) + timedelta(hours=1)
    error(cut({**good, "endTime": z(future)}), 400)
    bad_names = ("", "../e.m3u8", "a/e.m3u8", "e.mp4", "e\x01.m3u8", "..", "e.m3u8/")
    for bad in (*bad_names, "e\u2028.m3u8", "a b.m3u8", "a#b.m3u8", "a%20b.m3u8"):
        error(cut({**good, "fileName": bad}), 400)
    error(cut({k: v for k, v in good.items() if k != "fileName"}), 400)
    error(cut({"fileName": "x.m3u8"}), 400)  # no startTime: not FastAPI's 422
    error(http.post(BASE + "/snapshot/cam", json={"fileName": "x.png"}), 400)
    error(
        http.post(
            BASE + "/snapshot/cam",
            content=b"not json",
            headers={"content-type": "application/json"},
        ),
        400,
    )
    error(cut(good, base_path(app_id="nosuchproject")), 404)
    error(cut(good, base_path(entry_point="nosuch")), 404)
    error(http.get("/v1/projects/x/nothing"), 404)
    error(http.get(BASE + "/nothing"), 404)
    long_ago = datetime(2020, 1, 1, tzinfo=UTC)
    error(cut({**good, "startTime": z(long_ago), "endTime": z(long_ago)}), 404)
    error(http.post(BASE + "/snapshot/cam", json={"time": z(long_ago), "fileName": "o.jpg"}), 404)
    error(http.post(BASE + "/snapshot/nostream", json={"fileName": "o.jpg"}), 404)
    error(
        http.get(
            "/v1/projects//fls/entry_points/live/admin/record/standard/regions/na/preview_list"
        ),
        400,
    )
    assert cut(good).status_code == 200
    body = error(cut(good), 400)  # the fileName is used now
    assert "e.m3u8" in body["message"]
    # A recording's own playlist name cannot be taken by a clip.
    rec_name = preview(http, z(t), z(t)).json()["list"][0]["fileName"].rsplit("/", 1)[1]
    error(cut({**good, "fileName": rec_name}), 400)
    error(preview(http, z(t), z(t - timedelta(seconds=1))), 400)


def test_racing_file_names_one_wins(http: httpx.Client, frames: list[list[Frame]]) -> None:
    t = frames[0][10].wall
    body = {"startTime": z(t), "endTime": z(t + timedelta(seconds=2)), "fileName": "race.m3u8"}
    results: list[int] = []

    def go() -> None:
        with httpx.Client(
            base_url=http.base_url, auth=(CUSTOMER_ID, CUSTOMER_SECRET), timeout=30
        ) as c:
            results.append(c.post(BASE + "/cutting/cam", json=body).status_code)

    threads = [threading.Thread(target=go) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(results) == [200] + [400] * 7


def test_authentication(srv: LiverecProcess, recs: list[Recorded]) -> None:
    t = recs[0].start
    path = f"{BASE}/preview_list?start_time={z(t)}&end_time={z(t)}&stream_name=cam"
    with client(srv, auth=None) as anon:
        resp = anon.get(path)
        error(resp, 401)
        assert resp.headers["www-authenticate"].startswith("Basic")
    with client(srv, auth=(CUSTOMER_ID, "wrong")) as bad:
        error(bad.get(path), 401)
    with client(srv, auth=("nobody", CUSTOMER_SECRET)) as bad:
        error(bad.get(path), 401)
    host = f"127.0.0.1:{srv.http_port}"

    def signed(
        method: str,
        target: str,
        body: bytes,
        *,
        secret: str = CUSTOMER_SECRET,
        date: datetime | None = None,
        sign_body: bytes | None = None,
    ) -> httpx.Response:
        headers = hmac_authorization(
            CUSTOMER_ID,
            secret,
            method,
            target,
            host,
            format_datetime(date or datetime.now(UTC), usegmt=True),
            body if sign_body is None else sign_body,
        )
        with client(srv, auth=None) as c:
            return c.request(
                method,
                target,
                content=body,
                headers={**headers, "content-type": "application/json"},
            )

    assert signed("GET", path, b"").status_code == 200
    body = b'{"fileName": "hmac.jpg", "time": "' + z(t + timedelta(seconds=1)).encode() + b'"}'
    assert signed("POST", BASE + "/snapshot/cam", body).status_code == 200
    error(signed("GET", path, b"", secret="wrong"), 401)
    error(signed("GET", path, b"", date=datetime.now(UTC) - timedelta(hours=1)), 401)
    error(
        signed("POST", BASE + "/snapshot/cam", body.replace(b"hmac", b"hmbc"), sign_body=body), 401
    )
    # A credential reaches only the projects it is granted.
    liverec_cli(srv.data_dir, "projects", "add", "otherproject")
    out = liverec_cli(srv.data_dir, "credentials", "add", "--app", "otherproject")
    other_id = out.split("customer ID: ")[1].split()[0]
    other_secret = out.split("(shown once): ")[1].split()[0]
    with client(srv, auth=(other_id, other_secret)) as other:
        error(other.get(path), 404)
        assert other.get(
            base_path(app_id="otherproject") + "/preview_list",
            params={"start_time": z(t), "end_time": z(t), "stream_name": "cam"},
        ).json() == {"list": []}


def test_signed_urls(http: httpx.Client, srv: LiverecProcess, frames: list[list[Frame]]) -> None:
    t = frames[0][10].wall
    resp = clip(http, "signed.m3u8", t, t + timedelta(seconds=5))
    url = resp.json()["url"]
    playlist = httpx.get(url)
    assert playlist.status_code == 200
    assert playlist.headers["content-type"].startswith("application/vnd.apple.mpegurl")
    segment = playlist.text.splitlines()[-2]
    seg = httpx.get(url.rsplit("/", 1)[0] + "/" + segment)  # relative URI, as a player does
    assert seg.status_code == 200 and seg.headers["content-type"] == "video/mp2t"
    part = httpx.get(url.rsplit("/", 1)[0] + "/" + segment, headers={"Range": "bytes=0-187"})
    assert part.status_code == 206 and len(part.content) == 188 and part.content[0] == 0x47
    # Tampered signature, another stream's folder, an expired link.
    prefix, rest = url.split("/files/s/", 1)
    expires, sig, tail = rest.split("/", 2)
    error(httpx.get(f"{prefix}/files/s/{expires}/{sig[:-2]}AA/{tail}"), 401)
    error(httpx.get(f"{prefix}/files/s/{expires}/{sig}/{tail.replace('/cam/', '/cam2/')}"), 401)
    error(httpx.get(f"{prefix}/files/s/{int(time.time()) - 10}/{sig}/{tail}"), 401)
    # With credentials, by the name the API gave.
    name = resp.json()["fileName"]
    assert http.get(f"/files/{APP_ID}/na/{name}").status_code == 200
    error(http.get(f"/files/{APP_ID}/na/record/live/cam/..%2F..%2Fsecret.key"), 400)


def test_management_steers_recording(
    http: httpx.Client, srv: LiverecProcess, tmp_path: Path
) -> None:
    eps = f"/v1/projects/{APP_ID}/fls/entry_points"
    assert http.post(eps, params={"id": "studio"}).status_code == 201
    error(http.post(eps, params={"id": "studio"}), 400)
    error(http.post(eps, params={"id": "bad name"}), 400)
    error(http.delete(eps + "/live"), 400)
    error(http.delete(eps + "/nosuch"), 404)
    media = make_media(tmp_path / "m.flv", 2, fps=FPS, gop=25)
    # Off for one stream: its pushes are accepted and not recorded.
    studio = base_path(entry_point="studio")
    assert http.delete(studio + "/tasks", params={"id": "quiet"}).status_code == 200
    assert push(srv.url("studio", "quiet"), media).returncode == 0
    assert push(srv.url("studio", "loud"), media).returncode == 0
    finished(srv.stream_dir("loud", "studio"))
    assert not list(srv.stream_dir("quiet", "studio").glob("*"))
    # Entry point off, one stream on.
    off = http.patch(eps + "/studio/settings/record/standard/auto", json={"enabled": False})
    assert off.status_code == 200
    assert http.put(studio + "/tasks", params={"id": "quiet"}).status_code == 200
    assert push(srv.url("studio", "quiet"), media).returncode == 0
    assert push(srv.url("studio", "other"), media).returncode == 0
    finished(srv.stream_dir("quiet", "studio"))
    assert not list(srv.stream_dir("other", "studio").glob("*"))
    assert http.delete(eps + "/studio").status_code == 200
    error(
        http.get(
            studio + "/preview_list",
            params={
                "start_time": "2026-01-01T00:00:00Z",
                "end_time": "2026-01-01T00:00:00Z",
                "stream_name": "x",
            },
        ),
        404,
    )


def _raw_http(port: int, request: bytes) -> tuple[int, dict[str, object]]:
    """Send raw bytes to the server; the status and JSON body of its answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < _length(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    parsed = json.loads(body[: _length(data)])
    assert isinstance(parsed, dict)
    return status, parsed


def _length(data: bytes) -> int:
    for line in data.partition(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 1 << 30


def test_request_bodies_are_bounded(http: httpx.Client, srv: LiverecProcess) -> None:
    """Over a real socket: a huge Content-Length is answered 413 before any of the body is
    sent; a chunked body is cut off once it passes 64 KiB. The server stays up."""
    auth = base64.b64encode(f"{CUSTOMER_ID}:{CUSTOMER_SECRET}".encode())
    head = (
        f"POST {BASE}/cutting/cam HTTP/1.1\r\nHost: x\r\nAuthorization: Basic ".encode()
        + auth
        + b"\r\nContent-Type: application/json\r\n"
    )
    status, body = _raw_http(srv.http_port, head + b"Content-Length: 10000000000\r\n\r\n")
    assert (status, body["reason"]) == (413, "body_too_large")
    chunk = b"x" * 8192
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(9)) + b"0\r\n\r\n"
    status, body = _raw_http(srv.http_port, head + b"Transfer-Encoding: chunked\r\n\r\n" + chunked)
    assert (status, body["reason"]) == (413, "body_too_large")
    # A small chunked body is read and judged as usual.
    small = b'{"fileName": "a b.m3u8", "startTime": "2026-01-01T00:00Z"}'
    framed = b"%x\r\n%s\r\n0\r\n\r\n" % (len(small), small)
    request = head + b"Transfer-Encoding: chunked\r\n\r\n" + framed
    status, body = _raw_http(srv.http_port, request)
    assert (status, body["reason"]) == (400, "invalid_file_name")
    assert http.get("/healthz").status_code == 200
