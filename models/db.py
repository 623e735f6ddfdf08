"""Engines and sessions.

One engine per database URL per process; a forked worker process disposes the
engine it inherited (see ``workers.app``). SQLite runs in WAL mode with a busy
timeout so several worker threads and processes can share the demo database.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


_ENGINES: dict[str, Engine] = {}
_FACTORIES: dict[str, sessionmaker[Session]] = {}
_LOCK = threading.Lock()


def _new_lock_after_fork() -> None:
    """A child forked while another thread held the lock (a worker's housekeeping thread creating
    the engine as the prefork pool forks) would wait on it for ever: the child gets a fresh one."""
    global _LOCK
    _LOCK = threading.Lock()


os.register_at_fork(after_in_child=_new_lock_after_fork)


def engine_for(url: str) -> Engine:
    engine = _ENGINES.get(url)
    if engine is None:
        # Under a lock: a worker's threads all start their first task at once, and each one
        # that found no engine would build its own, with its own pool of connections.
        with _LOCK:
            engine = _ENGINES.get(url)
            if engine is None:
                engine = _ENGINES[url] = _create(url)
    return engine


def _create(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # A pool as large as a worker's threads, with little overflow: overflow connections are
    # closed when handed back, and opening them per task is slow and can exhaust the server.
    # No pre-ping round trip per checkout: a stale connection fails the task's transaction,
    # and infrastructure errors retry the task (tasks.infra).
    from config.settings import get_settings

    settings = get_settings()
    return create_engine(url, pool_size=settings.db_pool_size, max_overflow=2, pool_recycle=1800,
                         connect_args=_postgres_timeouts(settings, dict(parsed.query)))


def _postgres_timeouts(settings, given: dict) -> dict:
    """libpq's bounds on a connection: opening it (``connect_timeout``, the whole start-up, so a
    server that accepts and never answers fails in seconds), a peer gone silent (TCP keepalives
    and ``tcp_user_timeout``: a host or network lost) and, on the server, each statement
    (``statement_timeout``: a lock held for ever). A server process alive on its host that
    stops answering in the middle of a statement is bounded by none of them. What the URL's
    query gives (``?connect_timeout=3``, ``?options=-csearch_path%3Dx``) is kept: a parameter
    the URL sets wins, and ``options`` gets the statement timeout before the URL's own."""
    timeouts = {"connect_timeout": max(1, math.ceil(settings.db_connect_timeout)),
                "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5,
                "keepalives_count": 3, "tcp_user_timeout": 30_000}
    if settings.db_statement_timeout > 0:
        milliseconds = math.ceil(settings.db_statement_timeout * 1000)
        own = given.get("options")
        timeouts["options"] = f"-c statement_timeout={milliseconds}" + (f" {own}" if own else "")
    return {name: value for name, value in timeouts.items()
            if name == "options" or name not in given}


def _configured(url: str | None) -> str:
    if url is not None:
        return url
    from config.settings import get_settings

    return get_settings().database_url


def is_postgresql(url: str | None = None) -> bool:
    """Whether the database (the configured one unless ``url``) is PostgreSQL."""
    return engine_for(_configured(url)).dialect.name == "postgresql"


def session_factory(url: str | None = None) -> sessionmaker[Session]:
    url = _configured(url)
    factory = _FACTORIES.get(url)
    if factory is None:
        engine = engine_for(url)
        with _LOCK:
            factory = _FACTORIES.setdefault(url, sessionmaker(engine, expire_on_commit=False))
    return factory


@contextlib.contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A session whose transaction commits on success and rolls back on error."""
    session = session_factory(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@contextlib.contextmanager
def transaction(url: str | None = None) -> Iterator[Connection]:
    """A Core connection in a transaction (commit on success): the hot path's lighter sibling
    of :func:`session_scope`, for a few statements on known rows with no ORM objects."""
    with engine_for(_configured(url)).begin() as conn:
        yield conn


@contextlib.contextmanager
def autocommit(url: str | None = None) -> Iterator[Connection]:
    """A Core connection whose every statement commits on its own: for a single statement,
    one round trip to PostgreSQL instead of three (BEGIN, the statement, COMMIT)."""
    with engine_for(_configured(url)).connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        yield conn


def dispose_engines() -> None:
    """Drop inherited connections after a fork (never share a socket between processes)."""
    for engine in _ENGINES.values():
        engine.dispose(close=False)
