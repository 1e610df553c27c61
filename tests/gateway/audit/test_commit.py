"""A data transaction's audit record commits with its data (issue 7: "written to a durable
queue in the database within the transaction's own commit"), built from the handler's
notes just before the commit; what writes no data is staged by ``finish``; either way a
search finds the record at once, indexed by the sender yet or not."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.audit.hook import Auditor, RequestFacts
from gateway.audit.models import AuditEntry, AuditInboxEntry
from gateway.audit.queue import AuditQueue
from gateway.audit.search import AuditQuery, search
from gateway.store.db import Database
from gateway.store.models import Blob
from profiles.atna.events import Endpoint
from profiles.atna.facts import Feed
from tests.gateway.audit.helpers import SOURCE, query_message

REPO = Path(__file__).resolve().parents[3]
FACTS = RequestFacts("req-1", "https://gw.example.org/xds/registry", "10.9.8.7", "CN=partner")
PATIENT = "P-7^^^&1.2.840.99&ISO"


@pytest.fixture
def auditor(db: Database) -> Auditor:
    return Auditor(AuditQueue(db), SOURCE, node=Endpoint("ihe-gateway", host="gw.example.org"))


def count(db: Database, model) -> int:
    with db.session() as s:
        return s.scalar(sa.select(sa.func.count()).select_from(model))


def indexed(db: Database) -> list[AuditEntry]:
    AuditQueue(db).index_all()
    with db.session() as s:
        return list(s.scalars(sa.select(AuditEntry).order_by(AuditEntry.event_time)))


def register(auditor: Auditor):
    """A registry request as the pipeline and ITI-42's parse leave it before the port."""
    audit = auditor.request(FACTS)
    audit.known(transaction="ITI-42", message_id="urn:uuid:m-1")
    audit.note(submission_set_id="1.2.3.4.99", patient_ids=[PATIENT])
    return audit


def test_the_record_is_in_the_data_commit_before_finish(db, auditor) -> None:
    audit = register(auditor)
    with db.session() as s, audit.bind(s):
        s.add(Blob(sha1="c" * 40, size=3))
        assert count(db, AuditInboxEntry) == 0  # not before the commit
    assert (count(db, Blob), count(db, AuditInboxEntry)) == (1, 1)
    audit.finish(transaction="ITI-42", outcome="success")
    (entry,) = indexed(db)  # finish added nothing: the commit carried the record
    assert (entry.event_id, entry.event_type, entry.outcome) == ("110107", "ITI-42", 0)
    assert entry.source_address == "10.9.8.7"


def test_a_crash_after_the_data_commit_keeps_its_record(database_url: str, db) -> None:
    """The process dies right after the data commit, before ``finish`` (os._exit)."""
    script = textwrap.dedent(
        f"""
        import os
        from gateway.audit.hook import Auditor
        from gateway.audit.queue import AuditQueue
        from gateway.store.db import Database
        from gateway.store.models import Blob
        from profiles.atna.events import Endpoint
        from tests.gateway.audit.helpers import SOURCE, query_message
        from tests.gateway.audit.test_commit import register
        db = Database({database_url!r})
        audit = register(Auditor(AuditQueue(db), SOURCE, node=Endpoint("ihe-gateway")))
        with db.session() as s, audit.bind(s):
            s.add(Blob(sha1="d" * 40, size=4))
        os._exit(9)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, timeout=120)
    assert proc.returncode == 9
    assert count(db, Blob) == 1
    (entry,) = indexed(db)
    assert (entry.event_type, entry.outcome) == ("ITI-42", 0)


def test_a_rolled_back_data_commit_leaves_only_the_failure_record(db, auditor) -> None:
    audit = register(auditor)
    with pytest.raises(RuntimeError), db.session() as s, audit.bind(s):
        s.add(Blob(sha1="c" * 40, size=3))
        raise RuntimeError("registry failure")
    assert (count(db, Blob), count(db, AuditInboxEntry)) == (0, 0)
    audit.finish(transaction="ITI-42", outcome="error", reason="XDSRegistryError")
    (entry,) = indexed(db)
    assert (entry.event_type, entry.outcome) == ("ITI-42", 4)


def test_a_request_failing_after_its_data_committed_leaves_both_records(db, auditor) -> None:
    audit = register(auditor)
    with db.session() as s, audit.bind(s):
        s.add(Blob(sha1="c" * 40, size=3))
    audit.finish(transaction="ITI-42", outcome="error", reason="remote registry failed")
    assert sorted(e.outcome for e in indexed(db)) == [0, 4]


def test_a_merge_over_two_commits_is_recorded_once_and_later_feeds_too(db, auditor) -> None:
    audit = auditor.request(FACTS)
    audit.note(transaction="ITI-8", feed=Feed("A40", "P-2^^^&1.2&ISO", ("P-1^^^&1.2&ISO",)))
    for n in range(2):  # the index merges in two transactions
        with db.session() as s, audit.bind(s):
            s.add(Blob(sha1=str(n) * 40, size=n))
    assert sorted(e.action for e in indexed(db)) == ["D", "U"]  # with the first commit
    audit.note(feed=Feed("A01", "P-3^^^&1.2&ISO"))
    with db.session() as s, audit.bind(s):
        s.add(Blob(sha1="9" * 40, size=9))
    audit.finish(transaction=None, outcome="success")
    assert sorted(e.action for e in indexed(db)) == ["C", "D", "U"]


def test_a_query_is_staged_by_finish_and_found_by_search_before_indexing(db, auditor) -> None:
    audit = auditor.request(FACTS)
    audit.known(transaction="ITI-38", message_id="urn:uuid:q-1")
    audit.note(patient_ids=[PATIENT], query=b"<AdhocQueryRequest/>", query_id="urn:uuid:q")
    audit.finish(transaction="ITI-38", outcome="success")
    assert db.confirm_handed()  # a read's record: spooled (SQLite) or pipelined (PostgreSQL)
    assert (count(db, AuditInboxEntry), count(db, AuditEntry)) == (1, 0)
    assert AuditQueue(db).backlog()["unindexed"] == 1
    criteria = AuditQuery(patient="P-7", event="ITI-38", outcome="success", user="anonymous")
    (found,) = search(db, criteria)  # the search indexes the inbox first
    assert found.entry.event_type == "ITI-38" and found.patients == [PATIENT]
    assert count(db, AuditInboxEntry) == 0


def test_a_commit_inside_the_bound_block_does_not_lose_later_records(db, auditor) -> None:
    audit = register(auditor)
    with db.session() as s, audit.bind(s):
        s.add(Blob(sha1="c" * 40, size=3))
        s.commit()  # the notes' record goes with this commit
        audit.record(query_message(1))  # and this message with the next one
        s.add(Blob(sha1="e" * 40, size=5))
    audit.finish(transaction="ITI-42", outcome="success")
    assert sorted(e.event_type for e in indexed(db)) == ["ITI-38", "ITI-42"]


def test_a_port_that_does_not_bind_still_commits_the_record_with_its_data(db, auditor) -> None:
    audit = register(auditor)
    with audit.serving():  # the handler runs: the pipeline wraps it so
        with db.session() as s:
            s.scalar(sa.select(sa.func.count()).select_from(Blob))  # a read takes nothing
        assert count(db, AuditInboxEntry) == 0
        with db.session() as s:  # no bind: the registry, the patient index, ...
            s.add(Blob(sha1="c" * 40, size=3))
        assert (count(db, Blob), count(db, AuditInboxEntry)) == (1, 1)
    with db.session() as s:  # once served, this thread's writes are not the request's
        s.add(Blob(sha1="f" * 40, size=6))
    audit.finish(transaction="ITI-42", outcome="success")
    (entry,) = indexed(db)
    assert (entry.event_type, entry.outcome) == ("ITI-42", 0)


def test_a_core_insert_counts_as_a_write_and_a_rollback_takes_the_record(db, auditor) -> None:
    audit = register(auditor)
    with audit.serving():
        with pytest.raises(RuntimeError), db.session() as s:
            s.execute(sa.insert(Blob.__table__).values(sha1="c" * 40, size=3))
            raise RuntimeError("refused after writing")
        assert count(db, AuditInboxEntry) == 0
        with db.session() as s:
            s.execute(sa.text("INSERT INTO blobs (sha1, size) VALUES (:s, 3)"), {"s": "d" * 40})
        assert count(db, AuditInboxEntry) == 1
    audit.finish(transaction="ITI-42", outcome="success")
    assert len(indexed(db)) == 1
