"""End to end: sample-shaped clients. Agora documents its FLS (Media Broadcast) REST API with
small sample programs; users copy them and change the base URL. Each client here builds its
requests the way one of those samples does, byte for byte where it matters (auth scheme
spelling, which headers, Content-Type or none, body framing, what the HMAC signs), using
only the standard library, and calls every documented FLS call liverec implements against a
real `liverec serve` with real recordings.

The shapes, and where they come from (AgoraIO/Docs-Source):
- `shared/common/_restful-authentication.mdx`, the Basic samples: Python (`http.client`,
  `Authorization: basic ...` in lower case, `Content-Type: application/json`), Node.js
  (`https.request`, `Basic`, `application/json`), Java (`java.net.http.HttpClient`,
  `Basic`, `application/json`).
- `shared/broadcast-streaming-private-product/restful-api/_api-overview.mdx`, the HMAC
  samples: Python (`requests`, headers host/date/digest/authorization, a JSON string body
  and so no Content-Type), Java (`HttpURLConnection`, doOutput on a DELETE: Java's
  default form Content-Type and Accept), Node.js (`request`, `application/json`), PHP
  (curl with POSTFIELDS: a form Content-Type, even on a GET) and the Postman pre-request
  script (signs the host without its port and the path without its query).

What each library adds on the wire by itself (User-Agent, Accept, Connection, framing) is
reproduced from the library's known behaviour, noted at each shape."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest

from support.mediagen import make_media
from support.recordings import Recorded, finished
from support.server import APP_ID, CUSTOMER_ID, CUSTOMER_SECRET, LiverecProcess, push, start_push

pytestmark = pytest.mark.slow  # a real `liverec serve` process, real ffmpeg pushes

EPS = f"/v1/projects/{APP_ID}/fls/entry_points"
E = EPS + "/live"
REGION = "na"
STANDARD = E + f"/admin/record/standard/regions/{REGION}"
CST = timezone(timedelta(hours=8))  # the docs' examples are in +08:00
Query = Mapping[str, str] | None


# --- the wire -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def __str__(self) -> str:
        return f"{self.status} {self.body[:500]!r}"


def _read(conn: http.client.HTTPConnection) -> Answer:
    resp = conn.getresponse()
    return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())


def send_raw(
    port: int,
    method: str,
    target: str,
    headers: Sequence[tuple[str, str]],
    body: bytes | None = None,
    *,
    chunked: bool = False,
) -> Answer:
    """Send exactly these headers, in this order, and no others (no Host, no
    Accept-Encoding added), then the body as is or as one chunk."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        conn.endheaders()
        if body is not None:
            conn.send(f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n" if chunked else body)
        return _read(conn)
    finally:
        conn.close()


def with_query(path: str, query: Query) -> str:
    return path + ("?" + urllib.parse.urlencode(query) if query else "")


# --- Agora's HMAC, from the documented algorithm ------------------------------------------


def digest_of(body: bytes) -> str:
    return "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode("utf-8")


def signing_string(host: str, date: str, request_line: str, digest: str) -> str:
    return f"host: {host}\ndate: {date}\n{request_line}\ndigest: {digest}"


def hmac_signature(secret: str, text: str) -> str:
    mac = hmac.new(secret.encode("utf-8"), text.encode("utf-8"), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode("utf-8")


def hmac_authorization(
    method: str, signed_path: str, host: str, date: str, body: bytes, secret: str
) -> tuple[str, str]:
    """(digest, authorization) for a request, as every FLS HMAC sample builds them."""
    digest = digest_of(body)
    text = signing_string(host, date, f"{method} {signed_path} HTTP/1.1", digest)
    authorization = (
        f'hmac username="{CUSTOMER_ID}", algorithm="hmac-sha256", '
        f'headers="host date request-line digest", signature="{hmac_signature(secret, text)}"'
    )
    return digest, authorization


def python_date() -> str:
    """`datetime.datetime.utcnow().strftime('%a, %d %b %Y %H:%M:%S GMT')`."""
    return datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")


def js_date() -> str:
    """`new Date().toGMTString()` (Node, Postman), Java's `EEE, dd MMM yyyy HH:mm:ss z` in
    GMT and PHP's `gmDate("D, d M Y H:i:s ") . "GMT"`: all RFC 1123."""
    return formatdate(usegmt=True)


def basic_credential() -> str:
    return base64.b64encode(f"{CUSTOMER_ID}:{CUSTOMER_SECRET}".encode()).decode("utf-8")


def js_json(body: Any) -> bytes:
    """JSON.stringify / json_encode / a hand-built Java string: compact."""
    return json.dumps(body, separators=(",", ":")).encode()


def test_hmac_builder_matches_the_reference_check_value() -> None:
    date = "Mon, 07 Aug 2023 12:00:00 GMT"
    assert digest_of(b"") == "SHA-256=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
    text = signing_string(
        "api.agora.io", date, "GET /v1/projects/appid1/fls/entry_points HTTP/1.1", digest_of(b"")
    )
    assert hmac_signature("hmac_user_secret", text) == (
        "HSu/om83VlyjjJ/Cgx3TH77HMfEMCC5Tn/R2I+bqAtI="
    )
    _, authorization = hmac_authorization(
        "GET", "/v1/projects/appid1/fls/entry_points", "api.agora.io", date, b"", "hmac_user_secret"
    )
    assert authorization == (
        f'hmac username="{CUSTOMER_ID}", algorithm="hmac-sha256", headers="host date '
        'request-line digest", signature="HSu/om83VlyjjJ/Cgx3TH77HMfEMCC5Tn/R2I+bqAtI="'
    )


# --- the sample clients -------------------------------------------------------------------
# Each: (port, method, path, query, JSON body or None for no body) -> Answer.


class CannotSendError(Exception):
    """The sample's HTTP library cannot send this request at all."""


def python_basic(port: int, method: str, path: str, query: Query, body: Any) -> Answer:
    """The Python Basic sample: `http.client`, `'basic ' + credential` (lower case),
    `Content-Type: application/json`, payload "" when there is none; http.client adds
    Host, Accept-Encoding: identity and Content-Length (0 for the empty payload)."""
    headers = {"Authorization": "basic " + basic_credential(), "Content-Type": "application/json"}
    payload = "" if body is None else json.dumps(body)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, with_query(path, query), payload, headers)
        return _read(conn)
    finally:
        conn.close()


def python_hmac(port: int, method: str, path: str, query: Query, body: Any) -> Answer:
    """The FLS Python HMAC sample: `requests.<method>(url, headers={host, date, digest,
    authorization}, data=json.dumps(...))`. A str body gets no Content-Type from requests;
    requests adds its default headers and Content-Length (0 on a body-less non-GET). The
    request line signed is the path as sent, query included."""
    data = b"" if body is None else json.dumps(body).encode("utf-8")
    host = f"127.0.0.1:{port}"
    target = with_query(path, query)
    date = python_date()
    digest, authorization = hmac_authorization(method, target, host, date, data, CUSTOMER_SECRET)
    headers = [
        ("User-Agent", "python-requests/2.31.0"),
        ("Accept-Encoding", "gzip, deflate"),
        ("Accept", "*/*"),
        ("Connection", "keep-alive"),
        ("host", host),
        ("date", date),
        ("digest", digest),
        ("authorization", authorization),
    ]
    if body is not None or method not in ("GET", "HEAD"):
        headers.append(("Content-Length", str(len(data))))
    return send_raw(port, method, target, headers, data if body is not None else None)


JAVA_ACCEPT = "text/html, image/gif, image/jpeg, *; q=.2, */*; q=.2"


def java_urlconnection(
    port: int, method: str, path: str, query: Query, body: Any, *, use_hmac: bool = False
) -> Answer:
    """`HttpURLConnection`, as the FLS Java sample uses it: doOutput on every call but a GET
    (on a GET it would turn the request into a POST), the body written even when empty.
    Java then adds `Content-type: application/x-www-form-urlencoded` (on anything but a
    PUT) and its default Accept; a `host` request property is a restricted header, dropped,
    so Host is Java's own. HttpURLConnection has no PATCH (ProtocolException)."""
    if method == "PATCH":
        raise CannotSendError("java.net.ProtocolException: Invalid HTTP method: PATCH")
    host = f"127.0.0.1:{port}"
    target = with_query(path, query)
    data = b"" if body is None else js_json(body)
    if use_hmac:
        date = js_date()
        digest, authorization = hmac_authorization(
            method, target, host, date, data, CUSTOMER_SECRET
        )
        headers = [("date", date), ("digest", digest), ("authorization", authorization)]
    else:
        headers = [("Authorization", "Basic " + basic_credential())]
    headers += [
        ("User-Agent", "Java/17.0.8"),
        ("Host", host),
        ("Accept", JAVA_ACCEPT),
        ("Connection", "keep-alive"),
    ]
    if method == "GET":
        return send_raw(port, method, target, headers)
    if method != "PUT":
        headers.append(("Content-type", "application/x-www-form-urlencoded"))
    headers.append(("Content-Length", str(len(data))))
    return send_raw(port, method, target, headers, data)


def java_httpclient(port: int, method: str, path: str, query: Query, body: Any) -> Answer:
    """The Java Basic sample: `java.net.http.HttpClient` (default version HTTP/2), headers
    Authorization `Basic ...` and `Content-Type: application/json`. Over plain http the
    client asks every request to upgrade to h2c (Connection, Upgrade, HTTP2-Settings) and
    carries on in HTTP/1.1 when the server does not switch."""
    data = None if body is None else js_json(body)
    headers = [
        ("Connection", "Upgrade, HTTP2-Settings"),
        ("Host", f"127.0.0.1:{port}"),
        ("HTTP2-Settings", "AAEAAEAAAAIAAAABAAMAAABkAAQBAAAAAAUAAEAA"),
        ("Upgrade", "h2c"),
        ("User-Agent", "Java-http-client/17.0.8"),
        ("Authorization", "Basic " + basic_credential()),
        ("Content-Type", "application/json"),
    ]
    if method != "GET":
        headers.append(("Content-Length", str(len(data or b""))))
    return send_raw(port, method, with_query(path, query), headers, data)


def node_basic(port: int, method: str, path: str, query: Query, body: Any) -> Answer:
    """The Node.js Basic sample: `https.request(options)` with headers Authorization
    `Basic ...` and `Content-Type: application/json`. Node adds Host (with the port) and
    `Connection: close` (its default agent); a body given by `req.write(data)` before
    `req.end()` goes chunked, a POST with none gets `Content-Length: 0`."""
    headers = [
        ("Authorization", "Basic " + basic_credential()),
        ("Content-Type", "application/json"),
        ("Host", f"127.0.0.1:{port}"),
        ("Connection", "close"),
    ]
    target = with_query(path, query)
    if body is not None:
        headers.append(("Transfer-Encoding", "chunked"))
        return send_raw(port, method, target, headers, js_json(body), chunked=True)
    if method in ("POST", "PUT", "PATCH"):
        headers.append(("Content-Length", "0"))
    return send_raw(port, method, target, headers)


def node_hmac(port: int, method: str, path: str, query: Query, body: Any) -> Answer:
    """The FLS Node.js HMAC sample: the `request` package with headers content-type
    application/json, date, digest, authorization and `body: JSON.stringify(content)`;
    `request` adds host (with the port) and content-length."""
    host = f"127.0.0.1:{port}"
    target = with_query(path, query)
    data = b"" if body is None else js_json(body)
    date = js_date()
    digest, authorization = hmac_authorization(method, target, host, date, data, CUSTOMER_SECRET)
    headers = [
        ("content-type", "application/json"),
        ("date", date),
        ("digest", digest),
        ("authorization", authorization),
        ("host", host),
    ]
    if body is not None:
        headers.append(("content-length", str(len(data))))
    headers.append(("Connection", "close"))
    return send_raw(port, method, target, headers, data if body is not None else None)


def postman(port: int, method: str, path: str, query: Query, body: Any) -> Answer:
    """The FLS Postman pre-request script: signs `pm.request.url.getHost()` (no port) and
    `pm.request.url.getPath()` (no query), the digest over `pm.request.body.raw` (none:
    the empty string's), then adds date, digest and authorization. Postman adds its own
    headers, Content-Type for a raw JSON body (as typed: indented) and Host with the port."""
    data = b"" if body is None else json.dumps(body, indent=4).encode()
    date = js_date()
    digest, authorization = hmac_authorization(
        method, path, "127.0.0.1", date, data, CUSTOMER_SECRET
    )
    headers = [("date", date), ("digest", digest), ("authorization", authorization)]
    if body is not None:
        headers.append(("Content-Type", "application/json"))
    headers += [
        ("User-Agent", "PostmanRuntime/7.36.0"),
        ("Accept", "*/*"),
        ("Postman-Token", str(uuid.uuid4())),
        ("Host", f"127.0.0.1:{port}"),
        ("Accept-Encoding", "gzip, deflate, br"),
        ("Connection", "keep-alive"),
    ]
    if body is not None or method != "GET":
        headers.append(("Content-Length", str(len(data))))
    target = with_query(path, query)
    return send_raw(port, method, target, headers, data if body is not None else None)


def php_hmac(port: int, method: str, path: str, query: Query, body: Any) -> Answer:
    """The FLS PHP sample: curl with CUSTOMREQUEST and POSTFIELDS `$data` on every call, a
    GET included (so curl sends `Content-Type: application/x-www-form-urlencoded` and a
    Content-Length, 0 for ""), a `host: $host` header that replaces curl's own, and the
    digest over `trim($data)`."""
    host = f"127.0.0.1:{port}"
    target = with_query(path, query)
    data = b"" if body is None else js_json(body).strip()
    date = js_date()
    digest, authorization = hmac_authorization(method, target, host, date, data, CUSTOMER_SECRET)
    headers = [
        ("host", host),
        ("Accept", "*/*"),
        ("date", date),
        ("digest", digest),
        ("authorization", authorization),
        ("Content-Length", str(len(data))),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ]
    return send_raw(port, method, target, headers, data)


Send = Callable[[int, str, str, Query, Any], Answer]
SHAPES: dict[str, Send] = {
    "python_basic": python_basic,
    "python_hmac": python_hmac,
    "java_urlconnection": java_urlconnection,
    "java_httpclient": java_httpclient,
    "node_basic": node_basic,
    "node_hmac": node_hmac,
    "postman": postman,
    "php_hmac": php_hmac,
}


@dataclass(frozen=True)
class Sample:
    name: str
    send: Send
    port: int

    def __call__(self, method: str, path: str, query: Query = None, body: Any = None) -> Answer:
        return self.send(self.port, method, path, query, body)

    def patcher(self) -> Sample:
        """Who sends this sample's PATCH calls: itself, or for HttpURLConnection (no PATCH)
        what a Java user switches to, java.net.http."""
        if self.name == "java_urlconnection":
            return Sample("java_httpclient", java_httpclient, self.port)
        return self


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiverecProcess]:
    proc = LiverecProcess(tmp_path_factory.mktemp("data")).start()
    yield proc
    proc.terminate()


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def onair(srv: LiverecProcess, media: Path) -> Iterator[subprocess.Popen[str]]:
    """Stream `onair`, live for the whole module (90 s of media, stopped at the end)."""
    proc = start_push(srv.url(stream="onair"), make_media(media / "onair.flv", 90, fps=10, gop=10))
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=10)


@pytest.fixture(scope="module")
def recorded(srv: LiverecProcess, media: Path, onair: subprocess.Popen[str]) -> Recorded:
    """One finished recording of stream `cam` (5 s), its publish in the history."""
    assert push(srv.url(stream="cam"), make_media(media / "cam.flv", 5, gop=25)).returncode == 0
    [rec] = finished(srv.stream_dir("cam"))
    reference = Sample("python_basic", python_basic, srv.http_port)
    wait_for(
        lambda: reference("GET", E + "/reports/publish_history", {"stream_name": "cam"}).json()[
            "publishHistory"
        ]
    )
    wait_for(lambda: "onair" in online_names(reference))
    return rec


@pytest.fixture(params=list(SHAPES))
def sample(request: pytest.FixtureRequest, srv: LiverecProcess) -> Sample:
    name: str = request.param
    return Sample(name, SHAPES[name], srv.http_port)


def wait_for(pred: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def online_names(call: Sample) -> set[str]:
    return {s["name"] for s in call("GET", E + "/reports/online_streams").json()["streamList"]}


# --- checks -------------------------------------------------------------------------------


def ok(answer: Answer, status: int = 200) -> Answer:
    assert answer.status == status, str(answer)
    return answer


def json_ok(answer: Answer, status: int = 200) -> Any:
    ok(answer, status)
    assert answer.headers.get("content-type", "").startswith("application/json"), answer.headers
    return answer.json()


def rfc3339(value: Any) -> datetime:
    assert isinstance(value, str), value
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.tzinfo is not None, value
    return parsed


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def cst(t: datetime) -> str:
    """A time as the docs write them: `2021-08-25T10:44:40+08:00`."""
    return t.astimezone(CST).isoformat(timespec="seconds")


def download(url: str) -> tuple[str, bytes]:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return resp.headers.get("Content-Type", ""), resp.read()


# --- every documented call, from every sample ---------------------------------------------


def test_entry_points(sample: Sample) -> None:
    name = f"ep_{sample.name}"
    created = sample("POST", EPS, {"id": name})
    assert created.status == 201, str(created)
    listed = json_ok(sample("GET", EPS))
    assert isinstance(listed["entryPointList"], list)
    assert all(isinstance(ep["name"], str) for ep in listed["entryPointList"])
    names = [ep["name"] for ep in listed["entryPointList"]]
    assert "live" in names and name in names
    ok(sample("DELETE", f"{EPS}/{name}"))
    assert name not in [ep["name"] for ep in json_ok(sample("GET", EPS))["entryPointList"]]


def test_standard_recording_switches(sample: Sample) -> None:
    name = f"rec_{sample.name}"
    assert sample("POST", EPS, {"id": name}).status == 201
    try:
        for enabled in (False, True):
            ok(
                sample.patcher()(
                    "PATCH",
                    f"{EPS}/{name}/settings/record/standard/auto",
                    body={"enabled": enabled},
                )
            )
        tasks = f"{EPS}/{name}/admin/record/standard/regions/{REGION}/tasks"
        ok(sample("PUT", tasks, {"id": "s1"}))
        ok(sample("DELETE", tasks + "/s1"))
    finally:
        ok(sample("DELETE", f"{EPS}/{name}"))


def test_post_processing(sample: Sample, recorded: Recorded) -> None:
    start = recorded.start
    # A whole day in +08:00, the day of the recording: its end is later than now (FLS
    # clients ask for "today"; only cutting and snapshot times must not be in the future).
    day = start.astimezone(CST).replace(hour=0, minute=0, second=0, microsecond=0)
    query = {"start_time": cst(day), "end_time": cst(day + timedelta(days=1)), "stream_name": "cam"}
    listing = json_ok(sample("GET", STANDARD + "/preview_list", query))["list"]
    assert len(listing) == 1, listing
    [item] = listing
    assert item["fileName"] == f"record/live/cam/{recorded.path.name}"
    assert abs(rfc3339(item["startTime"]) - start) < timedelta(milliseconds=1)
    assert rfc3339(item["endTime"]) > rfc3339(item["startTime"])
    assert is_int(item["position"]) and item["position"] == 0

    cut = {
        "startTime": cst(start + timedelta(seconds=1)),
        "endTime": cst(start + timedelta(seconds=3)),
        "fileName": f"clip_{sample.name}.m3u8",
    }
    clip = json_ok(sample("POST", STANDARD + "/cutting/cam", body=cut))
    kind, playlist = download(clip["url"])
    assert kind.startswith("application/vnd.apple.mpegurl") and playlist.startswith(b"#EXTM3U")
    assert b"#EXT-X-ENDLIST" in playlist and b".ts" in playlist

    snap = {"time": cst(start + timedelta(seconds=2)), "fileName": f"shot_{sample.name}.jpg"}
    shot = json_ok(sample("POST", STANDARD + "/snapshot/cam", body=snap))
    kind, jpeg = download(shot["url"])
    assert kind == "image/jpeg" and jpeg.startswith(b"\xff\xd8\xff") and jpeg.endswith(b"\xff\xd9")


def test_bans(sample: Sample) -> None:
    stream = f"ban_{sample.name}"
    path = f"{E}/admin/banned_streams/{stream}"
    before = datetime.now(UTC)
    ok(sample.patcher()("PATCH", path))  # no body: banned for 7 days

    def banned() -> dict[str, Any]:
        body = json_ok(sample("GET", E + "/admin/banned_streams"))
        assert isinstance(body["bannedStreamList"], list)
        return {b["name"]: b for b in body["bannedStreamList"]}

    entry = banned()[stream]
    assert set(entry) == {"name", "resumeTime"}
    lasts = rfc3339(entry["resumeTime"]) - before
    assert timedelta(days=7) - timedelta(minutes=1) < lasts < timedelta(days=7, minutes=1)
    resume = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    ok(sample.patcher()("PATCH", path, body={"resumeTime": cst(resume)}))
    assert rfc3339(banned()[stream]["resumeTime"]) == resume
    ok(sample("DELETE", path))
    assert stream not in banned()


def test_reports(sample: Sample, recorded: Recorded) -> None:
    streams = json_ok(sample("GET", E + "/reports/online_streams"))["streamList"]
    live = {s["name"]: s for s in streams}
    assert "onair" in live, streams
    since = rfc3339(live["onair"]["startTime"])
    one = json_ok(sample("GET", E + "/reports/online_streams/onair"))
    assert one == {"startTime": live["onair"]["startTime"]} and since <= datetime.now(UTC)

    for query in (
        {"stream_name": "cam"},
        {
            "start_time": cst(recorded.start - timedelta(minutes=5)),
            # Whole seconds, as the docs write them: now rounded up, so that a publish that
            # ended earlier in this second is in range (an end past now ends now).
            "end_time": cst(datetime.now(UTC) + timedelta(seconds=1)),
            "stream_name": "cam",
        },
    ):
        history = json_ok(sample("GET", E + "/reports/publish_history", query))["publishHistory"]
        assert len(history) == 1, (query, history)
        [record] = history
        assert record["name"] == "cam"
        began, ended = rfc3339(record["startTime"]), rfc3339(record["endTime"])
        assert began <= recorded.start < ended
        assert is_int(record["duration"]) and 3 <= record["duration"] <= 10, record

    quality = json_ok(sample("GET", E + "/reports/publish_quality", {"stream_name": "cam"}))
    assert isinstance(quality["publishHistory"], list)
    for point in quality["publishHistory"]:
        assert point["name"] == "cam" and rfc3339(point["time"])
        assert is_int(point["bitrate"]) and isinstance(point["frameRate"], int | float)
        assert isinstance(point["cdnIp"], str) and isinstance(point["clientIp"], str)

    plays = json_ok(sample("GET", E + "/reports/stream_play_statistic", {"stream_name": "cam"}))
    assert isinstance(plays["playStatistic"], list)
    for point in plays["playStatistic"]:
        assert point["name"] == "cam" and rfc3339(point["time"]) and is_int(point["linkNum"])


# --- what the samples sign, exactly -------------------------------------------------------


def test_the_java_hmac_sample_call(srv: LiverecProcess) -> None:
    """The FLS Java sample as written: an HMAC-signed DELETE of banned_streams/{stream}
    with doOutput and an empty body (form Content-Type, Content-Length 0)."""
    reference = Sample("python_basic", python_basic, srv.http_port)
    ok(reference("PATCH", E + "/admin/banned_streams/java_sample"))
    ok(
        java_urlconnection(
            srv.http_port,
            "DELETE",
            E + "/admin/banned_streams/java_sample",
            None,
            None,
            use_hmac=True,
        )
    )
    listed = reference("GET", E + "/admin/banned_streams").json()["bannedStreamList"]
    assert "java_sample" not in [b["name"] for b in listed]


def test_request_line_and_host_variants(srv: LiverecProcess, recorded: Recorded) -> None:
    """A query-carrying GET signed four ways (path with or without its query, host with or
    without its port) is accepted every way; the same with a wrong secret, another host or
    another path is refused."""
    port = srv.http_port
    start = recorded.start
    query = {"start_time": cst(start), "end_time": cst(start + timedelta(seconds=2))}
    target = with_query(STANDARD + "/preview_list", {**query, "stream_name": "cam"})
    path = target.split("?")[0]

    def signed(signed_path: str, host: str, secret: str = CUSTOMER_SECRET) -> Answer:
        date = js_date()
        digest, authorization = hmac_authorization("GET", signed_path, host, date, b"", secret)
        headers = [
            ("Host", f"127.0.0.1:{port}"),
            ("date", date),
            ("digest", digest),
            ("authorization", authorization),
        ]
        return send_raw(port, "GET", target, headers)

    for signed_path in (target, path):
        for host in (f"127.0.0.1:{port}", "127.0.0.1"):
            assert len(json_ok(signed(signed_path, host))["list"]) == 1
    assert signed(target, "127.0.0.1", "wrong").status == 401
    assert signed(target, "api.agora.io").status == 401
    assert signed(E + "/admin/banned_streams", "127.0.0.1").status == 401


def test_wrong_credentials_are_refused_in_every_scheme_spelling(srv: LiverecProcess) -> None:
    port = srv.http_port
    for scheme in ("basic", "Basic", "BASIC"):
        bad = base64.b64encode(f"{CUSTOMER_ID}:wrong".encode()).decode()
        answer = send_raw(
            port, "GET", EPS, [("Host", f"127.0.0.1:{port}"), ("Authorization", f"{scheme} {bad}")]
        )
        assert answer.status == 401, str(answer)
        good = send_raw(
            port,
            "GET",
            EPS,
            [("Host", f"127.0.0.1:{port}"), ("Authorization", f"{scheme} {basic_credential()}")],
        )
        assert good.status == 200, str(good)
