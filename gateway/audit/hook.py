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
describe leaves a Security Alert (those records are built in ``request_records.py``).
The MLLP listener does the same per message (``finish(transaction=None,
outcome=None)``: the manager notes both).

The pipeline tells the audit what it knows once the request is routed and
authenticated (``known``: transaction, addressing, principal) and runs the
handler inside ``serving()``. When the request writes data, its record joins the
data's commit (``binding.py``): any session transaction that writes on the
request's thread while it is served takes it, and a port may say so explicitly
(``with database.session() as s, audit.bind(s):``).
Just before that transaction commits, the record is built from the notes so far
(outcome success: the data is being written) and added to it, so the record
commits with the data or not at all: no crash can leave data without its record.
``finish`` then writes nothing more for it, unless the request still failed
afterwards (a failure record joins the success one) or a patient feed noted
further events. A handler may instead record a complete message with
``audit.record(message)``; then no record is built from the notes, and the
message joins the bound session like the data.

Requests that write no data (queries, retrieves, refusals) get their record in
one short transaction of their own in ``finish``, which the SOAP pipeline runs
once the answer is built and before it is sent (``answered``), so no answer
leaves before its record is in the database; concurrent requests share that
commit (``group.py``). A record alone commits without waiting for the disk
(``gateway/store/relaxed.py``: flushed within a fraction of a second), and on
PostgreSQL without waiting for the INSERT's answer either: it is written to the
database's (corked) connection before the answer leaves, reaches the server within
50 ms and is confirmed (or sent again) later (``gateway/store/pgpipeline.py``).
One that carries XUA replay tokens waits for the flush. The view's ``finish_audit``
on close is then a no-op. Its XUA replay tokens, which the gate left to it
(``defer_replay``), go first into that same commit (``deferred.py``); if one was
taken, ``answered`` returns the gate's replay refusal to send instead. If the
handler wrote data after all, they go first into that data commit (a taken one
raises the refusal there, so the data rolls back). Either way the request path
stores one row per record, the XML in the inbox (``AuditQueue.stage``; on
PostgreSQL a data commit's row travels with its COMMIT: ``withcommit.py``);
indexing it for search and delivery happens later (``AuditQueue.index_pending``).
``finish`` never raises.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from gateway.audit.binding import CURRENT, Bound, Written, bound
from gateway.audit.deferred import ReplayGuard, settle
from gateway.audit.parties import audit_source, human_requestor
from gateway.audit.queue import AuditQueue
from gateway.audit.request_records import ANONYMOUS as ANONYMOUS
from gateway.audit.request_records import RequestFacts as RequestFacts
from gateway.audit.request_records import outbound_records, responder_records
from gateway.audit.transport import error_kind
from gateway.config import Config
from gateway.store.db import Database
from profiles.atna.events import Endpoint, HumanRequestor, Occasion
from profiles.atna.facts import AuditFacts, describable
from profiles.atna.message import AuditMessage, AuditSourceIdentification, EventOutcome
from profiles.atna.nodes import application_activity
from profiles.errors import SoapFault

log = logging.getLogger("gateway.audit")

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
        self._committed = 0  # records committed with a bound session
        self._written = Written()  # what of the notes has committed already
        self._exchange: dict = {}
        self._finished = False
        self._tokens: ReplayGuard | None = None  # the gate's deferred replay tokens
        self._refusal: SoapFault | None = None  # to answer instead (a replay found late)
        self.facts_noted = AuditFacts()

    def defer_replay(self, tokens: ReplayGuard) -> None:
        """The gate leaves this request's replay tokens to the commit of its record."""
        self._tokens = tokens

    def note(self, **facts) -> None:
        """A handler's facts for the record ``finish`` builds (``AuditFacts.add``)."""
        self.facts_noted.add(**facts)

    def known(
        self,
        *,
        transaction: str | None,
        reply_to: str | None = None,
        message_id: str | None = None,
        principal=None,
        action: str | None = None,
    ) -> None:
        """What the pipeline knows once the request is routed and authenticated: a
        bound data transaction builds its record from it (and the notes) at commit."""
        if transaction is not None and self.facts_noted.transaction is None:
            self.facts_noted.transaction = transaction
        self._exchange = {
            "reply_to": reply_to,
            "message_id": message_id,
            "human": human_requestor(principal),
            "action": action,
        }

    def answered(self, answer) -> SoapFault | None:
        """``finish`` with what the answer (a SoapResponse) says, before it is sent; a
        fault to send instead when its deferred replay tokens were not all fresh (the
        gate's refusal) or could not be stored."""
        finish_audit(self, answer)
        if self._tokens is not None:  # the answer was a refusal already: keep the tokens
            self._settle([])
        return self._refusal

    @contextmanager
    def serving(self) -> Iterator[None]:
        """While the request's handler runs: every session transaction that writes on
        this thread carries the record (``binding.py``)."""
        token = CURRENT.set(self)
        try:
            yield
        finally:
            CURRENT.reset(token)

    def record(self, message: AuditMessage) -> None:
        if self._session is not None:
            self._stage(self._session, [message])
        else:
            self._waiting.append(message)

    @contextmanager
    def bind(self, session: Session) -> Iterator[None]:
        """Records waiting, and those made in this block, join ``session``; when it
        commits, the record built from the notes so far joins it too (outcome success:
        the data is written). A rollback takes them all with the data."""
        bound(session, self)
        self._session = session
        try:
            waiting, self._waiting = self._waiting, []
            if waiting:
                self._stage(session, waiting)
            yield
        finally:
            self._session = None

    def _stage(self, session: Session, messages: list[AuditMessage]) -> None:
        self.auditor.queue.stage(session, messages)
        bound(session, self).recorded += len(messages)

    def _before_commit(self, session: Session, entry: Bound) -> None:
        tokens = self._tokens
        if tokens is not None and not entry.guarded:  # a read-only route wrote after all
            entry.guarded = True
            if not tokens(session.connection()):  # a replay: its data must not commit
                self._tokens, self._refusal = None, tokens.refused()
                raise self._refusal
        if self._committed or entry.recorded:
            return  # the handler recorded complete messages: they are the record
        try:
            notes = self._notes_records("success", None)
            if notes:
                self.auditor.queue.stage(session, notes, committing=True)
                entry.written = self._written.after(self.facts_noted)
        except Exception as exc:  # noqa: BLE001 - a builder bug must not cost the data
            # (a failed INSERT is the database's error: PostgreSQL then refuses the commit,
            # and record and data go together, as they must)
            log.error("audit record not staged at commit (%s); finish writes it if the "
                      "data commits", error_kind(exc))

    def _after_commit(self, entry: Bound) -> None:
        if entry.guarded:
            self._tokens = None  # committed with the data
        self._committed += entry.recorded
        if entry.written is not None:
            self._written = entry.written

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
        """Write what is waiting, and the transaction's record built from the noted facts
        unless a data commit carried it already with the same outcome (a security alert
        when the request never reached a transaction we can describe), plus one
        initiator-side record per outbound call the handler noted."""
        if self._finished:
            return  # the pipeline finished it before the answer left; the view again
        self._finished = True
        messages = list(self._waiting)
        self._waiting.clear()
        try:
            noted = self.facts_noted
            transaction = transaction or noted.transaction
            noted.transaction = transaction
            verdict = noted.worst_outcome(outcome)
            noted.feed_from_action(transaction, action)
            exchange = {
                "reply_to": reply_to, "message_id": message_id, "human": human, "action": action
            }
            self._exchange = {k: v or self._exchange.get(k) for k, v in exchange.items()}
            if not messages and not self._committed:
                messages += self._notes_records(verdict, reason, final=True)
            ex = self._exchange
            messages += outbound_records(
                self.auditor, self.facts, noted, ex["human"], ex["message_id"]
            )
            if self._tokens is not None:
                self._settle(messages)
            elif messages:
                self.auditor.queue.stage_now(messages)
        except Exception as exc:  # noqa: BLE001 - the answer must still go out; say so loudly
            log.error(
                "could not store %d audit record(s) for request %s: %s",
                len(messages),
                self.facts.request_id,
                error_kind(exc),
            )

    def _settle(self, messages: list) -> None:
        """The deferred replay tokens and ``messages`` in one commit (``deferred.py``)."""
        tokens, self._tokens = self._tokens, None
        assert tokens is not None
        self._refusal = settle(self.auditor.queue, tokens, messages, self.facts.request_id)

    def _notes_records(
        self, outcome: str, reason: str | None, *, final: bool = False
    ) -> list[AuditMessage | bytes]:
        """The records the notes call for that no commit carried yet: at a data commit
        (``final`` False) only a describable success; at ``finish`` the verdict, again
        if a committed success record turned out wrong (the request failed later)."""
        noted, written = self.facts_noted, self._written
        transaction = noted.transaction
        if not final and not describable(transaction, noted):
            return []
        if written.record and (not final or outcome == "success"):
            if not written.feeds_left(noted):
                return []
            noted = written.unwritten(noted)  # patient feeds noted after the commit
        # else: nothing committed yet, or the failure record in full next to the success
        ex = self._exchange
        return responder_records(
            self.auditor, self.facts, noted, transaction, outcome, reason,
            reply_to=ex.get("reply_to"), message_id=ex.get("message_id"), human=ex.get("human"),
        )


def finish_audit(audit: RequestAudit, answer) -> None:
    """Close a request's audit with its answer (a SoapResponse); again is a no-op."""
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
