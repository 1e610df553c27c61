"""PostgreSQL writes handed to the server without waiting for its answer: the audit
record of a request that wrote nothing (a query, a retrieve, a refusal).

Such a record commits relaxed (``relaxed.py``: ``synchronous_commit = off``), and
what the request still paid was the round trip of its INSERT: 0.2-0.6 ms on this
project's machines, more than the rest of auditing (``bench/README.md``). On a
connection in libpq's pipeline mode the statement and its Sync are written to the
socket and the request goes on; the server runs the statement as a transaction of
its own whether or not anyone reads its result. So once ``send`` returns, the record
is with the database: a crash of the gateway after that loses nothing, as before.

What is no longer known when ``send`` returns is the outcome, so nothing is forgotten
until it is known. A confirmer thread reads the results within ``CONFIRM_S`` of a
send (and a send reads those that arrived when many are in flight, without waiting).
A statement the server refused, or whose connection broke before its result came, is
sent again on a new connection and this time waited for, with back-off while the
database is down, and the failure is logged (never the parameters: a record may
name a patient). The confirmer never holds the connection's lock through a back-off,
so while the database is down a send fails at once, as a waiting INSERT did, instead
of queueing behind it. A re-sent audit row is harmless: the indexer stores each
record once (same XML, same key).
A statement refused for what it is (a constraint, bad data) would be refused again:
it is logged as lost, loudly, and counted in ``lost``.

Over TCP the connection is *corked* (Linux ``TCP_CORK``): a send copies the statement
into the kernel's socket buffer and returns, and the confirmer uncorks it each pass,
so the server gets the statements of the last moments in one burst. A send then costs
a copy instead of a segment's way through the network stack, and the server wakes
once per pass instead of once per record: measured on a local PostgreSQL, the record's
hand-over 44 -> 19 us and the next request's own queries ~20 us less disturbed
(``bench/README.md``). A crash of the gateway still loses nothing: the kernel sends
what a socket holds when the process's sockets close, however it ends (tested with
``os._exit``); the kernel also sends a corked buffer on its own after 200 ms or once a
full segment is waiting. What it costs: another process's search sees a read's record
up to ``CONFIRM_S`` after the answer (this process's searches confirm first).
"""

from __future__ import annotations

import logging
import os
import select
import socket
import threading
import time
import weakref
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from psycopg import pq
from psycopg.conninfo import make_conninfo
from sqlalchemy.engine import URL

from gateway.store.driver import driver_errors, postgres_connect_args
from gateway.store.soon import Soon

log = logging.getLogger(__name__)

CONFIRM_S = 0.05  # results are read at most this long after a send
READ_AT = 32  # a send reads the results that arrived once this many are in flight
BYTEA = 17  # the parameters' type: every statement sent here writes bytes
RETRY_S = (0.1, 0.5, 2.0, 5.0)  # back-off while the database cannot take a re-send
PASS_S = 1.0  # the longest the confirmer holds the lock waiting for results
# SQLSTATE classes worth a re-send: connection lost, server shutting down or out of
# resources, a serialisation conflict. Others (constraints, bad data) fail again.
TRANSIENT = ("08", "53", "57", "40", "58")


_ALL: weakref.WeakSet[PipelinedWriter] = weakref.WeakSet()


@dataclass(frozen=True)
class Statement:
    sql: bytes  # ``$1``-style placeholders
    params: tuple[bytes, ...]


class PipelinedWriter:
    """``send(sql, params)``: one statement, its own transaction, handed over now and
    confirmed later (see the module docstring)."""

    def __init__(self, url: URL, delay: float = CONFIRM_S) -> None:
        dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._conninfo = make_conninfo(
            dsn, **postgres_connect_args(url), options="-c synchronous_commit=off"
        ).encode()
        self.lost = 0  # statements refused for what they are: logged, never committed
        self.confirmed = threading.Event()  # set whenever nothing is left unconfirmed
        self._lock = threading.Lock()
        self._pg: pq.abc.PGconn | None = None
        self._pid = 0
        self._inflight: deque[Statement] = deque()  # sent, result not read, in order
        self._failed = ""  # the SQLSTATE of the oldest in-flight statement's error
        self._resend: list[Statement] = []  # outcome unknown or transient failure
        self._corked = False  # the connection's socket holds sends until a pass
        # The confirmer (its ``delay``: results are read at most this long after a send);
        # it never holds the lock through a back-off (``_confirm_pass``).
        self.confirmer = Soon(self._confirm_pass, delay, "pg-pipeline-confirmer",
                               pauses=RETRY_S)
        _ALL.add(self)

    @property
    def pending(self) -> int:
        """Statements whose commit is not confirmed yet."""
        return len(self._inflight) + len(self._resend)

    def send(self, sql: str, params: Sequence[bytes]) -> None:
        """Hand ``sql`` to the server, committed relaxed and on its own; returns once it
        is written to the connection. Raises (as SQLAlchemy's error, no parameters)
        only when no connection could take it."""
        statement = Statement(sql.encode(), tuple(params))
        with self._lock, driver_errors(psycopg.Error):
            try:
                pg = self._connection()
                if len(self._inflight) >= READ_AT:
                    self._uncork(pg)
                    self._read_ready(pg)
                self._write(pg, statement)
            except psycopg.Error:  # lost (a server restart): once more, on a new one
                self._broken()
                self._write(self._connection(), statement)
            self._inflight.append(statement)
            if self.confirmed.is_set():  # clear() and set() take a lock and notify
                self.confirmed.clear()
        self.confirmer.ask()

    def confirm(self, timeout: float = 10.0) -> bool:
        """Wait until every statement sent so far is confirmed committed (re-sending what
        needs it); False if that did not happen within ``timeout``. The lock is held
        for one pass at a time, never through a back-off."""
        deadline = time.monotonic() + timeout
        attempt = 0
        while True:
            with self._lock:
                if self._settle_once(deadline):
                    return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(_pause(attempt), left))
            attempt += 1

    def close(self) -> None:
        """Stop the confirmer, confirm what was sent, close the connection."""
        self.confirmer.close()  # (its last pass reads what has arrived)
        if self.pending and not self.confirm(10.0):  # (a fork's child has none)
            log.error("%d relaxed statement(s) unconfirmed at close", self.pending)
        with self._lock:
            if self._pg is not None and self._pid == os.getpid():
                self._pg.finish()
            self._pg, self._pid = None, 0

    # -- the connection ------------------------------------------------------------

    def _connection(self) -> pq.abc.PGconn:
        if self._pg is None or self._pid != os.getpid():  # new, or inherited by a fork
            pg = pq.PGconn.connect(self._conninfo)
            if pg.status != pq.ConnStatus.OK:
                message = pg.get_error_message()
                pg.finish()
                raise psycopg.OperationalError(f"connection failed: {message}")
            pg.enter_pipeline_mode()
            pg.nonblocking = 1
            self._corked = _cork(pg.socket, 1)
            self._pg, self._pid, self._failed = pg, os.getpid(), ""
        return self._pg

    def _uncork(self, pg: pq.abc.PGconn) -> None:
        """Send what the kernel holds for the server now (corked again for the next)."""
        if self._corked:
            _cork(pg.socket, 0, 1)

    def _broken(self) -> None:
        """The connection failed: what it had in flight may or may not have committed."""
        self._resend += self._inflight
        self._inflight.clear()
        if self._pg is not None and self._pid == os.getpid():
            self._pg.finish()
        self._pg, self._pid = None, 0

    def _write(self, pg: pq.abc.PGconn, statement: Statement) -> None:
        n = len(statement.params)
        pg.send_query_params(statement.sql, statement.params, [BYTEA] * n, [1] * n)
        pg.pipeline_sync()
        while pg.flush():  # 1: the socket is full; wait until it takes more
            select.select([], [pg.socket], [], 1.0)

    # -- results ---------------------------------------------------------------------

    def _read_ready(self, pg: pq.abc.PGconn) -> None:
        """Take every result that has arrived, without waiting."""
        if not self._inflight:
            return
        pg.consume_input()
        while self._inflight and not pg.is_busy():
            result = pg.get_result()
            if result is None:  # the end of one statement's results
                continue
            status = result.status
            if status == pq.ExecStatus.PIPELINE_SYNC:  # its transaction is over
                done = self._inflight.popleft()
                if self._failed:
                    self._refused(done, self._failed)
                    self._failed = ""
            elif status in (pq.ExecStatus.FATAL_ERROR, pq.ExecStatus.PIPELINE_ABORTED):
                code = result.error_field(pq.DiagnosticField.SQLSTATE) or b"?????"
                self._failed = code.decode("ascii", "replace")
        if not self.pending:
            self.confirmed.set()

    def _refused(self, statement: Statement, sqlstate: str) -> None:
        if sqlstate[:2] in TRANSIENT:
            log.warning("a relaxed statement failed (SQLSTATE %s); sending it again", sqlstate)
            self._resend.append(statement)
        else:
            self.lost += 1
            log.error("a relaxed statement was refused (SQLSTATE %s): an audit record is "
                      "LOST", sqlstate)

    def _settle_once(self, deadline: float) -> bool:
        """Under the lock, one pass: re-send what needs it, read results until none is
        in flight or ``deadline``; True when nothing is left unconfirmed."""
        try:
            while self._resend:  # one at a time: a failure keeps the rest listed
                self._write(self._connection(), self._resend[0])
                self._inflight.append(self._resend.pop(0))
            if self._inflight:
                self._uncork(self._connection())
            while self._inflight:
                pg = self._connection()
                self._read_ready(pg)
                left = deadline - time.monotonic()
                if not self._inflight or left <= 0:
                    break
                select.select([pg.socket], [], [], left)
        except psycopg.Error as exc:
            self._broken()
            log.error("%d audit record(s) not confirmed yet (%s); they will be sent again",
                      self.pending, type(exc).__name__)
        if self.pending:
            return False
        self.confirmed.set()
        return True

    # -- the confirmer -------------------------------------------------------------

    def _confirm_pass(self) -> bool:
        """One pass under the lock (at most ``PASS_S``); False to be retried with back-off."""
        with self._lock:
            return self._settle_once(time.monotonic() + PASS_S)


def _cork(fd: int, *states: int) -> bool:
    """Set TCP_CORK on libpq's socket to each of ``states`` in turn (through a duplicate
    descriptor: the socket is libpq's); False where there is none to set (a Unix
    socket, not Linux)."""
    if not hasattr(socket, "TCP_CORK"):
        return False
    try:
        with socket.socket(fileno=os.dup(fd)) as sock:  # closing it closes the duplicate
            if sock.family not in (socket.AF_INET, socket.AF_INET6):
                return False
            for state in states:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, state)
    except OSError:  # a socket gone bad: reading it fails next, and the kernel sends
        return False  # a corked buffer on its own within 200 ms anyway
    return True


def _pause(attempt: int) -> float:
    return RETRY_S[min(attempt, len(RETRY_S) - 1)]


def _after_fork_in_child() -> None:
    # The parent's connection, thread, lock and statements are the parent's: a child
    # starts afresh (and never finishes the parent's connection: psycopg checks the pid).
    # (``Soon`` restarts the confirmer's thread in the child.)
    for writer in list(_ALL):
        writer._lock = threading.Lock()
        writer._pg, writer._pid = None, 0
        writer._inflight, writer._resend, writer._failed = deque(), [], ""


os.register_at_fork(after_in_child=_after_fork_in_child)
