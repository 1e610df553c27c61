"""The records a request's audit stores, built from what the transport knows
(``RequestFacts``) and what the handler noted (``AuditFacts``): the transaction's
responder-side record, or a Security Alert when the request never reached a
transaction we can describe, and one initiator-side record per outbound call.
``hook.RequestAudit`` decides when and into which commit they go.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from profiles.atna.codes import EventType, Side
from profiles.atna.events import Endpoint, HumanRequestor
from profiles.atna.facts import OUTCOMES, AuditFacts, describable
from profiles.atna.message import AuditMessage, EventOutcome
from profiles.atna.nodes import security_alert
from profiles.atna.recipe import outbound_recipe, transaction_recipe

if TYPE_CHECKING:
    from gateway.audit.hook import Auditor

ANONYMOUS = "http://www.w3.org/2005/08/addressing/anonymous"


@dataclass(frozen=True)
class RequestFacts:
    """What the transport knows about a request before any transaction runs."""

    request_id: str
    endpoint: str  # our URL for the route: the responder's UserID
    peer_host: str | None = None  # the client's IP address
    peer_subject: str | None = None  # the verified client certificate's subject


def responder_records(
    auditor: Auditor,
    facts: RequestFacts,
    noted: AuditFacts,
    transaction: str | None,
    outcome: str,
    reason: str | None,
    *,
    reply_to: str | None,
    message_id: str | None,
    human: HumanRequestor | None,
) -> list[AuditMessage | bytes]:
    """Our record as responder: the transaction's recipe when it is describable, else a
    Security Alert (refused before reaching a transaction, or not one we can describe)."""
    occasion = auditor.occasion(OUTCOMES.get(outcome, EventOutcome.SERIOUS_FAILURE), reason)
    initiator = Endpoint(
        noted.initiator or reply_to or ANONYMOUS, host=facts.peer_host, user_name=facts.peer_subject
    )
    if describable(transaction, noted):
        assert transaction is not None
        responder = Endpoint(
            noted.responder or facts.endpoint,
            host=auditor.node.host,
            process_id=auditor.node.process_id,
        )
        # The recipe, not the XML: the indexer builds exactly these messages later
        # (profiles/atna/recipe.py), off the request path.
        return [
            transaction_recipe(
                transaction, Side.RESPONDER, occasion, initiator=initiator,
                responder=responder, human=human, facts=noted,
                fallback_id=message_id or facts.request_id, reporter=auditor.node,
                subject=facts.endpoint,
            )
        ]
    what = f"{transaction} request" if transaction else "request"
    return [
        security_alert(
            EventType.AUTHORIZATION_DECISION,
            occasion,
            reporter=auditor.node,
            performer=initiator,
            subject=facts.endpoint,
            description=f"{what} refused: {reason}" if reason else f"{what} refused",
        )
    ]


def outbound_records(
    auditor: Auditor,
    facts: RequestFacts,
    noted: AuditFacts,
    human: HumanRequestor | None,
    message_id: str | None,
) -> list:
    """Our own calls as initiator (ITI-38/39 to partners): one record per call noted, as
    its recipe (built into the record off the request path, as the responder's is)."""
    if not noted.outbound:
        return []  # most requests call no one
    node = auditor.node
    us = Endpoint(ANONYMOUS, host=node.host, process_id=node.process_id)
    return [
        outbound_recipe(
            call,
            auditor.occasion(OUTCOMES.get(call.outcome, EventOutcome.SERIOUS_FAILURE), call.reason),
            initiator=us, human=human, fallback_id=message_id or facts.request_id,
            reporter=node,
        )
        for call in noted.outbound
    ]
