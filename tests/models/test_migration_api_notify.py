"""0006_api_notify keeps what is recorded (SQLite and PostgreSQL): on SQLite a table copied and
dropped by batch mode would take every job of its batches with it (ON DELETE CASCADE)."""

from __future__ import annotations

from alembic import command
from sqlalchemy import text

from models.db import engine_for
from models.migrate import alembic_config


def test_upgrading_keeps_batches_and_their_jobs(database_url):
    cfg = alembic_config(database_url)
    command.downgrade(cfg, "0005_deployment_secret")
    with engine_for(database_url).begin() as conn:
        conn.execute(text("INSERT INTO batches (name) VALUES ('kept')"))
        conn.execute(text("INSERT INTO jobs (batch_id, key, seq, services, options, status) "
                          "SELECT id, 'row-1', 1, '[]', '{}', 'done' FROM batches"))
    command.upgrade(cfg, "head")
    with engine_for(database_url).connect() as conn:
        assert conn.execute(text("SELECT b.name, b.notify_id, j.key FROM jobs j JOIN batches b ON b.id = j.batch_id")
                            ).all() == [("kept", None, "row-1")]
