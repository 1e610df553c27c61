"""PostgreSQL: a data transaction's audit rows travel with its COMMIT
(``gateway/store/withcommit.py``): committed with the data, dropped with a rollback, and
a failure to store them fails the commit, so the data does not commit either."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from gateway.audit.queue import AuditQueue
from gateway.store import migrate
from gateway.store.db import Database

EVERY_BYTE = bytes(range(256)) + b"'); DROP TABLE audit_inbox; --"


@pytest.fixture
def db(pg_url: str) -> Iterator[Database]:
    migrate.upgrade(pg_url)
    database = Database(pg_url, pool_size=1, max_overflow=0)  # one connection, reused
    with database.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE data (v TEXT)")
    yield database
    database.dispose()


def contents(db: Database) -> tuple[list[str], list[bytes]]:
    """What another connection sees (the database's own pool has one, in use)."""
    other = sa.create_engine(db.url, poolclass=sa.pool.NullPool)
    try:
        with other.connect() as conn:
            data = list(conn.exec_driver_sql("SELECT v FROM data ORDER BY v").scalars())
            rows = [bytes(v) for v in conn.exec_driver_sql(
                "SELECT xml FROM audit_inbox ORDER BY id").scalars()]
    finally:
        other.dispose()
    return data, rows


def write(db: Database, value: str, rows: list[bytes], *, then: str = "commit") -> None:
    with db.session() as session:
        session.execute(sa.text("INSERT INTO data VALUES (:v)"), {"v": value})
        AuditQueue(db).stage(session, rows, committing=True)
        inbox = session.execute(sa.text("SELECT count(*) FROM audit_inbox")).scalar()
        assert inbox == 0  # not sent yet, even to this transaction: kept for the COMMIT
        if then == "rollback":
            session.rollback()
        elif then == "break":
            session.execute(sa.text("ALTER TABLE audit_inbox RENAME TO audit_inbox_gone"))


def test_the_rows_commit_with_the_data_byte_for_byte(db: Database) -> None:
    write(db, "a", [EVERY_BYTE, b"{second}"])
    assert contents(db) == (["a"], [EVERY_BYTE, b"{second}"])


def test_a_rollback_drops_the_kept_rows(db: Database) -> None:
    write(db, "dropped", [b"{dropped}"], then="rollback")
    write(db, "kept", [b"{kept}"])  # the same pooled connection: nothing left over
    assert contents(db) == (["kept"], [b"{kept}"])


def test_rows_that_cannot_be_stored_fail_the_commit_and_the_data_with_it(db: Database) -> None:
    with pytest.raises(sa.exc.DBAPIError):
        write(db, "lost together", [b"{record}"], then="break")
    assert contents(db) == ([], [])  # the rename rolled back too: the table is there
    write(db, "after", [b"{after}"])
    assert contents(db) == (["after"], [b"{after}"])
