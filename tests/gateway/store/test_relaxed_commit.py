"""Relaxed commits (a read's audit record, ``gateway/store/relaxed.py``): with the database
before the call returns, all or nothing, on disk within a bound, on a dedicated
connection that survives forks, and never touching the pooled connections that data
commits use. PostgreSQL's handed-over writes have their own tests (test_pgpipeline.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.store.db import Database
from gateway.store.walsync import WalFlusher

FULL = 2  # PRAGMA synchronous


@pytest.fixture
def table(db: Database):
    name = f"relaxed_{os.getpid()}"
    kind = "BYTEA" if db.dialect == "postgresql" else "BLOB"
    with db.engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
        conn.exec_driver_sql(f"CREATE TABLE {name} (v {kind} UNIQUE)")
    yield name
    with db.engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")


def insert(db: Database, table: str, *values: bytes):
    if db.dialect == "postgresql":  # the PipelinedWriter
        marks = ", ".join(f"(${i})" for i in range(1, len(values) + 1))
        return lambda driver: driver.send(f"INSERT INTO {table} VALUES {marks}", values)
    rows = ", ".join("(?)" for _ in values)
    return lambda driver: driver.execute(f"INSERT INTO {table} VALUES {rows}", values)


def stored(db: Database, table: str) -> list[bytes]:
    assert db.confirm_handed()  # PostgreSQL: handed over, now confirmed
    with db.engine.connect() as conn:  # another connection: committed means visible
        return sorted(bytes(v) for v in conn.exec_driver_sql(f"SELECT v FROM {table}").scalars())


def test_a_relaxed_write_is_committed_whole_or_not_at_all(db: Database, table: str) -> None:
    if db.dialect == "postgresql":
        pytest.skip("PostgreSQL reports a refusal later: test_pgpipeline.py's refused test")
    db._relaxed.write(insert(db, table, b"one", b"it's \x00 two"))
    assert stored(db, table) == [b"it's \x00 two", b"one"]
    with pytest.raises(sa.exc.IntegrityError) as failed:  # the second row is taken
        db._relaxed.write(insert(db, table, b"three", b"one"))
    assert "three" not in str(failed.value)  # no parameters shown (a record names patients)
    assert stored(db, table) == [b"it's \x00 two", b"one"]  # 'three' rolled back
    db._relaxed.write(insert(db, table, b"four"))  # the connection is usable after
    assert b"four" in stored(db, table)


def test_pooled_connections_keep_their_full_flush(db: Database, table: str) -> None:
    db._relaxed.write(insert(db, table, b"read"))
    with db.engine.connect() as conn:
        if db.dialect == "postgresql":
            assert conn.exec_driver_sql("SHOW synchronous_commit").scalar() == "on"
        else:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == FULL
    if db.dialect == "postgresql":  # the handed-over connection stores its own setting
        db._relaxed.write(lambda driver: driver.send(
            f"INSERT INTO {table} SELECT convert_to(current_setting('synchronous_commit'),"
            " 'UTF8') FROM (SELECT $1::bytea) AS unused", [b""]))
        assert b"off" in stored(db, table)
    else:
        assert db._relaxed._driver.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL


def test_a_forked_worker_opens_its_own_relaxed_connection(db: Database, table: str) -> None:
    if db.dialect == "postgresql":
        pytest.skip("PostgreSQL's handed-over connection: test_pgpipeline.py's fork test")
    db._relaxed.write(insert(db, table, b"parent"))
    parent = db._relaxed._driver
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 2
        try:
            db._relaxed.write(insert(db, table, b"child"))
            code = 0 if db._relaxed._driver is not parent else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    db._relaxed.write(insert(db, table, b"parent again"))  # the parent's still works
    assert stored(db, table) == [b"child", b"parent", b"parent again"]


def test_a_relaxed_sqlite_commit_is_on_disk_soon(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'r.db'}")
    try:
        with db.engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (v TEXT)")
        flusher = db._relaxed.flusher
        assert flusher is not None
        flusher.flushed.clear()
        db._relaxed.write(lambda driver: driver.execute("INSERT INTO t VALUES ('read record')"))
        assert flusher.flushed.wait(5 * flusher.worker.delay)  # the WAL's fsync came
    finally:
        db.dispose()


def test_the_flusher_fsyncs_the_wal_once_for_commits_close_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wal = tmp_path / "x.db-wal"
    wal.write_bytes(b"frames")
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    flusher = WalFlusher(str(tmp_path / "x.db"), delay=0.05)
    for _ in range(20):  # commits in the same moment share one flush
        flusher.soon()
    assert flusher.flushed.wait(5)
    flusher.close()  # flushes once more, and stops the thread
    assert 2 <= len(synced) <= 3
    assert not flusher.worker.running


def test_closing_a_flusher_with_no_wal_is_quiet(tmp_path: Path) -> None:
    flusher = WalFlusher(str(tmp_path / "never.db"))
    flusher.soon()
    flusher.close()
    assert not flusher.flushed.is_set()
