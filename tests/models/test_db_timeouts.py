"""PostgreSQL calls are bounded: a server that accepts connections and never answers is one
error line within seconds (the default ``VOXQUEUE_DB_CONNECT_TIMEOUT``), and a statement that
waits for ever (a lock never released) is cancelled by the server after
``VOXQUEUE_DB_STATEMENT_TIMEOUT``."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from config.settings import reset_settings
from models.db import engine_for, transaction
from tests.pipeline import silent_server  # noqa: F401  (a fixture)

pytestmark = [pytest.mark.e2e]


def own(url: str, name: str) -> str:
    """The URL with its own engine (engines are kept per URL, with the settings of their start)."""
    return f"{url}?application_name=voxqueue-test-{name}"


@pytest.mark.parametrize("command", [["status"], ["ingest", "rows.csv"]])
def test_a_database_that_never_answers_is_one_error_line_within_seconds(
        silent_server, command, tmp_path):  # noqa: F811
    (tmp_path / "rows.csv").write_text("id,audio\nr1,https://example.invalid/a.wav\n")
    silent = f"postgresql+psycopg://postgres@127.0.0.1:{silent_server}/test"
    env = {**os.environ, "VOXQUEUE_DATABASE_URL": silent}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "workers.cli", *command], env=env,
                          capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path)
    took = time.monotonic() - started
    print(f"\nvoxqueue {command[0]} against a database that never answers: exit {proc.returncode} "
          f"after {took:.1f}s")
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("voxqueue: error:")]
    assert errors == ["voxqueue: error: database: connection timeout expired"], proc.stderr
    assert "Traceback" not in proc.stderr
    assert took < 30  # the default connect timeout is 10 s; without it the command never ends


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_statement_waiting_on_a_lock_for_ever_is_cancelled(database_url, monkeypatch):
    monkeypatch.setenv("VOXQUEUE_DB_STATEMENT_TIMEOUT", "1")
    reset_settings()
    engine = engine_for(own(database_url, "lock"))
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SHOW statement_timeout")).scalar() == "1s"
        with transaction() as holder:  # the default engine holds a lock and never lets go
            holder.execute(text("LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE"))
            cancelled = pytest.raises(OperationalError, match="statement timeout")
            with engine.connect() as waiting, cancelled:
                waiting.execute(text("SELECT count(*) FROM jobs"))
    finally:
        engine.dispose()


def test_the_default_statement_timeout_is_a_minute_and_the_urls_options_are_kept(pg_database, monkeypatch):
    monkeypatch.setenv("VOXQUEUE_DATABASE_URL", pg_database)
    reset_settings()
    for url, search_path in ((own(pg_database, "default"), '"$user", public'),
                             (own(pg_database, "options") + "&options=-csearch_path%3Dvq_elsewhere",
                              "vq_elsewhere")):
        engine = engine_for(url)
        try:
            with engine.connect() as conn:
                assert conn.execute(text("SHOW statement_timeout")).scalar() == "1min"
                assert conn.execute(text("SHOW search_path")).scalar() == search_path
        finally:
            engine.dispose()
