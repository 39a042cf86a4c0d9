"""reserved_file: a clip or snapshot name is taken for good when the work succeeds, and
given back when it fails, on a real catalog."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from liverec.catalog import Catalog, SecretBox, make_engine, migrate
from liverec.errors import ConflictError, StorageError
from liverec.layout import StreamRef
from liverec.postprocess.reserve import reserved_file

APP = "app"
CAM = StreamRef(APP, "na", "live", "cam")


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    engine = make_engine(f"sqlite:///{tmp_path / 'catalog.db'}")
    migrate(engine)
    catalog = Catalog(engine, SecretBox(SecretBox.generate_key()))
    catalog.create_project(APP)
    catalog.create_entry_point(APP, "live")
    yield catalog
    engine.dispose()


def test_success_keeps_the_name(catalog: Catalog) -> None:
    with reserved_file(catalog, CAM, "a.m3u8", "clip"):
        assert catalog.file_reserved(CAM, "a.m3u8")
    assert catalog.file_reserved(CAM, "a.m3u8")
    with (
        pytest.raises(ConflictError),
        reserved_file(catalog, CAM, "a.m3u8", "clip"),
    ):
        pytest.fail("a taken name must not run the block")
    assert catalog.file_reserved(CAM, "a.m3u8")  # the loser freed nothing


@pytest.mark.parametrize("error", [StorageError("disk full"), KeyboardInterrupt()])
def test_a_failure_gives_the_name_back(catalog: Catalog, error: BaseException) -> None:
    with (
        pytest.raises(type(error)),
        reserved_file(catalog, CAM, "shot.jpg", "snapshot"),
    ):
        raise error
    assert not catalog.file_reserved(CAM, "shot.jpg")
    with reserved_file(catalog, CAM, "shot.jpg", "snapshot"):
        pass  # free again
