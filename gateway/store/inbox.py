"""The audit inbox's one INSERT (``audit_inbox``: a request's records land there first,
``gateway/audit/models.py``), through whichever driver connection holds the rows'
transaction, or as SQL text to send with a COMMIT (``withcommit.py``). It sits in the
store layer because the database's own hand-over paths (``relaxed.py``, ``spool.py``,
``withcommit.py``) write these rows too."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from gateway.store.pgpipeline import PipelinedWriter

INBOX = "audit_inbox"


def insert_inbox_rows(driver: Any, rows: Sequence[bytes]) -> None:
    """Inbox rows in one INSERT through the driver's connection: inside the transaction
    it has open (``driver_of``), or as a transaction of its own (``relaxed.py``, where
    one statement is what makes several rows all or nothing). Every path that stages
    records goes through here; it is the request path's one statement."""
    if isinstance(driver, sqlite3.Connection):
        values = ", ".join("(?)" for _ in rows)
        driver.execute(f"INSERT INTO {INBOX} (xml) VALUES {values}", tuple(rows))
    elif isinstance(driver, PipelinedWriter):  # handed over, confirmed later
        values = ", ".join(f"(${i})" for i in range(1, len(rows) + 1))
        driver.send(f"INSERT INTO {INBOX} (xml) VALUES {values}", rows)
    else:  # psycopg: binary parameters
        values = ", ".join(f"(%(r{i})b::bytea)" for i in range(len(rows)))
        driver.execute(f"INSERT INTO {INBOX} (xml) VALUES {values}",
                       {f"r{i}": row for i, row in enumerate(rows)})


def inbox_insert_sql(rows: Sequence[bytes]) -> str:
    """The same INSERT as PostgreSQL SQL text with the rows inlined, for a message that
    carries other statements too: each row as ``decode('<hex>', 'hex')``, hex digits
    only, so nothing in a row can change the SQL."""
    values = ",".join(f"(decode('{row.hex()}','hex'))" for row in rows)
    return f"INSERT INTO {INBOX} (xml) VALUES {values}"
