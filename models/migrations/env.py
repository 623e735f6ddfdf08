"""Alembic environment: runs on SQLite (batch mode) and PostgreSQL."""

from alembic import context

from models import Base
from models.db import engine_for

config = context.config


def run_migrations_online() -> None:
    engine = engine_for(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":  # a migration may rewrite a large table
            connection.exec_driver_sql("SET statement_timeout = 0")
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations_online()
