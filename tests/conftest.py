"""Shared fixtures: real databases (SQLite and PostgreSQL), real Redis, settings.

Every database test runs twice, on SQLite and on PostgreSQL. PostgreSQL gets a
database of its own for the test session (created here, dropped at the end);
each test starts from empty tables. Where PostgreSQL or Redis is unreachable
the tests that need them are skipped with the reason, except under CI=true,
where they fail.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from config.settings import reset_settings
from models import Base
from models.db import engine_for
from models.deployment import ensure_secret
from models.migrate import upgrade

PG_URL = os.environ.get("VOXQUEUE_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _redis_url_of_this_process() -> str:
    """The test Redis database: ``VOXQUEUE_TEST_REDIS_URL``; under pytest-xdist every further
    worker process takes one of its own (7, 6, 5, ... with the default 15), since tests empty theirs."""
    url = os.environ.get("VOXQUEUE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    if index:
        base, _, db = url.rpartition("/")
        url = f"{base}/{(int(db) if db.isdigit() else 0) - 7 - index}"
    os.environ["VOXQUEUE_TEST_REDIS_URL"] = url  # for what the tests start (benchmarks read it too)
    return url


REDIS_URL = _redis_url_of_this_process()
IN_CI = os.environ.get("CI", "").lower() == "true"
# The Celery app reads its configuration once per process, and pytest's collection already
# evaluates the task objects test modules import: from the start, its broker is the test Redis.
os.environ["VOXQUEUE_BROKER_URL"] = REDIS_URL


def unavailable(what: str, error: Exception) -> None:
    message = f"{what} unreachable: {type(error).__name__}: {error}"
    if IN_CI:
        pytest.fail(message + " (CI=true: required)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch, tmp_path) -> Iterator[None]:
    """No test reads the developer's .env or VOXQUEUE_* environment."""
    for name in list(os.environ):
        if name.startswith("VOXQUEUE_") and not name.startswith("VOXQUEUE_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VOXQUEUE_VAR_DIR", str(tmp_path / "var"))
    # In-process code that reaches the broker reaches the test Redis, never an embedded one: the
    # Celery app reads its broker URL once per process, so it must be the same in every test.
    monkeypatch.setenv("VOXQUEUE_BROKER_URL", REDIS_URL)
    reset_settings()
    yield
    reset_settings()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A PostgreSQL database for this test session, migrated once."""
    admin_url = make_url(PG_URL)
    name = f"voxqueue_test_{uuid.uuid4().hex[:8]}"
    try:
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001  (connection refused, auth, ...: skip, saying why)
        unavailable(f"PostgreSQL at {admin_url.render_as_string(hide_password=True)}", exc)
    url = admin_url.set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    yield url
    engine_for(url).dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


KEPT_TABLES = ("deployment_secret",)  # made by the migration, as `voxqueue db upgrade` does


def _empty_tables(url: str) -> None:
    with engine_for(url).begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            if table.name not in KEPT_TABLES:
                conn.execute(table.delete())
    ensure_secret(url)  # a test that went down and up again made a new one; one that went down, none


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """A SQLite database migrated once for the session, as `voxqueue db upgrade` leaves it;
    each test gets a copy of the file (running every migration again cost ~75 ms a test)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "voxqueue.db"
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("VOXQUEUE_") and not name.startswith("VOXQUEUE_TEST_"):
                patch.delenv(name)
        reset_settings()
        upgrade(f"sqlite:///{path}")
    engine_for(f"sqlite:///{path}").dispose()
    reset_settings()
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path, monkeypatch) -> str:
    """A migrated, empty database; the test runs once on each backend."""
    if request.param == "sqlite":
        path = tmp_path / "voxqueue.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        url = f"sqlite:///{path}"
    else:
        url = request.getfixturevalue("pg_database")
        _empty_tables(url)
    monkeypatch.setenv("VOXQUEUE_DATABASE_URL", url)
    reset_settings()
    return url


@pytest.fixture
def redis_url() -> str:
    """Redis for the broker, emptied before the test."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.flushdb()
    except redis.RedisError as exc:
        unavailable(f"Redis at {REDIS_URL}", exc)
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture
def samples() -> Path:
    return Path(__file__).resolve().parents[1] / "workers" / "samples"


from tests.pipeline import (  # noqa: F401  (shared fixtures)
    pipeline,
    pipeline_env,
    private_redis,
    pytest_runtest_makereport,
    silent_server,
)
