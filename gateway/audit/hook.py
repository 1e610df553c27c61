"""How the gateway hands audit records to the queue, so that every request is audited.

``Auditor`` is built once per process (``Auditor.from_config``). The SOAP
pipeline opens a ``RequestAudit`` per request and always calls ``finish``:

    audit = auditor.request(RequestFacts(request_id, endpoint_url, peer_host, peer_subject))
    ... ctx carries ``audit`` (an ``AuditSink``) to the transaction handler ...
    audit.finish(transaction=txn_id_or_None, outcome="success"|"error"|"fault",
                 reply_to=..., message_id=..., reason=fault_reason_or_None)

A handler records its own, complete message with ``audit.record(message)``.
A gateway port that writes data binds the request's audit to its session, so
the record commits with the data; messages the (sans-IO) handler recorded
before calling the port join that session too:

    audit.record(submission_event(...))          # in the handler
    with database.session() as session, audit.bind(session):
        ... write ...                            # in the port

Records made outside ``bind`` wait in memory and are written by ``finish`` in
one short transaction after the answer is built (queries change nothing, so
nothing is lost by writing their record after). If the handler recorded
nothing, or only inside a transaction that rolled back, ``finish`` writes a
record itself: the transaction's own event with a failure outcome when the
request reached one, else a Security Alert. ``finish`` never raises.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from gateway.audit.queue import AuditQueue
from gateway.audit.transport import error_kind
from gateway.config import Config
from gateway.store.db import Database
from profiles.atna.codes import TRANSACTIONS, AuditSourceType, EventType, Kind, Side
from profiles.atna.events import (
    Endpoint,
    HumanRequestor,
    Occasion,
    query_event,
    retrieve_event,
    submission_event,
)
from profiles.atna.message import (
    AuditMessage,
    AuditSourceIdentification,
    CodedValue,
    EventOutcome,
)
from profiles.atna.nodes import application_activity, security_alert

log = logging.getLogger("gateway.audit")

ANONYMOUS = "http://www.w3.org/2005/08/addressing/anonymous"
OUTCOMES = {
    "success": EventOutcome.SUCCESS,
    "error": EventOutcome.MINOR_FAILURE,  # answered with the transaction's error form
    "fault": EventOutcome.SERIOUS_FAILURE,  # refused with a SOAP fault
}


def audit_source(config: Config) -> AuditSourceIdentification:
    """We report as our home community (as CONNECT does), on this host's site."""
    return AuditSourceIdentification(
        audit_source_id=config.community.home_community_id,
        enterprise_site_id=config.community.name or None,
        type_codes=(AuditSourceType.APPLICATION_SERVER,),
    )


@dataclass(frozen=True)
class RequestFacts:
    """What the transport knows about a request before any transaction runs."""

    request_id: str
    endpoint: str  # our URL for the route: the responder's UserID
    peer_host: str | None = None  # the client's IP address
    peer_subject: str | None = None  # the verified client certificate's subject


class Auditor:
    """One per process: the queue and who we are."""

    def __init__(
        self, queue: AuditQueue, source: AuditSourceIdentification, *, node: Endpoint
    ) -> None:
        self.queue, self.source, self.node = queue, source, node

    @classmethod
    def from_config(cls, config: Config, database: Database) -> Auditor:
        host = socket.gethostname()
        return cls(
            AuditQueue(database, config.audit),
            audit_source(config),
            node=Endpoint("ihe-gateway", host=host, process_id=str(os.getpid())),
        )

    def occasion(
        self, outcome: EventOutcome = EventOutcome.SUCCESS, description: str | None = None
    ) -> Occasion:
        return Occasion(self.source, datetime.now(UTC), outcome, description)

    def request(self, facts: RequestFacts) -> RequestAudit:
        return RequestAudit(self, facts)

    def node_event(self, message: AuditMessage) -> bool:
        """Store a node event in its own transaction; False (and a log line) if it failed."""
        try:
            self.queue.enqueue_now(message)
        except Exception as exc:  # noqa: BLE001 - auditing must not take the gateway down
            log.error(
                "could not store a node audit event (%s): %s",
                message.event.event_id.code,
                error_kind(exc),
            )
            return False
        return True

    def application_activity(self, started: bool, launcher: str | None = None) -> bool:
        return self.node_event(
            application_activity(started, self.occasion(), application=self.node, launcher=launcher)
        )


class RequestAudit:
    """The ``AuditSink`` of one request (see the module docstring for the protocol)."""

    def __init__(self, auditor: Auditor, facts: RequestFacts) -> None:
        self.auditor, self.facts = auditor, facts
        self._waiting: list[AuditMessage] = []
        self._session: Session | None = None
        self._in_session = 0
        self._committed = 0

    def record(self, message: AuditMessage) -> None:
        if self._session is not None:
            self.auditor.queue.enqueue(self._session, message)
            self._in_session += 1
        else:
            self._waiting.append(message)

    @contextmanager
    def bind(self, session: Session) -> Iterator[None]:
        """Records waiting, and those made in this block, join ``session``; they count
        as written once it commits (a rollback takes them with the data)."""

        def committed(_session: Session) -> None:
            self._committed += self._in_session
            self._in_session = 0

        sa.event.listen(session, "after_commit", committed, once=True)
        self._session = session
        try:
            waiting, self._waiting = self._waiting, []
            for message in waiting:
                self.record(message)
            yield
        finally:
            self._session = None

    def finish(
        self,
        *,
        transaction: str | None,
        outcome: str,
        reply_to: str | None = None,
        message_id: str | None = None,
        reason: str | None = None,
        human: HumanRequestor | None = None,
    ) -> None:
        """Write what is waiting, or the pipeline's own record when the handler made none."""
        messages = list(self._waiting)
        self._waiting.clear()
        try:
            if not messages and not self._committed:
                messages.append(
                    self._fallback(transaction, outcome, reply_to, message_id, reason, human)
                )
            if messages:
                with self.auditor.queue.database.session() as session:
                    for message in messages:
                        self.auditor.queue.enqueue(session, message)
        except Exception as exc:  # noqa: BLE001 - the answer must still go out; say so loudly
            log.error(
                "could not store %d audit record(s) for request %s: %s",
                len(messages),
                self.facts.request_id,
                error_kind(exc),
            )

    def _fallback(
        self,
        transaction: str | None,
        outcome: str,
        reply_to: str | None,
        message_id: str | None,
        reason: str | None,
        human: HumanRequestor | None,
    ) -> AuditMessage:
        f = self.facts
        occasion = self.auditor.occasion(
            OUTCOMES.get(outcome, EventOutcome.SERIOUS_FAILURE), reason
        )
        initiator = Endpoint(reply_to or ANONYMOUS, host=f.peer_host, user_name=f.peer_subject)
        responder = Endpoint(f.endpoint, host=self.auditor.node.host, process_id=None)
        row = TRANSACTIONS.get(transaction or "")
        ref = message_id or f.request_id
        common = {"initiator": initiator, "responder": responder, "human": human}
        if row is not None and row.kind is Kind.QUERY:
            return query_event(
                row.transaction, Side.RESPONDER, occasion, query=b"", query_id=ref, **common
            )
        if row is not None and row.kind is Kind.RETRIEVE:
            return retrieve_event(row.transaction, Side.RESPONDER, occasion, documents=(), **common)
        if row is not None and row.kind is Kind.SUBMISSION:
            return submission_event(
                row.transaction,
                Side.RESPONDER,
                occasion,
                submission_set_id=ref,
                patient_id=None,
                **common,
            )
        # Refused before reaching a transaction (or a feed we cannot describe): an alert.
        what = f"{transaction} request" if transaction else "request"
        return security_alert(
            EventType.AUTHORIZATION_DECISION,
            occasion,
            reporter=self.auditor.node,
            performer=initiator,
            subject=f.endpoint,
            description=f"{what} refused: {reason}" if reason else f"{what} refused",
        )


def human_requestor(principal) -> HumanRequestor | None:
    """The verified XUA principal as the audit record's human requestor."""
    if principal is None:
        return None
    facts = principal.assertion

    def coded(code) -> CodedValue:
        return CodedValue(
            code.code, code.code_system_name or code.code_system, code.display_name or code.code
        )

    return HumanRequestor(
        subject_id=principal.subject_id,
        name_id=principal.name_id or None,
        issuer=facts.issuer if facts else None,
        organization=principal.organization,
        organization_id=principal.organization_id,
        roles=(coded(principal.role),),
        purposes_of_use=(coded(principal.purpose_of_use),),
    )


def finish_audit(audit: RequestAudit, answer) -> None:
    """Close a request's audit once its answer (a SoapResponse) has been sent."""
    if answer.audited:
        return
    addressing = answer.addressing
    audit.finish(
        transaction=answer.transaction,
        outcome=answer.outcome,
        reply_to=addressing.reply_to if addressing else None,
        message_id=addressing.message_id if addressing else None,
        reason=answer.fault_reason,
        human=human_requestor(answer.principal),
    )
