"""The stored form of an audit message, shared by the durable queue and the repository.

An ``AuditRecord`` is the serialised XML (exactly the bytes that travel in the
syslog message) plus the fields a security officer searches by: event time,
transaction, outcome, users, patients, and where the request came from. The
gateway writes one to its outbound queue inside the transaction's own commit
(``audit_record``); the audit record repository builds the same thing from what
it receives (``received_record``), keeping the bytes verbatim. ``record_id`` is
the SHA-256 of the XML: a record retried after a broken TLS connection (syslog
has no acknowledgement) is recognised and stored once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from lxml import etree

from profiles.atna.codec import audit_message_to_bytes, parse_audit_message
from profiles.atna.codes import ObjectIdType, Role
from profiles.atna.message import AuditError, AuditMessage
from profiles.atna.syslog import SyslogMessage, parse
from profiles.errors import SoapFault
from profiles.xml import parse_xml


@dataclass(frozen=True)
class AuditRecord:
    """One audit message with its search fields (what a queue or repository row holds)."""

    record_id: str  # SHA-256 hex of ``xml``
    xml: bytes
    event_time: datetime
    event_id: str  # "110112"
    event_type: str | None  # "ITI-38", "110120"...: the first EventTypeCode
    action: str | None  # "E", "C", "R", "U", "D"
    outcome: int  # 0, 4, 8, 12
    users: tuple[str, ...]  # requestors: the human(s), else the requesting system
    source_user: str | None  # Source (110153) UserID
    source_address: str | None  # Source NetworkAccessPointID: "from where"
    destination_user: str | None
    patient_ids: tuple[str, ...]
    audit_source_id: str

    @property
    def failed(self) -> bool:
        return self.outcome != 0


class AuditSink(Protocol):
    """Where transaction code hands its records; the gateway queues them durably.

    Handlers mostly ``note`` facts (``profiles.atna.facts.AuditFacts.add`` names
    them: patient_ids, query, query_id, home_community_id, submission_set_id,
    documents, feed, message_id, outbound...) and the gateway builds the record
    once the outcome is known; ``record`` takes a complete message instead.
    """

    def record(self, message: AuditMessage) -> None: ...

    def note(self, **facts: Any) -> None: ...


def _index(message: AuditMessage, xml: bytes) -> AuditRecord:
    ev = message.event
    source = next(iter(message.participants_with_role(Role.SOURCE)), None)
    destination = next(iter(message.participants_with_role(Role.DESTINATION)), None)
    requestors = [p for p in message.active_participants if p.user_is_requestor]
    humans = [
        p for p in requestors if not (p.has_role(Role.SOURCE) or p.has_role(Role.DESTINATION))
    ]
    users = humans or requestors
    patients = [
        o.object_id
        for o in message.objects_with_id_type(ObjectIdType.PATIENT_NUMBER)
        if o.object_id
    ]
    return AuditRecord(
        record_id=hashlib.sha256(xml).hexdigest(),
        xml=xml,
        event_time=ev.date_time,
        event_id=ev.event_id.code,
        event_type=ev.event_types[0].code if ev.event_types else None,
        action=ev.action.value if ev.action is not None else None,
        outcome=int(ev.outcome),
        users=tuple(dict.fromkeys(p.user_id for p in users)),
        source_user=source.user_id if source else None,
        source_address=source.network_access_point_id if source else None,
        destination_user=destination.user_id if destination else None,
        patient_ids=tuple(dict.fromkeys(patients)),
        audit_source_id=message.audit_source.audit_source_id,
    )


def audit_record(message: AuditMessage) -> AuditRecord:
    """Serialise a message built here and index it, ready for the outbound queue."""
    return _index(message, audit_message_to_bytes(message))


def record_from_xml(xml: bytes, *, schema: etree.XMLSchema | None = None) -> AuditRecord:
    """Parse received audit XML with the hardened parser and index it.

    ``schema`` (the DICOM audit XSD, loaded by the gateway) is checked when
    given; any failure raises ``AuditError`` and the record is refused.
    """
    try:
        root = parse_xml(xml)
    except SoapFault as exc:
        raise AuditError(f"audit payload refused: {exc.reason}") from None
    if schema is not None and not schema.validate(root):
        error = schema.error_log.last_error
        raise AuditError(f"audit message is not valid DICOM audit XML: {error.message}")
    return _index(parse_audit_message(root), xml)


def received_record(
    data: bytes, *, schema: etree.XMLSchema | None = None
) -> tuple[SyslogMessage, AuditRecord]:
    """One received syslog message (a de-framed TLS frame or a datagram) to its record."""
    message = parse(data)
    return message, record_from_xml(message.payload, schema=schema)
