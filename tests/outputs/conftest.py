"""Fixtures of the MP4 tests: catalogs (SQLite from a migrated template; PostgreSQL),
the rig (outputs/mp4rig.py) and generated media, each file made once per session."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from liverec.catalog import Catalog, SecretBox, make_engine, migrate
from liverec.catalog.schema import metadata
from liverec.storage import LocalStore
from outputs.mp4rig import BUCKET, Rig, make_rig
from support.mediagen import make_media
from support.pg import PG_ADMIN_URL, PgServer
from support.s3server import TEST_AWS_ENV, UNSET_AWS_ENV, S3Server, create_bucket


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "catalog.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    engine.dispose()
    return path


@pytest.fixture
def sqlite_catalog(sqlite_template: Path, tmp_path: Path) -> Iterator[Catalog]:
    path = tmp_path / "catalog.db"
    shutil.copyfile(sqlite_template, path)
    engine = make_engine(f"sqlite:///{path}")
    yield Catalog(engine, SecretBox(SecretBox.generate_key()))
    engine.dispose()


@pytest.fixture
def rig(sqlite_catalog: Catalog, tmp_path: Path) -> Iterator[Rig]:
    built = make_rig(sqlite_catalog, LocalStore(tmp_path / "store"), tmp_path)
    yield built
    built.close()


@pytest.fixture(scope="session")
def pg_catalog_url() -> Iterator[str]:
    """A migrated PostgreSQL database (tests/catalog/conftest.py's rule: unreachable fails
    on CI, skips elsewhere)."""
    server = PgServer(PG_ADMIN_URL)
    try:
        with server.admin.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except sa.exc.OperationalError as exc:
        message = f"PostgreSQL is unreachable at {PG_ADMIN_URL}: {exc}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    url = server.create()
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    yield url
    server.drop(url)
    server.admin.dispose()


@pytest.fixture
def pg_catalog(pg_catalog_url: str) -> Iterator[Catalog]:
    engine = make_engine(pg_catalog_url)
    yield Catalog(engine, SecretBox(SecretBox.generate_key()))
    engine.dispose()
    cleaner = sa.create_engine(pg_catalog_url, poolclass=NullPool)
    with cleaner.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())
    cleaner.dispose()


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """make_media, each distinct file made once per session."""
    folder = tmp_path_factory.mktemp("media")
    made: dict[str, Path] = {}

    def get(seconds: float, **kw: Any) -> Path:
        name = "_".join([f"{seconds:g}s", *(f"{k}-{v}" for k, v in sorted(kw.items()))])
        if name not in made:
            made[name] = make_media(folder / f"{name}.flv", seconds, **kw)
        return made[name]

    return get


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    """moto's S3 server with a bucket, AWS variables pointing at nothing else."""
    with pytest.MonkeyPatch.context() as mp:
        for name in UNSET_AWS_ENV:
            mp.delenv(name, raising=False)
        for name, value in TEST_AWS_ENV.items():
            mp.setenv(name, value)
        with S3Server() as server:
            create_bucket(server.endpoint_url, BUCKET)
            yield server
