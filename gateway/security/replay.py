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
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
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
        # Every insert is one text on the driver's parameter style (``_tokens_sql``): on
        # PostgreSQL a lone one runs in autocommit (``Database.execute_alone``), on SQLite
        # in ``Database.driver_transaction``; SQLite compares timestamps as the strings
        # SQLAlchemy stores.
        self._postgres = database.dialect == "postgresql"
        dialect = database.engine.dialect
        self._stamp = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
        self._lock = threading.Lock()
        self._next_purge: datetime | None = None

    def add_if_absent(self, key: str, expires_at: datetime) -> bool:
        """Remember ``key`` until ``expires_at``; False if it is remembered already."""
        now = self._now()
        keys = (ReplayKey(key, expires_at),)
        if self._postgres:
            added = self.database.execute_alone(_tokens_sql(1, True), self._params(keys, now))
        else:
            with self.database.driver_transaction() as conn:
                added = conn.execute(_tokens_sql(1, False), self._params(keys, now)).fetchall()
        if self._purge_due(now):
            self.purge(now)
        return bool(added)

    def purge_if_due(self) -> None:
        """``purge`` at most once per ``purge_interval`` (tokens left to a request's own
        commit pass no ``add_if_absent`` that would do it)."""
        now = self._now()
        if self._purge_due(now):
            self.purge(now)

    def add_in(self, connection: sa.Connection, keys: tuple[ReplayKey, ...]) -> set[str]:
        """``keys`` as ``add_if_absent`` inserts them, inside the caller's transaction:
        remembered when that transaction commits (on PostgreSQL a racing insert of the same
        key waits for it, then sees it taken). Returns the tokens inserted."""
        result = connection.exec_driver_sql(_tokens_sql(len(keys), self._postgres),
                                            self._params(keys, self._now()))
        return set(result.scalars())

    def add_with_rows(
        self, keys: tuple[ReplayKey, ...], table: sa.Table, rows: list[bytes]
    ) -> set[str]:
        """``add_in`` for ``keys``, and ``rows`` into ``table.xml`` only if every key was
        fresh, in a transaction of their own on the driver (durable when this returns).
        On PostgreSQL one statement in autocommit: two round trips (pool pre-ping,
        statement) where BEGIN, two INSERTs and COMMIT took five. Returns the tokens
        inserted."""
        params = self._params(keys, self._now())
        if self._postgres:
            params.update((f"r{i}", row) for i, row in enumerate(rows))
            sql = _with_rows_sql(table.name, len(keys), len(rows))
            return {token for (token,) in self.database.execute_alone(sql, params)}
        with self.database.driver_transaction() as conn:
            added = {token for (token,) in conn.execute(_tokens_sql(len(keys), False), params)}
            if len(added) == len(keys) and rows:
                conn.executemany(f"INSERT INTO {table.name} (xml) VALUES (?)",
                                 [(row,) for row in rows])
        return added

    def _params(self, keys: tuple[ReplayKey, ...], now: datetime) -> dict[str, object]:
        """t0/e0, t1/e1, ... and now for ``_tokens_sql``, keys in sorted order everywhere
        (as a batch's guards run), so two requests sharing a token never wait on each
        other in a cycle. SQLite gets the timestamps as SQLAlchemy stores them."""
        stamp = (lambda when: when) if self._postgres else self._stamp
        params: dict[str, object] = {"now": stamp(now)}
        for i, k in enumerate(sorted(keys, key=lambda k: k.key)):
            if k.expires_at.tzinfo is None:  # ``UTCDateTime``'s rule: it would be ambiguous
                raise ValueError("naive datetime: pass an aware (UTC) value")
            params[f"t{i}"], params[f"e{i}"] = _token(k.key), stamp(k.expires_at)
        return params

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
def _tokens_sql(keys: int, postgres: bool) -> str:
    """The atomic insert of ``keys`` tokens (parameters t0/e0, t1/e1, ... and now) in the
    driver's parameter style: scalar parameters, as arrays and ``unnest`` cost 0.3 ms
    more on PostgreSQL."""
    mark = (lambda name: f"%({name})s") if postgres else (lambda name: f":{name}")
    values = ", ".join(f"({mark(f't{i}')}, {mark(f'e{i}')})" for i in range(keys))
    return f"""
        INSERT INTO xua_replay_tokens AS t (token, expires_at) VALUES {values}
        ON CONFLICT (token) DO UPDATE SET expires_at = excluded.expires_at
            WHERE t.expires_at <= {mark("now")}
        RETURNING token"""


@functools.lru_cache(maxsize=64)
def _with_rows_sql(inbox: str, keys: int, rows: int) -> str:
    """PostgreSQL: the tokens' insert, and ``rows`` records (r0, r1, ...) into ``inbox``
    only if it inserted every token. A data-modifying CTE runs once, to completion,
    whether or not it is read; the second sees the first's RETURNING."""
    if not rows:
        return _tokens_sql(keys, True)
    values = ", ".join(f"(%(r{i})b::bytea)" for i in range(rows))
    return f"""
        WITH token AS ({_tokens_sql(keys, True)}
        ), staged AS (
            INSERT INTO {inbox} (xml)
            SELECT x FROM (VALUES {values}) AS v(x) WHERE (SELECT count(*) FROM token) = {keys}
        )
        SELECT token FROM token"""


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
        return self._all_fresh(self.cache.add_in(connection, self.keys))

    def commit_with(self, table: sa.Table, rows: list[bytes]) -> bool:
        """The keys and ``rows`` in a transaction of their own, on the driver
        (``SqlReplayCache.add_with_rows``); False if a key was taken."""
        return self._all_fresh(self.cache.add_with_rows(self.keys, table, rows))

    def _all_fresh(self, inserted: set[str]) -> bool:
        for k in sorted(self.keys, key=lambda k: k.key):
            if _token(k.key) not in inserted:
                self.taken = k.key
                return False
        return True

    def refused(self) -> SecurityRefused:
        return self.refusal(self.taken or "?")
