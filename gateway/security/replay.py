"""The XUA replay cache in the database, so every worker (and every machine on one
PostgreSQL) refuses an assertion or message it has already accepted once.

``SqlReplayCache.add_if_absent`` is one statement, atomic on both databases:

    INSERT INTO xua_replay_tokens (token, expires_at) VALUES (...)
    ON CONFLICT (token) DO UPDATE SET expires_at = excluded.expires_at
        WHERE xua_replay_tokens.expires_at <= :now
    RETURNING token

A new token inserts a row and RETURNING gives it back: True. A token still
remembered changes nothing and returns no row: False. (RETURNING, not the row
count, which psycopg reports as -1 here.) On PostgreSQL the second of two racing
inserts waits for the first to commit, then sees the conflict; SQLite
serialises writers.
A row whose expiry has passed counts as absent and is overwritten, so a purge
that has not run yet never turns a fresh token away. Expired rows are deleted
at most once per ``purge_interval`` per process.

For a request that writes no data the gate hands the keys to the request as
``PendingTokens`` without touching the table; the commit that makes its audit record
durable runs the same INSERT first (``add_in``) and drops the record if a key turned
out taken (``gateway/audit/group.py``), and the request is then refused as the gate
would have refused it. A replayed query so runs its handler, but its answer never
leaves (the sender already passed mutual TLS as a partner, who could as well ask
afresh), and the request saves the commit of its own the token would otherwise cost,
and the read that checking it at the gate cost (0.3-0.6 ms on PostgreSQL,
``bench/audit_served.py``).
"""

from __future__ import annotations

import functools
import hashlib
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.db import Database
from gateway.store.models import Base, UTCDateTime
from profiles.ports import Clock
from profiles.xua import ReplayKey, SecurityRefused

TOKEN_LENGTH = 128


class ReplayToken(Base):
    """A token key (assertion or message signature digest) and when it may be forgotten."""

    __tablename__ = "xua_replay_tokens"

    token: Mapped[str] = mapped_column(sa.String(TOKEN_LENGTH), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class _UtcClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def _statement(dialect: str) -> sa.Insert:
    table = ReplayToken.__table__
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(table).values(
        token=sa.bindparam("token", type_=sa.String()),
        expires_at=sa.bindparam("expires_at", type_=UTCDateTime()),
    )
    return stmt.on_conflict_do_update(
        index_elements=[table.c.token],
        set_={"expires_at": stmt.excluded.expires_at},
        where=table.c.expires_at <= sa.bindparam("now", type_=UTCDateTime()),
    ).returning(table.c.token)


class SqlReplayCache:
    """``profiles.xua.ReplayCache`` on the gateway's database (SQLite or PostgreSQL)."""

    def __init__(
        self,
        database: Database,
        *,
        clock: Clock | None = None,
        purge_interval: timedelta = timedelta(minutes=1),
    ) -> None:
        self.database = database
        self.clock = clock or _UtcClock()
        self.purge_interval = purge_interval
        self._insert = _statement(database.dialect)
        # A lone statement needs no transaction: on PostgreSQL it runs in autocommit on the
        # driver (``Database.execute_alone``), without BEGIN and COMMIT round trips.
        self._postgres = database.dialect == "postgresql"
        # SQLite on the driver too (``Database.driver_transaction``): its timestamps as
        # SQLAlchemy stores them, so the comparison with ``now`` stays a string compare.
        dialect = database.engine.dialect
        self._stamp = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
        self._lock = threading.Lock()
        self._next_purge: datetime | None = None

    def add_if_absent(self, key: str, expires_at: datetime) -> bool:
        """Remember ``key`` until ``expires_at``; False if it is remembered already."""
        now = self._now()
        if self._postgres:
            params = {"t0": _token(key), "e0": _aware(expires_at), "now": now}
            added = bool(self.database.execute_alone(_tokens_sql(1), params))
        else:
            with self.database.driver_transaction() as conn:
                added = self._add_sqlite(conn, key, expires_at, now)
        if self._purge_due(now):
            self.purge(now)
        return added

    def purge_if_due(self) -> None:
        """``purge`` at most once per ``purge_interval`` (tokens left to a request's own
        commit pass no ``add_if_absent`` that would do it)."""
        now = self._now()
        if self._purge_due(now):
            self.purge(now)

    def add_in(self, connection: sa.Connection, key: str, expires_at: datetime) -> bool:
        """``add_if_absent`` inside the caller's transaction: the key is remembered when
        that transaction commits (on PostgreSQL a racing insert of the same key waits
        for it, then sees it taken)."""
        params = {"token": _token(key), "expires_at": expires_at, "now": self._now()}
        return connection.execute(self._insert, params).first() is not None

    def add_with_rows(
        self, keys: tuple[ReplayKey, ...], table: sa.Table, rows: list[bytes]
    ) -> set[str]:
        """``keys`` as ``add_in`` inserts them, and ``rows`` into ``table.xml`` only if
        every key was fresh, in a transaction of their own on the driver (durable when
        this returns). On PostgreSQL one statement in autocommit: two round trips (pool
        pre-ping, statement) where BEGIN, two INSERTs and COMMIT took five. Returns the
        column values of the keys inserted."""
        if not self._postgres:
            return self._with_rows_sqlite(keys, table, rows)
        params: dict[str, object] = {"now": self._now()}
        # In one order everywhere, as a batch's guards insert them: two requests sharing a
        # token never wait on each other in a cycle.
        for i, k in enumerate(sorted(keys, key=lambda k: k.key)):
            params[f"t{i}"], params[f"e{i}"] = _token(k.key), _aware(k.expires_at)
        for i, row in enumerate(rows):
            params[f"r{i}"] = row
        sql = _with_rows_sql(table.name, len(keys), len(rows))
        return {token for (token,) in self.database.execute_alone(sql, params)}

    def _add_sqlite(self, conn: sqlite3.Connection, key: str, expires_at: datetime,
                    now: datetime) -> bool:
        stamp = self._stamp
        params = (_token(key), stamp(_aware(expires_at)), stamp(now))
        return bool(conn.execute(_SQLITE_TOKEN, params).fetchall())

    def _with_rows_sqlite(
        self, keys: tuple[ReplayKey, ...], table: sa.Table, rows: list[bytes]
    ) -> set[str]:
        """``add_with_rows`` in one SQLite transaction: every key, then the rows if all
        were fresh."""
        now = self._now()
        with self.database.driver_transaction() as conn:
            added = {_token(k.key) for k in sorted(keys, key=lambda k: k.key)
                     if self._add_sqlite(conn, k.key, k.expires_at, now)}
            if len(added) == len(keys) and rows:
                conn.executemany(f"INSERT INTO {table.name} (xml) VALUES (?)",
                                 [(row,) for row in rows])
        return added

    def purge(self, now: datetime | None = None) -> int:
        """Delete every expired token; return how many went."""
        table = ReplayToken.__table__
        stmt = sa.delete(table).where(
            table.c.expires_at <= sa.bindparam("now", type_=UTCDateTime())
        )
        with self.database.engine.begin() as conn:
            return conn.execute(stmt, {"now": now or self._now()}).rowcount

    def _now(self) -> datetime:
        now = self.clock.now()
        return now.astimezone(UTC) if now.tzinfo else now.replace(tzinfo=UTC)

    def _purge_due(self, now: datetime) -> bool:
        with self._lock:
            if self._next_purge is not None and now < self._next_purge:
                return False
            self._next_purge = now + self.purge_interval
            return True


@functools.lru_cache(maxsize=64)
def _tokens_sql(keys: int) -> str:
    """PostgreSQL: ``_statement``'s INSERT for ``keys`` tokens (t0/e0, t1/e1, ...), scalar
    parameters in psycopg's placeholders: arrays and ``unnest`` cost 0.3 ms more."""
    values = ", ".join(f"(%(t{i})s, %(e{i})s)" for i in range(keys))
    return f"""
        INSERT INTO xua_replay_tokens AS t (token, expires_at) VALUES {values}
        ON CONFLICT (token) DO UPDATE SET expires_at = excluded.expires_at
            WHERE t.expires_at <= %(now)s
        RETURNING token"""


@functools.lru_cache(maxsize=64)
def _with_rows_sql(inbox: str, keys: int, rows: int) -> str:
    """The tokens' INSERT, and ``rows`` records (r0, r1, ...) into ``inbox`` only if it
    inserted every token. A data-modifying CTE runs once, to completion, whether or not
    it is read; the second sees the first's RETURNING."""
    if not rows:
        return _tokens_sql(keys)
    values = ", ".join(f"(%(r{i})b::bytea)" for i in range(rows))
    return f"""
        WITH token AS ({_tokens_sql(keys)}
        ), staged AS (
            INSERT INTO {inbox} (xml)
            SELECT x FROM (VALUES {values}) AS v(x) WHERE (SELECT count(*) FROM token) = {keys}
        )
        SELECT token FROM token"""


_SQLITE_TOKEN = """
    INSERT INTO xua_replay_tokens (token, expires_at) VALUES (?, ?)
    ON CONFLICT (token) DO UPDATE SET expires_at = excluded.expires_at
        WHERE xua_replay_tokens.expires_at <= ?
    RETURNING token"""


def _aware(when: datetime) -> datetime:
    """``UTCDateTime``'s rule on the driver path: a naive expiry would be ambiguous."""
    if when.tzinfo is None:
        raise ValueError("naive datetime: pass an aware (UTC) value")
    return when


def _token(key: str) -> str:
    """The key itself when it fits the column (the verifier's are 78 characters), else
    its digest, so an unexpected long key is still remembered rather than refused."""
    if len(key) <= TOKEN_LENGTH:
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass
class PendingTokens:
    """Replay keys the gate verified and left to the request's own commit.

    A ``gateway.audit.group.Guard``: called with the connection of the transaction that
    commits the request's audit record (or its data), it inserts the keys first and
    says whether all were fresh. ``refused()`` is then the gate's refusal of the one
    found taken (log line and Security Alert included), for the pipeline to answer.
    """

    cache: SqlReplayCache
    keys: tuple[ReplayKey, ...]
    refusal: Callable[[str], SecurityRefused]  # the gate's, for a replayed key
    taken: str | None = None

    @property
    def order(self) -> str:
        """Batches insert in this order, so two of them never wait on each other."""
        return min(k.key for k in self.keys)

    def __call__(self, connection: sa.Connection) -> bool:
        for k in sorted(self.keys, key=lambda k: k.key):
            if not self.cache.add_in(connection, k.key, k.expires_at):
                self.taken = k.key
                return False
        return True

    def commit_with(self, table: sa.Table, rows: list[bytes]) -> bool | None:
        """The keys and ``rows`` in a transaction of their own, on the driver
        (``SqlReplayCache.add_with_rows``; None, for the shared transaction instead, when
        an expiry is naive); False if a key was taken."""
        if any(k.expires_at.tzinfo is None for k in self.keys):
            return None
        inserted = self.cache.add_with_rows(self.keys, table, rows)
        for k in sorted(self.keys, key=lambda k: k.key):
            if _token(k.key) not in inserted:
                self.taken = k.key
                return False
        return True

    def refused(self) -> SecurityRefused:
        return self.refusal(self.taken or "?")
