"""PRPA_IN201306UV02 <-> PatientDiscoveryResponse (ITI TF-2b 3.55.4.2).

What we build follows the TF and the IHE Schematron: one acknowledgement,
controlActProcess moodCode EVN with code PRPA_TE201306UV02, per match one
registrationEvent whose patient has exactly one id (more go to asOtherIDs) and
statusCode ``active`` (whatever the model says), a patientPerson with at least one name, and a
custodian whose assignedEntity id root is the holding community's
homeCommunityId and whose code says SupportsHealthDataLocator or
NotHealthDataLocator; queryAck echoes the query id and queryByParameter the
query.

What we read from partners is taken leniently (deployed gateways send
``statusCode SD``, detectedIssueEvent outside reasonOf, empty subjects, an
empty custodian id): a subject without a patient id is skipped, not fatal.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from lxml import etree

from profiles.errors import GatewayError
from profiles.hl7v3.control import (
    QueryResponseCode,
    control_act,
    detected_issues_to_xml,
    parse_detected_issues,
    parse_query_ack,
    query_ack_to_xml,
)
from profiles.hl7v3.datatypes import II
from profiles.hl7v3.patient import OtherId, Patient, parse_patient, patient_to_xml
from profiles.hl7v3.wrapper import (
    Device,
    acknowledgement_to_xml,
    parse_acknowledgement,
    parse_transmission,
    transmission_to_xml,
)
from profiles.hl7v3.xmlutil import (
    attr,
    check_root,
    child,
    children,
    hl7,
    message_root,
    path,
    required,
    set_xsi_type,
    sub,
)
from profiles.xcpd.models import (
    HEALTH_DATA_LOCATOR_CODE_SYSTEM,
    PRPA_IN201306UV02,
    PatientDiscoveryQuery,
    PatientDiscoveryResponse,
    PatientMatch,
    ResponsePriority,
)
from profiles.xcpd.query import parse_parameters, query_by_parameter_to_xml

TRIGGER_EVENT = "PRPA_TE201306UV02"
SUPPORTS_HDL = "SupportsHealthDataLocator"
NOT_HDL = "NotHealthDataLocator"
MATCH_OBSERVATION_CODE = "IHE_PDQ"


def _as_sent(patient: Patient) -> Patient:
    """ITI-55 allows one patient id (others become asOtherIDs) and statusCode active."""
    if len(patient.ids) <= 1:
        return replace(patient, status="active")
    extra = tuple(OtherId(ii, ii.root) for ii in patient.ids[1:])
    person = replace(patient.person, other_ids=extra + patient.person.other_ids)
    return replace(patient, ids=patient.ids[:1], person=person, status="active")


def _subject(match: PatientMatch) -> etree._Element:
    subject = hl7("subject", {"typeCode": "SUBJ"})
    event = sub(subject, "registrationEvent", {"classCode": "REG", "moodCode": "EVN"})
    sub(event, "id", {"nullFlavor": "NA"})
    sub(event, "statusCode", {"code": "active"})
    # subjectOf1/queryMatchObservation is required by PRPA_MT201310UV02; no score is NI.
    observed = hl7("subjectOf1", {"typeCode": "SBJ"})
    obs = sub(observed, "queryMatchObservation", {"classCode": "COND", "moodCode": "EVN"})
    sub(obs, "code", {"code": MATCH_OBSERVATION_CODE})
    score = None if match.score is None else str(match.score)
    value = sub(obs, "value", {"value": score, "nullFlavor": "NI" if score is None else None})
    set_xsi_type(value, "INT")
    holder = sub(event, "subject1", {"typeCode": "SBJ"})
    holder.append(patient_to_xml(_as_sent(match.patient), after_person=(observed,)))
    custodian = sub(event, "custodian", {"typeCode": "CST"})
    entity = sub(custodian, "assignedEntity", {"classCode": "ASSIGNED"})
    sub(entity, "id", {"root": match.home_community_id,
                       "nullFlavor": None if match.home_community_id else "UNK"})
    sub(entity, "code", {"code": SUPPORTS_HDL if match.health_data_locator else NOT_HDL,
                         "codeSystem": HEALTH_DATA_LOCATOR_CODE_SYSTEM})
    return subject


def patient_discovery_response_to_xml(r: PatientDiscoveryResponse) -> etree._Element:
    root = message_root(PRPA_IN201306UV02)
    transmission_to_xml(root, r.transmission)
    root.append(acknowledgement_to_xml(r.acknowledgement))
    control = control_act(TRIGGER_EVENT)
    root.append(control)
    for match in r.matches:
        control.append(_subject(match))
    reason = detected_issues_to_xml(r.detected_issues)
    if reason is not None:
        control.append(reason)
    control.append(query_ack_to_xml(r.query_id, r.query_response_code or QueryResponseCode.AE,
                                    quantities=len(r.matches)))
    if r.query is not None and r.query_id is not None:
        control.append(query_by_parameter_to_xml(r.query_id, r.query, r.response_priority))
    return root


def _score(patient_el: etree._Element) -> int | None:
    value = attr(path(patient_el, "subjectOf1", "queryMatchObservation", "value"), "value")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _match(event: etree._Element, fallback_community: str | None) -> PatientMatch | None:
    patient_el = path(event, "subject1", "patient")
    if patient_el is None:
        return None
    patient = parse_patient(patient_el)
    if not patient.ids:
        return None
    entity = path(event, "custodian", "assignedEntity")
    return PatientMatch(
        patient=patient,
        home_community_id=attr(child(entity, "id"), "root") or fallback_community or "",
        health_data_locator=attr(child(entity, "code"), "code") == SUPPORTS_HDL,
        score=_score(patient_el),
    )


def parse_patient_discovery_response(el: etree._Element) -> PatientDiscoveryResponse:
    """Read a responding gateway's answer (lenient; the acknowledgement is required)."""
    check_root(el, PRPA_IN201306UV02)
    transmission = parse_transmission(el, PRPA_IN201306UV02, strict=False)
    ack = parse_acknowledgement(el)
    control = required(el, "controlActProcess")
    matches = []
    for subject in children(control, "subject"):
        for event in children(subject, "registrationEvent"):
            found = _match(event, transmission.sender.home_community_id)
            if found is not None:
                matches.append(found)
    query_ack = parse_query_ack(control)
    qbp = child(control, "queryByParameter")
    plist = child(qbp, "parameterList")
    priority = attr(child(qbp, "responsePriorityCode"), "code")
    return PatientDiscoveryResponse(
        transmission=transmission,
        acknowledgement=ack,
        query_response_code=query_ack.response_code,
        query_id=query_ack.query_id,
        matches=tuple(matches),
        detected_issues=parse_detected_issues(control),
        query=parse_parameters(plist) if plist is not None else None,
        response_priority=(ResponsePriority.DEFERRED if priority == "D"
                           else ResponsePriority.IMMEDIATE),
    )


def error_acknowledgement(request: PatientDiscoveryQuery | None, error: GatewayError, *,
                          sender: Device | None = None, message_id: II | None = None,
                          now: datetime | None = None) -> etree._Element:
    """The PRPA_IN201306UV02 AE answer (TF-2b 3.55.4.2.3 case 5) for ``error``."""
    return patient_discovery_response_to_xml(PatientDiscoveryResponse.failure(
        request, error, sender=sender, message_id=message_id, now=now))
