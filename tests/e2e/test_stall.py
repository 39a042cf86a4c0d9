"""End to end: a `liverec serve` that stalls mid-push (SIGSTOP, as a paused VM or a process
starved of CPU does) finds the media the kernel kept for it when it resumes, and reads it in
one burst: many segments cut within milliseconds. With healthy storage all of them are
recorded; none is dropped as if the store were failing."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from support.mediagen import make_media
from support.recordings import finished, liverec_cli
from support.server import LiverecProcess, start_push

pytestmark = pytest.mark.slow  # a real `liverec serve`, a real ffmpeg push

FPS = 25
SECONDS = 30
# 38 segments of 0.52 s (gop 13 at 25 fps): more than a failing store may keep waiting (16)
STALL = 20.0


def test_a_burst_after_a_stall_is_recorded_whole(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    data = tmp_path_factory.mktemp("data")
    media = make_media(tmp_path_factory.mktemp("media") / "half.flv", SECONDS, fps=FPS, gop=13)
    srv = LiverecProcess(data).start()
    try:
        liverec_cli(data, "entry-points", "add", "half", "--target-duration", "0.5")
        folder: Path = srv.stream_dir("cam", entry_point="half")
        publisher = start_push(srv.url("half", stream="cam"), media)
        deadline = time.monotonic() + 20
        while not list(folder.glob("*.ts")):  # recording, before the stall
            assert time.monotonic() < deadline, srv.output
            time.sleep(0.1)
        assert srv.proc is not None
        os.kill(srv.proc.pid, signal.SIGSTOP)
        try:
            time.sleep(STALL)  # ffmpeg's writes wait in the socket buffers
        finally:
            os.kill(srv.proc.pid, signal.SIGCONT)
        _, err = publisher.communicate(timeout=SECONDS + 30)
        assert publisher.returncode == 0, err
        [rec] = finished(folder, timeout=60)
        assert "dropped" not in srv.output, srv.output
        assert not any(s.discontinuity for s in rec.playlist.segments)
        # The burst: more segments than a failing store may keep waiting, 8.8 s of media
        # cut within a few seconds of one another (in real time, 8.8 s apart).
        cut = [(folder / s.uri).stat().st_mtime for s in rec.playlist.segments]
        span = min(cut[i + 16] - cut[i] for i in range(len(cut) - 16))
        assert span < 4.0, span
        assert rec.frames() == list(range(SECONDS * FPS))
    finally:
        srv.terminate()
