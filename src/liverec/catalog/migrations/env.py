"""Alembic environment, driven from code: liverec.catalog.db.migrate passes an open
connection in `config.attributes["connection"]`. There is no offline (SQL script) mode."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from liverec.catalog.schema import metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds tables instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    if context.is_offline_mode():
        raise RuntimeError("liverec migrations run online only: use `liverec migrate`")
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    # Run by the alembic CLI (for writing new revisions): -x url=... or sqlalchemy.url.
    from liverec.catalog.db import make_engine

    url = context.get_x_argument(as_dictionary=True).get("url") or context.config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise RuntimeError("give the database as: alembic -x url=... ")
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            _run(conn)
            conn.commit()
    finally:
        engine.dispose()


_main()
