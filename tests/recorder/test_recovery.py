"""Crash recovery's playlist (recorder/recovery.py) on a real catalog and store: it declares
the target duration the recording's live playlists declared, computed by the segmenter's
rule from the entry point, and never less than a segment's EXTINF."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from liverec.catalog import Catalog, Recording, SecretBox, make_engine, migrate
from liverec.layout import StreamRef
from liverec.media.m3u8 import MediaPlaylist, parse
from liverec.recorder import finalize_recording
from liverec.recorder.segmenter import playlist_target_duration
from liverec.storage import LocalStore

APP = "app"
T0 = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
CAM = StreamRef(APP, "na", "studio", "cam")


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    engine = make_engine(f"sqlite:///{tmp_path / 'catalog.db'}")
    migrate(engine)
    catalog = Catalog(engine, SecretBox(SecretBox.generate_key()))
    catalog.create_project(APP, is_default=True)
    catalog.create_entry_point(APP, "studio", target_duration=2.0)
    yield catalog
    engine.dispose()


def left_open(catalog: Catalog, store: LocalStore, durations: list[float]) -> Recording:
    """An open recording with these segments catalogued, as a crashed writer leaves it."""
    path = CAM.recording("s", T0)
    rec = catalog.create_recording(
        CAM,
        session_id="s",
        playlist_key=path.playlist,
        start_time=T0,
        node_id="gone",
        lease_seconds=60,
    )
    start = T0
    for seq, duration in enumerate(durations):
        store.put(CAM.key(path.segment(seq)), b"\x47" * 188, "video/mp2t")
        catalog.add_segment(
            rec.id,
            seq=seq,
            key=path.segment(seq),
            start_time=start,
            duration=duration,
            size=188,
            discontinuity=False,
        )
        start += timedelta(seconds=duration)
    return rec


def recovered(catalog: Catalog, store: LocalStore, rec: Recording) -> MediaPlaylist:
    finalize_recording(catalog, store, rec)
    return parse(store.get(CAM.key(rec.playlist_key)).decode())


def test_recovery_declares_the_entry_points_target_duration(
    catalog: Catalog, tmp_path: Path
) -> None:
    store = LocalStore(tmp_path / "store")
    pl = recovered(catalog, store, left_open(catalog, store, [2.0, 2.0, 1.2]))
    assert pl.endlist and pl.playlist_type == "VOD" and len(pl.segments) == 3
    # What the live playlists said (10 s for a 2 s target), not the 2 s the segments need.
    assert pl.target_duration == playlist_target_duration(2.0) == 10


def test_recovery_without_the_entry_point_declares_what_fits(
    catalog: Catalog, tmp_path: Path
) -> None:
    store = LocalStore(tmp_path / "store")
    rec = left_open(catalog, store, [2.0, 9.4, 1.0])
    catalog.delete_entry_point(APP, "studio")
    assert recovered(catalog, store, rec).target_duration == 9


def test_recovery_never_declares_less_than_a_segment(catalog: Catalog, tmp_path: Path) -> None:
    # The entry point's target was lowered while the recording ran with a longer one.
    store = LocalStore(tmp_path / "store")
    rec = left_open(catalog, store, [12.0, 13.6])
    catalog.update_entry_point(APP, "studio", target_duration=1.0)
    assert recovered(catalog, store, rec).target_duration == 14
