"""The SQL replay cache on SQLite and PostgreSQL (``database_url``): atomic, shared by
every worker, expired tokens forgotten."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from gateway.security.replay import ReplayToken, SqlReplayCache
from gateway.store import migrate
from gateway.store.db import Database
from tests.profiles.xua.fixed_time import NOW, FixedClock

MIN = timedelta(minutes=1)


def rows(db: Database) -> dict[str, object]:
    with db.engine.connect() as conn:
        table = ReplayToken.__table__
        return {r.token: r.expires_at for r in conn.execute(sa.select(table))}


def test_a_token_is_accepted_once(db, clock):
    cache = SqlReplayCache(db, clock=clock)
    assert cache.add_if_absent("xua:assertion:a", NOW + 10 * MIN) is True
    assert cache.add_if_absent("xua:assertion:a", NOW + 10 * MIN) is False
    assert cache.add_if_absent("xua:assertion:b", NOW + 10 * MIN) is True
    assert rows(db) == {"xua:assertion:a": NOW + 10 * MIN, "xua:assertion:b": NOW + 10 * MIN}


def test_another_worker_sees_the_same_tokens(db, database_url, clock):
    other = Database(database_url)
    try:
        assert SqlReplayCache(db, clock=clock).add_if_absent("k", NOW + MIN)
        assert not SqlReplayCache(other, clock=clock).add_if_absent("k", NOW + MIN)
    finally:
        other.dispose()


def test_an_expired_token_counts_as_absent_before_any_purge(db):
    clock = FixedClock(NOW)
    cache = SqlReplayCache(db, clock=clock, purge_interval=timedelta(days=1))
    assert cache.add_if_absent("k", NOW + MIN)
    clock.at = NOW + MIN  # expires_at reached: forgotten
    assert cache.add_if_absent("k", NOW + 5 * MIN) is True
    assert rows(db) == {"k": NOW + 5 * MIN}  # the new expiry, not the old one
    clock.at = NOW + 2 * MIN
    assert cache.add_if_absent("k", NOW + 9 * MIN) is False
    assert rows(db) == {"k": NOW + 5 * MIN}  # a refused replay changes nothing


def test_expired_rows_are_purged_at_most_once_per_interval(db):
    clock = FixedClock(NOW)
    cache = SqlReplayCache(db, clock=clock, purge_interval=10 * MIN)
    for i in range(3):
        cache.add_if_absent(f"old-{i}", NOW + MIN)  # the first call purged (nothing)
    clock.at = NOW + 2 * MIN  # old-* expired, but the next purge is due at NOW + 10 min
    cache.add_if_absent("fresh", NOW + 30 * MIN)
    assert len(rows(db)) == 4
    clock.at = NOW + 10 * MIN
    cache.add_if_absent("fresh-2", NOW + 30 * MIN)
    assert set(rows(db)) == {"fresh", "fresh-2"}
    assert cache.purge(NOW + 31 * MIN) == 2
    assert rows(db) == {}


def test_racing_workers_see_exactly_one_success(db, database_url, clock):
    """Eight threads, each with its own engine (as separate processes would have),
    insert the same token at once: exactly one is told it was new."""
    databases = [Database(database_url, pool_size=1) for _ in range(8)]
    caches = [SqlReplayCache(d, clock=clock) for d in databases]
    start = threading.Barrier(len(caches))
    results: list[bool] = []
    errors: list[BaseException] = []

    def worker(cache: SqlReplayCache) -> None:
        start.wait()
        try:
            for i in range(20):
                results.append(cache.add_if_absent(f"race-{i}", NOW + MIN))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(c,)) for c in caches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for d in databases:
        d.dispose()
    assert errors == []
    assert len(results) == 8 * 20 and results.count(True) == 20


def test_a_key_longer_than_the_column_is_remembered_by_its_digest(db, clock):
    cache = SqlReplayCache(db, clock=clock)
    long_key = "x" * 500
    assert cache.add_if_absent(long_key, NOW + MIN)
    assert not cache.add_if_absent(long_key, NOW + MIN)
    assert cache.add_if_absent(long_key + "y", NOW + MIN)
    assert all(len(t) <= 128 and t.startswith("sha256:") for t in rows(db))


def test_the_migration_makes_and_removes_the_table(database_url):
    migrate.upgrade(database_url, "0004_xua_replay")
    db = Database(database_url)
    try:
        inspector = sa.inspect(db.engine)
        assert "xua_replay_tokens" in inspector.get_table_names()
        assert inspector.get_pk_constraint("xua_replay_tokens")["name"] == "pk_xua_replay_tokens"
        indexes = {i["name"]: i["column_names"] for i in inspector.get_indexes("xua_replay_tokens")}
        assert indexes == {"ix_xua_replay_tokens_expires_at": ["expires_at"]}
        migrate.downgrade(database_url, "0003_patients")
        assert "xua_replay_tokens" not in sa.inspect(db.engine).get_table_names()
    finally:
        db.dispose()


def test_a_naive_expiry_is_refused(db, clock):
    # SQLite through UTCDateTime (wrapped by SQLAlchemy), PostgreSQL on the driver path.
    with pytest.raises((sa.exc.StatementError, ValueError), match="naive"):
        SqlReplayCache(db, clock=clock).add_if_absent("k", NOW.replace(tzinfo=None))


def test_tokens_with_rows_go_in_together_or_the_rows_stay_out(db, clock):
    """A query's tokens and audit record in one transaction of their own (the driver
    path): a taken token keeps the rows out; the fresh tokens are remembered."""
    from gateway.audit.models import AuditInboxEntry
    from profiles.xua import ReplayKey

    cache = SqlReplayCache(db, clock=clock)
    inbox = AuditInboxEntry.__table__
    first = (ReplayKey("xua:b", NOW + MIN), ReplayKey("xua:a", NOW + MIN))
    assert cache.add_with_rows(first, inbox, [b"<one/>", b"<two/>"]) == {"xua:a", "xua:b"}
    again = (ReplayKey("xua:c", NOW + MIN), ReplayKey("xua:b", NOW + MIN))
    assert cache.add_with_rows(again, inbox, [b"<three/>"]) == {"xua:c"}
    assert cache.add_with_rows((ReplayKey("xua:d", NOW + MIN),), inbox, []) == {"xua:d"}
    with db.engine.connect() as conn:
        stored = conn.execute(sa.select(inbox.c.xml).order_by(inbox.c.id)).scalars().all()
    assert stored == [b"<one/>", b"<two/>"]
    assert set(rows(db)) == {"xua:a", "xua:b", "xua:c", "xua:d"}
