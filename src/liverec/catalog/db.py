"""Engines and schema versions: SQLite by default, PostgreSQL by URL, Alembic migrations
driven from code (no alembic.ini at run time).

Alembic (with Mako and Pygments, ~10 MB of RSS) is imported only to migrate or to explain
a schema that is not at SCHEMA_HEAD: a server starting on a catalog at head reads the
version table itself."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Connection,
    Engine,
    column,
    create_engine,
    event,
    inspect,
    select,
    table,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    IntegrityError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

if TYPE_CHECKING:
    from alembic.config import Config

from liverec.errors import (
    CatalogBusyError,
    CatalogTimeoutError,
    CatalogUnavailableError,
    ConfigError,
    ConflictError,
    SchemaError,
)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# The newest migration's revision (tests/catalog check it is Alembic's head): what the
# code needs, known without loading the migration scripts.
SCHEMA_HEAD = "0007"
VERSION_TABLE = "alembic_version"  # Alembic's default, where it keeps the revision
SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_POOL_SIZE = 16  # connections kept (and as many more at a peak, closed after)
# Any constant: PostgreSQL advisory lock taken while migrating, so nodes migrate one at a time.
_MIGRATE_LOCK = 0x6C69766572656301
WRITE_OPTION = "liverec_write"
# Driver texts that mark an operational error as a timeout: PostgreSQL's statement and lock
# timeouts, libpq's connect timeout.
_TIMEOUT_WORDS = ("timeout", "timed out", "canceling statement")
_BUSY_WORDS = ("database is locked", "database table is locked")


@contextmanager
def mapped_errors() -> Iterator[None]:
    """Turn the driver's errors into liverec's, once, here: nothing above the catalog
    imports SQLAlchemy or psycopg. A unique key taken is a ConflictError; SQLite's lock
    wait running out a CatalogBusyError; a pool, connect or statement timeout a
    CatalogTimeoutError; anything else the database does wrong a CatalogUnavailableError
    (the URL's password never appears: the driver's text is not passed on)."""
    try:
        yield
    except IntegrityError as exc:
        raise ConflictError(f"a unique value is taken: {_first_line(exc)}") from exc
    except PoolTimeoutError as exc:
        raise CatalogTimeoutError("timed out waiting for a database connection") from exc
    except DBAPIError as exc:
        text = str(exc.orig).lower()
        if any(word in text for word in _BUSY_WORDS):
            raise CatalogBusyError("the catalog database is busy (locked)") from exc
        if any(word in text for word in _TIMEOUT_WORDS):
            raise CatalogTimeoutError("a catalog database call timed out") from exc
        raise CatalogUnavailableError(
            f"the catalog database failed: {type(exc.orig).__name__}"
        ) from exc
    except SQLAlchemyError as exc:
        raise CatalogUnavailableError(f"the catalog failed: {type(exc).__name__}") from exc


def _first_line(exc: DBAPIError) -> str:
    return str(exc.orig).splitlines()[0][:200] if str(exc.orig) else type(exc.orig).__name__


def _normalise_url(url: str) -> str:
    # psycopg 3 is the driver we ship; plain postgresql:// would ask for psycopg2.
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def redact_url(url: str) -> str:
    """The URL with everything up to its last '@' hidden (`scheme://***@host/db`): no user
    or password in messages, even when the URL does not parse."""
    scheme, sep, rest = url.partition("://")
    if "@" not in url:
        return url
    if not sep:
        return "***@" + url.rpartition("@")[2]
    return f"{scheme}://***@{rest.rpartition('@')[2]}"


def make_engine(url: str, *, fsync: bool = True) -> Engine:
    """An Engine for `sqlite:///PATH` or `postgresql+psycopg://...`.

    `fsync=False` (the `fsync = "off"` setting): SQLite commits with synchronous=NORMAL,
    which in WAL mode fsyncs only at checkpoints: a commit survives the death of the
    process, not a power cut (the database stays consistent either way). PostgreSQL keeps
    its server's own settings."""
    try:
        parsed = make_url(_normalise_url(url))
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise ConfigError(f"database URL is malformed: {redact_url(url)!r}") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or database.startswith("file:"):
            raise ConfigError("the SQLite catalog needs a file: sqlite:///PATH")
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        # Connections are kept, not closed when more than the default 5 are out at once:
        # the recorder's threads, the API's and the sweepers' together use more, and a new
        # one costs an open, its PRAGMAs, a map of the WAL index and a cold page cache.
        engine = create_engine(
            parsed,
            connect_args={"check_same_thread": False},
            pool_size=SQLITE_POOL_SIZE,
            max_overflow=SQLITE_POOL_SIZE,
        )
        _setup_sqlite(engine, "FULL" if fsync else "NORMAL")
        return engine
    if backend == "postgresql":
        if parsed.get_driver_name() != "psycopg":
            raise ConfigError("use a postgresql+psycopg:// URL for PostgreSQL")
        return create_engine(
            parsed,
            pool_pre_ping=True,
            pool_size=10,
            max_overflow=20,
            pool_timeout=30,
            connect_args={"connect_timeout": 10},
        )
    raise ConfigError(f"unsupported database {backend!r}: use sqlite:/// or postgresql+psycopg://")


def _setup_sqlite(engine: Engine, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # We emit BEGIN ourselves (below): the sqlite3 module's own handling skips it for
        # SELECT and DDL, which breaks repeatable reads and transactional DDL.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the write lock up front: a deferred transaction that reads and then
        # writes fails at once with SQLITE_BUSY when another writer got there first,
        # instead of waiting out the busy timeout.
        if conn.get_execution_options().get(WRITE_OPTION):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that only reads; driver errors mapped (mapped_errors)."""
    with mapped_errors(), engine.begin() as conn:
        yield conn


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that will write (BEGIN IMMEDIATE on SQLite); driver errors mapped
    (mapped_errors)."""
    with mapped_errors(), engine.connect() as conn:
        conn.execution_options(**{WRITE_OPTION: True})
        with conn.begin():
            yield conn


def _alembic_config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def head_revision() -> str:
    """The schema revision this code needs."""
    return SCHEMA_HEAD


def scripts_head() -> str:
    """The head of the migration scripts, as Alembic finds it (loads Alembic)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None, "migrations have no head"
    return head


def current_revision(engine: Engine) -> str | None:
    """The database's schema revision, None when it has none: the version table's one row,
    read as Alembic reads it (MigrationContext.get_current_revision)."""
    with mapped_errors(), engine.connect() as conn:
        if not inspect(conn).has_table(VERSION_TABLE):
            return None
        version = table(VERSION_TABLE, column("version_num"))
        rows = conn.execute(select(version.c.version_num)).scalars().all()
    if len(rows) > 1:
        raise SchemaError(f"the catalog's {VERSION_TABLE} table has {len(rows)} revisions")
    return str(rows[0]) if rows else None


def migrate(engine: Engine) -> None:
    """Upgrade the schema to head (alembic upgrade head). Safe to run from several nodes at
    once: PostgreSQL takes an advisory lock, SQLite the write lock.

    On SQLite, foreign keys are off while it runs and checked after: batch mode rebuilds a
    table by copying it and dropping the old one, and with them on, the drop cascades
    (0005's rebuild of `recordings` emptied `segments` and the recordings' `files` rows).
    The pragma is a no-op inside a transaction, so it is set on the driver's connection
    before BEGIN."""
    from alembic import command

    cfg = _alembic_config()
    with mapped_errors(), engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            conn.connection.dbapi_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
        try:
            conn.execution_options(**{WRITE_OPTION: True})
            with conn.begin():
                if conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATE_LOCK})
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
                if sqlite and conn.exec_driver_sql("PRAGMA foreign_key_check").first():
                    raise SchemaError("the migrated catalog breaks a foreign key: rolled back")
        finally:
            if sqlite:
                conn.connection.dbapi_connection.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]


def check_schema(engine: Engine) -> None:
    """Raise SchemaError unless the database is at the code's head revision."""
    current = current_revision(engine)
    head = head_revision()
    if current == head:
        return
    if current is None:
        tables = set(_table_names(engine))
        if not tables:
            raise SchemaError(f"catalog schema is empty, code needs {head}: run `liverec migrate`")
        if tables == {"alembic_version"}:
            raise SchemaError(
                f"catalog schema is at <base>, code needs {head}: run `liverec migrate`"
            )
        raise SchemaError(
            f"the catalog database has tables but no liverec schema version (code needs {head}): "
            "is it another application's database?"
        )
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config())
    known = {rev.revision for rev in script.walk_revisions()}
    if current not in known:
        raise SchemaError(
            f"catalog schema is at {current}, which this code does not know (a newer "
            f"liverec migrated it?); code needs {head}"
        )
    raise SchemaError(f"catalog schema is at {current}, code needs {head}: run `liverec migrate`")


def ensure_schema(engine: Engine, upgrade: Callable[[Engine], None] = migrate) -> None:
    """Migrate an empty database (with `upgrade`: the server does it in a process of its
    own, bootstrap.migrate_apart); raise SchemaError for one behind head; at head, nothing."""
    if not _table_names(engine):
        upgrade(engine)
        return
    check_schema(engine)


def _table_names(engine: Engine) -> list[str]:
    with mapped_errors():
        return inspect(engine).get_table_names()
