"""Clips cut before retention existed (migration 0005) get their holds: a catalog made at
revision 0004 with a recording and a clip of two of its segments, upgraded to head, then
swept under a byte cap that wants everything: the clip's segments stay, the rest goes. On
SQLite and PostgreSQL, a real LocalStore."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from catalog.conftest import T0, FakeClock
from catalog.test_retention_sweep import SIZE, T0_STREAM, assert_listed_files_exist, sweeper
from liverec.catalog import Catalog, SecretBox, make_engine, migrate, to_ms
from liverec.catalog.db import _alembic_config
from liverec.media.m3u8 import PLAYLIST_TYPE, parse
from liverec.media.ts import TS_TYPE
from liverec.recorder.recovery import playlist_for
from liverec.storage import LocalStore

SEGMENTS = 10


@pytest.fixture
def engine_at_0004(empty_db_url: str) -> Iterator[sa.Engine]:
    engine = make_engine(empty_db_url)
    cfg = _alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0004")
    yield engine
    engine.dispose()


def fill_at_0004(engine: sa.Engine, store: LocalStore) -> tuple[int, str]:
    """A project, a closed recording of SEGMENTS 4 s segments from T0 with its blobs, and a
    clip of segments 5 and 6, written as the code of revision 0004 wrote them (no hold).
    Returns (recording id, clip file name)."""
    stream = T0_STREAM
    path = stream.recording("old", T0)
    t0 = to_ms(T0)
    meta = sa.MetaData()
    meta.reflect(engine)
    tb = meta.tables
    with engine.begin() as conn:
        pid = conn.execute(
            sa.insert(tb["projects"]).values(app_id=stream.app_id, name="", created_ms=t0)
        ).inserted_primary_key[0]  # type: ignore[index]
        conn.execute(
            sa.insert(tb["entry_points"]).values(
                project_id=pid,
                name=stream.entry_point,
                record_enabled=True,
                target_duration=4.0,
                max_file_duration=3600.0,
                created_ms=t0,
            )
        )
        sid = conn.execute(
            sa.insert(tb["streams"]).values(
                project_id=pid, entry_point=stream.entry_point, name=stream.stream_name
            )
        ).inserted_primary_key[0]  # type: ignore[index]
        rid = conn.execute(
            sa.insert(tb["recordings"]).values(
                stream_id=sid,
                region=stream.region,
                session_id="old",
                playlist_key=path.playlist,
                start_ms=t0,
                end_ms=t0 + SEGMENTS * 4000,
                state="closed",
                node_id="n1",
                lease_ms=30_000,
                lease_expires_ms=t0,
                segment_count=SEGMENTS,
                created_ms=t0,
            )
        ).inserted_primary_key[0]  # type: ignore[index]
        for i in range(SEGMENTS):
            conn.execute(
                sa.insert(tb["segments"]).values(
                    recording_id=rid,
                    stream_id=sid,
                    seq=i,
                    key=path.segment(i),
                    start_ms=t0 + 4000 * i,
                    end_ms=t0 + 4000 * (i + 1),
                    duration=4.0,
                    size=SIZE,
                    discontinuity=False,
                )
            )
            store.put(stream.key(path.segment(i)), b"s" * SIZE, TS_TYPE)
        for name, kind, rec in ((path.playlist, "recording", rid), ("c.m3u8", "clip", None)):
            conn.execute(
                sa.insert(tb["files"]).values(
                    stream_id=sid,
                    file_name=name.rsplit("/", 1)[-1],
                    kind=kind,
                    recording_id=rec,
                    created_ms=t0,
                )
            )
    return int(rid), "c.m3u8"


def test_clips_cut_before_0005_keep_their_segments(
    engine_at_0004: sa.Engine, tmp_path: Path
) -> None:
    store = LocalStore(tmp_path / "store")
    rid, clip_name = fill_at_0004(engine_at_0004, store)
    migrate(engine_at_0004)  # to head
    clock = FakeClock(T0 + timedelta(days=1))
    catalog = Catalog(engine_at_0004, SecretBox(SecretBox.generate_key()), clock)
    segs = catalog.segments_of(rid)
    rec = catalog.get_recording(rid)
    store.put(
        rec.stream.key(rec.playlist_key),
        playlist_for(segs, ended=True, target_duration=4).encode(),
        PLAYLIST_TYPE,
    )
    clip_key = T0_STREAM.key(T0_STREAM.file(clip_name))
    store.put(clip_key, playlist_for(segs[5:7], ended=True, target_duration=4).encode(), "x")
    assert catalog.bytes_used("na") == SEGMENTS * SIZE  # 0005 counted them
    report = sweeper(catalog, store, clock, max_bytes=SIZE).sweep()
    assert report.segments == SEGMENTS - 2
    assert [s.seq for s in catalog.segments_of(rid)] == [5, 6]
    for entry in parse(store.get(clip_key).decode()).segments:
        assert store.exists(T0_STREAM.key(T0_STREAM.file(entry.uri))), entry.uri
    assert_listed_files_exist(store, catalog.get_recording(rid))
    # The hold goes with the clip, as a hold made by the API does.
    catalog.delete_file(T0_STREAM, clip_name, "clip", [clip_key])
    assert sweeper(catalog, store, clock, max_bytes=SIZE).sweep().recordings_deleted == 1
