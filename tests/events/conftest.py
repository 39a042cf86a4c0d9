"""The catalog fixtures of tests/catalog (a real SQLite file and a real PostgreSQL
database per test), for the callback tests."""

from catalog.conftest import (  # noqa: F401 - fixtures, found by pytest by name
    box,
    catalog,
    clock,
    db_url,
    engine,
    pg_server,
    pg_template,
    sqlite_template,
)
