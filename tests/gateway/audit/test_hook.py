"""The pipeline hook: every request leaves a record, accepted or refused, and a record
made inside a data transaction commits with it."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa
from lxml import etree

from gateway.audit.hook import Auditor, RequestFacts
from gateway.audit.models import AuditEntry
from gateway.audit.queue import AuditQueue
from gateway.store import migrate
from gateway.store.db import Database
from gateway.store.models import Blob
from profiles.atna.codec import parse_audit_message
from profiles.atna.events import Endpoint
from profiles.atna.nodes import node_authentication_failure
from tests.gateway.audit.helpers import SOURCE, query_message

FACTS = RequestFacts("req-1", "https://gw.example.org/xca/query", "10.9.8.7", "CN=partner")


@pytest.fixture
def auditor(db: Database) -> Auditor:
    return Auditor(AuditQueue(db), SOURCE, node=Endpoint("ihe-gateway", host="gw.example.org"))


def entries(db: Database) -> list[AuditEntry]:
    """The indexed trail, after indexing what requests staged in the inbox."""
    AuditQueue(db).index_all()
    with db.session() as s:
        return list(s.scalars(sa.select(AuditEntry).order_by(AuditEntry.event_time)))


def valid(entry: AuditEntry, schema: etree.XMLSchema) -> bool:
    return schema.validate(etree.fromstring(entry.xml))


def test_a_handler_record_is_written_by_finish(db, auditor) -> None:
    audit = auditor.request(FACTS)
    message = query_message(1)
    audit.record(message)
    assert entries(db) == []  # nothing on the request path before the answer
    audit.finish(transaction="ITI-38", outcome="success")
    (entry,) = entries(db)
    assert entry.event_type == "ITI-38" and entry.outcome == 0


def test_a_record_bound_to_a_data_transaction_commits_with_it(db, auditor) -> None:
    audit = auditor.request(FACTS)
    with db.session() as s, audit.bind(s):
        s.add(Blob(sha1="c" * 40, size=3))
        audit.record(query_message(1))
    audit.finish(transaction="ITI-38", outcome="success")
    assert len(entries(db)) == 1  # no second, fallback record


def test_a_record_made_before_the_port_binds_commits_with_the_data(db, auditor) -> None:
    audit = auditor.request(FACTS)
    message = query_message(1)
    audit.record(message)  # the handler, before calling the port
    with db.session() as s, audit.bind(s):
        s.add(Blob(sha1="c" * 40, size=3))
    assert [e.event_time for e in entries(db)] == [message.event.date_time]
    audit.finish(transaction="ITI-38", outcome="success")
    assert len(entries(db)) == 1


def test_a_record_made_before_the_port_binds_rolls_back_with_the_data(db, auditor) -> None:
    audit = auditor.request(FACTS)
    audit.record(query_message(1))  # the handler, before calling the port
    with pytest.raises(RuntimeError), db.session() as s, audit.bind(s):
        s.add(Blob(sha1="c" * 40, size=3))
        assert len(entries(db)) == 0
        raise RuntimeError("registry failure")  # the record goes with the data...
    audit.finish(transaction="ITI-38", outcome="error")
    (entry,) = entries(db)  # ...and the pipeline records the failure instead
    assert entry.outcome == 4 and entry.event_time != query_message(1).event.date_time


def test_a_rolled_back_transaction_leaves_the_pipelines_failure_record(
    db, auditor, audit_schema
) -> None:
    audit = auditor.request(FACTS)
    with pytest.raises(RuntimeError), db.session() as s, audit.bind(s):
        s.add(Blob(sha1="c" * 40, size=3))
        audit.record(query_message(1))
        raise RuntimeError("registry failure")
    audit.finish(transaction="ITI-42", outcome="error", reason="XDSRegistryError")
    (entry,) = entries(db)
    assert (entry.event_id, entry.event_type, entry.outcome) == ("110107", "ITI-42", 4)
    assert entry.source_address == "10.9.8.7"  # the submitter is the source
    assert valid(entry, audit_schema)


@pytest.mark.parametrize(
    ("transaction", "event_id"), [("ITI-38", "110112"), ("ITI-39", "110106"), ("ITI-41", "110107")]
)
def test_a_transaction_the_handler_did_not_audit_is_audited_by_the_pipeline(
    db, auditor, audit_schema, transaction, event_id
) -> None:
    auditor.request(FACTS).finish(
        transaction=transaction, outcome="fault", message_id="urn:uuid:m-1", reason="bad request"
    )
    (entry,) = entries(db)
    assert (entry.event_id, entry.event_type, entry.outcome) == (event_id, transaction, 8)
    assert valid(entry, audit_schema)


def test_a_request_refused_before_any_transaction_raises_a_security_alert(
    db, auditor, audit_schema
) -> None:
    auditor.request(FACTS).finish(
        transaction=None, outcome="fault", reason="The action is not supported"
    )
    (entry,) = entries(db)
    assert (entry.event_id, entry.event_type, entry.outcome) == ("110113", "110144", 8)
    assert valid(entry, audit_schema)
    (subject,) = parse_audit_message(etree.fromstring(entry.xml)).participant_objects
    assert subject.object_id == FACTS.endpoint
    assert subject.detail("Alert Description") == b"request refused: The action is not supported"


def test_an_authentication_failure_recorded_by_the_pipeline_replaces_the_fallback(
    db, auditor
) -> None:
    audit = auditor.request(FACTS)
    audit.record(
        node_authentication_failure(
            auditor.occasion(),
            reporter=auditor.node,
            peer=Endpoint("CN=partner", host="10.9.8.7"),
            reason="certificate claims another community",
        )
    )
    audit.finish(transaction="ITI-38", outcome="fault")
    (entry,) = entries(db)
    assert (entry.event_id, entry.event_type) == ("110113", "110126")


def test_finish_never_raises_when_the_database_is_gone(tmp_path, caplog) -> None:
    """A read's record waits in the spool while the database cannot take it, and goes in
    once it can; a record that must commit now fails with a log line; no PHI logged."""
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    broken = Database(url)  # no tables
    auditor = Auditor(AuditQueue(broken), SOURCE, node=Endpoint("ihe-gateway"))
    with caplog.at_level(logging.ERROR):
        audit = auditor.request(FACTS)
        audit.record(query_message(1))
        audit.finish(transaction="ITI-38", outcome="success")  # spooled: nothing raised
        assert not broken.confirm_handed(timeout=0)  # the inbox is missing: kept
        assert auditor.application_activity(True) is False
    assert "could not store a node audit event" in caplog.text
    assert "spooled audit rows not moved yet: OperationalError" in caplog.text
    assert "P-1" not in caplog.text and "Jane" not in caplog.text  # no statement parameters
    migrate.upgrade(url)  # the database is back
    assert broken.confirm_handed(timeout=5)
    assert AuditQueue(broken).index_all() == 1
    broken.dispose()


def test_application_start_and_stop_are_node_events(db, auditor) -> None:
    assert auditor.application_activity(True, launcher="ops")
    assert auditor.application_activity(False, launcher="ops")
    assert [e.event_type for e in entries(db)] == ["110120", "110121"]


def test_we_are_the_responder_and_the_peer_is_the_source_of_a_query(db, auditor) -> None:
    auditor.request(FACTS).finish(transaction="ITI-55", outcome="success")
    (entry,) = entries(db)
    assert (entry.destination_user, entry.source_address) == (FACTS.endpoint, "10.9.8.7")
