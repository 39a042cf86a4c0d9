"""A full disk, for real: a `liverec serve` whose storage is a small tmpfs mounted by the
test (as root, which CI is), filled by a ballast file while a publish runs. New publishes
are refused with a message ffmpeg prints, /readyz and /metrics say so, the running publish
stays connected, and when space returns everything resumes by itself: the running publish
loses no frame (its segments wait in the spool on the data disk) and new ones are taken."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.api import client
from support.mediagen import make_media
from support.recordings import finished
from support.server import APP_ID, LiverecProcess, push, start_push

pytestmark = [
    pytest.mark.slow,  # real `liverec serve` processes, real ffmpeg pushes
    pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root"),
]

FPS = 25
SIZE_MB = 40
MIN_FREE_MB = 10


@pytest.fixture(scope="module")
def disk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    mount = tmp_path_factory.mktemp("small-disk")
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE_MB}m", "tmpfs", str(mount)])
    if not os.path.ismount(mount):
        pytest.fail(f"could not mount a tmpfs at {mount}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture(scope="module")
def srv(disk: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiverecProcess]:
    data = tmp_path_factory.mktemp("data")  # catalog and spools: on the big disk
    proc = LiverecProcess(
        data,
        env={
            "LIVEREC_STORAGE_URL": f"file://{disk}/storage",
            "LIVEREC_STORAGE_MIN_FREE": str(MIN_FREE_MB * 1024**2),
        },
    ).start()
    yield proc
    proc.terminate()


def stream_dir(disk: Path, stream: str) -> Path:
    return disk / "storage" / "na" / APP_ID / "record" / "live" / stream


def free_mb(path: Path) -> float:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize / 1024**2


def fill(disk: Path, leave_mb: float) -> None:
    """Grow (or shrink) the ballast so that about `leave_mb` MiB stay free."""
    ballast = disk / "ballast"
    have = ballast.stat().st_size if ballast.exists() else 0
    target = max(0, have + int((free_mb(disk) - leave_mb) * 1024**2))
    with ballast.open("ab") as f:
        f.truncate(0)
    # A full disk (ENOSPC) before the target is as full as asked.
    with ballast.open("wb") as f, contextlib.suppress(OSError):
        f.write(b"\0" * target)


def wait_until(pred: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (got := pred()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)
    return got


def metric(http: httpx.Client, name: str) -> float:
    for line in http.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


def test_a_full_disk_refuses_new_publishes_and_everything_resumes(
    srv: LiverecProcess, disk: Path, tmp_path: Path
) -> None:
    long = make_media(tmp_path / "long.flv", 20, fps=FPS, gop=FPS)
    short = make_media(tmp_path / "short.flv", 2, fps=FPS, gop=FPS)
    with client(srv) as http:
        assert http.get("/readyz").status_code == 200
        running = start_push(srv.url(stream="running"), long)
        wait_until(lambda: list(stream_dir(disk, "running").glob("*.ts")))
        # Under the minimum: new publishes are refused, saying why.
        fill(disk, leave_mb=MIN_FREE_MB / 2)
        wait_until(lambda: metric(http, "liverec_storage_full") == 1)
        ready = http.get("/readyz")
        assert ready.status_code == 503 and "disk_full" in ready.text, ready.text
        refused = push(srv.url(stream="late"), short, realtime=False)
        assert refused.returncode != 0
        assert "Server error: the recording disk is full" in refused.stderr, refused.stderr
        # Completely full for a few seconds: the running publish stays connected.
        fill(disk, leave_mb=0)
        time.sleep(5)
        assert running.poll() is None, "the running publish was dropped"
        # Space returns: everything goes on by itself.
        (disk / "ballast").unlink()
        wait_until(lambda: metric(http, "liverec_storage_full") == 0)
        wait_until(lambda: http.get("/readyz").status_code == 200)
        assert running.wait(60) == 0
        [rec] = finished(stream_dir(disk, "running"), timeout=30)
        assert rec.frames() == list(range(20 * FPS))  # nothing lost, nothing corrupt
        assert push(srv.url(stream="later"), short, realtime=False).returncode == 0
        finished(stream_dir(disk, "later"))
    assert srv.output.count("disk full:") == 1  # logged once, and its end once
    assert srv.output.count("disk has room again") == 1


def test_retention_frees_space_before_publishes_are_refused(
    srv: LiverecProcess, disk: Path, tmp_path: Path
) -> None:
    big = make_media(tmp_path / "big.flv", 4, fps=FPS, gop=FPS, bitrate=2_000_000)
    short = make_media(tmp_path / "short.flv", 2, fps=FPS, gop=FPS)
    with client(srv) as http:
        assert push(srv.url(stream="old"), big, realtime=False).returncode == 0
        finished(stream_dir(disk, "old"))
        deleted = metric(http, "liverec_retention_deleted_segments_total")
        # Under the minimum by less than the oldest recordings hold: the guard asks
        # retention first, which deletes the oldest media, and nothing is refused.
        fill(disk, leave_mb=MIN_FREE_MB - 0.5)
        wait_until(lambda: metric(http, "liverec_retention_deleted_segments_total") > deleted)
        wait_until(lambda: free_mb(disk) >= MIN_FREE_MB)
        assert push(srv.url(stream="new"), short, realtime=False).returncode == 0
        finished(stream_dir(disk, "new"))
        assert metric(http, "liverec_storage_full") == 0
    (disk / "ballast").unlink()
    assert "asking retention to free space" in srv.output
