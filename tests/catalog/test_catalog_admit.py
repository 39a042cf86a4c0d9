"""Admission's one-statement read (Catalog.publish_settings) gives, in every case, what the
separate reads it replaced give (project_for_host, get_entry_point, banned_until,
publish_webhook, stream_recording_enabled, record_outputs, snapshot_settings); and the live
lease taken by the stream's id (take_live) is the same lease as try_acquire_live's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from liverec.catalog import Catalog, WebhookSettings
from liverec.errors import NotFoundError
from liverec.layout import StreamRef

REGION = "na"


@pytest.fixture
def cat(catalog: Catalog) -> Catalog:
    catalog.create_project("dflt", is_default=True)
    catalog.create_entry_point("dflt", "live")
    catalog.create_project("mapped")
    catalog.add_push_domain("mapped", "push.example.com")
    catalog.create_entry_point("mapped", "live", auth_key="k3y-of-mapped", record_enabled=False)
    catalog.create_entry_point("mapped", "other")
    return catalog


def assert_same(cat: Catalog, host: str, ep: str, name: str, region: str = REGION) -> None:
    """publish_settings agrees with the separate reads of the same things."""
    found = cat.publish_settings(host, ep, name, region)
    project = cat.project_for_host(host)
    if project is None:
        assert found is None
        return
    assert found is not None
    assert found.project == project
    try:
        entry_point = cat.get_entry_point(project.app_id, ep)
    except NotFoundError:
        assert found.entry_point is None
        return
    assert found.entry_point == entry_point
    stream = StreamRef(project.app_id, region, ep, name)
    assert found.banned_until == cat.banned_until(stream)
    assert found.record == cat.stream_recording_enabled(stream)
    hook = cat.publish_webhook(project.app_id)
    if hook.enabled and hook.url:
        assert found.webhook == hook
    else:  # off: the secret is not unsealed, and nothing but `enabled and url` is read
        assert not (found.webhook.enabled and found.webhook.url)
    assert found.outputs == cat.record_outputs(project.app_id, ep, region)
    assert found.snapshots == cat.snapshot_settings(project.app_id, ep, region)


def test_the_project_by_push_domain_else_the_default(cat: Catalog) -> None:
    for host in ("push.example.com", "PUSH.Example.com:1935", "push.example.com.", "elsewhere"):
        assert_same(cat, host, "live", "cam")
    mapped = cat.publish_settings("push.example.com", "live", "cam", REGION)
    assert mapped is not None and mapped.project.app_id == "mapped"
    found = cat.publish_settings("elsewhere", "live", "cam", REGION)
    assert found is not None and found.project.app_id == "dflt"
    assert found.stream_id is None  # never published: no row yet


def test_no_default_project_takes_no_unmapped_host(catalog: Catalog) -> None:
    catalog.create_project("mapped")
    catalog.add_push_domain("mapped", "push.example.com")
    catalog.create_entry_point("mapped", "live")
    assert catalog.publish_settings("elsewhere", "live", "cam", REGION) is None
    assert_same(catalog, "elsewhere", "live", "cam")
    assert_same(catalog, "push.example.com", "live", "cam")


def test_an_unknown_entry_point_of_the_mapped_project_is_not_the_defaults(cat: Catalog) -> None:
    # "gone" exists in the default project only: a push to the mapped domain is refused.
    cat.create_entry_point("dflt", "gone")
    found = cat.publish_settings("push.example.com", "gone", "cam", REGION)
    assert found is not None and found.project.app_id == "mapped" and found.entry_point is None
    assert_same(cat, "push.example.com", "gone", "cam")
    assert_same(cat, "elsewhere", "gone", "cam")


def test_auth_key_bans_switches_and_tasks(cat: Catalog) -> None:
    now = datetime.now(UTC)
    mapped = StreamRef("mapped", REGION, "live", "cam")
    dflt = StreamRef("dflt", REGION, "live", "cam")
    found = cat.publish_settings("push.example.com", "live", "cam", REGION)
    assert found is not None and found.entry_point is not None
    assert found.entry_point.auth_key == "k3y-of-mapped" and found.record is False
    cat.ban_stream(mapped, now + timedelta(hours=1))
    cat.ban_stream(StreamRef("mapped", REGION, "live", "old-ban"), now - timedelta(hours=1))
    cat.set_stream_recording(mapped, True)
    cat.set_stream_recording(dflt, False)
    cat.set_stream_recording(
        StreamRef("dflt", REGION, "live", "task"), False, until=now - timedelta(hours=1)
    )
    cat.set_stream_recording(
        StreamRef("dflt", REGION, "live", "task-on"), True, until=now + timedelta(hours=1)
    )
    for host, name in [
        ("push.example.com", "cam"),
        ("push.example.com", "old-ban"),
        ("elsewhere", "cam"),
        ("elsewhere", "task"),
        ("elsewhere", "task-on"),
    ]:
        assert_same(cat, host, "live", name)
    found = cat.publish_settings("push.example.com", "live", "cam", REGION)
    assert found is not None and found.banned_until is not None and found.record is True
    assert found.stream_id is not None


def test_webhook_outputs_and_snapshots(cat: Catalog) -> None:
    cat.set_publish_webhook(
        "mapped", enabled=True, url="https://hook.example.com/a", secret="s3cret-of-hook"
    )
    cat.set_publish_webhook(
        "dflt", enabled=False, url="https://hook.example.com/b", secret="other-secret"
    )
    cat.set_record_outputs("mapped", "live", REGION, hls=False, mp4=True)
    cat.set_record_outputs("mapped", "live", "eu", mp4=True)
    cat.set_snapshot_settings("dflt", "live", REGION, enabled=True, interval=5)
    for host in ("push.example.com", "elsewhere"):
        for ep in ("live", "other"):
            for region in (REGION, "eu"):
                assert_same(cat, host, ep, "cam", region)
    found = cat.publish_settings("push.example.com", "live", "cam", REGION)
    assert found is not None
    assert found.webhook == WebhookSettings(True, "https://hook.example.com/a", "s3cret-of-hook")
    assert (found.outputs.hls, found.outputs.mp4) == (False, True)


def test_take_live_by_stream_id_is_the_same_lease(cat: Catalog) -> None:
    stream = StreamRef("dflt", REGION, "live", "cam")
    first = cat.take_live(stream, "node-a", 30)  # no row yet: made, then taken
    assert first is not None
    found = cat.publish_settings("elsewhere", "live", "cam", REGION)
    assert found is not None and found.stream_id == first
    assert cat.take_live(stream, "node-b", 30, found.stream_id) is None
    assert not cat.try_acquire_live(stream, "node-b", 30)
    assert cat.live_holder(stream) == "node-a"
    cat.release_live(stream, "node-a")
    assert cat.take_live(stream, "node-b", 30, found.stream_id) == first
    assert cat.live_holder(stream) == "node-b"


def test_take_live_of_a_new_stream_makes_its_row_holding_the_lease(cat: Catalog) -> None:
    pid = cat.get_project("dflt").id
    new = StreamRef("dflt", REGION, "live", "new")
    made = cat.take_live(new, "node-a", 30, None, pid)
    assert made is not None and cat.live_holder(new) == "node-a"
    found = cat.publish_settings("elsewhere", "live", "new", REGION)
    assert found is not None and found.stream_id == made
    # Read before the row was made (a racing publisher): refused as by the row.
    assert cat.take_live(new, "node-b", 30, None, pid) is None
    # A row made meanwhile by something else (a ban lifted): the lease is taken on it.
    other = StreamRef("dflt", REGION, "live", "other")
    cat.ban_stream(other, datetime.now(UTC) - timedelta(seconds=1))
    taken = cat.take_live(other, "node-b", 30, None, pid)
    assert taken is not None and cat.live_holder(other) == "node-b"
    found = cat.publish_settings("elsewhere", "live", "other", REGION)
    assert found is not None and found.stream_id == taken
