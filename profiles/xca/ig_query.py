"""The initiating gateway's query: ITI-18 in from a local consumer, ITI-38 out
(ITI TF-2b 3.38; the IG actor of XCA, ITI TF-1 18.2.1).

Which communities are asked:
- a patient-based query (FindDocuments, FindSubmissionSets, FindFolders, GetAll,
  FindDocumentsByReferenceId) without ``home``: every partner the patient index
  correlates with the patient, each with *its* patient id, plus the local registry;
- a query whose ``AdhocQuery/@home`` names a community: that community only (the
  local registry when it names us);
- an ID-based query (GetDocuments, GetAssociations...) must name one:
  ``XDSMissingHomeCommunityId`` otherwise; an unknown one is ``XDSUnknownCommunity``.
The calls run in parallel (``ctx.ports.xca``); ``profiles.xca.merge`` merges them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from lxml import etree

from profiles.atna.facts import OutboundCall, note
from profiles.errors import (
    ErrorDetail,
    GatewayError,
    XDSMissingHomeCommunityId,
    XDSUnknownCommunity,
)
from profiles.oid import as_hcid
from profiles.transaction import Context, ErrorForm, Reply, Transaction
from profiles.xca.merge import Merged, merge_query
from profiles.xca.ports import Failure, InitiatingGateway, QueryCall
from profiles.xca.query import (
    QueryResult,
    _with_home,
    merged_response,
    stored_query_bytes,
)
from profiles.xca.retrieve import STATUSES
from profiles.xds import iti18
from profiles.xds.storedquery import DE, FO, SS, QueryName, StoredQuery

N = QueryName
PATIENT_PARAMS: dict[QueryName, str] = {
    N.FIND_DOCUMENTS: DE + "PatientId",
    N.FIND_DOCUMENTS_BY_REFERENCE_ID: DE + "PatientId",
    N.FIND_SUBMISSION_SETS: SS + "PatientId",
    N.FIND_FOLDERS: FO + "PatientId",
    N.GET_ALL: "$patientId",
}


@dataclass
class QueryPlan:
    local: StoredQuery | None = None
    calls: list[QueryCall] = field(default_factory=list)
    errors: list[ErrorDetail] = field(default_factory=list)


def _for_partner(query: StoredQuery, param: str | None, patient: str | None, home: str | None):
    params = dict(query.params)
    if param and patient:
        params[param] = ((patient,),)
    return replace(query, params=params, home=home)


def plan_query(
    query: StoredQuery, xca: InitiatingGateway, local_home: str, principal: Any = None
) -> QueryPlan:
    """Decide who is asked what; raises for a request no community can answer."""
    plan = QueryPlan()
    param = PATIENT_PARAMS.get(query.name)
    home = as_hcid(query.home)
    if param is None and home is None:
        raise XDSMissingHomeCommunityId(
            f"{query.name} is not patient-based: AdhocQuery/@home must name the community",
            location=query.id,
        )
    patient = query.one(param) if param else None
    if home == local_home:
        plan.local = query
        return plan
    if home is not None:
        partner = xca.partner(home)
        if partner is None:
            raise XDSUnknownCommunity(f"{home} is not a known community", location=home)
        theirs = next((t for h, t in xca.correlated(patient) if as_hcid(h) == home), patient) \
            if patient else None
        plan.calls.append(QueryCall(
            partner.home_community_id,
            _for_partner(query, param, theirs, None if param else partner.outbound_hcid()),
            principal,
        ))
        return plan
    plan.local = query
    seen: set[str] = set()
    for community, theirs in xca.correlated(patient or ""):
        hcid = as_hcid(community)
        if hcid is None or hcid in seen or hcid == local_home:
            continue
        seen.add(hcid)
        partner = xca.partner(hcid)
        if partner is None:
            continue  # a correlation with a community we cannot reach: nothing to ask
        plan.calls.append(QueryCall(partner.home_community_id,
                                    _for_partner(query, param, theirs, None), principal))
    return plan


def parse(body: etree._Element, ctx: Context | None = None) -> StoredQuery:
    return iti18.parse(body, ctx)  # notes the audit facts too


def partner_endpoint(xca: InitiatingGateway, hcid: str, transaction: str) -> str:
    """The URL we called (the audit record's Destination/Source UserID), else the hcid."""
    endpoint = getattr(xca.partner(hcid), "endpoint", None)
    return (endpoint(transaction) if callable(endpoint) else None) or hcid


def call_outcome(answer: object) -> tuple[str, str | None]:
    """An outbound call's audit outcome: a Failure value is serious, an answer that is
    not plain Success minor."""
    if isinstance(answer, Failure):
        return "fault", answer.reason
    status = getattr(getattr(answer, "result", None), "status", "")
    return ("success" if status.endswith(":Success") else "error"), None


def sent_queries(calls: list[QueryCall]) -> list[bytes]:
    """Each call's AdhocQueryRequest as its audit record's ParticipantObjectQuery."""
    return [stored_query_bytes(call.query) for call in calls]


def note_queries(ctx: Context, calls: list[QueryCall], answers: list,
                 queries: list[bytes] | None = None) -> None:
    """One initiator-side ITI-38 audit fact per partner called; ``queries`` as
    ``sent_queries`` gave them while the partners thought (made here if missing)."""
    if queries is None or len(queries) != len(calls):
        queries = sent_queries(calls)
    for call, answer, query in zip(calls, answers, queries, strict=False):
        outcome, reason = call_outcome(answer)
        param = PATIENT_PARAMS.get(call.query.name)
        patient = call.query.one(param) if param else None
        note(ctx, outbound=OutboundCall(
            "ITI-38", partner_endpoint(ctx.ports.xca, call.home_community_id, "ITI-38"),
            outcome, query=query,
            query_id=call.query.id, home_community_id=call.home_community_id,
            patient_ids=(patient,) if patient else (), reason=reason,
        ))


def handle(query: StoredQuery, ctx: Context) -> Merged:
    xca: InitiatingGateway = ctx.ports.xca
    local_home = as_hcid(ctx.home_community_id) or ""
    plan = plan_query(query, xca, local_home, ctx.principal)
    local = None
    if plan.local is not None:
        try:
            found = xca.local_query(plan.local)
        except GatewayError as error:
            plan.errors += [replace(d, location=d.location or local_home) for d in error.details]
            found = None
        if found is not None:
            objects = tuple(_with_home(o, local_home) for o in found)
            local = QueryResult(STATUSES["Success"], (), objects)
        elif not plan.calls and query.home is not None:
            raise XDSUnknownCommunity("this gateway has no local registry", location=local_home)
    queries: list[bytes] = []  # the calls' audit facts, made while the partners think
    outcomes = (xca.query(plan.calls, meanwhile=lambda: queries.extend(sent_queries(plan.calls)))
                if plan.calls else [])
    note_queries(ctx, plan.calls, outcomes, queries)
    return merge_query(outcomes, local=local, planning_errors=plan.errors)


def serialize(merged: Merged) -> Reply:
    return merged_response(merged.objects, merged.errors, partial=merged.partial)


IG_ITI_18 = Transaction(
    id="ITI-18",
    name="Registry Stored Query (initiating gateway: ITI-38 to partner communities)",
    action="urn:ihe:iti:2007:RegistryStoredQuery",
    reply_action="urn:ihe:iti:2007:RegistryStoredQueryResponse",
    error_form=ErrorForm.ADHOC_QUERY_RESPONSE,
    parse=parse,
    handle=handle,
    serialize=serialize,
)
