"""ITI-18 Registry Stored Query (ITI TF-2a 3.18): the registry's side.

parse: ``query:AdhocQueryRequest`` -> StoredQuery (``profiles.xds.storedquery``
checks every parameter). handle: the registry runs it as SQL and returns models
(LeafClass) or ObjectRefs; a LeafClass answer about more than one patient is
refused with XDSResultNotSinglePatient (ITI TF-2a 3.18.4.1.3). serialize: an
AdhocQueryResponse; when the query named a community (``AdhocQuery/@home``) every
returned object carries ours as its ``home`` (ITI TF-2b 3.38.4.1.3).
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from profiles.atna.facts import note
from profiles.errors import XDSResultNotSinglePatient
from profiles.transaction import Context, ErrorForm, Transaction
from profiles.xds.ebrim import adhoc_query_response_to_xml
from profiles.xds.metadata import ListMember
from profiles.xds.ports import Registry
from profiles.xds.storedquery import ReturnType, StoredQuery, parse_adhoc_query_request


@dataclass(frozen=True)
class QueryResponse:
    objects: tuple[ListMember, ...]
    home: str | None = None  # written on every returned object


def parse(body: etree._Element, ctx: Context | None = None) -> StoredQuery:
    """The stored query; the audit trail gets the AdhocQueryRequest as received, then
    its id, ``home`` and patient (ITI TF-2a 3.18.5.1), even when parsing fails."""
    note(ctx, query=etree.tostring(body))
    query = parse_adhoc_query_request(body)
    patients = [v for n in query.params if n.lower().endswith("patientid")
                if isinstance(v := query.one(n), str)]
    note(ctx, query_id=query.id, home_community_id=query.home, patient_ids=patients)
    return query


def run(registry: Registry, query: StoredQuery, home_community_id: str) -> QueryResponse:
    objects = tuple(registry.run_query(query))
    if query.return_type is ReturnType.LEAF_CLASS:
        patients = {p for o in objects if (p := getattr(o, "patient_id", None))}
        if len(patients) > 1:
            raise XDSResultNotSinglePatient(
                f"the LeafClass result names {len(patients)} patients; ask for ObjectRefs",
                location=query.id,
            )
    home = None
    if query.home is not None:
        home = home_community_id if home_community_id.startswith("urn:oid:") else (
            f"urn:oid:{home_community_id}")
    return QueryResponse(objects, home)


def handle(query: StoredQuery, ctx: Context) -> QueryResponse:
    return run(ctx.ports.registry, query, ctx.home_community_id)


def serialize(response: QueryResponse) -> etree._Element:
    return adhoc_query_response_to_xml(response.objects, home=response.home)


ITI_18 = Transaction(
    id="ITI-18",
    name="Registry Stored Query",
    action="urn:ihe:iti:2007:RegistryStoredQuery",
    reply_action="urn:ihe:iti:2007:RegistryStoredQueryResponse",
    error_form=ErrorForm.ADHOC_QUERY_RESPONSE,
    parse=parse,
    handle=handle,
    serialize=serialize,
)
