"""Reading back what liverec recorded: playlists, frames, catalog rows."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

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
