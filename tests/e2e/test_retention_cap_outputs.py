"""End to end: the storage byte cap on a real `liverec serve` with MP4 record files and
periodic snapshots on, real ffmpeg pushes. Two pushes are recorded (HLS, 4 s MP4 slices,
snapshots every 5 s) and a clip is cut from the first; the node restarts with a cap between
the second push's bytes and both pushes': its first sweep deletes the oldest media, MP4
slices and snapshots with the segments, until under the cap. The second push is untouched,
the clip's segments and the MP4 slice over its range stay, nothing listed is missing."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest

from liverec.media.m3u8 import parse
from support.api import base_path, client, z
from support.mediagen import make_media
from support.recordings import finished, liverec_cli
from support.server import LiverecProcess, push

pytestmark = pytest.mark.slow  # a real `liverec serve`, real ffmpeg pushes

MEDIA = (".ts", ".mp4", ".jpg")  # what the cap counts (playlists and clips are not)


def media_files(srv: LiverecProcess, stream: str) -> dict[str, int]:
    """The recorded media of `stream` on disk: name -> bytes."""
    found: dict[str, int] = {}
    for top in ("record", "snapshot"):
        folder = srv.storage / top / "live" / stream
        for path in folder.glob("*") if folder.exists() else []:
            if path.suffix in MEDIA:
                found[f"{top}/{path.name}"] = path.stat().st_size
    return found


def wait_outputs(srv: LiverecProcess, stream: str, mp4: int) -> dict[str, int]:
    """The stream's media once its `mp4` slices are stored (published after the push)."""
    deadline = time.monotonic() + 30
    while True:
        files = media_files(srv, stream)
        if sum(name.endswith(".mp4") for name in files) >= mp4 or time.monotonic() > deadline:
            return files
        time.sleep(0.2)


def test_the_cap_deletes_mp4_slices_and_snapshots_with_the_oldest_segments(
    tmp_path: Path,
) -> None:
    media = make_media(tmp_path / "av.flv", 12, fps=25, gop=25)
    data = tmp_path / "data"
    srv = LiverecProcess(data, env={"LIVEREC_MP4_SLICE_SECONDS": "4"}).start()
    try:
        liverec_cli(
            data,
            *("entry-points", "set", "live", "--target-duration", "1", "--mp4"),
            *("--snapshots", "--snapshot-interval", "5"),
        )
        push(srv.url(stream="old"), media)
        [old_rec] = finished(srv.stream_dir("old"))
        old = wait_outputs(srv, "old", 3)
        clip_start = old_rec.start + timedelta(seconds=5)
        with client(srv) as http:
            resp = http.post(
                base_path() + "/cutting/old",
                json={
                    "startTime": z(clip_start),
                    "endTime": z(clip_start + timedelta(seconds=1)),
                    "fileName": "kept.m3u8",
                },
            )
            assert resp.status_code == 200, resp.text
        push(srv.url(stream="new"), media)
        finished(srv.stream_dir("new"))
        new = wait_outputs(srv, "new", 3)
    finally:
        srv.terminate()
    assert sum(n.endswith(".mp4") for n in old) >= 3 and any(n.endswith(".jpg") for n in old)
    old_bytes, new_bytes = sum(old.values()), sum(new.values())
    cap = new_bytes + old_bytes // 2
    srv = LiverecProcess(
        data, env={"LIVEREC_STORAGE_MAX_BYTES": str(cap), "LIVEREC_RETENTION_INTERVAL": "1"}
    ).start()
    try:
        srv.wait_for_log("retention deleted", timeout=30)
        deadline = time.monotonic() + 30  # the blobs go right after the catalog rows
        while time.monotonic() < deadline and sum(media_files(srv, "old").values()) > cap:
            time.sleep(0.2)
        after = media_files(srv, "old")
        # Under the cap, with the margin, counting MP4 slices and snapshots.
        assert sum(after.values()) + new_bytes <= cap * 0.95
        assert media_files(srv, "new") == new  # the newest media is untouched
        gone = set(old) - set(after)
        assert any(n.endswith(".mp4") for n in gone), sorted(gone)
        assert any(n.endswith(".ts") for n in gone), sorted(gone)
        # The clip keeps its segments and the MP4 slice over its range.
        folder = srv.stream_dir("old")
        clip = parse((folder / "kept.m3u8").read_text())
        assert clip.segments
        for entry in clip.segments:
            assert (folder / entry.uri).exists(), entry.uri
        assert any(n.endswith(".mp4") for n in after), sorted(after)
        # Nothing a playlist lists is missing.
        for playlist in folder.glob("*.m3u8"):
            for entry in parse(playlist.read_text()).segments:
                assert (folder / entry.uri).exists(), (playlist.name, entry.uri)
    finally:
        srv.kill()
