"""Migrations build exactly the models' schema, and go down and up again (SQLite and PostgreSQL)."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from models import Base
from models.db import engine_for
from models.migrate import alembic_config


def schema_diff(url: str) -> list:
    with engine_for(url).connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), Base.metadata)


def test_migrations_match_models(database_url):
    assert schema_diff(database_url) == []


def test_downgrade_and_upgrade_again(database_url):
    cfg = alembic_config(database_url)
    command.downgrade(cfg, "base")
    command.upgrade(cfg, "head")
    assert schema_diff(database_url) == []
