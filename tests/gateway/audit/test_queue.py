"""The durable queue: a record commits or rolls back with the caller's own data."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from gateway.audit.models import PENDING, AuditDelivery, AuditEntry, AuditTerm
from gateway.audit.queue import AuditQueue, destination_key
from gateway.config import AuditDestination
from gateway.store import migrate
from gateway.store.db import Database
from gateway.store.models import Base, Blob
from tests.gateway.audit.helpers import query_message

REPO = Path(__file__).resolve().parents[3]
DESTS = (AuditDestination("tls", "audit.example.org", 6514), AuditDestination("udp", "::1", 514))


def count(db: Database, model) -> int:
    with db.session() as s:
        return s.scalar(sa.select(sa.func.count()).select_from(model))


def test_the_audit_tables_match_their_migration(database_url: str, db) -> None:
    """Models and 0002_audit agree (other tables are other migrations' business)."""
    with migrate.locked_connection(database_url) as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diffs = compare_metadata(context, Base.metadata)
    assert [d for d in diffs if "audit_" in str(d)] == []


def test_a_rolled_back_transaction_leaves_no_record(db) -> None:
    queue = AuditQueue(db, DESTS)
    with pytest.raises(RuntimeError), db.session() as s:
        s.add(Blob(sha1="a" * 40, size=1))
        queue.enqueue(s, query_message(1))
        raise RuntimeError("the transaction failed")
    assert (count(db, Blob), count(db, AuditEntry), count(db, AuditDelivery)) == (0, 0, 0)
    assert count(db, AuditTerm) == 0


def test_a_committed_transaction_leaves_its_record_owed_to_each_destination(db) -> None:
    queue = AuditQueue(db, DESTS)
    with db.session() as s:
        s.add(Blob(sha1="a" * 40, size=1))
        record = queue.enqueue(s, query_message(1))
    assert (count(db, Blob), count(db, AuditEntry)) == (1, 1)
    with db.session() as s:
        entry = s.get(AuditEntry, record.record_id)
        assert entry.xml == record.xml and entry.origin == "local"
        assert (entry.event_type, entry.outcome, entry.source_address) == ("ITI-38", 0, "10.1.2.3")
        terms = set(s.execute(sa.select(AuditTerm.kind, AuditTerm.value)).all())
        assert terms == {("patient", "P-1^^^&1.2.840.99&ISO"), ("user", "Dr. Jane Smith")}
        rows = s.execute(sa.select(AuditDelivery.destination, AuditDelivery.state)).all()
    assert sorted(rows) == sorted((destination_key(d), PENDING) for d in DESTS)
    assert destination_key(DESTS[1]) == "udp://[::1]:514"


def test_the_same_record_twice_is_stored_once_and_does_not_break_the_transaction(db) -> None:
    queue = AuditQueue(db, DESTS[:1])
    message = query_message(7)
    with db.session() as s:
        first = queue.enqueue(s, message)
        second = queue.enqueue(s, message)
        s.add(Blob(sha1="b" * 40, size=2))
    assert first.record_id == second.record_id
    assert (count(db, AuditEntry), count(db, AuditDelivery), count(db, Blob)) == (1, 1, 1)
    queue.enqueue_now(message)
    assert count(db, AuditEntry) == 1


def test_without_destinations_records_are_kept_for_search_only(db) -> None:
    AuditQueue(db).enqueue_now(query_message(1))
    assert (count(db, AuditEntry), count(db, AuditDelivery)) == (1, 0)


def test_backlog_counts_pending_records_per_destination(db) -> None:
    queue = AuditQueue(db, DESTS)
    assert queue.backlog()["pending"] == 0
    with db.session() as s:
        queue.enqueue_many(s, (query_message(i) for i in range(3)))
    report = queue.backlog()
    assert report["pending"] == 6
    for dest in DESTS:
        entry = report["destinations"][destination_key(dest)]
        assert entry["pending"] == 3 and entry["retrying"] == 0
        assert entry["oldest_age_seconds"] >= 0


def test_a_committed_record_survives_the_process_dying(database_url: str, db) -> None:
    """The process is killed right after commit (os._exit: no cleanup, no flush)."""
    script = textwrap.dedent(
        f"""
        import os
        from tests.gateway.audit.helpers import query_message
        from gateway.audit.queue import AuditQueue
        from gateway.config import AuditDestination
        from gateway.store.db import Database
        db = Database({database_url!r})
        queue = AuditQueue(db, [AuditDestination("tls", "audit.example.org", 6514)])
        with db.session() as s:
            queue.enqueue(s, query_message(99))
        os._exit(9)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, timeout=120)
    assert proc.returncode == 9
    fresh = Database(database_url)
    try:
        assert count(fresh, AuditEntry) == 1
        assert AuditQueue(fresh, DESTS[:1]).backlog()["pending"] == 1
    finally:
        fresh.dispose()
