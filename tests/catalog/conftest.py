"""The database fixtures: every catalog test runs on SQLite (a file per test, copied from a
migrated template) and on PostgreSQL (127.0.0.1:5432, user postgres, trust auth; one
database per test session, emptied after each test).

PostgreSQL unreachable: its tests fail when $CI is set, and are skipped otherwise."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from liverec.catalog import Catalog, SecretBox, make_engine, migrate
from liverec.catalog.schema import metadata
from support.pg import PG_ADMIN_URL, PgServer

ENGINES = ["sqlite", "postgresql"]
T0 = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)


class FakeClock:
    """The catalog's clock, moved by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    server = PgServer(PG_ADMIN_URL)
    try:
        with server.admin.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except sa.exc.OperationalError as exc:
        message = f"PostgreSQL is unreachable at {PG_ADMIN_URL}: {exc}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    yield server
    server.admin.dispose()


@pytest.fixture(scope="session")
def pg_template(pg_server: PgServer) -> Iterator[str]:
    """A migrated PostgreSQL database for the session."""
    url = pg_server.create()
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    yield url
    pg_server.drop(url)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (faster than migrating each time)."""
    path = tmp_path_factory.mktemp("template") / "catalog.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    engine.dispose()  # the last connection checkpoints the WAL into the file
    return path


@pytest.fixture(params=ENGINES)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty catalog database."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "catalog.db"
        shutil.copyfile(template, path)
        yield f"sqlite:///{path}"
        return
    url: str = request.getfixturevalue("pg_template")
    yield url
    cleaner = sa.create_engine(url, poolclass=NullPool)
    with cleaner.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())
    cleaner.dispose()


@pytest.fixture(params=ENGINES)
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no tables at all."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    server: PgServer = request.getfixturevalue("pg_server")
    url = server.create()
    yield url
    server.drop(url)


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def advance(clock: FakeClock) -> Callable[[float], None]:
    """Move the catalog's clock forward by so many seconds."""
    return clock.advance


@pytest.fixture
def box() -> SecretBox:
    return SecretBox(SecretBox.generate_key())


@pytest.fixture
def catalog(engine: sa.Engine, box: SecretBox, clock: FakeClock) -> Catalog:
    return Catalog(engine, box, clock)
