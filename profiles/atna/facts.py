"""What a handler notes for its audit record, and the record built from it.

Handlers stay sans-IO and never build audit messages: they note the facts only
they know (the query payload as received, the patients, the submission set, the
documents, the feed) on the request's ``AuditSink`` with ``note(ctx, ...)``,
and the gateway, once the outcome is known, turns transaction id, side, outcome,
endpoints, human requestor and these facts into the record ITI TF-2 prescribes
(``transaction_records``). Noting is cheap (the query payload is the one thing
serialised on the request path; the audit message is built after the answer), and
a handler that fails half-way still leaves what it had noted.

The initiating gateway's own outbound calls (ITI-38/39 to partners) are noted as
``OutboundCall`` values and become initiator-side records, one per call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from profiles.atna.codes import FEED_ACTIONS, TRANSACTIONS, Kind, Side
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
from profiles.atna.message import AuditMessage, EventOutcome

# Outcome words shared with the SOAP pipeline (SoapResponse.outcome), worst last.
OUTCOMES = {
    "success": EventOutcome.SUCCESS,
    "error": EventOutcome.MINOR_FAILURE,  # answered with the transaction's error form
    "fault": EventOutcome.SERIOUS_FAILURE,  # refused (SOAP fault, HL7 v2 AR)
}


@dataclass(frozen=True)
class Feed:
    """One patient identity feed event: ``trigger`` (``A01``, ``PRPA_IN201304UV02``...),
    the patient it carries (CX) and, for a merge, the ids it retires."""

    trigger: str
    patient_id: str | None = None
    prior_patient_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class OutboundCall:
    """A call this gateway made as initiator (ITI-38 or ITI-39 to one partner)."""

    transaction: str
    endpoint: str  # the partner's SOAP endpoint URL (its UserID), or its homeCommunityId
    outcome: str = "success"
    host: str | None = None
    query: bytes | None = None
    query_id: str | None = None
    home_community_id: str | None = None
    patient_ids: tuple[str, ...] = ()
    documents: tuple[DocumentRef, ...] = ()
    reason: str | None = None


@dataclass
class AuditFacts:
    """Everything noted for one request (several ``note`` calls accumulate)."""

    transaction: str | None = None  # set where no pipeline names it (MLLP)
    outcome: str | None = None  # a handler's own verdict (an HL7 AE answer, say)
    initiator: str | None = None  # HL7 v2: ``FACILITY|APPLICATION`` of MSH-4/3
    responder: str | None = None  # HL7 v2: MSH-6/5
    patient_ids: list[str] = field(default_factory=list)
    query: bytes | None = None
    query_id: str | None = None
    home_community_id: str | None = None
    submission_set_id: str | None = None
    message_id: str | None = None  # ITI-44 message id ext@root, ITI-8 MSH-10
    documents: list[DocumentRef] = field(default_factory=list)
    feeds: list[Feed] = field(default_factory=list)
    outbound: list[OutboundCall] = field(default_factory=list)

    def add(
        self,
        *,
        patient_ids: Iterable[str] = (),
        documents: Iterable[DocumentRef] = (),
        feed: Feed | tuple | None = None,
        outbound: OutboundCall | None = None,
        **values: Any,
    ) -> None:
        """Merge one note: lists grow, single values are replaced (a later note knows more)."""
        self.patient_ids += [p for p in patient_ids if p and p not in self.patient_ids]
        self.documents += list(documents)
        if feed is not None:
            self.feeds.append(feed if isinstance(feed, Feed) else _feed(*feed))
        if outbound is not None:
            self.outbound.append(outbound)
        for name, value in values.items():
            if name not in _SINGLE:
                raise TypeError(f"unknown audit fact {name!r}")
            if value is not None:
                setattr(self, name, value)

    def feed_from_action(self, transaction: str | None, action: str | None) -> None:
        """A feed refused before its handler noted it is still the feed its SOAP action
        announced (``urn:hl7-org:v3:PRPA_IN201304UV02``): audit it as that, failed."""
        row = TRANSACTIONS.get(transaction or "")
        trigger = (action or "").rsplit(":", 1)[-1]
        if row is not None and row.kind is Kind.PATIENT_FEED and not self.feeds and (
            trigger in FEED_ACTIONS
        ):
            self.feeds.append(Feed(trigger))

    def worst_outcome(self, outcome: str | None) -> str:
        """The pipeline's verdict or the handler's, whichever is worse."""
        found = [o for o in (outcome, self.outcome) if o in OUTCOMES]
        return max(found, key=OUTCOMES.__getitem__) if found else "fault"


_SINGLE = frozenset(
    {"transaction", "outcome", "initiator", "responder", "query", "query_id",
     "home_community_id", "submission_set_id", "message_id"}
)


def _feed(trigger: str, patient_id: str | None = None, prior=None) -> Feed:
    priors = (prior,) if isinstance(prior, str) else tuple(prior or ())
    return Feed(trigger, patient_id, priors)


def note(ctx: Any, **facts: Any) -> None:
    """Note audit facts on the request's sink, if it has one (tests may run without)."""
    noter(getattr(ctx, "audit", None))(**facts)


def noter(sink: Any) -> Callable[..., None]:
    """``sink.note``, or a no-op when there is no sink (code called without a gateway)."""
    noting = getattr(sink, "note", None)
    return noting if noting is not None else _ignore


def _ignore(**facts: Any) -> None:
    return None


def ii_ref(ii: Any) -> str | None:
    """An HL7 v3 instance id as IPF writes it in audit records: ``extension@root``
    (the root alone when there is no extension)."""
    if ii is None or not getattr(ii, "root", None):
        return None
    return f"{ii.extension}@{ii.root}" if ii.extension else ii.root


def hl7v3_query(message: Any) -> bytes:
    """The ``queryByParameter`` of an HL7 v3 query message as received (ITI-45, ITI-55
    audit ParticipantObjectQuery); the whole message when it has none."""
    for el in message.iter("{urn:hl7-org:v3}queryByParameter"):
        return etree.tostring(el)
    return etree.tostring(message)


def describable(transaction: str | None, facts: AuditFacts) -> bool:
    """Whether ``transaction_records`` can describe this request (else: a security alert)."""
    row = TRANSACTIONS.get(transaction or "")
    if row is None:
        return False
    if row.kind is Kind.PATIENT_FEED:
        return bool(facts.feeds) and all(f.trigger in FEED_ACTIONS for f in facts.feeds)
    return True


def transaction_records(
    transaction: str,
    side: Side,
    occasion: Occasion,
    *,
    initiator: Endpoint,
    responder: Endpoint,
    human: HumanRequestor | None,
    facts: AuditFacts,
    fallback_id: str,
) -> tuple[AuditMessage, ...]:
    """The record(s) ITI TF-2 prescribes for ``transaction`` from what was noted.

    One record, except for patient feeds: one per feed action (a merge is Delete
    plus Update). ``fallback_id`` (the message id) stands in for a query id or
    submission set id the request never got far enough to name.
    """
    row = TRANSACTIONS[transaction]
    common = {"initiator": initiator, "responder": responder, "human": human}
    if row.kind is Kind.QUERY:
        return (
            query_event(
                transaction, side, occasion, query=facts.query or b"",
                query_id=facts.query_id or fallback_id, patient_ids=facts.patient_ids,
                home_community_id=facts.home_community_id, **common,
            ),
        )
    if row.kind is Kind.RETRIEVE:
        return (
            retrieve_event(
                transaction, side, occasion, documents=facts.documents,
                patient_ids=facts.patient_ids, **common,
            ),
        )
    if row.kind is Kind.SUBMISSION:
        return (
            submission_event(
                transaction, side, occasion,
                submission_set_id=facts.submission_set_id or fallback_id,
                patient_id=facts.patient_ids[0] if facts.patient_ids else None, **common,
            ),
        )
    records: list[AuditMessage] = []
    for feed in facts.feeds:
        records += patient_feed_events(
            transaction, side, occasion, trigger=feed.trigger, patient_id=feed.patient_id,
            message_id=facts.message_id, prior_patient_ids=feed.prior_patient_ids, **common,
        )
    return tuple(records)


def outbound_record(
    call: OutboundCall,
    occasion: Occasion,
    *,
    initiator: Endpoint,
    human: HumanRequestor | None,
    fallback_id: str,
) -> AuditMessage:
    """The initiator-side record of one outbound call (``initiator`` is this gateway)."""
    (record,) = transaction_records(
        call.transaction, Side.INITIATOR, occasion, initiator=initiator,
        responder=Endpoint(call.endpoint, host=call.host), human=human,
        facts=outbound_facts(call), fallback_id=fallback_id,
    )
    return record


def outbound_facts(call: OutboundCall) -> AuditFacts:
    """What an outbound call's record says of the exchange."""
    return AuditFacts(
        patient_ids=list(call.patient_ids), query=call.query, query_id=call.query_id,
        home_community_id=call.home_community_id, documents=list(call.documents),
    )
