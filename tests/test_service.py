"""The service's sweep closes only recordings nobody writes any more."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from liverec.config import load_settings
from liverec.media.m3u8 import parse
from liverec.service import Service


def open_recording(service: Service, name: str, start: datetime) -> int:
    app_id = service.catalog.list_projects()[0].app_id
    rec = service.catalog.create_recording(
        app_id=app_id,
        entry_point="live",
        stream_name=name,
        region="na",
        session_id="s",
        playlist_key=f"record/live/{name}/s_1.m3u8",
        start_time=start,
        node_id=service.node_id,
        lease_seconds=service.lease,
    )
    key = f"record/live/{name}/s_1_0.ts"
    service.store.put(f"na/{app_id}/{key}", b"\x47" * 188, "video/mp2t")
    service.catalog.add_segment(
        rec.id, seq=0, key=key, start_time=start, duration=4.0, size=188, discontinuity=False
    )
    return rec.id


def test_sweep_closes_own_recordings_no_writer_holds(tmp_path: Path) -> None:
    settings = load_settings({"data_dir": str(tmp_path), "lease_seconds": "30"}, env={})
    service = Service(settings)
    service.bootstrap()
    now = datetime.now(UTC)
    orphan = open_recording(service, "orphan", now - timedelta(minutes=5))
    held = open_recording(service, "held", now - timedelta(minutes=5))
    fresh = open_recording(service, "fresh", now)  # just opened: not yet held by a writer
    service._sweep({held})
    states = {r.id: r.state for r in service.catalog.open_recordings(service.node_id)}
    assert orphan not in states and states == {held: "open", fresh: "open"}
    app_id = service.catalog.list_projects()[0].app_id
    playlist = (tmp_path / "storage" / "na" / app_id / "record/live/orphan/s_1.m3u8").read_text()
    assert parse(playlist).endlist and len(parse(playlist).segments) == 1
    service.engine.dispose()
