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
"""

from __future__ import annotations

import hashlib
import threading
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, mapped_column

from gateway.store.db import Database
from gateway.store.models import Base, UTCDateTime
from profiles.ports import Clock

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
        self._lock = threading.Lock()
        self._next_purge: datetime | None = None

    def add_if_absent(self, key: str, expires_at: datetime) -> bool:
        """Remember ``key`` until ``expires_at``; False if it is remembered already."""
        now = self._now()
        params = {"token": _token(key), "expires_at": expires_at, "now": now}
        with self.database.engine.begin() as conn:
            added = conn.execute(self._insert, params).first() is not None
        if self._purge_due(now):
            self.purge(now)
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


def _token(key: str) -> str:
    """The key itself when it fits the column (the verifier's are 78 characters), else
    its digest, so an unexpected long key is still remembered rather than refused."""
    if len(key) <= TOKEN_LENGTH:
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()
