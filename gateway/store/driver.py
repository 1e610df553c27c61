"""Straight to the database driver, for the hot one-statement writes of the request
path (an XUA replay token, an audit record): SQLAlchemy's per-statement machinery
(compiling, events, result handling, autocommit switching) costs more CPU than such a
small INSERT (bench/README.md, "Auditing cost"). What stays the same as through
SQLAlchemy: the connection settings, and errors raised as SQLAlchemy's, with the
parameters hidden (they may name a patient).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL

POSTGRES_CONNECT_TIMEOUT_S = 5


def postgres_connect_args(url: URL) -> dict[str, Any]:
    """What every PostgreSQL connection of ours is opened with, beyond the URL."""
    args: dict[str, Any] = {"application_name": "ihe-gateway"}
    if "connect_timeout" not in url.query:
        # A blackholed host must not hang a health check or a start-up for minutes.
        args["connect_timeout"] = POSTGRES_CONNECT_TIMEOUT_S
    return args


@contextmanager
def driver_errors(error: type[Exception], statement: str | None = None) -> Iterator[None]:
    """The driver's ``error`` (its base class) raised as SQLAlchemy raises it, without
    the parameters."""
    try:
        yield
    except error as exc:
        raise sa.exc.DBAPIError.instance(
            statement, None, exc, error, hide_parameters=True
        ) from exc


@contextmanager
def driver_of(connection: sa.Connection) -> Iterator[Any]:
    """The driver's connection under ``connection``, inside its open transaction."""
    driver = connection.connection.driver_connection
    with driver_errors(driver.Error):
        yield driver
