"""The initiating gateway's retrieve: ITI-43 in from a local consumer, ITI-39 out
(ITI TF-2b 3.39).

DocumentRequests are grouped by HomeCommunityId and each group is split into
batches of at most the partner's ``max_documents_per_retrieve`` (several gateways
take 1, Epic 9: ``../shared/notes/peer-metriport.md`` §7-8). Requests for our own
community, or without a HomeCommunityId, go to the local repository when this
gateway has one; otherwise a missing one is ``XDSMissingHomeCommunityId`` and an
unknown one ``XDSUnknownCommunity``, reported per document while the rest proceed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from profiles.atna.events import DocumentRef
from profiles.atna.facts import OutboundCall, note
from profiles.errors import ErrorDetail, Severity
from profiles.transaction import Context, ErrorForm, Reply, Transaction
from profiles.xca.ig_query import call_outcome, partner_endpoint
from profiles.xca.merge import MergedRetrieve, merge_retrieve
from profiles.xca.ports import InitiatingGateway, RetrieveCall
from profiles.xca.retrieve import (
    DocumentRequest,
    RetrievedDocument,
    parse_retrieve_request,
    retrieve_response_to_reply,
)


@dataclass
class RetrievePlan:
    local: list[DocumentRequest] = field(default_factory=list)
    calls: list[RetrieveCall] = field(default_factory=list)
    errors: list[ErrorDetail] = field(default_factory=list)


def batches(items: Sequence, size: int) -> list[tuple]:
    size = max(1, size)
    return [tuple(items[i:i + size]) for i in range(0, len(items), size)]


def plan_retrieve(
    requests: Sequence[DocumentRequest], xca: InitiatingGateway, local_home: str,
    principal: Any = None,
) -> RetrievePlan:
    plan = RetrievePlan()
    groups: dict[str, list[DocumentRequest]] = {}
    for r in requests:
        if r.home_community_id is None or r.home_community_id == local_home:
            plan.local.append(r)
        else:
            groups.setdefault(r.home_community_id, []).append(r)
    for hcid, docs in groups.items():
        partner = xca.partner(hcid)
        if partner is None:
            plan.errors += [ErrorDetail(
                "XDSUnknownCommunity", f"document {d.document_unique_id}: {hcid} is not known",
                Severity.ERROR, hcid) for d in docs]
            continue
        for batch in batches(docs, partner.max_documents_per_retrieve):
            plan.calls.append(RetrieveCall(partner.home_community_id, batch, principal))
    return plan


def parse(body: etree._Element, ctx: Context | None = None) -> tuple[DocumentRequest, ...]:
    return parse_retrieve_request(body)


def handle(requests: tuple[DocumentRequest, ...], ctx: Context) -> MergedRetrieve:
    xca: InitiatingGateway = ctx.ports.xca
    local_home = f"urn:oid:{ctx.home_community_id.removeprefix('urn:oid:')}"
    plan = plan_retrieve(requests, xca, local_home, ctx.principal)
    local = None
    if plan.local:
        local = xca.local_retrieve(plan.local)
        if local is None:
            for d in plan.local:
                code = "XDSUnknownCommunity" if d.home_community_id else (
                    "XDSMissingHomeCommunityId")
                plan.errors.append(ErrorDetail(
                    code, f"document {d.document_unique_id}: no local repository and "
                    "no community named", Severity.ERROR, d.home_community_id or ""))
    outcomes = xca.retrieve(plan.calls) if plan.calls else []
    merged = merge_retrieve(outcomes, local=local, planning_errors=plan.errors)
    note_retrieves(ctx, plan.calls, outcomes)
    docs = merged.documents or requests
    note(ctx, documents=[_ref(d) for d in docs], outcome="error" if merged.errors else None)
    return merged


def _ref(d: RetrievedDocument | DocumentRequest) -> DocumentRef:
    return DocumentRef(d.document_unique_id, d.repository_unique_id, d.home_community_id)


def note_retrieves(ctx: Context, calls: Sequence[RetrieveCall], answers: Sequence) -> None:
    """One initiator-side ITI-39 audit fact per partner call (per batch)."""
    for call, answer in zip(calls, answers, strict=False):
        outcome, reason = call_outcome(answer)
        got = getattr(getattr(answer, "result", None), "documents", ()) or call.documents
        note(ctx, outbound=OutboundCall(
            "ITI-39", partner_endpoint(ctx.ports.xca, call.home_community_id, "ITI-39"),
            outcome, documents=tuple(_ref(d) for d in got), reason=reason,
        ))


def serialize(merged: MergedRetrieve) -> Reply:
    return retrieve_response_to_reply(merged.documents, merged.errors, partial=merged.partial)


IG_ITI_43 = Transaction(
    id="ITI-43",
    name="Retrieve Document Set (initiating gateway: ITI-39 to partner communities)",
    action="urn:ihe:iti:2007:RetrieveDocumentSet",
    reply_action="urn:ihe:iti:2007:RetrieveDocumentSetResponse",
    error_form=ErrorForm.RETRIEVE_RESPONSE,
    parse=parse,
    handle=handle,
    serialize=serialize,
    mtom_response=True,
)
