"""End to end: idle RTMP connections from one address do not stop an honest push from
another, and running out of file descriptors pauses accepting with one log line."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.mediagen import make_media
from support.recordings import finished
from support.server import LiverecProcess, push

pytestmark = pytest.mark.slow  # a real `liverec serve`, real ffmpeg pushes

FPS = 25


@pytest.fixture(scope="module")
def av3(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_media(tmp_path_factory.mktemp("media") / "av3.flv", 3)


def test_200_idle_sockets_from_one_address_do_not_stop_a_push(tmp_path: Path, av3: Path) -> None:
    srv = LiverecProcess(tmp_path / "data", env={"LIVEREC_RTMP_MAX_PENDING_PER_IP": "4"}).start()
    try:
        flood = []
        for _ in range(200):
            s = socket.socket()
            s.bind(("127.0.0.2", 0))
            s.settimeout(5)
            s.connect(("127.0.0.1", srv.rtmp_port))
            flood.append(s)
        result = push(srv.url(stream="honest"), av3)
        assert result.returncode == 0, result.stderr
        [rec] = finished(srv.stream_dir("honest"))
        assert rec.frames() == list(range(3 * FPS))
        metrics = httpx.get(f"http://127.0.0.1:{srv.http_port}/metrics").text
        assert 'liverec_rtmp_connections_refused_total{reason="pending_per_ip"} 196.0' in metrics
        refused = [line for line in srv.lines if "too many connections from its address" in line]
        assert 1 <= len(refused) <= 2  # one line per 10 s with a count, not 196
        for s in flood:
            s.close()
    finally:
        srv.terminate()


def test_out_of_file_descriptors_pauses_accepting_quietly(
    tmp_path: Path, av3: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv = LiverecProcess(
        tmp_path / "data",
        env={"LIVEREC_RTMP_MAX_PENDING_PER_IP": "1000", "LIVEREC_RTMP_HANDSHAKE_TIMEOUT": "30"},
    )
    # A low hard limit, so raising the soft one cannot help.
    real_popen = subprocess.Popen

    def limited(args: list[str], **kw: Any) -> subprocess.Popen[str]:
        return real_popen(["prlimit", "--nofile=200:200", "--", *args], **kw)

    monkeypatch.setattr(subprocess, "Popen", limited)
    srv.start()
    monkeypatch.undo()
    try:
        flood = []
        for _ in range(400):
            s = socket.socket()
            s.bind(("127.0.0.2", 0))
            s.setblocking(False)  # past the listen backlog, connecting just waits
            s.connect_ex(("127.0.0.1", srv.rtmp_port))
            flood.append(s)
        time.sleep(3)
        for s in flood:
            s.close()
        time.sleep(1.5)
        result = push(srv.url(stream="after"), av3)
        assert result.returncode == 0, result.stderr
        [rec] = finished(srv.stream_dir("after"))
        assert rec.frames() == list(range(3 * FPS))
        srv.wait_for_log("was paused for", timeout=10)
        time.sleep(4)  # QUIET_TO_END: a second line, were there one, would be out
        paused = [line for line in srv.lines if "was paused for" in line]
        assert len(paused) == 1, srv.output
        assert "tries failed" in paused[0]
        assert "Traceback" not in srv.output
        assert "out of system resource" not in srv.output
    finally:
        srv.terminate()
