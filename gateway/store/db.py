"""The database handle: one SQLAlchemy engine per process, SQLite or PostgreSQL.

Every worker process builds its own ``Database`` from the same URL; the
database, not the process, holds the state, so several workers (and several
machines on one PostgreSQL) behave as one gateway. Creating a ``Database``
creates no tables: migrations do (``gateway.store.migrate``).

SQLite is configured for several processes sharing one file: WAL (readers do
not block the writer), a busy timeout (a writer waits for the lock instead of
failing), foreign keys on, and SQLAlchemy, not the sqlite3 module, emitting
BEGIN, so a transaction covers its reads too and DDL is transactional.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from gateway.store import withcommit
from gateway.store.driver import driver_errors, postgres_connect_args
from gateway.store.inbox import insert_inbox_rows
from gateway.store.relaxed import RelaxedWriter

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 10_000
# Execution option read by the SQLite "begin" hook: "IMMEDIATE" takes the write lock at BEGIN.
_BEGIN_OPTION = "gateway_sqlite_begin"


def normalize_url(url: str | URL) -> URL:
    """Parse ``url``; plain ``postgresql://`` means psycopg 3, the driver we ship."""
    u = make_url(url)
    backend, _, driver = u.drivername.partition("+")
    if backend == "postgres":  # the libpq spelling
        backend = "postgresql"
    if backend == "postgresql" and driver in ("", "psycopg"):
        return u.set(drivername="postgresql+psycopg")
    if backend == "sqlite" and driver in ("", "pysqlite"):
        return u
    raise ValueError(f"unsupported database URL {u.drivername!r}: use sqlite:// or postgresql://")


def is_sqlite(url: str | URL) -> bool:
    return normalize_url(url).get_backend_name() == "sqlite"


class Database:
    """An engine and a session factory for one database URL.

    ``pool_size`` is per process: size it to the worker's threads (gunicorn
    ``--threads``) so each request thread can hold a connection;
    ``max_overflow`` absorbs short bursts (background jobs, health checks).
    """

    def __init__(self, url: str, *, pool_size: int = 4, max_overflow: int = 4) -> None:
        self.url = normalize_url(url)
        if self.url.get_backend_name() == "sqlite":
            self.engine = _sqlite_engine(self.url)
        else:
            self.engine = _postgres_engine(self.url, pool_size, max_overflow)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._immediate_sessions = sessionmaker(
            self.engine.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"}),
            expire_on_commit=False,
        )
        _dispose_in_forked_children(self.engine)
        self._relaxed = RelaxedWriter(self.url, self.engine, set_up_sqlite, self._move_spooled)

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    def ping(self) -> bool:
        """True when ``SELECT 1`` works; False on any error (for /healthz, never raises)."""
        try:
            with self.engine.connect() as conn:
                return conn.execute(sa.text("SELECT 1")).scalar() == 1
        except Exception as exc:  # noqa: BLE001 - a health probe reports, it does not raise
            log.warning("database ping failed: %s", type(exc).__name__)
            return False

    @contextmanager
    def session(self, *, immediate: bool = False) -> Iterator[Session]:
        """A Session that commits when the block ends and rolls back if it raises.

        ``immediate=True`` is for read-then-write transactions: on SQLite it takes
        the write lock at BEGIN, so a concurrent writer makes this one wait for the
        busy timeout instead of failing with "database is locked" when it upgrades
        from reading to writing. It changes nothing on PostgreSQL.
        """
        factory = self._immediate_sessions if immediate else self._sessions
        with factory() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def execute_alone(self, sql: str, params: Mapping[str, Any]) -> list[tuple]:
        """PostgreSQL only: ``sql`` (psycopg placeholders, ``%(name)s``) as a transaction
        of its own, in autocommit on the driver's connection; durable when this returns.

        For the one-statement writes every partner request makes (its XUA replay token,
        with a query's audit record). Through SQLAlchemy, switching a pooled connection to
        autocommit and back and reading a text statement's result cost 0.3-0.6 ms of CPU
        more than the statement itself (bench/README.md, "Auditing cost"). The connection
        still comes from the pool, pre-pinged, and goes back out of autocommit.
        """
        if self.dialect != "postgresql":
            raise NotImplementedError("execute_alone is for PostgreSQL")
        with self.engine.connect() as conn:
            driver = conn.connection.driver_connection
            driver.autocommit = True
            try:
                with driver_errors(driver.Error, sql):
                    cursor = driver.execute(sql, params)
                    return cursor.fetchall() if cursor.description is not None else []
            finally:
                if driver.broken:  # the pool must not hand it out again
                    conn.invalidate()
                else:
                    driver.autocommit = False

    @contextmanager
    def driver_transaction(self) -> Iterator[sqlite3.Connection]:
        """SQLite only: the driver's connection in ``BEGIN IMMEDIATE`` ... ``COMMIT`` (rolled
        back if the block raises), for the same hot one-transaction writes that
        ``execute_alone`` serves on PostgreSQL: SQLAlchemy's begin, statement and commit
        machinery cost about 0.25 ms more than the statements (bench/README.md).
        Errors are raised as SQLAlchemy's, without their parameters."""
        if self.dialect != "sqlite":
            raise NotImplementedError("driver_transaction is for SQLite")
        with self.engine.connect() as conn:
            driver = conn.connection.driver_connection
            with driver_errors(sqlite3.Error):
                try:
                    driver.execute("BEGIN IMMEDIATE")
                    yield driver
                    driver.execute("COMMIT")
                except BaseException:
                    if driver.in_transaction:
                        driver.execute("ROLLBACK")
                    raise

    def hand_over_inbox_rows(self, rows: list[bytes]) -> None:
        """Audit inbox rows of a request that wrote nothing (``AuditQueue._rows_alone``),
        with the kernel when this returns, in the inbox soon after: on a SQLite file
        appended to this process's spool (``gateway/store/spool.py``), on PostgreSQL
        handed to the pipeline (``relaxed.py`` chooses)."""
        self._relaxed.hand_over_rows(rows)

    def _move_spooled(self, rows: list[bytes]) -> None:
        with self.driver_transaction() as driver:  # a FULL commit: on disk when it returns
            insert_inbox_rows(driver, rows)

    def handed(self) -> dict[str, int] | None:
        """What was handed over and is not in the database yet, for ``/healthz``: this
        process's unconfirmed PostgreSQL statements and those refused (lost); on a
        SQLite file, this process's unconfirmed rows and every process's spooled
        segments and bytes; None otherwise."""
        return self._relaxed.handed()

    def confirm_handed(self, timeout: float = 10.0) -> bool:
        """Wait until what was handed over is in the database: this process's pipelined
        statements on PostgreSQL confirmed; on a SQLite file, every process's spooled
        rows moved (each live process seals its segment within ``RELAXED_FLUSH_S``). A
        reader then sees them; False if ``timeout`` passed first."""
        return self._relaxed.confirm(timeout)

    def dispose(self) -> None:
        """Move what is spooled and confirm what was handed over, then close every
        pooled connection (at shutdown, or in tests) and the relaxed writer's."""
        self._relaxed.close()
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"


def _sqlite_engine(url: URL) -> Engine:
    memory = url.database in (None, "", ":memory:")
    kwargs: dict[str, Any] = {}
    if memory:
        # One shared connection: each new connection to :memory: is a new, empty database.
        kwargs = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
    engine = sa.create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (see "begin" below)
        set_up_sqlite(dbapi_conn, wal=not memory)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        mode = conn.get_execution_options().get(_BEGIN_OPTION, "")
        conn.exec_driver_sql(f"BEGIN {mode}".strip())

    return engine


def set_up_sqlite(dbapi_conn: Any, *, wal: bool = True) -> None:
    """Every SQLite connection: wait for locks, enforce foreign keys, and for a file, WAL.
    synchronous stays FULL (the default) because an acknowledged submission must
    survive a power cut (the relaxed writer alone sets NORMAL: ``relaxed.py``)."""
    cur = dbapi_conn.cursor()
    try:
        cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys = ON")
        if wal:
            _switch_to_wal(cur)
    finally:
        cur.close()


def _switch_to_wal(cur: Any) -> None:
    """``PRAGMA journal_mode = WAL``, waiting out a lock as the busy timeout would.

    Several processes opening a new file at once race to switch it; SQLite answers the
    loser "database is locked" at once, without calling its busy handler (seen with
    gunicorn workers migrating a new file together). The switch needs no lock once the
    file is in WAL mode, so retrying briefly settles it.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cur.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.005)


def _postgres_engine(url: URL, pool_size: int, max_overflow: int) -> Engine:
    engine = sa.create_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,  # a connection PostgreSQL dropped (restart, failover) is replaced
        pool_recycle=1800,  # and none outlives a proxy's idle timeout
        pool_timeout=10,
        connect_args=postgres_connect_args(url),
    )
    withcommit.install(engine)  # audit rows staged at a commit travel with its COMMIT
    return engine


def _dispose_in_forked_children(engine: Engine) -> None:
    """A forked child (gunicorn preloading the app) must not share its parent's sockets:
    drop the inherited pool without closing the parent's connections."""
    ref = weakref.ref(engine)

    def after_fork() -> None:
        inherited = ref()
        if inherited is not None:
            inherited.dispose(close=False)

    os.register_at_fork(after_in_child=after_fork)
