"""ATNA (ITI-20): audit messages, their codes, builders, codec and syslog, without I/O.

    message.py  the DICOM PS3.15 AuditMessage as frozen dataclasses (AuditError)
    codes.py    EventID / EventType / role / object id codes, TRANSACTIONS table
    events.py   one builder per transaction kind (query, submission, retrieve, feed)
    facts.py    what handlers note (``note(ctx, ...)``) and the records built from it
    nodes.py    node events: application start/stop, security alerts, login, log used
    codec.py    AuditMessage <-> lxml element (audit_message_to_xml, parse_audit_message)
    syslog.py   RFC 5424 messages, RFC 5425 framing + FrameDecoder, RFC 5426 datagrams
    record.py   AuditRecord: XML bytes + search fields, for the queue and the repository

The gateway turns a finished (or refused) transaction into a builder call, hands
the message to an ``AuditSink`` which stores ``audit_record(message)`` in the
same database commit, and a background sender wraps ``record.xml`` with
``syslog.audit_syslog`` and ``syslog.frame`` (TLS) or ``syslog.datagram`` (UDP).
"""

from profiles.atna.codec import audit_message_to_bytes, audit_message_to_xml, parse_audit_message
from profiles.atna.codes import TRANSACTIONS, Side
from profiles.atna.events import (
    DocumentRef,
    Endpoint,
    HumanRequestor,
    Occasion,
    patient_feed_events,
    query_event,
    retrieve_event,
    submission_event,
)
from profiles.atna.facts import AuditFacts, Feed, OutboundCall, note, transaction_records
from profiles.atna.message import AuditError, AuditMessage, EventOutcome
from profiles.atna.record import AuditRecord, AuditSink, audit_record, received_record

__all__ = [
    "TRANSACTIONS",
    "AuditError",
    "AuditFacts",
    "AuditMessage",
    "AuditRecord",
    "AuditSink",
    "DocumentRef",
    "Endpoint",
    "EventOutcome",
    "Feed",
    "HumanRequestor",
    "Occasion",
    "OutboundCall",
    "Side",
    "audit_message_to_bytes",
    "audit_message_to_xml",
    "audit_record",
    "note",
    "parse_audit_message",
    "patient_feed_events",
    "query_event",
    "received_record",
    "retrieve_event",
    "submission_event",
    "transaction_records",
]
