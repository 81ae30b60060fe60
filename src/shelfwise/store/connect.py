"""The store's database connections: its URL, the SQLAlchemy engine, and how long a write waits for
another process's.

SQLite runs in WAL mode with ``synchronous=FULL`` (a committed write survives a crash of the process
and of the machine), and a write waits up to `BUSY_MS` for another process's to commit. A write that
must not wait long (`brief_lock_waits`, for `add_new_events(wait=False)`: the service stores an
event on a worker's event loop that way over SQLite) gives up after `BRIEF_WAIT_MS` instead, on
SQLite and on PostgreSQL, and its caller does it again where waiting is fine.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from shelfwise.errors import ConfigError, WriterBusy
from shelfwise.settings import load_settings

#: How long a write waits for another process's lock (SQLite's busy timeout), in milliseconds.
BUSY_MS = 30_000
#: ... and one inside `brief_lock_waits`.
BRIEF_WAIT_MS = 20
#: SQLSTATE of PostgreSQL's "lock_not_available" (a ``lock_timeout`` ran out).
_LOCK_NOT_AVAILABLE = "55P03"


def default_store_url() -> str:
    """``sqlite:///<home>/store.db``: a file in shelfwise's data directory."""
    return f"sqlite:///{load_settings().home / 'store.db'}"


def normalise(url: str) -> sa.URL:
    """`url` parsed, with the driver shelfwise uses; a clear error for anything else."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        raise ConfigError(f"Store URL {url!r} is not a database URL (sqlite:///path or postgresql://…).") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise ConfigError("The SQLite store needs a file path (sqlite:///path/to/store.db), not memory.")
        return parsed.set(drivername="sqlite")
    if backend == "postgresql":
        return parsed.set(drivername="postgresql+psycopg")
    raise ConfigError(f"Store URL {url!r}: only sqlite:/// and postgresql:// are supported, not {backend!r}.")


def create_engine(parsed: sa.URL) -> Engine:
    """The engine for a `normalise`d URL (SQLite: the folder made, the pragmas set on each connection)."""
    if parsed.get_backend_name() == "sqlite":
        Path(parsed.database or "").expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(parsed, connect_args={"timeout": BUSY_MS / 1000, "check_same_thread": False})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return sa.create_engine(parsed, pool_pre_ping=True, pool_size=8, max_overflow=8)


def create_read_engine(parsed: sa.URL, engine: Engine, name: str) -> Engine:
    """The engine of the hottest reads (a shopper's history, one statement each). SQLite: `engine`
    itself. PostgreSQL: a pool of its own in autocommit, named `name` in ``pg_stat_activity``, with
    no ping on checkout: one round trip a read instead of four (the ping, BEGIN, the query, and the
    ROLLBACK on return); `fetch_all` replaces connections the server dropped instead."""
    if parsed.get_backend_name() == "sqlite":
        return engine
    return sa.create_engine(
        parsed, isolation_level="AUTOCOMMIT", pool_size=8, max_overflow=8, connect_args={"application_name": name}
    )


def fetch_all(engine: Engine, query: str, params: tuple) -> Sequence[Any]:
    """`query`'s rows, on the driver's own cursor (none of SQLAlchemy's result machinery). Where the
    server dropped the connection (a restart, a terminated backend), the pool's connections are
    discarded and the query is run once more on a new one."""
    for attempt in (1, 2):
        connection = engine.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute(query, params)
            rows = cursor.fetchall()
            cursor.close()
            return rows
        except engine.dialect.loaded_dbapi.OperationalError:
            connection.invalidate()
            engine.dispose()  # the others were opened before the drop too
            if attempt == 2:
                raise
        finally:
            connection.close()  # back to the pool
    raise AssertionError("unreachable")


@contextmanager
def brief_lock_waits(conn: Connection) -> Iterator[None]:
    """Inside a transaction: its writes wait at most `BRIEF_WAIT_MS` for another process's locks
    (SQLite's write lock, PostgreSQL's row locks) and raise `WriterBusy` beyond that; the
    transaction then rolls back whole."""
    raw = conn.connection.dbapi_connection if conn.dialect.name == "sqlite" else None
    if raw is not None:
        raw.execute(f"PRAGMA busy_timeout={BRIEF_WAIT_MS}")
    else:  # for this transaction only
        conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{BRIEF_WAIT_MS}ms'")
    try:
        yield
    except sa.exc.OperationalError as error:
        if (raw is not None and "database is locked" in str(error.orig)) or _sqlstate(error) == _LOCK_NOT_AVAILABLE:
            raise WriterBusy("another process holds the store's write lock") from error
        raise
    finally:
        if raw is not None:
            raw.execute(f"PRAGMA busy_timeout={BUSY_MS}")


def _sqlstate(error: sa.exc.OperationalError) -> str | None:
    return getattr(error.orig, "sqlstate", None)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_MS}")
    cursor.close()
