"""Reading back what liverec recorded: playlists, frames, catalog rows."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import av

from liverec.media.m3u8 import MediaPlaylist, parse
from support.mediagen import audio_duration, decode_frames


@dataclass
class Recorded:
    path: Path
    text: str
    playlist: MediaPlaylist

    @property
    def start(self) -> datetime:
        first = self.playlist.segments[0].program_date_time
        assert first is not None
        return first

    @property
    def duration(self) -> float:
        return sum(s.duration for s in self.playlist.segments)

    def frames(self) -> list[int]:
        return [n for _, n in decode_frames(str(self.path))]

    def video_streams(self) -> int:
        with av.open(str(self.path)) as container:
            return len(container.streams.video)

    def audio_seconds(self) -> float:
        return audio_duration(str(self.path))


def recordings(folder: Path) -> list[Recorded]:
    """Every recording playlist in a stream folder, oldest first."""
    out = []
    for path in sorted(folder.glob("*.m3u8")):
        text = path.read_text()
        out.append(Recorded(path, text, parse(text)))
    out.sort(key=lambda r: r.start)
    return out


def finished(folder: Path, count: int = 1, timeout: float = 20.0) -> list[Recorded]:
    """The recordings of a stream folder once `count` of them exist and all have ended.

    A publisher's connection closes before the server has stored the last segment, so tests
    wait for EXT-X-ENDLIST as a player would."""
    deadline = time.monotonic() + timeout
    while True:
        recs = recordings(folder)
        if len(recs) >= count and all(r.playlist.endlist for r in recs):
            return recs
        if time.monotonic() > deadline:
            raise AssertionError(f"{folder}: {len(recs)} recording(s), not all ended")
        time.sleep(0.1)


def liverec_cli(data_dir: Path, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "liverec", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    return result.stdout
