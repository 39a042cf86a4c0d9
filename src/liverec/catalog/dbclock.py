"""The database's clock, as epoch milliseconds in SQL.

Leases are written and compared by the database server's clock, never a node's: nodes
whose clocks disagree still agree on whether a lease has run out. A node's own clock is
used only for creation timestamps, which decide nothing."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement


class db_now_ms(FunctionElement[int]):
    """The database server's current time in epoch milliseconds (BIGINT)."""

    type = BigInteger()
    inherit_cache = True
    name = "db_now_ms"


@compiles(db_now_ms, "postgresql")
def _postgresql(element: db_now_ms, compiler: Any, **kw: Any) -> str:
    # clock_timestamp(), not now(): now() is when the transaction began, which may be long
    # before a statement that waited for a row lock.
    return "CAST(FLOOR(EXTRACT(EPOCH FROM clock_timestamp()) * 1000) AS BIGINT)"


@compiles(db_now_ms, "sqlite")
def _sqlite(element: db_now_ms, compiler: Any, **kw: Any) -> str:
    # julianday('now') has millisecond resolution and is the same throughout one statement;
    # ROUND takes away the float error of the conversion.
    return "CAST(ROUND((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER)"


@compiles(db_now_ms)
def _other(element: db_now_ms, compiler: Any, **kw: Any) -> str:
    raise NotImplementedError(f"no database clock for {compiler.dialect.name}")
