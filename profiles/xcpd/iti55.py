"""ITI-55 Cross Gateway Patient Discovery, responding side (ITI TF-2b 3.55).

A PRPA_IN201305UV02 query is matched against the patient index
(``ctx.ports.patients``): candidates come from indexed blocking keys, the
decision from ``profiles.xcpd.matching`` (threshold, margin and weights from
``ctx.ports.matching`` when the gateway sets one, else the defaults). The
answer (PRPA_IN201306UV02) follows TF-2b 3.55.4.2.3:

* a match: AA/OK, one registrationEvent per record of the person, each with
  our homeCommunityId as custodian and the score as queryMatchObservation;
  the records carry names, sex, birth time, addresses and phones, never the
  other identifiers their sources listed (an SSN is not ours to hand out);
* ambiguous or near miss: AA/NF naming the attributes that would decide, or
  plain AA/NF when none would;
* no match: AA/NF;
* the index cannot answer now: AE/AE with ResponderBusy;
* a deferred query (responsePriorityCode D): AE/AE with AnswerNotAvailable,
  since this gateway answers immediately only.

On a match the initiator's ids for the patient (the livingSubjectIds in its
assigning authority, or, when it names none, those outside our domains) are
recorded as correlations with the sender's homeCommunityId, so later XCA
queries can be translated.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from lxml import etree

from profiles.atna.facts import hl7v3_query, ii_ref, note
from profiles.hl7v3.control import IssueError
from profiles.hl7v3.datatypes import II, strip_urn_oid
from profiles.hl7v3.errors import AckDetailCode, Hl7v3NotSupported
from profiles.hl7v3.patient import Patient
from profiles.pix.ports import IndexBusy, PatientIndex, PatientRecord
from profiles.transaction import Context, ErrorForm, Transaction
from profiles.xcpd.matching import MatchConfig, Outcome, Scored, decide, demographics_of_query
from profiles.xcpd.models import (
    PatientDiscoveryQuery,
    PatientDiscoveryResponse,
    PatientMatch,
    ResponsePriority,
)
from profiles.xcpd.query import parse_patient_discovery_query
from profiles.xcpd.response import error_acknowledgement, patient_discovery_response_to_xml

log = logging.getLogger("profiles.xcpd")


def parse(body: etree._Element, ctx: Context) -> PatientDiscoveryQuery:
    note(ctx, query=hl7v3_query(body))  # as received, even if it is refused
    query = parse_patient_discovery_query(body)
    note(ctx, query_id=ii_ref(query.transmission.id),
         home_community_id=query.sender_home_community_id,
         patient_ids=[str(i) for i in query.parameters.ids if i.root and i.extension])
    return query


def _config(ctx: Context) -> MatchConfig:
    found = getattr(ctx.ports, "matching", None)
    return found if isinstance(found, MatchConfig) else MatchConfig()


def _disclosed(record: PatientRecord) -> Patient:
    """The record as a partner may see it: its id and demographics, no other ids."""
    return Patient(ids=(record.id,), person=replace(record.person, other_ids=()))


def _their_ids(query: PatientDiscoveryQuery, our_domains: set[str]) -> list[II]:
    ids = [i for i in query.parameters.ids if i.root and i.extension]
    if query.assigning_authority:
        return [i for i in ids if i.root == query.assigning_authority
                and i.root not in our_domains]
    return [i for i in ids if i.root not in our_domains]


def _correlate(index: PatientIndex, query: PatientDiscoveryQuery, match: Scored) -> None:
    community = query.sender_home_community_id
    if not community:
        return
    try:
        for theirs in _their_ids(query, index.domains()):
            index.record_correlation(match.best.id, theirs, community)
    except (IndexBusy, LookupError):
        # The answer stands; the initiator will discover again. Nothing of the patient logged.
        log.warning("correlation not recorded", extra={"home_community_id": community})


def handle(query: PatientDiscoveryQuery, ctx: Context) -> PatientDiscoveryResponse:
    if query.response_priority is ResponsePriority.DEFERRED:
        error = Hl7v3NotSupported("deferred responses are not supported; ask immediately",
                                  code=AckDetailCode.UNSUPPORTED_PROCESSING_MODE)
        note(ctx, outcome="error")
        return PatientDiscoveryResponse.failure(query, error,
                                                issue=IssueError.ANSWER_NOT_AVAILABLE)
    index: PatientIndex = ctx.ports.patients
    config = _config(ctx)
    demographics = demographics_of_query(query.parameters)
    try:
        candidates = index.candidates(demographics, limit=config.candidate_limit)
    except IndexBusy:
        note(ctx, outcome="error")
        return PatientDiscoveryResponse.failure(query, issue=IssueError.RESPONDER_BUSY)
    decision = decide(demographics, candidates, config,
                      minimum_degree=query.minimum_degree_match)
    if decision.outcome is Outcome.AMBIGUOUS and decision.requested:
        return PatientDiscoveryResponse.more_attributes_requested(query, decision.requested)
    if decision.outcome is not Outcome.MATCH or decision.match is None:
        return PatientDiscoveryResponse.no_match(query)
    match = decision.match
    _correlate(index, query, match)
    community = strip_urn_oid(ctx.home_community_id) or ""
    records = [match.best, *(r for r in match.records if r is not match.best)]
    note(ctx, patient_ids=[str(r.id) for r in records])
    return PatientDiscoveryResponse.matched(query, [
        PatientMatch(_disclosed(r), community, score=match.score.percent) for r in records
    ])


def error_reply(query: PatientDiscoveryQuery | None, error) -> etree._Element:
    return error_acknowledgement(query, error)


ITI_55 = Transaction(
    id="ITI-55",
    name="Cross Gateway Patient Discovery",
    action="urn:hl7-org:v3:PRPA_IN201305UV02:CrossGatewayPatientDiscovery",
    reply_action="urn:hl7-org:v3:PRPA_IN201306UV02:CrossGatewayPatientDiscovery",
    error_form=ErrorForm.HL7V3_ACK,
    parse=parse,
    handle=handle,
    serialize=patient_discovery_response_to_xml,
    error_reply=error_reply,
)
