"""Projects, push domains, entry points and the per-stream recording switch."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from liverec.catalog import Catalog, EntryPoint, Project, SecretBox
from liverec.catalog.schema import entry_points
from liverec.errors import CatalogError, ConflictError, NotFoundError
from liverec.layout import StreamRef


def test_projects_are_created_listed_and_unique(catalog: Catalog) -> None:
    assert catalog.is_empty()
    a = catalog.create_project("app_A-1", name="first", is_default=True)
    b = catalog.create_project("b" * 64)
    assert not catalog.is_empty()
    assert a == Project(id=a.id, app_id="app_A-1", name="first", is_default=True)
    assert catalog.list_projects() == [a, b]
    assert catalog.get_project("b" * 64) == b
    with pytest.raises(ConflictError):
        catalog.create_project("app_A-1")
    with pytest.raises(NotFoundError):
        catalog.get_project("nope")


@pytest.mark.parametrize("app_id", ["", "a" * 65, "a b", "a/b", "é", "a.b"])
def test_bad_app_ids_are_refused(catalog: Catalog, app_id: str) -> None:
    with pytest.raises(CatalogError):
        catalog.create_project(app_id)


def test_one_default_project_at_a_time(catalog: Catalog) -> None:
    catalog.create_project("one", is_default=True)
    catalog.create_project("two", is_default=True)
    defaults = [p.app_id for p in catalog.list_projects() if p.is_default]
    assert defaults == ["two"]


def test_project_for_host_prefers_the_mapped_domain(catalog: Catalog) -> None:
    assert catalog.project_for_host("any.example") is None
    catalog.create_project("mapped")
    catalog.add_push_domain("mapped", "Push.Example.com")
    assert catalog.project_for_host("other.example") is None  # no default yet
    catalog.create_project("dflt", is_default=True)
    found = catalog.project_for_host("push.example.COM:1935")
    assert found is not None and found.app_id == "mapped"
    fallback = catalog.project_for_host("other.example")
    assert fallback is not None and fallback.app_id == "dflt"
    assert catalog.push_domains("mapped") == ["push.example.com"]
    with pytest.raises(ConflictError):
        catalog.add_push_domain("dflt", "push.example.com.")
    with pytest.raises(CatalogError):
        catalog.add_push_domain("dflt", "bad domain")
    with pytest.raises(NotFoundError):
        catalog.add_push_domain("nope", "x.example")


def test_entry_points_round_trip_with_their_auth_key_sealed(
    catalog: Catalog, engine: sa.Engine, box: SecretBox
) -> None:
    catalog.create_project("app")
    live = catalog.create_entry_point("app", "live")
    assert live == EntryPoint("app", "live", None, True, 4.0, 21600.0)
    cams = catalog.create_entry_point(
        "app",
        "cams",
        auth_key="s3cret key",
        record_enabled=False,
        target_duration=2.0,
        max_file_duration=3600.0,
    )
    assert catalog.get_entry_point("app", "cams") == cams
    assert cams.auth_key == "s3cret key"
    assert catalog.list_entry_points("app") == [cams, live]
    with engine.connect() as conn:
        sealed = conn.execute(
            sa.select(entry_points.c.auth_key_sealed).where(entry_points.c.name == "cams")
        ).scalar_one()
    assert "s3cret" not in sealed
    assert box.open(sealed) == "s3cret key"
    with pytest.raises(ConflictError):
        catalog.create_entry_point("app", "cams")
    with pytest.raises(NotFoundError, match="entry point"):
        catalog.get_entry_point("app", "nope")
    with pytest.raises(NotFoundError, match="project"):
        catalog.get_entry_point("nope", "live")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"target_duration": 0.0},
        {"target_duration": float("nan")},
        {"max_file_duration": 1.0},  # below the target duration
        {"max_file_duration": float("inf")},
        {"auth_key": "bad\nkey"},
    ],
)
def test_bad_entry_point_settings_are_refused(catalog: Catalog, kwargs: dict[str, object]) -> None:
    catalog.create_project("app")
    with pytest.raises(CatalogError):
        catalog.create_entry_point("app", "ep", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", "x" * 65, "a.b", "a/b", "../x"])
def test_bad_entry_point_names_are_refused(catalog: Catalog, name: str) -> None:
    catalog.create_project("app")
    with pytest.raises(CatalogError):
        catalog.create_entry_point("app", name)


def test_update_entry_point_changes_only_what_is_given(catalog: Catalog) -> None:
    catalog.create_project("app")
    catalog.create_entry_point("app", "ep", auth_key="k1")
    updated = catalog.update_entry_point("app", "ep", record_enabled=False, target_duration=6.0)
    assert updated == EntryPoint("app", "ep", "k1", False, 6.0, 21600.0)
    updated = catalog.update_entry_point("app", "ep", auth_key=None)
    assert updated.auth_key is None and updated.target_duration == 6.0
    updated = catalog.update_entry_point("app", "ep", auth_key="k2", max_file_duration=60.0)
    assert catalog.get_entry_point("app", "ep") == updated
    assert (updated.auth_key, updated.max_file_duration) == ("k2", 60.0)
    with pytest.raises(CatalogError):
        catalog.update_entry_point("app", "ep", target_duration=120.0)  # > max_file_duration
    with pytest.raises(NotFoundError):
        catalog.update_entry_point("app", "nope", record_enabled=True)


def test_delete_entry_point_but_never_live(catalog: Catalog) -> None:
    catalog.create_project("app")
    catalog.create_entry_point("app", "live")
    catalog.create_entry_point("app", "ep")
    catalog.set_stream_recording(StreamRef("app", "na", "ep", "cam"), False)
    catalog.delete_entry_point("app", "ep")
    assert [ep.name for ep in catalog.list_entry_points("app")] == ["live"]
    with pytest.raises(CatalogError, match="cannot be deleted"):
        catalog.delete_entry_point("app", "live")
    with pytest.raises(NotFoundError):
        catalog.delete_entry_point("app", "ep")
    # A new entry point of the same name does not inherit the old per-stream switch.
    catalog.create_entry_point("app", "ep")
    assert catalog.stream_recording_enabled(StreamRef("app", "na", "ep", "cam"))


def test_stream_recording_switch_overrides_the_entry_point(catalog: Catalog) -> None:
    catalog.create_project("app")
    catalog.create_entry_point("app", "live")
    assert catalog.stream_recording_enabled(StreamRef("app", "na", "live", "cam1"))
    catalog.set_stream_recording(StreamRef("app", "na", "live", "cam1"), False)
    assert not catalog.stream_recording_enabled(StreamRef("app", "na", "live", "cam1"))
    assert catalog.stream_recording_enabled(StreamRef("app", "na", "live", "cam2"))
    catalog.update_entry_point("app", "live", record_enabled=False)
    assert not catalog.stream_recording_enabled(StreamRef("app", "na", "live", "cam2"))
    catalog.set_stream_recording(StreamRef("app", "na", "live", "cam2"), True)
    assert catalog.stream_recording_enabled(StreamRef("app", "na", "live", "cam2"))
    catalog.set_stream_recording(
        StreamRef("app", "na", "live", "cam2"), None
    )  # back to the entry point's
    assert not catalog.stream_recording_enabled(StreamRef("app", "na", "live", "cam2"))
    with pytest.raises(NotFoundError):
        catalog.stream_recording_enabled(StreamRef("app", "na", "nope", "cam1"))
    with pytest.raises(NotFoundError):
        catalog.set_stream_recording(StreamRef("app", "na", "nope", "cam1"), True)
    with pytest.raises(CatalogError):
        catalog.set_stream_recording(StreamRef("app", "na", "live", ".."), True)
