"""Alembic environment.

The gateway passes an open, locked connection in ``config.attributes``
(``gateway.store.migrate``). The ``alembic`` command line, used only to write
new migrations, has none: it reads ``GATEWAY_DATABASE_URL`` and takes the same
lock. Migrations run in one transaction on both databases, with batch mode on
SQLite so ALTERs that SQLite lacks become table rebuilds.
"""

from __future__ import annotations

import os
from logging.config import fileConfig

import sqlalchemy as sa
from alembic import context

from gateway.store.db import normalize_url
from gateway.store.migrate import locked_connection
from gateway.store.models import Base, import_all_models

import_all_models()

config = context.config
target_metadata = Base.metadata


def _configure(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _url_from_environment() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("GATEWAY_DATABASE_URL")
    if not url:
        raise SystemExit("set GATEWAY_DATABASE_URL to the database to migrate")
    return url


def main() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    if config.config_file_name:  # the alembic command line
        fileConfig(config.config_file_name, disable_existing_loggers=False)
    url = _url_from_environment()
    if context.is_offline_mode():
        context.configure(
            url=normalize_url(url),
            target_metadata=target_metadata,
            literal_binds=True,
            dialect_opts={"paramstyle": "named"},
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    with locked_connection(url) as conn:
        _configure(conn)


main()
