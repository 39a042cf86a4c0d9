"""End to end: a real `liverec serve` over HTTPS (the API and the file URLs, one port, no
plain HTTP), and one behind a public URL, whose signed `url`s are under it and whose
printed push URL is the one publishers use."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from support.api import base_path, client, z
from support.mediagen import make_media
from support.recordings import finished, liverec_cli
from support.server import CUSTOMER_ID, CUSTOMER_SECRET, LiverecProcess, push
from support.tls import CertPair, make_cert

pytestmark = pytest.mark.slow  # real `liverec serve` processes, real ffmpeg pushes

PUBLIC = "https://rec.example.com/liverec"


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_media(tmp_path_factory.mktemp("media") / "a.flv", 2, fps=25, gop=25)


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> CertPair:
    return make_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def tls_srv(tmp_path_factory: pytest.TempPathFactory, cert: CertPair) -> Iterator[LiverecProcess]:
    args = ["--tls-cert", str(cert.cert), "--tls-key", str(cert.key)]
    proc = LiverecProcess(tmp_path_factory.mktemp("data"), args=args).start()
    yield proc
    proc.terminate()


@pytest.fixture(scope="module")
def https(tls_srv: LiverecProcess, cert: CertPair) -> Iterator[httpx.Client]:
    """An FLS client of the HTTPS node that trusts its certificate, and only it."""
    with httpx.Client(
        base_url=f"https://127.0.0.1:{tls_srv.http_port}",
        auth=(CUSTOMER_ID, CUSTOMER_SECRET),
        verify=cert.client_context(),
        timeout=30,
    ) as c:
        yield c


def preview(http: httpx.Client, stream: str, entry_point: str = "live") -> list[dict[str, str]]:
    now = datetime.now(UTC)
    resp = http.get(
        base_path(entry_point=entry_point) + "/preview_list",
        params={
            "start_time": z(now - timedelta(hours=1)),
            "end_time": z(now),
            "stream_name": stream,
        },
    )
    assert resp.status_code == 200, resp.text
    items: list[dict[str, str]] = resp.json()["list"]
    return items


def test_https_serves_the_api_and_the_files(
    tls_srv: LiverecProcess, https: httpx.Client, cert: CertPair, media: Path
) -> None:
    assert "tls=on" in tls_srv.wait_for_log(r"liverec ready:")
    assert https.get("/healthz").status_code == 200
    assert push(tls_srv.url(stream="cam"), media, realtime=False).returncode == 0
    [rec] = finished(tls_srv.stream_dir("cam"))
    [item] = preview(https, "cam")
    assert item["fileName"] == f"record/live/cam/{rec.path.name}"
    # No public URL: the signed url is under the request's own base, https included.
    url = item["url"]
    assert url.startswith(f"https://127.0.0.1:{tls_srv.http_port}/files/s/"), url
    playlist = httpx.get(url, verify=cert.client_context())
    assert playlist.status_code == 200 and "#EXTM3U" in playlist.text
    segment = next(line for line in playlist.text.splitlines() if line.endswith(".ts"))
    seg = httpx.get(url.rsplit("/", 1)[0] + "/" + segment, verify=cert.client_context())
    assert seg.status_code == 200 and seg.content[:1] == b"\x47"  # MPEG-TS sync byte


def test_https_port_takes_no_plain_http(tls_srv: LiverecProcess, https: httpx.Client) -> None:
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{tls_srv.http_port}/healthz", timeout=10)
    # Nor a client that does not trust the certificate.
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"https://127.0.0.1:{tls_srv.http_port}/healthz", timeout=10)
    assert https.get("/healthz").status_code == 200  # the server is still up


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_public_url_and_printed_push_url(
    tmp_path_factory: pytest.TempPathFactory, media: Path
) -> None:
    rtmp = f"127.0.0.1:{free_port()}"
    data = tmp_path_factory.mktemp("data")
    srv = LiverecProcess(data, args=["--public-url", PUBLIC + "/", "--rtmp", rtmp]).start()
    try:
        assert "tls=off" in srv.wait_for_log(r"liverec ready:")
        assert srv.rtmp_port == int(rtmp.rsplit(":", 1)[1])
        # The push URL the CLI prints is used as it is: the configured address, signed.
        add = ("entry-points", "add", "secure", "--generate-auth-key", "--stream", "cam")
        out = liverec_cli(data, *add, "--rtmp", rtmp)
        url = out.split("signed push URL: ", 1)[1].split()[0]
        assert url.startswith(f"rtmp://{rtmp}/secure/cam?ts="), url
        assert push(url, media, realtime=False).returncode == 0
        [rec] = finished(srv.stream_dir("cam", "secure"))
        with client(srv) as http:
            [item] = preview(http, "cam", "secure")
        assert item["fileName"] == f"record/secure/cam/{rec.path.name}"
        # Under the public URL, its path prefix kept; a proxy that strips the prefix and
        # forwards to the node serves it.
        assert item["url"].startswith(PUBLIC + "/files/s/"), item
        forwarded = item["url"].removeprefix(PUBLIC)
        playlist = httpx.get(f"http://127.0.0.1:{srv.http_port}{forwarded}")
        assert playlist.status_code == 200 and "#EXTM3U" in playlist.text
    finally:
        srv.terminate()
