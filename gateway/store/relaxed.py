"""Commits that need not wait for the disk: the audit record of a request that wrote
nothing (a query, a retrieve, a refusal).

Such a request still commits its record before its answer leaves, so a crash of the
gateway loses nothing. But waiting for that commit's flush to disk (an fsync on
SQLite with ``synchronous=FULL``, PostgreSQL's WAL flush) cost more than everything
else auditing does (``bench/README.md``), and a read has no data whose
acknowledgement depends on it. So these commits go through one dedicated connection
per process that does not wait for the flush:

* PostgreSQL: ``synchronous_commit = off`` on that connection (autocommit, one
  statement per write). PostgreSQL's WAL writer flushes within three times
  ``wal_writer_delay`` (0.6 s by default), so a crash of the database server or of its
  machine loses at most the records of that last fraction of a second;
* SQLite: ``synchronous = NORMAL`` on that connection, and ``WalFlusher`` fsyncs the
  WAL within ``RELAXED_FLUSH_S`` (SQLite has no writer thread of its own).

Any FULL commit (a registration, an XUA replay token) flushes earlier ones too. A
replay token never goes this way: after a power cut a lost token would let its
replay through. The dedicated connection also skips the pool's checkout and its
pre-ping (a round trip on PostgreSQL); it is reopened after a fork and, once, when
it was found broken (a server restart), so a dropped connection costs no record.
On PostgreSQL, ``hand_over`` goes one step further for a read's record: it does not
wait for the statement's answer (``pgpipeline.py``).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine

from gateway.store.driver import driver_errors, postgres_connect_args
from gateway.store.pgpipeline import PipelinedWriter
from gateway.store.walsync import WalFlusher


class RelaxedWriter:
    """``write(fn)``: ``fn(driver_connection)`` writes one statement, committed relaxed."""

    def __init__(self, url: URL, engine: Engine, sqlite_setup: Callable[[Any], None]) -> None:
        self.url, self.engine, self._sqlite_setup = url, engine, sqlite_setup
        self.postgres = engine.dialect.name == "postgresql"
        self._memory = not self.postgres and url.database in (None, "", ":memory:")
        file = not self.postgres and not self._memory
        self.flusher = WalFlusher(url.database) if file else None  # type: ignore[arg-type]
        self.pipeline = PipelinedWriter(url) if self.postgres else None
        self._lock = threading.Lock()
        self._driver: Any = None
        self._pid = 0

    def write(self, fn: Callable[[Any], None]) -> None:
        """Run ``fn``, which executes one statement (several rows: one multi-row INSERT)
        on the dedicated connection in autocommit: that statement is the transaction,
        all or nothing, committed without waiting for the disk. Raises the driver's
        errors as SQLAlchemy's, without their parameters (a record may name a patient)."""
        if self._memory:  # a private in-memory database (tests): the engine's connection
            with self.engine.connect() as conn:  # (isolation_level None: autocommit too)
                self._run(conn.connection.driver_connection, fn)
            return
        with self._lock:
            try:
                self._run(self._connection(), fn)
            except sa.exc.DBAPIError:
                if not getattr(self._driver, "broken", False):  # psycopg's: connection lost
                    raise
                self._forget()  # PostgreSQL dropped it (a restart): once more, on a new one
                self._run(self._connection(), fn)
        if self.flusher is not None:
            self.flusher.soon()

    def hand_over(self, fn: Callable[[Any], None]) -> None:
        """``write``, except that on PostgreSQL ``fn`` gets the ``PipelinedWriter``: its one
        statement is handed to the server without waiting for the answer, which is
        confirmed later (``pgpipeline.py``). On SQLite the commit is as cheap as that."""
        if self.pipeline is None:
            self.write(fn)
        else:
            fn(self.pipeline)

    def close(self) -> None:
        """Close the connection (flushing SQLite's WAL first, confirming PostgreSQL's
        handed-over statements); a later write reopens."""
        if self.pipeline is not None:
            self.pipeline.close()
        with self._lock:
            if self.flusher is not None:
                self.flusher.close()
            if self._driver is not None and self._pid == os.getpid():
                self._driver.close()
            self._forget()

    def _run(self, driver: Any, fn: Callable[[Any], None]) -> None:
        with driver_errors(driver.Error):
            fn(driver)  # autocommit: one statement, its own transaction

    def _connection(self) -> Any:
        if self._driver is None or self._pid != os.getpid():  # new, or inherited by a fork
            self._driver = self._open()
            self._pid = os.getpid()
        return self._driver

    def _open(self) -> Any:
        if self.postgres:
            import psycopg

            kwargs = {**postgres_connect_args(self.url), "autocommit": True,
                      "options": "-c synchronous_commit=off"}
            dsn = self.url.set(drivername="postgresql").render_as_string(hide_password=False)
            return psycopg.connect(dsn, **kwargs)
        driver = sqlite3.connect(self.url.database, isolation_level=None,  # type: ignore[arg-type]
                                 check_same_thread=False)
        self._sqlite_setup(driver)
        driver.execute("PRAGMA synchronous = NORMAL")
        return driver

    def _forget(self) -> None:
        self._driver, self._pid = None, 0
