"""Alembic, configured in code: ``voxqueue db upgrade`` calls :func:`upgrade`."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from models.deployment import ensure_secret


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", "models:migrations")
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate, then make sure the deployment has its secret (unless the setting gives it)."""
    from config.settings import get_settings

    command.upgrade(alembic_config(url), revision)
    if revision == "head" and get_settings().secret_key is None:
        ensure_secret(url)
