"""Commits that need not wait for the disk: the audit record of a request that wrote
nothing (a query, a retrieve, a refusal).

Such a request still commits its record before its answer leaves, so a crash of the
gateway loses nothing. But waiting for that commit's flush to disk (an fsync on
SQLite with ``synchronous=FULL``, PostgreSQL's WAL flush) cost more than everything
else auditing does (``bench/README.md``), and a read has no data whose
acknowledgement depends on it. So these commits go through one dedicated connection
per process that does not wait for the flush:

* PostgreSQL: ``synchronous_commit = off`` on that connection, which also does not
  wait for the statement's answer (``pgpipeline.py``: written to the connection now,
  confirmed later). PostgreSQL's WAL writer flushes within three times
  ``wal_writer_delay`` (0.6 s by default), so a crash of the database server or of its
  machine loses at most the records of that last fraction of a second;
* SQLite: ``synchronous = NORMAL`` on that connection, and ``WalFlusher`` fsyncs the
  WAL within ``RELAXED_FLUSH_S`` (SQLite has no writer thread of its own). On a
  database file a read's record normally skips even that transaction: it is appended
  to the process's spool and moved into the database soon after (``spool.py``); this
  connection takes it when the spool cannot (a full disk), and in-memory databases.

Any FULL commit (a registration, an XUA replay token) flushes earlier ones too. A
replay token never goes this way: after a power cut a lost token would let its
replay through. The dedicated connection also skips the pool's checkout and its
pre-ping (a round trip on PostgreSQL); it is reopened after a fork, and PostgreSQL's
when it broke (a server restart), so a dropped connection costs no record.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import URL, Engine

from gateway.store.driver import driver_errors
from gateway.store.inbox import insert_inbox_rows
from gateway.store.pgpipeline import PipelinedWriter
from gateway.store.spool import RowSpool
from gateway.store.walsync import WalFlusher

log = logging.getLogger(__name__)


class RelaxedWriter:
    """``write(fn)``: ``fn`` writes one statement, committed relaxed; ``hand_over_rows``:
    audit inbox rows handed over the cheapest way the database allows."""

    def __init__(self, url: URL, engine: Engine, sqlite_setup: Callable[[Any], None],
                 move_rows: Callable[[list[bytes]], None]) -> None:
        """``move_rows``: inbox rows in one FULL commit (the spool's moves)."""
        self.url, self.engine, self._sqlite_setup = url, engine, sqlite_setup
        postgres = engine.dialect.name == "postgresql"
        self.pipeline = PipelinedWriter(url) if postgres else None
        self._memory = not postgres and url.database in (None, "", ":memory:")
        file = not postgres and not self._memory
        self.flusher = WalFlusher(url.database) if file else None  # type: ignore[arg-type]
        self.spool = RowSpool(f"{url.database}.spool", move_rows) if file else None
        self._lock = threading.Lock()
        self._driver: sqlite3.Connection | None = None
        self._pid = 0

    def write(self, fn: Callable[[Any], None]) -> None:
        """Run ``fn``, which executes one statement (several rows: one multi-row INSERT)
        in autocommit: that statement is the transaction, all or nothing, committed
        without waiting for the disk. On SQLite ``fn`` gets the dedicated ``sqlite3``
        connection, and the commit is done when this returns. On PostgreSQL it gets the
        ``PipelinedWriter`` (``send(sql, params)``): handed to the server when this
        returns, confirmed later. Raises the driver's errors as SQLAlchemy's, without
        their parameters (a record may name a patient)."""
        if self.pipeline is not None:
            fn(self.pipeline)
            return
        if self._memory:  # a private in-memory database (tests): the engine's connection
            with self.engine.connect() as conn:  # (isolation_level None: autocommit too)
                self._run(conn.connection.driver_connection, fn)
            return
        with self._lock:
            self._run(self._connection(), fn)
        if self.flusher is not None:
            self.flusher.soon()

    def hand_over_rows(self, rows: list[bytes]) -> None:
        """Audit inbox rows of a request that wrote nothing, with the kernel when this
        returns and in the inbox soon after: on a SQLite file appended to the process's
        spool (``spool.py``), else (or if the spool cannot take them) a relaxed
        ``write``, which on PostgreSQL is handed to the pipeline."""
        if self.spool is not None:
            try:
                self.spool.append(rows)
                return
            except OSError as exc:
                log.error("audit spool unavailable (%s): committing the record instead",
                          exc.strerror or type(exc).__name__)
        self.write(lambda driver: insert_inbox_rows(driver, rows))

    def handed(self) -> dict[str, int] | None:
        """What was handed over and is not in the database yet (``/healthz``): the
        spool's backlog, or PostgreSQL's unconfirmed and lost statements; None else."""
        if self.spool is not None:
            return self.spool.backlog()
        if self.pipeline is not None:
            return {"unconfirmed": self.pipeline.pending, "lost": self.pipeline.lost}
        return None

    def confirm(self, timeout: float) -> bool:
        """Wait until what was handed over is in the database (``Database.confirm_handed``)."""
        if self.spool is not None:
            return self.spool.settle(timeout)
        return self.pipeline is None or self.pipeline.confirm(timeout)

    def close(self) -> None:
        """Move what is spooled, close the connection (flushing SQLite's WAL first,
        confirming what was handed to PostgreSQL); a later write reopens."""
        if self.spool is not None:
            self.spool.close()
        if self.pipeline is not None:
            self.pipeline.close()
        with self._lock:
            if self.flusher is not None:
                self.flusher.close()
            if self._driver is not None and self._pid == os.getpid():
                self._driver.close()
            self._driver, self._pid = None, 0

    def _run(self, driver: Any, fn: Callable[[Any], None]) -> None:
        with driver_errors(driver.Error):
            fn(driver)  # autocommit: one statement, its own transaction

    def _connection(self) -> sqlite3.Connection:
        if self._driver is None or self._pid != os.getpid():  # new, or inherited by a fork
            driver = sqlite3.connect(self.url.database,  # type: ignore[arg-type]
                                     isolation_level=None, check_same_thread=False)
            self._sqlite_setup(driver)
            driver.execute("PRAGMA synchronous = NORMAL")
            self._driver, self._pid = driver, os.getpid()
        return self._driver
