"""ITI-55 requests (PRPA_IN201305UV02): every sample parses, every rule refuses with its code."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from lxml import etree

from profiles.hl7v3.control import IssueError, QueryResponseCode
from profiles.hl7v3.datatypes import AD, II, PN, TEL, TS, gender
from profiles.hl7v3.errors import Hl7v3Error
from profiles.hl7v3.wrapper import AckType, Device
from profiles.hl7v3.xmlutil import HL7
from profiles.xcpd.hl7v3 import (
    PatientDiscoveryQuery,
    QueryParameters,
    ResponsePriority,
    error_acknowledgement,
    parse_patient_discovery_query,
    parse_patient_discovery_response,
    patient_discovery_query_to_xml,
)

IPF = "messages/ipf/xcpd-iti55-PRPA_IN201305UV02-request.xml"
NAME = "PRPA_IN201305UV02"
NOW = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
PLIST = "/PRPA_IN201305UV02/controlActProcess/queryByParameter/parameterList"

SAMPLES = [
    IPF,
    "messages/ipf/xcpd-iti55-PRPA_IN201305UV02-request_deferred.xml",
    "messages/connect/iti55-entity-patientDiscovery-request.xml",
    "messages/connect/iti55-deferred-entity-request.xml",
    "messages/metriport/xcpd-iti55-req-signed-saml-rsasha1-mixed-prefixes.xml",
    "nist-testkit/xcpd/FindPatient/XCA/findpatient.xml",
    "nist-testkit/xcpd/FindPatient/testplan.xml",
    "nist-testkit/tests/15500/test1_findpatient_dob_gender_name.xml",
    "nist-testkit/tests/15500/findpatient_dob_gender_name/test1_findpatient_dob_gender_name.xml",
    # NIST expects "Failure" here because the gender does not match its patient: a valid
    # query that the matcher answers NF, not a malformed one.
    "nist-testkit/tests/15500/test3_findpatient_dob_gender_name_failure.xml",
    "nist-testkit/tests/15500/findpatient_dob_gender_name_failure/"
    "test3_findpatient_dob_gender_name_failure.xml",
]
NIST_NO_BIRTH_TIME = "nist-testkit/tests/15500/test2_findpatient_gender_name_failure.xml"


def q(el: etree._Element, path: str) -> etree._Element:
    found = el.find(path.replace("h:", f"{{{HL7}}}"))
    assert found is not None, path
    return found


@pytest.mark.parametrize("sample", SAMPLES)
def test_every_request_sample_parses_and_builds_back(sample, hl7_message, assert_valid):
    query = parse_patient_discovery_query(hl7_message(sample, NAME))
    assert query.sender_home_community_id
    assert query.parameters.names and query.parameters.birth_time.is_valid
    el = patient_discovery_query_to_xml(query)
    assert_valid(el)
    assert parse_patient_discovery_query(el) == query


WRONG_NAMESPACE = "messages/metriport/xcpd-iti55-req-signed-saml-timestamp-and-assertion.xml"


def test_every_iti55_request_sample_is_covered(samples_carrying):
    # PDQv3 (ITI-47) shares the message type but not ITI-55's rules; no route serves it.
    found = {s for s in samples_carrying(NAME) if "/pdqv3-iti47-" not in s}
    assert found == {*SAMPLES, WRONG_NAMESPACE, NIST_NO_BIRTH_TIME}


def test_nist_query_without_birth_time_or_id_is_refused(hl7_message):
    with pytest.raises(Hl7v3Error) as err:
        parse_patient_discovery_query(hl7_message(NIST_NO_BIRTH_TIME, NAME))
    assert (err.value.code, err.value.location) == ("SYN113", PLIST)


def test_ipf_request_in_detail(hl7_message):
    query = parse_patient_discovery_query(hl7_message(IPF, NAME))
    p = query.parameters
    assert query.message_id == II("1.2.840.114350.1.13.0.1.7.1.1", "35423")
    assert query.query_id == II("1.2.840.114350.1.13.28.1.18.5.999", "18204")
    assert query.sender_home_community_id == "1.2.3.928.955"
    assert query.assigning_authority == "1.2.840.114350.1.13.99997.2.3412"
    assert query.response_priority is ResponsePriority.IMMEDIATE and query.respond_to is None
    assert (query.match_algorithm, query.minimum_degree_match) == ("hund", 100)
    assert p.gender.code == "M" and p.birth_time == TS("19630805")
    assert p.names == (PN.of("Jimmy", "Jones"),)
    assert p.ids == (II("1.2.840.114350.1.13.99997.2.3412", "1234"),
                     II("2.16.840.1.113883.4.1", "58910"))


def test_deferred_request_names_where_to_answer(hl7_message):
    query = parse_patient_discovery_query(
        hl7_message("messages/ipf/xcpd-iti55-PRPA_IN201305UV02-request_deferred.xml", NAME))
    assert query.response_priority is ResponsePriority.DEFERRED
    assert query.respond_to == "***REPLACEME***"


def test_mixed_prefixes_and_unqualified_sender_are_read(hl7_message):
    query = parse_patient_discovery_query(hl7_message(
        "messages/metriport/xcpd-iti55-req-signed-saml-rsasha1-mixed-prefixes.xml", NAME))
    assert query.sender_home_community_id == "2.16.840.1.113883.3.9621"
    assert query.transmission.sender.organization_name == "Metriport"
    p = query.parameters
    assert p.addresses == (AD.of("1100 Test Street", "Helena", "AL", "35080", "USA"),)
    assert p.telecoms == (TEL("tel:205-111-1111"),)
    assert [i.extension for i in p.principal_care_provider_ids] == ["1689055451", "1689055467"]


def test_nist_template_with_every_parameter(hl7_message):
    p = parse_patient_discovery_query(
        hl7_message("nist-testkit/xcpd/FindPatient/XCA/findpatient.xml", NAME)).parameters
    assert p.mothers_maiden_name is not None and p.birth_place_address is not None
    assert p.birth_place_name and len(p.telecoms) == 2 and p.names[0].suffix


def test_a_body_in_the_wrong_namespace_is_refused(hl7_message):
    el = hl7_message(WRONG_NAMESPACE, NAME)
    assert etree.QName(el).namespace != HL7  # urn: bound to ebRS query, not HL7
    with pytest.raises(Hl7v3Error) as err:
        parse_patient_discovery_query(el)
    assert (err.value.code, err.value.location) == ("SYN", "/")


def _remove(el, path):
    node = q(el, path)
    node.getparent().remove(node)


def _set(el, path, attribute, value):
    q(el, path).set(attribute, value)


def _duplicate(el, path):
    node = q(el, path)
    node.addnext(etree.fromstring(etree.tostring(node)))


def _add(el, path, xml):
    q(el, path).append(etree.fromstring(f'<x xmlns="{HL7}">{xml}</x>')[0])


QBP = "h:controlActProcess/h:queryByParameter"
PL = QBP + "/h:parameterList"
RULES = [
    ("no sender homeCommunityId",
     lambda e: _remove(e, "h:sender/h:device/h:asAgent"), "SYN105",
     "/PRPA_IN201305UV02/sender/device/asAgent/representedOrganization/id"),
    ("interaction of another message",
     lambda e: _set(e, "h:interactionId", "extension", "PRPA_IN201309UV02"), "NS200",
     "/PRPA_IN201305UV02/interactionId/@extension"),
    ("wrong trigger event",
     lambda e: _set(e, "h:controlActProcess/h:code", "code", "PRPA_TE201306UV02"), "SYN111",
     "/PRPA_IN201305UV02/controlActProcess/code"),
    ("status not new",
     lambda e: _set(e, QBP + "/h:statusCode", "code", "active"), "SYN111",
     "/PRPA_IN201305UV02/controlActProcess/queryByParameter/statusCode"),
    ("no response modality",
     lambda e: _remove(e, QBP + "/h:responseModalityCode"), "SYN105",
     "/PRPA_IN201305UV02/controlActProcess/queryByParameter/responseModalityCode"),
    ("batch modality",
     lambda e: _set(e, QBP + "/h:responseModalityCode", "code", "B"), "SYN111",
     "/PRPA_IN201305UV02/controlActProcess/queryByParameter/responseModalityCode"),
    ("unknown priority",
     lambda e: _set(e, QBP + "/h:responsePriorityCode", "code", "Q"), "SYN111",
     "/PRPA_IN201305UV02/controlActProcess/queryByParameter/responsePriorityCode"),
    ("deferred without respondTo",
     lambda e: _set(e, QBP + "/h:responsePriorityCode", "code", "D"), "SYN105",
     "/PRPA_IN201305UV02/respondTo"),
    ("sortControl is removed in ITI-55",
     lambda e: _add(e, QBP, "<sortControl/>"), "SYN113",
     "/PRPA_IN201305UV02/controlActProcess/queryByParameter/sortControl"),
    ("matchWeight is removed in ITI-55",
     lambda e: _add(e, QBP + "/h:matchCriterionList", "<matchWeight/>"), "SYN113",
     "/PRPA_IN201305UV02/controlActProcess/queryByParameter/matchCriterionList/matchWeight"),
    ("minimumDegreeMatch above 100",
     lambda e: _set(e, QBP + "/h:matchCriterionList/h:minimumDegreeMatch/h:value", "value",
                    "150"), "SYN113",
     "/PRPA_IN201305UV02/controlActProcess/queryByParameter/matchCriterionList/"
     "minimumDegreeMatch/value"),
    ("two genders",
     lambda e: _duplicate(e, PL + "/h:livingSubjectAdministrativeGender"), "SYN108",
     PLIST + "/livingSubjectAdministrativeGender[2]"),
    ("two values for one name",
     lambda e: _duplicate(e, PL + "/h:livingSubjectName/h:value"), "SYN108",
     PLIST + "/livingSubjectName/value[2]"),
    ("birth time that is no time",
     lambda e: _set(e, PL + "/h:livingSubjectBirthTime/h:value", "value", "05/08/1963"),
     "SYN102", PLIST + "/livingSubjectBirthTime/value/@value"),
    ("patient id without extension",
     lambda e: q(e, PL + "/h:livingSubjectId/h:value").attrib.pop("extension"), "SYN101",
     PLIST + "/livingSubjectId[1]/value/@extension"),
    ("parameterList id is removed in ITI-55",
     lambda e: _add(e, PL, '<id root="1.2"/>'), "SYN113", PLIST + "/id"),
]


@pytest.mark.parametrize(("why", "mutate", "code", "where"), RULES, ids=[r[0] for r in RULES])
def test_rule_breaking_requests_are_refused(why, mutate, code, where, hl7_message):
    el = hl7_message(IPF, NAME)
    mutate(el)
    with pytest.raises(Hl7v3Error) as err:
        parse_patient_discovery_query(el)
    assert (err.value.code, err.value.location) == (code, where)


def test_no_id_needs_both_name_and_birth_time(hl7_message):
    el = hl7_message(IPF, NAME)
    for node in el.iter(f"{{{HL7}}}livingSubjectId"):
        node.getparent().remove(node)
    assert parse_patient_discovery_query(el).parameters.ids == ()  # name + birth time suffice
    _remove(el, PL + "/h:livingSubjectBirthTime")
    with pytest.raises(Hl7v3Error) as err:
        parse_patient_discovery_query(el)
    assert (err.value.code, err.value.location) == ("SYN113", PLIST)


def test_a_refused_request_gets_a_valid_ae_naming_it(hl7_message, assert_valid):
    el = hl7_message(IPF, NAME)
    _set(el, QBP + "/h:statusCode", "code", "aborted")
    with pytest.raises(Hl7v3Error) as err:
        parse_patient_discovery_query(el)
    us = Device(II("1.2.840.114350.1.13.999.234"), "1.2.840.114350.1.13.999")
    answer = error_acknowledgement(None, err.value, sender=us, now=NOW)
    assert_valid(answer)
    response = parse_patient_discovery_response(answer)
    assert response.acknowledgement.type_code is AckType.AE
    assert response.acknowledgement.target_message == II("1.2.840.114350.1.13.0.1.7.1.1", "35423")
    assert response.query_response_code is QueryResponseCode.AE
    assert response.query_id == II("1.2.840.114350.1.13.28.1.18.5.999", "18204")
    assert response.transmission.receiver.home_community_id == "1.2.3.928.955"
    (detail,) = response.errors
    assert (detail.code.code, detail.location) == (
        "SYN111", "/PRPA_IN201305UV02/controlActProcess/queryByParameter/statusCode")
    assert [i.code for i in response.detected_issues] == [IssueError.INTERNAL_ERROR.value]


def test_a_query_we_send(assert_valid):
    parameters = QueryParameters(
        names=(PN.of(("Jim", "Bob"), "Jones", use=("L",)),),
        gender=gender("M"),
        birth_time=TS("19630805"),
        addresses=(AD.of(("1 A St", "Apt 2"), "Helena", "AL", "05080", "USA"),),
        telecoms=(TEL("tel:+1-555-0100", ("HP",)),),
        ids=(II("1.2.840.114350.1.13.99997.2.3412", "1234"),),
        mothers_maiden_name=PN.of((), "Smith"),
        birth_place_address=AD.of(city="Chicago"),
        birth_place_name="Chicago",
        principal_care_provider_ids=(II("2.16.840.1.113883.4.6", "1234567890"),),
    )
    ours = Device(II("1.2.840.114350.1.13.999.567"), "1.2.3.928.955")
    theirs = Device(II("1.2.840.114350.1.13.999.234"), telecom="https://gw.example/xcpd")
    query = PatientDiscoveryQuery.new(parameters, sender=ours, receiver=theirs,
                                      assigning_authority="1.2.840.114350.1.13.99997.2.3412",
                                      now=NOW)
    el = patient_discovery_query_to_xml(query)
    assert_valid(el)
    assert parse_patient_discovery_query(el) == query
    assert q(el, "h:acceptAckCode").get("code") == "AL"
    assert q(el, "h:processingModeCode").get("code") == "T"
    assert q(el, "h:controlActProcess").get("moodCode") == "EVN"
    deferred = PatientDiscoveryQuery.new(parameters, sender=ours, receiver=theirs,
                                         respond_to="https://us.example/xcpd/deferred")
    back = parse_patient_discovery_query(patient_discovery_query_to_xml(deferred))
    assert back.response_priority is ResponsePriority.DEFERRED
    assert back.respond_to == "https://us.example/xcpd/deferred"
