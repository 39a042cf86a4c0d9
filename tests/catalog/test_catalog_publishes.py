"""Publishes, bans, recording tasks, quality points and viewers per minute, on SQLite and
PostgreSQL. Bans and tasks are judged by the database's clock, like leases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from liverec.catalog import Catalog, viewer_id
from liverec.errors import InvalidValueError
from liverec.layout import StreamRef

CAM = StreamRef("app", "na", "live", "cam")


def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def cat(catalog: Catalog) -> Catalog:
    catalog.create_project("app")
    catalog.create_entry_point("app", "live", record_enabled=False)
    return catalog


def test_a_publish_is_online_while_its_lease_is_held_then_history(cat: Catalog) -> None:
    assert cat.try_acquire_live(CAM, "node-a", 30)
    start = now()
    pid = cat.start_publish(CAM, node_id="node-a", client_ip="10.0.0.7", domain="x.io", start=start)
    cat.set_publish_media(
        pid, video_codec="H264", audio_codec="AAC", width=1280, height=720, fps=30.0
    )
    cat.add_quality(pid, start, 3_000_000, 29.97)
    (live,) = cat.online_publishes("app", "live")
    assert (live.stream_name, live.client_ip, live.width, live.height, live.bitrate) == (
        "cam",
        "10.0.0.7",
        1280,
        720,
        3_000_000,
    )
    assert live.end_time is None and cat.publish_history("app", "live", start, now()) == []
    cat.end_publish(pid, start + timedelta(seconds=42))
    cat.release_live(CAM, "node-a")
    assert cat.online_publishes("app", "live") == []
    (ended,) = cat.publish_history("app", "live", start, start + timedelta(minutes=1))
    assert ended.end_time is not None
    assert abs((ended.end_time - start).total_seconds() - 42) < 0.002
    assert cat.publish_history("app", "live", start, start, stream_name="other") == []


def test_history_is_newest_end_first_and_bounded(cat: Catalog) -> None:
    t0 = now() - timedelta(hours=1)
    for i, name in enumerate(["a", "b", "c"]):
        pid = cat.start_publish(
            CAM.with_stream(name), node_id="n", client_ip="1.2.3.4", domain="d", start=t0
        )
        cat.end_publish(pid, t0 + timedelta(minutes=10 * (i + 1)))
    names = [p.stream_name for p in cat.publish_history("app", "live", t0, now())]
    assert names == ["c", "b", "a"]
    window = cat.publish_history("app", "live", t0, t0 + timedelta(minutes=15))
    assert [p.stream_name for p in window] == ["a"]


def test_open_publishes_of_a_stopped_node_are_ended(cat: Catalog) -> None:
    cat.try_acquire_live(CAM, "gone", 30)
    cat.start_publish(CAM, node_id="gone", client_ip="", domain="", start=now())
    assert cat.end_orphan_publishes() == 0  # its lease still runs
    cat.release_node_live("gone")
    assert cat.end_orphan_publishes() == 1
    pid = cat.start_publish(CAM, node_id="me", client_ip="", domain="", start=now())
    assert cat.end_node_publishes("me", now()) == 1 and pid


def test_quality_points_one_a_minute_newest_first(cat: Catalog) -> None:
    t0 = datetime(2026, 11, 23, 12, 0, 30, tzinfo=UTC)
    pid = cat.start_publish(CAM, node_id="n", client_ip="1.1.1.1", domain="d", start=t0)
    for i in range(3):
        cat.add_quality(pid, t0 + timedelta(minutes=i), 1000 * (i + 1), 25.0)
    cat.add_quality(pid, t0, 999, 1.0)  # the same minute again: kept once
    points = cat.quality_points("app", "live", t0 - timedelta(hours=1), t0 + timedelta(hours=1))
    assert [(p.time.minute, p.bitrate) for p in points] == [(2, 3000), (1, 2000), (0, 1000)]
    assert points[0].time.second == 0 and points[0].client_ip == "1.1.1.1"
    with pytest.raises(InvalidValueError):
        cat.add_quality(pid, t0, -1, 25.0)


def test_viewers_are_counted_once_per_minute_across_nodes(cat: Catalog) -> None:
    t0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    a, b = viewer_id("10.0.0.1", "hls.js"), viewer_id("10.0.0.2", "ffmpeg")
    cat.add_viewers(CAM, t0 + timedelta(seconds=5), [a, b])
    cat.add_viewers(CAM, t0 + timedelta(seconds=50), [a])  # another node, same viewer
    cat.add_viewers(CAM, t0 + timedelta(minutes=1), [a])
    points = cat.play_points("app", "live", t0, t0 + timedelta(minutes=5))
    assert [(p.time, p.viewers) for p in points] == [
        (t0 + timedelta(minutes=1), 1),
        (t0, 2),
    ]


def test_bans_run_out_by_themselves(cat: Catalog) -> None:
    assert cat.banned_until(CAM) is None
    resume = now() + timedelta(hours=1)
    cat.ban_stream(CAM, resume)
    until = cat.banned_until(CAM)
    assert until is not None and abs((until - resume).total_seconds()) < 0.002
    assert [name for name, _ in cat.banned_streams("app", "live")] == ["cam"]
    cat.ban_stream(CAM.with_stream("old"), now() - timedelta(seconds=1))  # already over
    assert [name for name, _ in cat.banned_streams("app", "live")] == ["cam"]
    assert cat.unban_stream(CAM)
    assert not cat.unban_stream(CAM)
    assert cat.banned_until(CAM) is None


def test_a_recording_task_covers_pushes_starting_before_it_runs_out(cat: Catalog) -> None:
    assert not cat.stream_recording_enabled(CAM)  # the entry point records nothing
    cat.set_stream_recording(CAM, True, until=now() + timedelta(hours=24))
    assert cat.stream_recording_enabled(CAM)
    cat.set_stream_recording(CAM, True, until=now() - timedelta(seconds=1))
    assert not cat.stream_recording_enabled(CAM)  # run out: the entry point's setting
    cat.set_stream_recording(CAM, False)
    assert not cat.stream_recording_enabled(CAM)


def test_live_controls_tell_a_node_what_its_live_streams_should_do(cat: Catalog) -> None:
    cat.try_acquire_live(CAM, "node-a", 30)
    cat.try_acquire_live(CAM.with_stream("b"), "node-a", 30)
    cat.try_acquire_live(CAM.with_stream("elsewhere"), "node-b", 30)
    controls = {c.stream_name: c for c in cat.live_controls("node-a", "na")}
    assert set(controls) == {"cam", "b"}
    assert controls["cam"].record is None and controls["cam"].banned_until is None
    cat.set_stream_recording(CAM, True, until=now() + timedelta(hours=24))
    cat.set_stream_recording(CAM.with_stream("b"), False)
    cat.ban_stream(CAM.with_stream("b"), now() + timedelta(days=7))
    controls = {c.stream_name: c for c in cat.live_controls("node-a", "na")}
    assert controls["cam"].record is True
    assert controls["b"].record is False and controls["b"].banned_until is not None


def test_nodes_say_where_their_api_is(cat: Catalog) -> None:
    assert cat.node_api_url("node-a") is None
    cat.register_node("node-a", "http://10.0.0.5:8080")
    cat.register_node("node-a", "http://10.0.0.5:8081")
    assert cat.node_api_url("node-a") == "http://10.0.0.5:8081"
    with pytest.raises(InvalidValueError):
        cat.register_node("node-a", "ftp://x")


def test_a_publish_ends_with_its_last_quality_point_in_one_transaction(cat: Catalog) -> None:
    t0 = datetime(2026, 11, 23, 12, 0, 30, tzinfo=UTC)
    sid = cat.take_live(CAM, "n", 30)
    assert sid is not None
    pid = cat.start_publish(
        CAM, node_id="n", client_ip="1.1.1.1", domain="d", start=t0, stream_id=sid
    )
    other = cat.start_publish(CAM, node_id="n", client_ip="1.1.1.2", domain="d", start=t0)
    cat.end_publish(pid, t0 + timedelta(seconds=20), quality=(t0, 2_000_000, 30.0))
    cat.end_publish(other, t0 + timedelta(seconds=20), quality=(t0, -5, 30.0))  # left out
    points = cat.quality_points("app", "live", t0 - timedelta(hours=1), t0 + timedelta(hours=1))
    assert [(p.bitrate, p.client_ip) for p in points] == [(2_000_000, "1.1.1.1")]
    ended = cat.publish_history("app", "live", t0, t0 + timedelta(minutes=1))
    assert sorted((p.client_ip, p.bitrate) for p in ended) == [
        ("1.1.1.1", 2_000_000),
        ("1.1.1.2", None),
    ]
