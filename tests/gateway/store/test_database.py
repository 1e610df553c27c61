"""The Database handle: URLs, connection settings, ping, sessions, several workers."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import QueuePool

from gateway.store.db import SQLITE_BUSY_TIMEOUT_MS, Database, normalize_url
from gateway.store.models import Blob

SHA_A = "a" * 40
SHA_B = "b" * 40


def test_plain_postgresql_urls_use_psycopg_3() -> None:
    for url in ("postgresql://u@h/db", "postgres://u@h/db", "postgresql+psycopg://u@h/db"):
        assert normalize_url(url).drivername == "postgresql+psycopg"
    assert normalize_url("sqlite:////tmp/x.db").drivername == "sqlite"
    with pytest.raises(ValueError, match="unsupported"):
        normalize_url("mysql://u@h/db")
    with pytest.raises(ValueError, match="unsupported"):
        normalize_url("postgresql+psycopg2://u@h/db")


def test_creating_a_database_creates_no_tables(database_url: str) -> None:
    db = Database(database_url)
    try:
        assert db.ping()
        assert sa.inspect(db.engine).get_table_names() == []
    finally:
        db.dispose()


def test_ping_is_false_for_an_unreachable_postgresql_quickly() -> None:
    db = Database("postgresql+psycopg://nobody@127.0.0.1:1/x")
    started = time.monotonic()
    assert db.ping() is False
    assert time.monotonic() - started < 3
    db.dispose()


def test_ping_is_false_for_an_unopenable_sqlite_file(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'x.db'}")
    assert db.ping() is False


def test_sqlite_connections_are_set_up_for_several_processes(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'g.db'}")
    try:
        # Two connections at once: the settings hold on each, not just the first.
        with db.engine.connect() as one, db.engine.connect() as two:
            for conn in (one, two):
                assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
                busy = conn.exec_driver_sql("PRAGMA busy_timeout").scalar()
                assert busy == SQLITE_BUSY_TIMEOUT_MS
    finally:
        db.dispose()


def test_workers_opening_a_new_sqlite_file_together_all_get_wal(tmp_path: Path) -> None:
    """Switching a new file to WAL races: SQLite answers the loser "database is locked"
    without waiting on its busy timeout (the cause of a flaky migration test)."""
    errors: list[BaseException] = []
    for attempt in range(40):
        url = f"sqlite:///{tmp_path / f'new{attempt}.db'}"
        start = threading.Barrier(6)

        def worker(number: int, url: str = url, start: threading.Barrier = start) -> None:
            db = Database(url)
            try:
                start.wait()
                with db.session(immediate=True) as session:
                    session.execute(sa.text(f"CREATE TABLE IF NOT EXISTS t{number % 2} (a)"))
                with db.engine.connect() as conn:
                    assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            finally:
                db.dispose()

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []


def test_sqlite_enforces_foreign_keys(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'g.db'}")
    with db.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        conn.exec_driver_sql("CREATE TABLE child (pid INTEGER REFERENCES parent(id))")
    with pytest.raises(sa.exc.IntegrityError), db.engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO child VALUES (42)")
    db.dispose()


def test_postgresql_pool_is_sized_for_the_worker_threads(pg_url: str) -> None:
    db = Database(pg_url, pool_size=6, max_overflow=2)
    try:
        pool = db.engine.pool
        assert isinstance(pool, QueuePool)
        assert (pool.size(), pool._max_overflow, pool._pre_ping) == (6, 2, True)
        assert db.dialect == "postgresql" and db.ping()
    finally:
        db.dispose()


def test_session_commits_on_success(db: Database) -> None:
    with db.session() as s:
        s.add(Blob(sha1=SHA_A, size=3))
    with db.session() as s:
        assert s.get(Blob, SHA_A).size == 3


def test_session_rolls_back_on_error(db: Database) -> None:
    with pytest.raises(RuntimeError), db.session() as s:
        s.add(Blob(sha1=SHA_A, size=3))
        s.flush()
        raise RuntimeError("handler failed")
    with db.session() as s:
        assert s.get(Blob, SHA_A) is None


def test_a_constraint_violation_rolls_back_the_whole_session(db: Database) -> None:
    with pytest.raises(sa.exc.IntegrityError), db.session() as s:
        s.add(Blob(sha1=SHA_A, size=1))
        s.flush()
        s.add(Blob(sha1=SHA_B, size=-1))  # ck_blobs_size_not_negative
    with db.session() as s:
        assert s.scalars(sa.select(Blob)).all() == []


def test_objects_stay_readable_after_the_session(db: Database) -> None:
    with db.session() as s:
        blob = Blob(sha1=SHA_A, size=7)
        s.add(blob)
    assert blob.size == 7 and blob.created_at is not None


def test_timestamps_come_back_aware_and_in_utc(db: Database) -> None:
    paris = timezone(timedelta(hours=1))
    when = datetime(2025, 3, 1, 12, 30, tzinfo=paris)
    with db.session() as s:
        s.add(Blob(sha1=SHA_A, size=1, created_at=when))
    with db.session() as s:
        got = s.get(Blob, SHA_A).created_at
    assert got == when and got.tzinfo == UTC
    with pytest.raises(sa.exc.StatementError, match="naive"), db.session() as s:
        s.add(Blob(sha1=SHA_B, size=1, created_at=datetime(2025, 3, 1)))


def test_two_workers_see_each_others_committed_rows(db: Database, database_url: str) -> None:
    """Two processes' Database objects on one URL: state lives in the database."""
    other = Database(database_url)
    try:
        with db.session() as s:
            s.add(Blob(sha1=SHA_A, size=1))
            s.flush()
            with other.session() as o:  # not yet committed: invisible to the other worker
                assert o.get(Blob, SHA_A) is None
        with other.session() as o:
            assert o.get(Blob, SHA_A).size == 1
            o.add(Blob(sha1=SHA_B, size=2))
        with db.session() as s:
            assert s.get(Blob, SHA_B).size == 2
    finally:
        other.dispose()


def test_read_then_write_from_many_threads_and_two_workers_loses_nothing(
    db: Database, database_url: str
) -> None:
    """``session(immediate=True)`` plus FOR UPDATE: waits for the lock, never a lost update
    or "database is locked" (SQLite), on both databases."""
    with db.session() as s:
        s.add(Blob(sha1=SHA_A, size=0))
    other = Database(database_url)
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def bump(database: Database) -> None:
        start.wait()
        try:
            for _ in range(10):
                with database.session(immediate=True) as s:
                    row = s.execute(
                        sa.select(Blob).where(Blob.sha1 == SHA_A).with_for_update()
                    ).scalar_one()
                    row.size += 1
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=bump, args=(db if i % 2 else other,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    other.dispose()
    assert errors == []
    with db.session() as s:
        assert s.get(Blob, SHA_A).size == 80


def test_a_forked_worker_gets_its_own_connections(pg_url: str) -> None:
    """gunicorn may fork after the app (and its pool) exists; a child must not reuse
    the parent's PostgreSQL connection."""
    db = Database(pg_url)
    with db.engine.connect() as conn:
        parent_backend = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 2
        try:
            with db.engine.connect() as conn:
                child_backend = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar()
            code = 0 if child_backend != parent_backend else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    with db.engine.connect() as conn:  # the parent's own connection still works
        assert conn.execute(sa.text("SELECT pg_backend_pid()")).scalar() == parent_backend
    db.dispose()


def test_a_driver_transaction_commits_or_rolls_back_whole(tmp_path: Path) -> None:
    """SQLite's hot-path writes (replay token, a lone audit record) bypass SQLAlchemy's
    transaction machinery: they must still be all or nothing, and fail as SQLAlchemy's
    errors do, without the parameters (a record may name a patient)."""
    db = Database(f"sqlite:///{tmp_path / 'g.db'}")
    try:
        with db.engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (v TEXT UNIQUE)")
        with db.driver_transaction() as conn:
            conn.execute("INSERT INTO t VALUES ('kept')")
        with pytest.raises(RuntimeError), db.driver_transaction() as conn:
            conn.execute("INSERT INTO t VALUES ('undone')")
            raise RuntimeError("the caller's own failure")
        with pytest.raises(sa.exc.IntegrityError) as failed, db.driver_transaction() as conn:
            conn.execute("INSERT INTO t VALUES ('also undone')")
            conn.execute("INSERT INTO t VALUES (?)", ("kept",))
        assert "kept" not in str(failed.value).replace("'kept'", "")  # no parameters shown
        with db.engine.connect() as conn:
            assert not conn.connection.driver_connection.in_transaction  # none left open
            assert conn.exec_driver_sql("SELECT v FROM t").scalars().all() == ["kept"]
    finally:
        db.dispose()


def test_execute_alone_is_its_own_transaction_on_postgresql(pg_url: str) -> None:
    db = Database(pg_url)
    table = f"alone_{os.getpid()}"
    try:
        with db.engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE TABLE {table} (v TEXT UNIQUE)")
        assert db.execute_alone(f"INSERT INTO {table} VALUES (%(v)s) RETURNING v",
                                {"v": "kept"}) == [("kept",)]
        assert db.execute_alone(f"INSERT INTO {table} VALUES ('other')", {}) == []
        with pytest.raises(sa.exc.IntegrityError) as failed:
            db.execute_alone(f"INSERT INTO {table} VALUES (%(v)s)", {"v": "kept"})
        assert "kept" not in str(failed.value).replace("(v)=(kept)", "")  # no parameters
        other = Database(pg_url)  # committed: another process sees it at once
        try:
            with other.engine.connect() as conn:
                rows = conn.exec_driver_sql(f"SELECT v FROM {table} ORDER BY v").scalars()
                assert rows.all() == ["kept", "other"]
        finally:
            other.dispose()
        with db.engine.connect() as conn:  # the pooled connection is back out of autocommit
            assert conn.connection.driver_connection.autocommit is False
    finally:
        with db.engine.begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
        db.dispose()
