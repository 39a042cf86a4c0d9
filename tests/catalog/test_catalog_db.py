"""Engines, migrations and schema checks, on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

from liverec.bootstrap import migrate_apart
from liverec.catalog import check_schema, ensure_schema, head_revision, make_engine, migrate
from liverec.catalog.db import MIGRATIONS_DIR, current_revision, redact_url, scripts_head
from liverec.catalog.schema import metadata
from liverec.errors import ConfigError, SchemaError


def _downgrade_to_base(engine: sa.Engine) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")


def test_empty_database_is_migrated_to_head(empty_db_url: str) -> None:
    engine = make_engine(empty_db_url)
    try:
        with pytest.raises(SchemaError, match=r"empty.*liverec migrate"):
            check_schema(engine)
        ensure_schema(engine)
        assert current_revision(engine) == head_revision()
        check_schema(engine)
        ensure_schema(engine)  # at head: nothing to do
        migrate(engine)  # and migrating again is harmless
        tables = set(sa.inspect(engine).get_table_names())
        assert {t.name for t in metadata.sorted_tables} <= tables
    finally:
        engine.dispose()


def test_migrations_build_exactly_the_declared_schema(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        assert compare_metadata(ctx, metadata) == []


def test_schema_behind_head_is_refused_with_the_command_to_run(empty_db_url: str) -> None:
    engine = make_engine(empty_db_url)
    try:
        migrate(engine)
        _downgrade_to_base(engine)  # leaves alembic_version, at no revision
        message = (
            f"catalog schema is at <base>, code needs {head_revision()}: run `liverec migrate`"
        )
        with pytest.raises(SchemaError) as info:
            ensure_schema(engine)
        assert str(info.value) == message
        with pytest.raises(SchemaError):
            check_schema(engine)
        migrate(engine)
        check_schema(engine)
    finally:
        engine.dispose()


def test_unknown_revision_is_refused(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = 'ffff'"))
    with pytest.raises(SchemaError, match="at ffff, which this code does not know"):
        ensure_schema(engine)


def test_foreign_tables_without_a_version_are_refused(empty_db_url: str) -> None:
    engine = make_engine(empty_db_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE other (x INTEGER)"))
        with pytest.raises(SchemaError, match="no liverec schema version"):
            ensure_schema(engine)
    finally:
        engine.dispose()


def test_sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'sub' / 'c.db'}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert (tmp_path / "sub").is_dir()
    finally:
        engine.dispose()


def test_sqlite_connections_are_kept_when_a_dozen_threads_use_them(tmp_path: Path) -> None:
    # The recorder's threads, the API's and the sweepers' hold more than SQLAlchemy's
    # default 5 at once; each one over it used to be opened and closed again every time.
    engine = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    opened: list[object] = []
    sa.event.listen(engine, "connect", lambda conn, _record: opened.append(conn))
    barrier = threading.Barrier(12)

    def use() -> None:
        with engine.connect() as conn:
            barrier.wait(timeout=10)  # all twelve out at once
            conn.exec_driver_sql("SELECT 1")

    try:
        for _ in range(3):
            threads = [threading.Thread(target=use) for _ in range(12)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        assert len(opened) == 12  # the first round's, kept for the next two
    finally:
        engine.dispose()


def test_sqlite_transactions_are_real(tmp_path: Path) -> None:
    # The sqlite3 module alone would autocommit DDL; our BEGIN makes a rollback undo it.
    engine = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        with pytest.raises(RuntimeError), engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE t (x INTEGER)"))
            raise RuntimeError
        assert sa.inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "url",
    ["sqlite://", "sqlite:///:memory:", "mysql://u@h/db", "postgresql+psycopg2://u@h/db", "::"],
)
def test_unsupported_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError):
        make_engine(url)


@pytest.mark.parametrize(
    "url",
    [
        "://admin:hunter2@db.example/liverec",
        "postgresql://admin:hunter2@db.example:port/liverec",
        "postgresql://admin:hun/ter2@db.example:port/liverec",
        "admin:hunter2@db.example",
    ],
)
def test_a_malformed_url_is_reported_without_its_password(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        make_engine(url)
    assert "malformed" in str(caught.value)
    assert "hunter2" not in str(caught.value) and "hun/ter2" not in str(caught.value)
    assert "admin" not in str(caught.value)
    assert "db.example" in str(caught.value)  # still says which server
    assert caught.value.__suppress_context__


def test_redact_url() -> None:
    assert redact_url("postgresql://u:p@h:5432/db") == "postgresql://***@h:5432/db"
    assert redact_url("postgresql://u:p@ss@h/db") == "postgresql://***@h/db"
    assert redact_url("sqlite:////data/catalog.db") == "sqlite:////data/catalog.db"


def test_plain_postgresql_urls_use_psycopg() -> None:
    engine = make_engine("postgresql://postgres@127.0.0.1:1/x")
    assert engine.dialect.driver == "psycopg"
    engine.dispose()


def test_schema_head_is_the_migration_scripts_head() -> None:
    # The server checks the schema against SCHEMA_HEAD without loading Alembic: a new
    # migration must move it too.
    assert head_revision() == scripts_head()


def test_starting_on_a_catalog_at_head_does_not_load_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    ensure_schema(make_engine(url))
    code = (
        "import sys\n"
        "from liverec.catalog import ensure_schema, make_engine\n"
        f"ensure_schema(make_engine({url!r}))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'mako')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_a_first_start_migrates_in_a_process_of_its_own(empty_db_url: str) -> None:
    # The server's first start (bootstrap.migrate_apart): Alembic never loads in it.
    code = (
        "import sys\n"
        "from liverec.bootstrap import migrate_apart\n"
        "from liverec.catalog import ensure_schema, make_engine\n"
        "ensure_schema(make_engine(sys.stdin.read()), migrate_apart)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'mako')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], input=empty_db_url, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
    engine = make_engine(empty_db_url)
    try:
        check_schema(engine)  # at head
    finally:
        engine.dispose()


def test_a_failed_migration_apart_is_a_schema_error(tmp_path: Path) -> None:
    (tmp_path / "catalog.db").write_bytes(b"not a database" * 100)
    engine = make_engine(f"sqlite:///{tmp_path / 'catalog.db'}")
    with pytest.raises(SchemaError, match="migrating the catalog failed"):
        migrate_apart(engine)


@pytest.mark.parametrize(("fsync", "level"), [(True, 2), (False, 1)])  # FULL, NORMAL
def test_sqlite_commits_are_synchronous_unless_fsync_is_off(
    tmp_path: Path, fsync: bool, level: int
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'catalog.db'}", fsync=fsync)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == level
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        engine.dispose()
