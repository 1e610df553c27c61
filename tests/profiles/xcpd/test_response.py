"""ITI-55 responses (PRPA_IN201306UV02): partners' answers read, ours valid and faithful."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from lxml import etree

from profiles.errors import XDSRegistryError
from profiles.hl7v3.control import IssueError, QueryResponseCode, RequestedAttribute
from profiles.hl7v3.datatypes import AD, II, PN, TEL, TS, gender
from profiles.hl7v3.errors import Hl7v3Error, Hl7v3InternalError
from profiles.hl7v3.patient import OtherId, Patient, Person
from profiles.hl7v3.wrapper import AckType, Device
from profiles.hl7v3.xmlutil import HL7
from profiles.xcpd.hl7v3 import (
    PatientDiscoveryResponse,
    PatientMatch,
    error_acknowledgement,
    parse_patient_discovery_query,
    parse_patient_discovery_response,
    patient_discovery_response_to_xml,
)

NAME = "PRPA_IN201306UV02"
NOW = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
HCID = "1.2.840.114350.1.13.99998.8734"
US = Device(II("1.2.840.114350.1.13.999.234"), HCID, "https://us.example/xcpd")

# sample -> (ack, queryResponseCode, number of matches, detected issue codes)
SAMPLES = {
    "messages/ipf/xcpd-iti55-PRPA_IN201306UV02-response.xml": ("AA", "OK", 2, []),
    "messages/connect/iti55-adapter-response-match.xml": ("AA", "OK", 1, []),
    "messages/connect/iti55-nhin-response-match-wire.xml": ("AA", "OK", 1, []),
    "messages/connect/iti55-mpi-response-multipleAssigningAuthorities.xml": ("AA", "OK", 2, []),
    "messages/connect/iti55-mpi-response-answerNotAvailable.xml":
        ("AA", "QE", 0, ["AnswerNotAvailable"]),
    "messages/connect/iti55-mpi-response-responderBusy.xml": ("AA", "QE", 0, ["ResponderBusy"]),
    "messages/metriport/xcpd-iti55-resp-match-AA-OK.xml": ("AA", "OK", 1, []),
    "messages/metriport/xcpd-iti55-resp-match-multi-name-addr-telecom-otherids.xml":
        ("AA", "OK", 1, []),
    "messages/metriport/xcpd-iti55-resp-match-no-addr.xml": ("AA", "OK", 1, []),
    "messages/metriport/xcpd-iti55-resp-nomatch-AA-NF.xml": ("AA", "NF", 0, []),
    "messages/metriport/xcpd-iti55-resp-error-AE-INTERR-namespace-prefix.xml":
        ("AE", "AE", 0, ["InternalError"]),
    "nist-testkit/xcpd/FindPatientResponse/FindPatientResponse.xml": ("AA", "OK", 1, []),
}


@pytest.mark.parametrize("sample", SAMPLES)
def test_every_response_sample_is_read(sample, hl7_message, assert_valid):
    ack, code, matches, issues = SAMPLES[sample]
    response = parse_patient_discovery_response(hl7_message(sample, NAME))
    assert response.acknowledgement.type_code == ack
    assert response.query_response_code == code
    assert len(response.matches) == matches
    assert [i.code for i in response.detected_issues] == issues
    for match in response.matches:
        assert match.home_community_id and match.patient.id.root and match.patient.person.names
    # whatever we read, we can write back schema-valid and read again unchanged, except
    # that a patient always goes out active (CONNECT sends statusCode SD)
    el = patient_discovery_response_to_xml(response)
    assert_valid(el)
    active = tuple(replace(m, patient=replace(m.patient, status="active"))
                   for m in response.matches)
    assert parse_patient_discovery_response(el) == replace(response, matches=active)


def test_every_iti55_response_sample_is_covered(samples_carrying):
    found = {s for s in samples_carrying(NAME) if "/pdqv3-iti47-" not in s}  # ITI-47
    assert found == set(SAMPLES)


def test_ipf_response_in_detail(hl7_message):
    response = parse_patient_discovery_response(
        hl7_message("messages/ipf/xcpd-iti55-PRPA_IN201306UV02-response.xml", NAME))
    first, second = response.matches
    assert first.patient.id == II(HCID, "34827K410") and first.home_community_id == HCID
    assert first.health_data_locator and not second.health_data_locator
    assert (first.score, second.score) == (92, 85)
    person = first.patient.person
    assert person.names == (PN.of("James", "Jones"),) and person.gender.code == "M"
    assert person.birth_time == TS("19630804")
    assert person.telecoms[0] == TEL("tel:+1-481-555-7684;ext=2342", ("WP",))
    assert person.addresses[0].city == "Some City"
    assert [o.id.extension for o in person.other_ids] == ["38273D433", "999-88-6345"]
    assert response.acknowledgement.target_message == II("1.2.840.114350.1.13.0.1.7.1.1", "35423")
    assert response.query.names == (PN.of("Jimmy", "Jones"),)


def test_partner_quirks_are_tolerated(hl7_message):
    metriport = parse_patient_discovery_response(hl7_message(
        "messages/metriport/xcpd-iti55-resp-match-multi-name-addr-telecom-otherids.xml", NAME))
    person = metriport.matches[0].patient.person
    assert len(person.names) == 3 and len(person.addresses) == 2
    assert person.addresses[0].postal_code == "05080"  # leading zero kept
    empties = parse_patient_discovery_response(hl7_message(
        "messages/metriport/xcpd-iti55-resp-match-AA-OK.xml", NAME))
    assert empties.matches[0].patient.person.other_ids == ()  # <asOtherIDs><id/></asOtherIDs>
    assert empties.matches[0].patient.person.telecoms == ()  # <telecom/>
    nist = parse_patient_discovery_response(hl7_message(
        "nist-testkit/xcpd/FindPatientResponse/FindPatientResponse.xml", NAME))
    # custodian <id/> is empty: the community is the responder's own
    assert nist.matches[0].home_community_id == "2.16.840.1.113883.3.72.6.1"
    assert nist.matches[0].patient.person.birth_time.to_date() is None  # 19849711
    error = parse_patient_discovery_response(hl7_message(
        "messages/metriport/xcpd-iti55-resp-error-AE-INTERR-namespace-prefix.xml", NAME))
    (detail,) = error.errors
    assert detail.code.code == "INTERR" and detail.text == "No binding for namespace prefix urn"


def test_a_response_without_acknowledgement_is_refused(hl7_message):
    el = hl7_message("messages/metriport/xcpd-iti55-resp-nomatch-AA-NF.xml", NAME)
    el.remove(el.find(f"{{{HL7}}}acknowledgement"))
    with pytest.raises(Hl7v3Error) as err:
        parse_patient_discovery_response(el)
    assert (err.value.code, err.value.location) == ("SYN105", f"/{NAME}/acknowledgement")


@pytest.fixture
def request_(hl7_message):
    return parse_patient_discovery_query(hl7_message(
        "messages/ipf/xcpd-iti55-PRPA_IN201305UV02-request.xml", "PRPA_IN201305UV02"))


def full_match() -> PatientMatch:
    person = Person(
        names=(PN.of("James", "Jones", suffix="Jr", use=("L",)), PN.of("Jim", "Jones")),
        gender=gender("M"),
        birth_time=TS("19630804"),
        addresses=(AD.of("3443 North Arctic Avenue", "Some City", "IL", "05080", "US"),),
        telecoms=(TEL("tel:+1-765-555-4352", ("HP",)),),
        other_ids=(OtherId(II("2.16.840.1.113883.4.1", "999-88-6345"), "2.16.840.1.113883.4.1"),),
        deceased=False,
        multiple_birth=True,
        multiple_birth_order=2,
        mothers_maiden_name=PN.of((), "Smith"),
        birth_place=AD.of(city="Chicago"),
        birth_place_name="Chicago",
    )
    return PatientMatch(Patient((II(HCID, "34827K410"),), person, provider_organization=HCID),
                        HCID, health_data_locator=True, score=97)


def parsed(response: PatientDiscoveryResponse, assert_valid) -> PatientDiscoveryResponse:
    el = patient_discovery_response_to_xml(response)
    assert_valid(el)
    assert el.get("ITSVersion") == "XML_1.0"
    wrapper = {etree.QName(c).localname: c for c in el}
    assert wrapper["interactionId"].attrib == {
        "root": "2.16.840.1.113883.1.6", "extension": "PRPA_IN201306UV02"}
    assert wrapper["processingModeCode"].get("code") == "T"
    assert wrapper["acceptAckCode"].get("code") == "NE"
    control = wrapper["controlActProcess"]
    assert control.get("moodCode") == "EVN"
    assert control.find(f"{{{HL7}}}code").get("code") == "PRPA_TE201306UV02"
    assert len(el.findall(f"{{{HL7}}}acknowledgement")) == 1
    back = parse_patient_discovery_response(el)
    assert back == response
    return back


def test_case_1_a_match(request_, assert_valid):
    response = PatientDiscoveryResponse.matched(request_, [full_match()], sender=US, now=NOW)
    back = parsed(response, assert_valid)
    assert back.acknowledgement.type_code is AckType.AA
    assert back.query_response_code is QueryResponseCode.OK
    assert back.query_id == request_.query_id and back.query == request_.parameters
    assert back.transmission.receiver == request_.transmission.sender
    assert back.matches[0].patient.person.mothers_maiden_name == PN.of((), "Smith")
    el = patient_discovery_response_to_xml(response)
    entity = el.find(".//{*}custodian/{*}assignedEntity")
    assert entity.find(f"{{{HL7}}}id").attrib == {"root": HCID}
    assert entity.find(f"{{{HL7}}}code").attrib == {
        "code": "SupportsHealthDataLocator", "codeSystem": "1.3.6.1.4.1.19376.1.2.27.2"}
    assert el.find(".//{*}patient/{*}statusCode").get("code") == "active"


def test_a_patient_has_one_id_the_others_become_other_ids(request_, assert_valid):
    two = Patient((II(HCID, "A"), II("1.2.3", "B")), Person(names=(PN.of("A", "B"),)))
    response = PatientDiscoveryResponse.matched(request_, [PatientMatch(two, HCID)], now=NOW)
    el = patient_discovery_response_to_xml(response)
    assert_valid(el)
    patient = parse_patient_discovery_response(el).matches[0].patient
    assert patient.ids == (II(HCID, "A"),)
    assert patient.person.other_ids == (OtherId(II("1.2.3", "B"), "1.2.3"),)


def test_case_3_more_attributes_requested(request_, assert_valid):
    wanted = [RequestedAttribute.ADMINISTRATIVE_GENDER, RequestedAttribute.PATIENT_ADDRESS,
              RequestedAttribute.BIRTH_PLACE_NAME, RequestedAttribute.PATIENT_TELECOM]
    back = parsed(PatientDiscoveryResponse.more_attributes_requested(request_, wanted, now=NOW),
                  assert_valid)
    assert back.acknowledgement.type_code is AckType.AA
    assert back.query_response_code is QueryResponseCode.NF and not back.matches
    assert back.requested_attributes == tuple(w.value for w in wanted)


def test_case_4_no_match(request_, assert_valid):
    back = parsed(PatientDiscoveryResponse.no_match(request_, now=NOW), assert_valid)
    assert (back.acknowledgement.type_code, back.query_response_code) == (AckType.AA, "NF")
    assert back.detected_issues == () and back.matches == ()


@pytest.mark.parametrize("issue", list(IssueError))
def test_case_5_cannot_answer(request_, assert_valid, issue):
    error = Hl7v3InternalError("matching service unavailable")
    back = parsed(PatientDiscoveryResponse.failure(request_, error, issue=issue, now=NOW),
                  assert_valid)
    assert (back.acknowledgement.type_code, back.query_response_code) == (AckType.AE, "AE")
    assert [i.code for i in back.detected_issues] == [issue.value]
    (detail,) = back.errors
    assert detail.code.code == "INTERR" and detail.text == "matching service unavailable"


def test_error_acknowledgement_for_a_valid_request_and_a_port_failure(request_, assert_valid):
    el = error_acknowledgement(request_, XDSRegistryError("index down"), sender=US, now=NOW)
    assert_valid(el)
    back = parse_patient_discovery_response(el)
    assert back.acknowledgement.target_message == request_.message_id
    assert back.query_id == request_.query_id and back.query == request_.parameters
    assert back.errors[0].code.code == "INTERR"
    assert el.find(".//{*}queryAck/{*}statusCode").get("code") == "aborted"


def test_error_acknowledgement_with_nothing_known_is_still_valid(assert_valid):
    el = error_acknowledgement(None, Hl7v3Error("unreadable", code="SYN", location="/"))
    assert_valid(el)
    back = parse_patient_discovery_response(el)
    assert back.acknowledgement.target_message is None and back.query_id is None
