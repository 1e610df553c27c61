"""ITI-45 PIXV3 Query, PIX Manager side (ITI TF-2b 3.45).

PRPA_IN201309UV02 asks for a patient's identifiers in other domains (all of
them, or the requested ``dataSource`` domains); PRPA_IN201310UV02 answers,
per TF-2b 3.45.4.2.3:

* an unknown domain, the patient's or a requested one: AE/AE, code 204
  (Unknown Key Identifier) located at each offending ``value``;
* a known domain but no such (active) patient: AA/NF;
* the patient known: AA/OK with its other identifiers, restricted to the
  requested domains (none there: AA/NF). The queried id itself is not repeated,
  and an id retired by a merge is no longer known.
"""

from __future__ import annotations

from lxml import etree

from profiles.atna.facts import hl7v3_query, ii_ref, note
from profiles.errors import GatewayError
from profiles.hl7v3.errors import Hl7v3InternalError
from profiles.pix.hl7v3 import (
    PRPA_IN201309UV02,
    PRPA_IN201310UV02,
    PixQuery,
    PixQueryResponse,
    parse_pix_query,
    pix_query_response_to_xml,
    query_error_acknowledgement,
)
from profiles.pix.ports import IndexBusy, PatientIndex
from profiles.transaction import Context, ErrorForm, Transaction


def parse(body: etree._Element, ctx: Context) -> PixQuery:
    note(ctx, query=hl7v3_query(body))  # as received, even if it is refused
    query = parse_pix_query(body)
    note(ctx, query_id=ii_ref(query.transmission.id), patient_ids=[str(query.patient_id)])
    return query


def handle(query: PixQuery, ctx: Context) -> PixQueryResponse:
    index: PatientIndex = ctx.ports.patients
    try:
        query.check_domains(index.domains())
        if not index.known(query.patient_id):
            return PixQueryResponse.unknown_patient(query)
        ids = index.cross_references(query.patient_id)
    except IndexBusy:
        raise Hl7v3InternalError("the patient index cannot answer now") from None
    if query.data_sources:
        ids = [ii for ii in ids if ii.root in query.data_sources]
    note(ctx, patient_ids=[str(ii) for ii in ids])
    return PixQueryResponse.found(query, ids)


def error_reply(query: PixQuery | None, error: GatewayError) -> etree._Element:
    return query_error_acknowledgement(query, error)


ITI_45 = Transaction(
    id="ITI-45",
    name="PIXV3 Query",
    action=f"urn:hl7-org:v3:{PRPA_IN201309UV02}",
    reply_action=f"urn:hl7-org:v3:{PRPA_IN201310UV02}",
    error_form=ErrorForm.HL7V3_ACK,
    parse=parse,
    handle=handle,
    serialize=pix_query_response_to_xml,
    error_reply=error_reply,
)
