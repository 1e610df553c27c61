"""The SQLite audit spool (``gateway/store/spool.py``): a read's record is in a file when
the call returns, in the inbox soon after without anyone asking, moved once, kept when
its process dies, and a torn tail costs only itself."""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.store import migrate
from gateway.store.db import Database
from gateway.store.spool import RowSpool, frame, unframe


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    migrate.upgrade(url)
    database = Database(url)
    yield database
    database.dispose()


def inbox(db: Database) -> list[bytes]:
    with db.engine.connect() as conn:
        return [bytes(v) for v in conn.exec_driver_sql(
            "SELECT xml FROM audit_inbox ORDER BY id").scalars()]


def segments(db: Database) -> list[str]:
    spool = Path(f"{db.url.database}.spool")
    return sorted(os.listdir(spool)) if spool.exists() else []


def test_rows_are_spooled_at_once_and_moved_without_asking(sqlite_db: Database) -> None:
    spool, gate = sqlite_db._relaxed.spool, threading.Event()
    real_pass = spool.worker.work
    spool.worker.work = lambda: (gate.wait(10), real_pass())[1]  # waits for the checks
    sqlite_db.hand_over_inbox_rows([b"{one}", b"{two}"])
    assert inbox(sqlite_db) == []  # not in the database yet: in this process's segment
    [live] = segments(sqlite_db)
    assert live.startswith(f"{os.getpid()}-") and live.endswith(".open")
    assert sqlite_db.handed()["segments"] == 1
    assert sqlite_db.handed()["unconfirmed"] == 2
    gate.set()
    assert sqlite_db._relaxed.spool.moved.wait(10)  # the spool's thread: sealed, then moved
    assert inbox(sqlite_db) == [b"{one}", b"{two}"]
    assert segments(sqlite_db) == []
    assert sqlite_db.handed() == {"unconfirmed": 0, "segments": 0, "bytes": 0, "torn_bytes": 0}


def test_a_search_settles_the_spool_first(sqlite_db: Database) -> None:
    from gateway.audit.queue import AuditQueue

    sqlite_db._relaxed.spool.worker.delay = 60  # the thread would not move them in time
    rows = [b"{read %d}" % i for i in range(200)]
    for row in rows:
        sqlite_db.hand_over_inbox_rows([row])
    assert sqlite_db.confirm_handed(timeout=5)
    assert inbox(sqlite_db) == rows  # in order, each once
    assert AuditQueue(sqlite_db).index_all() == 0  # moved already; nothing else


def _append_and_die(url: str) -> None:
    database = Database(url)
    database.hand_over_inbox_rows([b"{before the crash}"])
    os._exit(0)  # no dispose, no seal: the segment is left open, its lock dropped


def test_rows_of_a_process_that_died_are_moved(sqlite_db: Database) -> None:
    child = multiprocessing.get_context("spawn").Process(
        target=_append_and_die, args=(str(sqlite_db.url),))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    [orphan] = segments(sqlite_db)
    assert orphan.endswith(".open") and not orphan.startswith(f"{os.getpid()}-")
    assert sqlite_db.confirm_handed(timeout=5)
    assert inbox(sqlite_db) == [b"{before the crash}"]


def test_a_live_segment_of_another_process_is_left_to_it(sqlite_db: Database) -> None:
    other = Database(str(sqlite_db.url))  # as another worker: its own segment and lock
    try:
        other._relaxed.spool.worker.delay = 60
        other.hand_over_inbox_rows([b"{the other's}"])
        assert not sqlite_db.confirm_handed(timeout=0)  # locked: not ours to move
        assert inbox(sqlite_db) == []
        other._relaxed.spool._seal()  # its thread seals within delay; done here at once
        assert sqlite_db.confirm_handed(timeout=5)
        assert inbox(sqlite_db) == [b"{the other's}"]
    finally:
        other.dispose()


def test_a_torn_tail_drops_only_itself_and_is_logged_without_content(
    sqlite_db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Path(f"{sqlite_db.url.database}.spool")
    spool.mkdir()
    whole = frame(b"{whole}")
    cut = frame(b"{cut off PATIENT-123}")[:-5]
    (spool / "1-1-1.sealed").write_bytes(whole + cut)
    with caplog.at_level(logging.ERROR, logger="gateway.store.spool"):
        assert sqlite_db.confirm_handed(timeout=5)
    assert inbox(sqlite_db) == [b"{whole}"]
    assert sqlite_db.handed()["torn_bytes"] == len(cut)
    assert "not a whole record" in caplog.text and "PATIENT" not in caplog.text


def test_a_corrupted_frame_ends_the_segment_there() -> None:
    good, bad = frame(b"{a}"), bytearray(frame(b"{b}"))
    bad[-1] ^= 0xFF  # the CRC no longer matches
    assert unframe(good + bytes(bad) + frame(b"{c}")) == ([b"{a}"], len(bad) + 11)


def test_rows_are_kept_while_the_database_refuses_them(tmp_path: Path) -> None:
    failures: list[int] = []
    moved: list[bytes] = []

    def move(rows: list[bytes]) -> None:
        if len(failures) < 2:
            failures.append(1)
            raise sa.exc.OperationalError("INSERT", None, Exception("database is locked"))
        moved.extend(rows)

    spool = RowSpool(tmp_path / "s.spool", move, delay=0.01)
    spool.append([b"{kept}"])
    assert spool.moved.wait(10)  # retried after each failure, then moved
    assert moved == [b"{kept}"] and len(failures) == 2
    spool.close()


def test_when_the_spool_cannot_write_the_record_is_committed_instead(
    sqlite_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(*_args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sqlite_db._relaxed.spool, "append", full)
    sqlite_db.hand_over_inbox_rows([b"{committed}"])
    assert inbox(sqlite_db) == [b"{committed}"]  # the relaxed commit, done on return


def test_a_forked_child_writes_its_own_segment(sqlite_db: Database) -> None:
    sqlite_db._relaxed.spool.worker.delay = 60
    sqlite_db.hand_over_inbox_rows([b"{parent}"])
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            sqlite_db.hand_over_inbox_rows([b"{child}"])
            mine = [s for s in segments(sqlite_db) if s.startswith(f"{os.getpid()}-")]
            code = 0 if len(mine) == 1 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    sqlite_db.hand_over_inbox_rows([b"{parent again}"])
    assert sqlite_db.confirm_handed(timeout=5)
    assert sorted(inbox(sqlite_db)) == [b"{child}", b"{parent again}", b"{parent}"]


def test_an_unnamed_segment_of_a_dead_process_is_removed_after_a_minute(
    sqlite_db: Database,
) -> None:
    spool = Path(f"{sqlite_db.url.database}.spool")
    spool.mkdir()
    stale, fresh = spool / "1-1-1.new", spool / "2-1-2.new"  # created, never renamed
    stale.touch()
    fresh.touch()
    an_hour_ago = time.time() - 3600
    os.utime(stale, (an_hour_ago, an_hour_ago))
    assert sqlite_db.confirm_handed(timeout=0)  # neither is a segment to move
    assert not stale.exists() and fresh.exists()  # the fresh one may still get its name


def test_a_request_does_not_wait_for_the_seals_fsync(
    sqlite_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gateway.store.spool as spool_module

    spool = sqlite_db._relaxed.spool
    spool.worker.delay = 60  # only the pass below seals
    sqlite_db.hand_over_inbox_rows([b"{first}"])
    in_fsync, release = threading.Event(), threading.Event()
    real_fsync = os.fsync

    def slow_fsync(fd: int) -> None:
        in_fsync.set()
        release.wait(10)
        real_fsync(fd)

    monkeypatch.setattr(spool_module.os, "fsync", slow_fsync)
    sealing = threading.Thread(target=spool._pass)
    sealing.start()
    try:
        assert in_fsync.wait(10)
        appended = threading.Thread(target=sqlite_db.hand_over_inbox_rows, args=([b"{next}"],))
        appended.start()
        appended.join(5)
        assert not appended.is_alive()  # into the next segment while the first is synced
        assert len(segments(sqlite_db)) == 2
    finally:
        release.set()
        sealing.join(10)
    monkeypatch.undo()
    assert sqlite_db.confirm_handed(timeout=5)
    assert inbox(sqlite_db) == [b"{first}", b"{next}"]
