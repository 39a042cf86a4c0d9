"""File names in a stream folder: unique across clips, snapshots and recording playlists,
settled by the database when requests race."""

from __future__ import annotations

import threading
from datetime import datetime

import pytest
import sqlalchemy as sa

from liverec.catalog import Catalog, Clock, SecretBox
from liverec.errors import CatalogError, ConflictError, InvalidValueError, NotFoundError
from liverec.layout import StreamRef

T0 = datetime.fromisoformat("2026-11-23T12:00:00+00:00")


@pytest.fixture
def cat(catalog: Catalog) -> Catalog:
    catalog.create_project("app")
    catalog.create_entry_point("app", "live")
    return catalog


def test_reserve_release_and_conflicts(cat: Catalog) -> None:
    assert not cat.file_reserved(StreamRef("app", "na", "live", "cam"), "clip.m3u8")
    cat.reserve_file(StreamRef("app", "na", "live", "cam"), "clip.m3u8", "clip")
    assert cat.file_reserved(StreamRef("app", "na", "live", "cam"), "clip.m3u8")
    with pytest.raises(ConflictError, match="record/live/cam/"):
        cat.reserve_file(StreamRef("app", "na", "live", "cam"), "clip.m3u8", "clip")
    cat.reserve_file(StreamRef("app", "na", "live", "cam2"), "clip.m3u8", "clip")  # another folder
    cat.reserve_file(
        StreamRef("app", "na", "live", "cam"), "Clip.m3u8", "clip"
    )  # names are case-sensitive
    cat.release_file(StreamRef("app", "na", "live", "cam"), "clip.m3u8")
    assert not cat.file_reserved(StreamRef("app", "na", "live", "cam"), "clip.m3u8")
    cat.reserve_file(StreamRef("app", "na", "live", "cam"), "clip.m3u8", "clip")
    cat.release_file(StreamRef("app", "na", "live", "nope"), "clip.m3u8")  # nothing there: no error


def test_a_recording_playlist_name_is_taken(cat: Catalog) -> None:
    cat.create_recording(
        StreamRef("app", "na", "live", "cam"),
        session_id="abc",
        playlist_key="record/live/cam/abc_20261123120000000.m3u8",
        start_time=T0,
        node_id="n",
        lease_seconds=30,
    )
    with pytest.raises(ConflictError):
        cat.reserve_file(
            StreamRef("app", "na", "live", "cam"), "abc_20261123120000000.m3u8", "clip"
        )
    cat.release_file(
        StreamRef("app", "na", "live", "cam"), "abc_20261123120000000.m3u8"
    )  # not a clip's
    assert cat.file_reserved(StreamRef("app", "na", "live", "cam"), "abc_20261123120000000.m3u8")


@pytest.mark.parametrize(
    "name",
    [
        "",
        "a/b.m3u8",
        "..",
        "a\x00.m3u8",
        "a\u2028b.m3u8",  # printable? no: a line separator, once a 500 in the API
        "a b.m3u8",  # characters a URI would need escaped
        "a?b.m3u8",
        "a#b.m3u8",
        "a%20b.m3u8",
        "ü.m3u8",
        ".hidden.m3u8",
        "x" * 196 + ".m3u8",  # 201 characters
        "clip.jpg",  # a clip is a playlist
        "clip",
    ],
)
def test_bad_names_and_kinds(cat: Catalog, name: str) -> None:
    with pytest.raises(InvalidValueError) as caught:
        cat.reserve_file(StreamRef("app", "na", "live", "cam"), name, "clip")
    assert type(caught.value) is InvalidValueError  # a validation error, not a conflict


def test_names_follow_the_one_rule(cat: Catalog) -> None:
    longest = "x" * 195 + ".m3u8"
    for name in (longest, "a.b-c_D.M3U8", "-x.m3u8", "a..m3u8"):
        cat.reserve_file(StreamRef("app", "na", "live", "cam"), name, "clip")
    for name in ("shot.jpg", "shot.JPEG"):
        cat.reserve_file(StreamRef("app", "na", "live", "cam"), name, "snapshot")
    with pytest.raises(CatalogError, match=r"\.jpg or \.jpeg"):
        cat.reserve_file(StreamRef("app", "na", "live", "cam"), "shot.m3u8", "snapshot")


def test_unknown_kind_or_project(cat: Catalog) -> None:
    with pytest.raises(CatalogError):
        cat.reserve_file(StreamRef("app", "na", "live", "cam"), "a.m3u8", "recording")
    with pytest.raises(NotFoundError):
        cat.reserve_file(StreamRef("nope", "na", "live", "cam"), "a.m3u8", "clip")


def _race_reserve(catalogs: list[Catalog], stream: str) -> list[str]:
    """Each catalog (a node of its own) reserves the same name at the same instant."""
    barrier = threading.Barrier(len(catalogs))
    outcomes: list[str] = []
    lock = threading.Lock()

    def reserve(node: Catalog) -> None:
        barrier.wait()
        try:
            node.reserve_file(StreamRef("app", "na", "live", stream), "same.jpg", "snapshot")
            result = "won"
        except ConflictError:
            result = "conflict"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=reserve, args=(node,)) for node in catalogs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(outcomes)


def test_racing_reservations_have_exactly_one_winner(
    cat: Catalog, engine: sa.Engine, box: SecretBox, clock: Clock
) -> None:
    nodes = [Catalog(engine, box, clock) for _ in range(8)]
    # A fresh stream folder each round, so the stream row is also made during the race.
    for round_ in range(3):
        assert _race_reserve(nodes, f"race{round_}") == ["conflict"] * 7 + ["won"]
