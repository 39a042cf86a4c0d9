"""End to end: SIGTERM and kill -9 during pushes, restart, and hostile connections."""

from __future__ import annotations

import os
import socket
import struct
import time
from pathlib import Path

import pytest

from liverec.catalog import Catalog, SecretBox, make_engine
from liverec.config import load_settings
from liverec.storage.local import PARTS_DIR
from support.mediagen import make_media
from support.recordings import finished, recordings
from support.rtmpclient import RtmpPublisher
from support.server import LiverecProcess, proc_mb, start_push

pytestmark = pytest.mark.slow  # real `liverec serve` processes, real ffmpeg pushes

FPS = 25


@pytest.fixture(scope="module")
def av10(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_media(tmp_path_factory.mktemp("media") / "av10.flv", 10, fps=FPS, gop=25)


def catalog_of(data_dir: Path) -> Catalog:
    settings = load_settings({"data_dir": str(data_dir)}, env={})
    return Catalog(make_engine(settings.effective_database_url), SecretBox.from_settings(settings))


def wait_segments(folder: Path, count: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(list(folder.glob("*.ts"))) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} segments in {folder}")


def test_sigterm_closes_open_recordings(tmp_path: Path, av10: Path) -> None:
    srv = LiverecProcess(tmp_path / "data").start()
    pushes = [start_push(srv.url(stream=f"term{i}"), av10) for i in range(2)]
    wait_segments(srv.stream_dir("term0"), 1)
    wait_segments(srv.stream_dir("term1"), 1)
    time.sleep(1.0)
    assert srv.terminate() == 0
    for proc in pushes:
        proc.wait(30)
    for i in range(2):
        [rec] = recordings(srv.stream_dir(f"term{i}"))
        assert rec.text.rstrip().endswith("#EXT-X-ENDLIST")
        frames = rec.frames()
        # Everything received up to the stop is kept, the open segment included.
        assert frames == list(range(len(frames))) and len(frames) >= 5 * FPS
    assert catalog_of(srv.data_dir).open_recordings() == []


@pytest.mark.parametrize("fsync", ["full", "off"])
def test_kill_9_loses_at_most_the_open_segment(tmp_path: Path, av10: Path, fsync: str) -> None:
    # Without fsyncs too: the process's death leaves what it wrote in the page cache.
    srv = LiverecProcess(tmp_path / "data", env={"LIVEREC_FSYNC": fsync}).start()
    push = start_push(srv.url(stream="crash"), av10)
    folder = srv.stream_dir("crash")
    wait_segments(folder, 1)
    time.sleep(5.5)  # well into the second, open segment
    srv.kill()
    push.wait(30)
    [live] = recordings(folder)
    assert "#EXT-X-ENDLIST" not in live.text  # it really died mid-recording
    stored = len(live.playlist.segments)
    # The open segment was a part file, never under the stream's folder: nothing there
    # but the playlist and whole segments (one may be stored and not yet listed).
    listed = {live.path.name, *(s.uri for s in live.playlist.segments)}
    names = {p.name for p in folder.iterdir()}
    assert listed <= names and all(n.endswith(".ts") for n in names - listed)
    assert len(names - listed) <= 1
    parts = srv.data_dir / "storage" / PARTS_DIR
    left = sorted(parts.rglob("*.part")) if parts.exists() else []
    catalog = catalog_of(srv.data_dir)
    assert [r.state for r in catalog.open_recordings()] == ["open"]

    srv.start()  # restart on the same data dir: the open recording is closed
    srv.wait_for_log("closed recording .* at its last durable segment")
    [rec] = recordings(folder)
    assert rec.text.rstrip().endswith("#EXT-X-ENDLIST")
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in rec.text
    assert len(rec.playlist.segments) == stored
    frames = rec.frames()
    assert frames == list(range(len(frames)))
    assert len(frames) >= 4 * FPS  # everything but the segment being written
    assert catalog.open_recordings() == []
    assert not any(p.exists() for p in left)  # the killed process's parts are deleted
    # The stream is free again: a new push is recorded.
    again = start_push(srv.url(stream="crash"), av10)
    wait_segments(folder, stored + 1)
    again.kill()
    srv.terminate()


def _closed_by_server(sock: socket.socket, timeout: float = 10) -> bool:
    sock.settimeout(timeout)
    try:
        while True:
            if not sock.recv(65536):
                return True
    except (ConnectionError, OSError):
        return True


def test_hostile_connections_do_not_hurt_an_honest_push(tmp_path: Path, av10: Path) -> None:
    srv = LiverecProcess(tmp_path / "data", env={"LIVEREC_RTMP_IDLE_TIMEOUT": "2"}).start()
    honest = start_push(srv.url(stream="honest"), av10)
    time.sleep(1)
    port = srv.rtmp_port

    def raw() -> socket.socket:
        return socket.create_connection(("127.0.0.1", port), timeout=5)

    # A bad handshake version.
    s = raw()
    s.sendall(b"\x06" + os.urandom(1536))
    assert _closed_by_server(s)
    # Random bytes after a good handshake.
    pub = RtmpPublisher("127.0.0.1", port)
    pub.handshake()
    pub.sock.sendall(os.urandom(200_000))
    assert _closed_by_server(pub.sock)
    # A chunk size of 2**31.
    pub = RtmpPublisher("127.0.0.1", port)
    pub.handshake()
    pub.sock.sendall(
        b"\x02"
        + b"\x00" * 3
        + struct.pack(">I", 4)[1:]
        + b"\x01"
        + b"\x00" * 4
        + struct.pack(">I", 2**31)
    )
    assert _closed_by_server(pub.sock)
    # A message that announces 8 MiB and sends a few bytes, then hangs up.
    pub = RtmpPublisher("127.0.0.1", port)
    pub.connect_and_publish("live", "half")
    pub.sock.sendall(
        b"\x06"
        + b"\x00" * 3
        + (8_000_000).to_bytes(3, "big")
        + b"\x09"
        + b"\x01\x00\x00\x00"
        + b"\x17\x01"
        + b"x" * 100
    )
    pub.close()
    # An idle connection that never publishes is closed after the idle timeout.
    idle = raw()
    started = time.monotonic()
    assert _closed_by_server(idle, timeout=10)
    assert time.monotonic() - started < 8
    # A flood of connections, some completing the handshake, all held open: memory stays
    # bounded (each holds at most a handshake's bytes).
    assert srv.proc is not None
    rss_before = proc_mb(srv.proc.pid)
    flood = [raw() for _ in range(200)]
    for s in flood[:50]:
        s.sendall(b"\x03" + os.urandom(1536))
    time.sleep(0.5)
    assert proc_mb(srv.proc.pid) - rss_before < 64
    for s in flood:
        s.close()
    assert honest.wait(60) == 0
    [rec] = finished(srv.stream_dir("honest"))
    assert rec.frames() == list(range(10 * FPS))
    assert not list(srv.stream_dir("half").glob("*.ts"))
    srv.wait_for_log(r"RTMP .* closed: .*")
    assert srv.proc is not None and srv.proc.poll() is None  # still serving
    srv.terminate()
