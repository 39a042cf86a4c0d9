"""Admission and leases (liverec.admission) on a real catalog and store: who may publish,
one publisher per stream across nodes, recovery after a crash, and the sweep that closes
only recordings nobody writes any more."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from liverec.admission import Admission
from liverec.catalog import Catalog, SecretBox, make_engine, migrate
from liverec.errors import RefusedError
from liverec.layout import StreamRef
from liverec.media.m3u8 import parse
from liverec.recorder import RecordingEnded, RecordingStarted
from liverec.rtmp.pushauth import push_signature
from liverec.rtmp.session import PublishRequest
from liverec.storage import LocalStore

APP = "app"


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    engine = make_engine(f"sqlite:///{tmp_path / 'catalog.db'}")
    migrate(engine)
    catalog = Catalog(engine, SecretBox(SecretBox.generate_key()))
    catalog.create_project(APP, is_default=True)
    catalog.create_entry_point(APP, "live")
    yield catalog
    engine.dispose()


def admission(catalog: Catalog, tmp_path: Path, node: str = "node-a") -> Admission:
    return Admission(
        catalog,
        LocalStore(tmp_path / "store"),
        node_id=node,
        region="na",
        lease_seconds=30,
        clock=lambda: datetime.now(UTC),
    )


def request(name: str = "cam", app: str = "live", **query: str) -> PublishRequest:
    return PublishRequest(
        app=app,
        stream_name=name,
        query=query,
        tc_url=f"rtmp://example.com/{app}",
        host="example.com",
        peer="127.0.0.1:5000",
    )


def open_recording(
    adm: Admission, name: str, start: datetime, *, node: str | None = None
) -> StreamRef:
    """An open recording with one stored segment, as a writer leaves it."""
    stream = StreamRef(APP, "na", "live", name)
    path = stream.recording("s", start)
    rec = adm.catalog.create_recording(
        stream,
        session_id="s",
        playlist_key=path.playlist,
        start_time=start,
        node_id=node or adm.node_id,
        lease_seconds=adm.lease_seconds,
    )
    adm.store.put(stream.key(path.segment(0)), b"\x47" * 188, "video/mp2t")
    adm.catalog.add_segment(
        rec.id,
        seq=0,
        key=path.segment(0),
        start_time=start,
        duration=4.0,
        size=188,
        discontinuity=False,
    )
    return stream


def open_states(adm: Admission) -> dict[str, str]:
    return {r.stream_name: r.state for r in adm.catalog.open_recordings()}


def test_admit_takes_the_live_lease_and_release_gives_it_back(
    catalog: Catalog, tmp_path: Path
) -> None:
    a, b = admission(catalog, tmp_path, "node-a"), admission(catalog, tmp_path, "node-b")
    admitted = a.admit(request())
    assert admitted.stream == StreamRef(APP, "na", "live", "cam") and admitted.record
    assert catalog.live_holder(admitted.stream) == "node-a"
    with pytest.raises(RefusedError, match="already being published") as refused:
        b.admit(request())  # another node: refused too
    assert refused.value.code == "NetStream.Publish.BadName"
    a.release(admitted.stream)
    assert b.admit(request()).stream == admitted.stream


def test_admit_refuses_with_the_rtmp_status(catalog: Catalog, tmp_path: Path) -> None:
    adm = admission(catalog, tmp_path)
    for bad, code in (
        (request(app="nope"), "NetStream.Publish.BadName"),
        (request(name=".."), "NetStream.Publish.BadName"),
    ):
        with pytest.raises(RefusedError) as refused:
            adm.admit(bad)
        assert refused.value.code == code
    catalog.update_entry_point(APP, "live", auth_key="k3y")
    with pytest.raises(RefusedError) as refused:
        adm.admit(request())
    assert refused.value.code == "NetStream.Publish.Unauthorized"
    ts = str(int(datetime.now(UTC).timestamp()) + 600)
    assert adm.admit(request(ts=ts, sign=push_signature("k3y", "live", "cam", ts))).record
    assert catalog.live_holder(StreamRef(APP, "na", "live", "nope")) is None


def test_a_stream_with_recording_off_is_admitted_unrecorded(
    catalog: Catalog, tmp_path: Path
) -> None:
    adm = admission(catalog, tmp_path)
    catalog.set_stream_recording(StreamRef(APP, "na", "live", "quiet"), False)
    admitted = adm.admit(request("quiet"))
    assert not admitted.record and catalog.live_holder(admitted.stream) == adm.node_id


def test_sweep_closes_own_recordings_no_writer_holds(catalog: Catalog, tmp_path: Path) -> None:
    adm = admission(catalog, tmp_path)
    now = datetime.now(UTC)
    orphan = open_recording(adm, "orphan", now - timedelta(minutes=5))
    held = open_recording(adm, "held", now - timedelta(minutes=5))
    open_recording(adm, "fresh", now)  # just opened: not yet held by a writer
    adm(RecordingStarted(held.recording("s", now - timedelta(minutes=5))))
    assert adm.renew() == 1
    assert open_states(adm) == {"held": "open", "fresh": "open"}
    playlist = (tmp_path / "store" / orphan.key(orphan.recording("s", now).playlist)).parent
    text = next(playlist.glob("*.m3u8")).read_text()
    assert parse(text).endlist and len(parse(text).segments) == 1
    # Once its writer reports the end, the recording is no longer held.
    adm(RecordingEnded(held.recording("s", now - timedelta(minutes=5)), now, 1))
    assert adm.sweep() == 1 and open_states(adm) == {"fresh": "open"}


def test_sweep_takes_over_only_expired_recordings_of_other_nodes(
    catalog: Catalog, tmp_path: Path
) -> None:
    a, b = admission(catalog, tmp_path, "node-a"), admission(catalog, tmp_path, "node-b")
    open_recording(a, "live-on-a", datetime.now(UTC))
    assert b.sweep() == 0 and open_states(b) == {"live-on-a": "open"}
    # node-a stops renewing: past its lease, node-b closes the recording.
    with catalog.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE recordings SET lease_expires_ms = 0")
    assert b.sweep() == 1 and open_states(b) == {}


def test_recover_closes_what_a_crash_left_open_and_frees_live_leases(
    catalog: Catalog, tmp_path: Path
) -> None:
    adm = admission(catalog, tmp_path)
    stream = adm.admit(request()).stream
    open_recording(adm, "cam", datetime.now(UTC))
    restarted = admission(catalog, tmp_path)  # the same node ID after kill -9
    assert restarted.recover() == 1
    assert open_states(restarted) == {}
    assert catalog.live_holder(stream) is None
