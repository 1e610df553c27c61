"""PostgreSQL: audit inbox rows that travel with their transaction's COMMIT.

A request that writes data stages its audit record in that data's transaction, just
before it commits (``gateway/audit/binding.py``), so the two commit together or not at
all. On PostgreSQL an INSERT there costs a round trip of its own (about 0.12 ms timed
inside a register, ``bench/README.md``), while the COMMIT that follows makes one
anyway. So rows staged at that moment are kept on the side (``add``) and sent in the
same message as the COMMIT: ``INSERT ...; COMMIT`` as one simple query. PostgreSQL
runs the two in order inside the open transaction; if the INSERT fails, the
transaction is aborted, the COMMIT is not run, the driver raises, and SQLAlchemy rolls
back: record and data still go together. A rollback drops what was kept. The rows are
inlined as hex (``inbox.inbox_insert_sql``), so nothing in a row can change the SQL.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Engine

from gateway.store.inbox import inbox_insert_sql

# Each driver connection's rows for its next COMMIT (dropped at a rollback).
_KEPT: weakref.WeakKeyDictionary[Any, list[bytes]] = weakref.WeakKeyDictionary()


def add(driver: Any, rows: Sequence[bytes]) -> None:
    """Keep ``rows`` for the COMMIT of the transaction open on ``driver`` (psycopg)."""
    _KEPT.setdefault(driver, []).extend(rows)


def install(engine: Engine) -> None:
    """Make ``engine``'s commits carry the kept rows, and its rollbacks drop them."""
    dialect = engine.dialect
    plain_commit, plain_rollback = dialect.do_commit, dialect.do_rollback

    def do_commit(dbapi_connection: Any) -> None:
        rows = _KEPT.pop(dbapi_connection.driver_connection, None)
        if not rows:
            plain_commit(dbapi_connection)
            return
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"{inbox_insert_sql(rows)}; COMMIT", prepare=False)

    def do_rollback(dbapi_connection: Any) -> None:
        _KEPT.pop(dbapi_connection.driver_connection, None)
        plain_rollback(dbapi_connection)

    dialect.do_commit = do_commit  # type: ignore[method-assign]
    dialect.do_rollback = do_rollback  # type: ignore[method-assign]
