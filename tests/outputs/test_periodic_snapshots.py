"""Periodic snapshots' own work on a real keyframe: decoded, at the source's size or scaled
down when `max_width` asks, stored under its FLS name and catalogued with its time.
(On schedule from real pushes through `liverec serve`: tests/e2e/test_outputs.py.)"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import pytest

from liverec.catalog import Catalog
from liverec.events import SnapshotFileNotices
from liverec.layout import RecordingPath
from liverec.outputs.snapshots import PeriodicSnapshots
from liverec.postprocess.snapshot import encode_jpeg
from liverec.storage import LocalStore
from outputs.mp4rig import CAM, make_rig
from support.mediagen import make_media, read_frame_number

T0 = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)


def first_keyframe(path: Path) -> bytes:
    """The first video packet of an MP4 written by make_media, as Annex B with its SPS/PPS
    (what the live publish hands over)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        bsf = av.BitStreamFilterContext("h264_mp4toannexb", stream)
        for packet in container.demux(stream):
            if packet.is_keyframe and packet.size:
                return b"".join(bytes(p) for p in bsf.filter(packet))
    raise AssertionError("no keyframe")


@pytest.mark.parametrize(("max_width", "size"), [(0, (640, 360)), (320, (320, 180))])
def test_a_keyframe_becomes_a_named_catalogued_jpeg(
    sqlite_catalog: Catalog, tmp_path: Path, max_width: int, size: tuple[int, int]
) -> None:
    make_rig(sqlite_catalog, LocalStore(tmp_path / "store"), tmp_path)  # the project
    store = LocalStore(tmp_path / "store")
    media = make_media(tmp_path / "src.mp4", 1, width=640, height=360, audio=False)
    shots = PeriodicSnapshots(
        store, SnapshotFileNotices(sqlite_catalog), encode_jpeg, max_width=max_width
    )
    recording = RecordingPath(CAM, "a" * 32, T0)
    taken = T0 + timedelta(seconds=5, milliseconds=40)
    stored = shots.take(recording, taken, first_keyframe(media))
    assert stored.name == f"snapshot/live/cam/{'a' * 32}_20261123120000000_20261123120005.jpg"
    assert (stored.width, stored.height) == size
    with av.open(io.BytesIO(store.get(CAM.key(stored.name))), mode="r") as container:
        [picture] = list(container.decode(video=0))
    assert (picture.width, picture.height) == size
    if max_width == 0:  # the frame number is drawn for the source's size only
        assert read_frame_number(picture) == 0
    [listed] = sqlite_catalog.snapshot_files_between(CAM, T0, T0 + timedelta(minutes=1))
    assert (listed.name, listed.time) == (stored.name, taken)
