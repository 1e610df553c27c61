"""ITI-38 Cross Gateway Query (ITI TF-2b 3.38): the responding gateway's side.

A partner's query is an ITI-18 stored query run against our registry
(``ctx.ports.registry``: the local SQL registry, or any adapter with the same
``run_query``, such as one speaking ITI-18 to a remote registry). What XCA adds:

- the community: ``AdhocQuery/@home`` naming another community is
  ``XDSUnknownCommunity``; an ID-based query (GetDocuments, GetAssociations...)
  without ``home`` is ``XDSMissingHomeCommunityId`` (ITI TF-2b 3.38.4.1; ihe-facts §7);
- the patient: a partner may send *its* id for the patient. When our patient index
  (``ctx.ports.patients``) cross-references that id with ours, or holds it as a
  partner's correlation of one of our patients, the query is run for each of our
  ids as well (``local_patient_ids``);
- the answer: every returned object carries our homeCommunityId as ``home``
  (ITI TF-2b 3.38.4.1.3), and every RegistryError our homeCommunityId as
  ``location`` (the initiating gateway tells communities apart by it).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from lxml import etree

from profiles.errors import GatewayError, XDSMissingHomeCommunityId, XDSUnknownCommunity
from profiles.oid import as_hcid
from profiles.transaction import Context, ErrorForm, Transaction
from profiles.xca.ig_query import PATIENT_PARAMS
from profiles.xds import iti18
from profiles.xds.iti18 import QueryResponse
from profiles.xds.metadata import ObjectRef
from profiles.xds.storedquery import StoredQuery

MAX_LOCAL_IDS = 10  # ids of one person queried for one request


def located(error: GatewayError, home: str) -> GatewayError:
    """``error`` with our homeCommunityId as every detail's location (its old location,
    a parameter or uniqueId, kept in the text)."""
    details = []
    for d in error.details:
        context = d.context if not d.location or d.location == home else (
            f"{d.context} ({d.location})")
        details.append(replace(d, context=context, location=home))
    error.details, error.location = details, home
    return error


def check_community(query: StoredQuery, home: str) -> None:
    """Refuse a query that is not for this community (ITI TF-2b 3.38.4.1)."""
    named = as_hcid(query.home)
    if named is not None and named != home:
        raise XDSUnknownCommunity(f"AdhocQuery/@home {query.home} is not this community",
                                  location=home)
    if named is None and query.name not in PATIENT_PARAMS:
        raise XDSMissingHomeCommunityId(
            f"{query.name} is not patient-based: AdhocQuery/@home must name the community",
            location=home)


def _object_id(obj: Any) -> str:
    return obj.id if isinstance(obj, ObjectRef) else getattr(obj, "entry_uuid", "") or str(id(obj))


def local_patient_ids(patients: Any, patient_id: str) -> list[str]:
    """``patient_id`` first, then our ids for the same person (``PatientIndex.local_ids``:
    cross-references, records listing it as another id, partners' correlations).
    Unchanged when there is no index or the id is not a CX we can read."""
    if patients is None:
        return [patient_id]
    from profiles.pix.ports import key_of, parse_cx

    try:
        ii = parse_cx(patient_id)
    except ValueError:
        return [patient_id]
    out: dict[tuple[str, str], str] = {key_of(ii): patient_id}
    for other in patients.local_ids(ii):
        if other.root and other.extension:
            out.setdefault(key_of(other), str(other))
    return list(out.values())[:MAX_LOCAL_IDS]


def cross_gateway_query(
    registry: Any, query: StoredQuery, home_community_id: str, patients: Any = None
) -> QueryResponse:
    """Run ``query`` for this community; objects carry ``home``. Raises GatewayError
    located at our homeCommunityId."""
    home = as_hcid(home_community_id) or home_community_id
    try:
        check_community(query, home)
        query = replace(query, home=home)
        param = PATIENT_PARAMS.get(query.name)
        patient = query.one(param) if param else None
        ids = local_patient_ids(patients, patient) if patient else []
        if len(ids) <= 1:
            return iti18.run(registry, query, home)
        objects: dict[str, Any] = {}
        for pid in ids:
            each = replace(query, params={**query.params, param: ((pid,),)})
            for o in iti18.run(registry, each, home).objects:
                objects.setdefault(_object_id(o), o)
        return QueryResponse(tuple(objects.values()), home)
    except GatewayError as error:
        raise located(error, home) from None


def parse(body: etree._Element, ctx: Context | None = None) -> StoredQuery:
    try:
        return iti18.parse(body, ctx)  # also notes the query for the audit record
    except GatewayError as error:
        if ctx is None:
            raise
        raise located(error, as_hcid(ctx.home_community_id) or "") from None


def handle(query: StoredQuery, ctx: Context) -> QueryResponse:
    ports = ctx.ports
    return cross_gateway_query(ports.registry, query, ctx.home_community_id,
                               getattr(ports, "patients", None))


def serialize(response: QueryResponse) -> etree._Element:
    return iti18.serialize(response)


ITI_38 = Transaction(
    id="ITI-38",
    name="Cross Gateway Query",
    action="urn:ihe:iti:2007:CrossGatewayQuery",
    reply_action="urn:ihe:iti:2007:CrossGatewayQueryResponse",
    error_form=ErrorForm.ADHOC_QUERY_RESPONSE,
    parse=parse,
    handle=handle,
    serialize=serialize,
)
