"""Statements handed to PostgreSQL without waiting (``gateway/store/pgpipeline.py``): each
commits on its own, its outcome is confirmed later, and nothing is forgotten before
it is known: a broken connection's statements are sent again, a transient failure is
retried, a refused statement is counted and logged without its parameters."""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Iterator

import psycopg
import pytest
import sqlalchemy as sa

from gateway.store.db import Database
from gateway.store.pgpipeline import PipelinedWriter, Statement
from tests.gateway.audit.helpers import wait_for


@pytest.fixture
def db(pg_url: str) -> Iterator[Database]:
    database = Database(pg_url)
    with database.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE handed (v BYTEA UNIQUE)")
    yield database
    database.dispose()


@pytest.fixture
def writer(db: Database) -> PipelinedWriter:
    pipeline = db._relaxed.pipeline
    assert pipeline is not None
    return pipeline


def stored(db: Database) -> list[bytes]:
    with db.engine.connect() as conn:  # another connection: committed means visible
        return sorted(bytes(v) for v in conn.exec_driver_sql("SELECT v FROM handed").scalars())


def test_a_handed_statement_commits_and_is_confirmed_without_being_asked(
    db: Database, writer: PipelinedWriter
) -> None:
    writer.send("INSERT INTO handed VALUES ($1), ($2)", [b"one", b"it's \x00 two"])
    assert writer.confirmed.wait(5)  # the confirmer read its result
    assert writer.pending == 0
    assert stored(db) == [b"it's \x00 two", b"one"]


def test_many_in_flight_commit_in_order(db: Database, writer: PipelinedWriter) -> None:
    for i in range(200):
        writer.send("INSERT INTO handed VALUES ($1)", [b"%03d" % i])
    assert writer.confirm()
    assert stored(db) == [b"%03d" % i for i in range(200)]


def test_a_refused_statement_is_lost_loudly_and_the_rest_kept(
    db: Database, writer: PipelinedWriter, caplog: pytest.LogCaptureFixture
) -> None:
    writer.send("INSERT INTO handed VALUES ($1)", [b"patient-123"])
    writer.send("INSERT INTO handed VALUES ($1), ($2)", [b"three", b"patient-123"])  # taken
    writer.send("INSERT INTO handed VALUES ($1)", [b"four"])
    with caplog.at_level(logging.ERROR):
        assert writer.confirm()
    assert stored(db) == [b"four", b"patient-123"]  # all or nothing: 'three' went too
    assert writer.lost == 1
    assert db.handed() == {"unconfirmed": 0, "lost": 1}  # /healthz reports it
    assert "23505" in caplog.text and "LOST" in caplog.text
    assert "patient-123" not in caplog.text  # never the parameters


def test_a_broken_connection_s_statements_are_sent_again(
    db: Database, writer: PipelinedWriter
) -> None:
    writer.send("INSERT INTO handed VALUES ($1)", [b"first"])
    assert writer.confirm()
    pid = writer._pg.backend_pid  # type: ignore[union-attr]
    with db.engine.connect() as conn:
        conn.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
    writer.send("INSERT INTO handed VALUES ($1)", [b"second"])  # onto the dead socket
    writer.send("INSERT INTO handed VALUES ($1)", [b"third"])
    assert writer.confirm()
    assert stored(db) == [b"first", b"second", b"third"]
    assert writer._pg.backend_pid != pid  # type: ignore[union-attr]
    assert writer.lost == 0


def test_a_transient_failure_is_retried_until_it_commits(
    db: Database, writer: PipelinedWriter
) -> None:
    with db.engine.begin() as conn:  # fails once with a serialisation failure, then works
        conn.exec_driver_sql("CREATE SEQUENCE flaky_calls")
        conn.exec_driver_sql(
            "CREATE FUNCTION flaky() RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN "
            "IF nextval('flaky_calls') = 1 THEN RAISE EXCEPTION 'conflict' "
            "USING ERRCODE = '40001'; END IF; RETURN true; END $$")
    writer.send("INSERT INTO handed SELECT $1 WHERE flaky()", [b"retried"])
    assert writer.confirm()
    assert stored(db) == [b"retried"]
    assert writer.lost == 0


def test_while_the_database_is_down_sends_fail_fast_and_nothing_handed_is_forgotten(
    db: Database, writer: PipelinedWriter
) -> None:
    writer.send("INSERT INTO handed VALUES ($1)", [b"before"])
    assert writer.confirm()
    reachable, writer._conninfo = writer._conninfo, b"host=127.0.0.1 port=1"  # down
    pid = writer._pg.backend_pid  # type: ignore[union-attr]
    with db.engine.connect() as conn:
        conn.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
    writer.send("INSERT INTO handed VALUES ($1)", [b"in flight"])  # onto the dead socket
    wait_for(lambda: writer._pg is None, timeout=10, what="the confirmer to see it broken")
    started = time.monotonic()
    with pytest.raises(sa.exc.OperationalError):  # no connection takes it: the caller hears
        writer.send("INSERT INTO handed VALUES ($1)", [b"refused"])
    assert time.monotonic() - started < 1.0  # not held behind the confirmer's back-off
    assert writer.pending == 1  # 'in flight' waits to be sent again
    writer._conninfo = reachable  # the database is back
    assert writer.confirm()
    assert stored(db) == [b"before", b"in flight"]


def test_a_connection_lost_while_re_sending_forgets_none_of_the_rest(
    db: Database, writer: PipelinedWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer._resend = [Statement(b"INSERT INTO handed VALUES ($1)", (b"%d" % i,))
                      for i in range(3)]  # as after a broken connection
    real, calls = writer._write, []

    def drops_on_the_second(pg, statement) -> None:
        calls.append(statement)
        if len(calls) == 2:
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        real(pg, statement)

    monkeypatch.setattr(writer, "_write", drops_on_the_second)
    assert writer.confirm()
    assert stored(db) == [b"0", b"1", b"2"]


def test_no_server_to_hand_to_raises_without_parameters() -> None:
    database = Database("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
    try:
        with pytest.raises(sa.exc.OperationalError) as failed:
            database.hand_over_inbox_rows([b"secret-id"])  # a read's record, to the pipeline
        assert "secret-id" not in str(failed.value)
    finally:
        database.dispose()


def test_a_forked_worker_hands_over_on_its_own_connection(
    db: Database, writer: PipelinedWriter
) -> None:
    writer.send("INSERT INTO handed VALUES ($1)", [b"parent"])  # maybe not confirmed yet
    parent = writer._pg
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 2
        try:
            writer.send("INSERT INTO handed VALUES ($1)", [b"child"])
            confirmed = writer.confirm()
            code = 0 if confirmed and writer._pg is not parent else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    writer.send("INSERT INTO handed VALUES ($1)", [b"parent again"])
    assert writer.confirm()
    assert stored(db) == [b"child", b"parent", b"parent again"]


def test_closing_confirms_what_was_handed(db: Database, writer: PipelinedWriter) -> None:
    for i in range(20):
        writer.send("INSERT INTO handed VALUES ($1)", [b"%02d" % i])
    db._relaxed.close()  # as Database.dispose does at shutdown
    assert writer.pending == 0
    assert len(stored(db)) == 20


def _cork_state(writer: PipelinedWriter) -> int:
    assert writer._pg is not None
    with socket.socket(fileno=os.dup(writer._pg.socket)) as sock:
        return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_CORK)


@pytest.mark.skipif(not hasattr(socket, "TCP_CORK"), reason="TCP_CORK is Linux's")
def test_sends_wait_corked_in_the_kernel_and_a_pass_sends_them(
    db: Database, writer: PipelinedWriter, pg_url: str
) -> None:
    if sa.make_url(pg_url).host in (None, "") or sa.make_url(pg_url).host.startswith("/"):
        pytest.skip("a Unix socket: nothing to cork")
    writer.confirmer.delay = 60  # no pass but the one asked for below
    writer.send("INSERT INTO handed VALUES ($1)", [b"corked"])
    assert _cork_state(writer) == 1
    assert writer.confirm(5)  # the pass uncorks, reads the result, corks again
    assert stored(db) == [b"corked"]
    assert _cork_state(writer) == 1


def test_what_a_dead_process_handed_over_still_commits(db: Database, pg_url: str) -> None:
    pid = os.fork()
    if pid == 0:  # the child: hands a statement over and dies before any pass
        code = 2
        try:
            child = PipelinedWriter(sa.make_url(pg_url), delay=60)
            child.send("INSERT INTO handed VALUES ($1)", [b"handed, then killed"])
            code = 0
        finally:
            os._exit(code)  # no close, no confirm: only the kernel has the statement
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    wait_for(lambda: stored(db) == [b"handed, then killed"], timeout=10, what="the row")
