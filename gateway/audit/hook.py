"""How the gateway hands audit records to the queue, so that every request is audited.

``Auditor`` is built once per process (``Auditor.from_config``). The SOAP
pipeline opens a ``RequestAudit`` per request and always calls ``finish``:

    audit = auditor.request(RequestFacts(request_id, endpoint_url, peer_host, peer_subject))
    ... ctx carries ``audit`` (an ``AuditSink``) to the transaction handler ...
    audit.finish(transaction=txn_id_or_None, outcome="success"|"error"|"fault",
                 reply_to=..., message_id=..., reason=fault_reason_or_None)

A handler notes the facts only it knows (``profiles.atna.facts.note``: patient
ids, the query payload, submission set and document ids, the feed) and
``finish`` builds the record ITI TF-2 prescribes for the transaction, on our
(responder) side, with the outcome and the human requestor; patient feeds give
one Patient Record event per action (a merge: Delete + Update). Outbound calls
the handler noted (the initiating gateway's ITI-38/39) get initiator-side
records, one per call. A request that never reached a transaction we can
describe leaves a Security Alert. The MLLP listener does the same per message
(``finish(transaction=None, outcome=None)``: the manager notes both).

A handler may instead record a complete message with ``audit.record(message)``;
then no record is built. A gateway port that writes data binds the request's
audit to its session, so recorded messages commit with the data:

    audit.record(message)                        # in the handler
    with database.session() as session, audit.bind(session):
        ... write ...                            # in the port

Records built from notes, and those made outside ``bind``, are written by
``finish`` in one short transaction after the answer is built. ``finish``
never raises.
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
from profiles.atna.codes import AuditSourceType, EventType, Side
from profiles.atna.events import Endpoint, HumanRequestor, Occasion
from profiles.atna.facts import (
    OUTCOMES,
    AuditFacts,
    describable,
    outbound_record,
    transaction_records,
)
from profiles.atna.message import (
    AuditError,
    AuditMessage,
    AuditSourceIdentification,
    CodedValue,
    EventOutcome,
)
from profiles.atna.nodes import application_activity, security_alert

log = logging.getLogger("gateway.audit")

ANONYMOUS = "http://www.w3.org/2005/08/addressing/anonymous"


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
        self.facts_noted = AuditFacts()

    def note(self, **facts) -> None:
        """A handler's facts for the record ``finish`` builds (``AuditFacts.add``)."""
        self.facts_noted.add(**facts)

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
        outcome: str | None,
        reply_to: str | None = None,
        message_id: str | None = None,
        reason: str | None = None,
        human: HumanRequestor | None = None,
        action: str | None = None,
    ) -> None:
        """Write what is waiting, or the transaction's record built from the noted facts
        (a security alert when the request never reached a transaction we can describe),
        plus one initiator-side record per outbound call the handler noted."""
        messages = list(self._waiting)
        self._waiting.clear()
        try:
            noted = self.facts_noted
            transaction = transaction or noted.transaction
            verdict = noted.worst_outcome(outcome)
            noted.feed_from_action(transaction, action)
            if not messages and not self._committed:
                messages += self._records(transaction, verdict, reply_to, message_id, reason,
                                          human)
            messages += self._outbound(human, message_id)
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

    def _records(
        self,
        transaction: str | None,
        outcome: str,
        reply_to: str | None,
        message_id: str | None,
        reason: str | None,
        human: HumanRequestor | None,
    ) -> list[AuditMessage]:
        f, noted = self.facts, self.facts_noted
        occasion = self.auditor.occasion(
            OUTCOMES.get(outcome, EventOutcome.SERIOUS_FAILURE), reason
        )
        initiator = Endpoint(
            noted.initiator or reply_to or ANONYMOUS, host=f.peer_host, user_name=f.peer_subject
        )
        if describable(transaction, noted):
            assert transaction is not None
            responder = Endpoint(
                noted.responder or f.endpoint,
                host=self.auditor.node.host,
                process_id=self.auditor.node.process_id,
            )
            try:
                return list(
                    transaction_records(
                        transaction, Side.RESPONDER, occasion, initiator=initiator,
                        responder=responder, human=human, facts=noted,
                        fallback_id=message_id or f.request_id,
                    )
                )
            except AuditError as exc:  # a handler noted too little: still leave a record
                log.error("incomplete audit facts for %s: %s", transaction, exc)
        # Refused before reaching a transaction (or a message we cannot describe): an alert.
        what = f"{transaction} request" if transaction else "request"
        return [
            security_alert(
                EventType.AUTHORIZATION_DECISION,
                occasion,
                reporter=self.auditor.node,
                performer=initiator,
                subject=f.endpoint,
                description=f"{what} refused: {reason}" if reason else f"{what} refused",
            )
        ]

    def _outbound(self, human: HumanRequestor | None, message_id: str | None) -> list:
        """Our own calls as initiator (ITI-38/39 to partners): one record per call."""
        node = self.auditor.node
        us = Endpoint(ANONYMOUS, host=node.host, process_id=node.process_id)
        return [
            outbound_record(
                call,
                self.auditor.occasion(OUTCOMES.get(call.outcome, EventOutcome.SERIOUS_FAILURE),
                                      call.reason),
                initiator=us, human=human, fallback_id=message_id or self.facts.request_id,
            )
            for call in self.facts_noted.outbound
        ]


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
        action=addressing.action if addressing else None,
    )
