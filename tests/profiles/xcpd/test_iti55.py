"""ITI-55 responding, without I/O: the request samples answered from an in-memory index."""

from __future__ import annotations

from dataclasses import replace

import pytest

from profiles.hl7v3.control import IssueError, QueryResponseCode, RequestedAttribute
from profiles.hl7v3.datatypes import AD, II, PN, TS, gender
from profiles.hl7v3.patient import OtherId, Person
from profiles.hl7v3.wrapper import AckType
from profiles.pix.ports import Correlation, PatientRecord, key_of
from profiles.xcpd.iti55 import ITI_55
from profiles.xcpd.matching import MatchConfig
from profiles.xcpd.response import parse_patient_discovery_response
from tests.profiles.pix.fake_index import FakePatientIndex, run

NAME = "PRPA_IN201305UV02"
IPF = "messages/ipf/xcpd-iti55-PRPA_IN201305UV02-request.xml"
IPF_DEFERRED = "messages/ipf/xcpd-iti55-PRPA_IN201305UV02-request_deferred.xml"
NIST = "nist-testkit/tests/15500/"
OURS = "1.2.3.99.1"
SSN = "2.16.840.1.113883.4.1"
EPIC = "1.2.840.114350.1.13.99997.2.3412"  # the IPF sample's assigning authority
JIMMY = PatientRecord(II(OURS, "P-1"), Person(
    names=(PN.of("Jimmy", "Jones"),), gender=gender("M"), birth_time=TS("19630805"),
    addresses=(AD.of("1 Main St", "Springfield", "IL", "62701"),),
    other_ids=(OtherId(II(SSN, "58910")),)))
CHIP = PatientRecord(II("1.2.3.4.5.1000", "100", "domain1"), Person(
    names=(PN.of("Chip", "Moore"),), gender=gender("M"), birth_time=TS("19849711"),
    addresses=(AD.of(city="Montreal"),)))


@pytest.fixture
def index() -> FakePatientIndex:
    fake = FakePatientIndex()
    fake.add(JIMMY)
    fake.add(CHIP)
    return fake


def answer(hl7_message, sample, index, assert_valid, **ports):
    el = run(ITI_55, hl7_message(sample, NAME), index, **ports)
    assert_valid(el)
    return parse_patient_discovery_response(el), el


def test_ipf_request_matches_and_records_the_correlation(hl7_message, index, assert_valid):
    r, el = answer(hl7_message, IPF, index, assert_valid)
    assert (r.acknowledgement.type_code, r.query_response_code) == (AckType.AA,
                                                                   QueryResponseCode.OK)
    (match,) = r.matches
    assert match.patient.id == II(OURS, "P-1") and match.home_community_id == "1.2.3.99"
    assert match.score == 100  # the sample asks for minimumDegreeMatch 100
    assert match.patient.person.names == JIMMY.person.names
    assert match.patient.person.other_ids == ()  # our SSN is not handed out
    assert r.acknowledgement.target_message == II("1.2.840.114350.1.13.0.1.7.1.1", "35423")
    # their id in their assigning authority -> ours; the SSN is nobody's own id
    assert index.correlations(JIMMY.id) == [
        Correlation(JIMMY.id, II(EPIC, "1234"), "1.2.3.928.955")]


def test_nist_find_patient_by_name_birth_and_gender(hl7_message, index, assert_valid):
    r, _ = answer(hl7_message, NIST + "test1_findpatient_dob_gender_name.xml", index,
                  assert_valid)
    assert r.query_response_code is QueryResponseCode.OK
    assert [key_of(m.patient.id) for m in r.matches] == [("1.2.3.4.5.1000", "100")]


def test_nist_wrong_gender_is_no_match(hl7_message, index, assert_valid):
    r, el = answer(hl7_message, NIST + "test3_findpatient_dob_gender_name_failure.xml", index,
                   assert_valid)
    assert (r.acknowledgement.type_code, r.query_response_code) == (AckType.AA,
                                                                   QueryResponseCode.NF)
    assert r.matches == () and r.detected_issues == ()
    assert index.links == {}


def test_nist_query_without_birth_time_is_refused_with_ae(hl7_message, index, assert_valid):
    r, _ = answer(hl7_message, NIST + "test2_findpatient_gender_name_failure.xml", index,
                  assert_valid)
    assert (r.acknowledgement.type_code, r.query_response_code) == (AckType.AE,
                                                                   QueryResponseCode.AE)
    assert r.acknowledgement.details[0].code.code == "SYN113"


def test_ambiguity_asks_for_more_attributes(hl7_message, assert_valid):
    twin = PatientRecord(II(OURS, "P-2"), Person(
        names=(PN.of("Jimmy", "Jones"),), gender=gender("M"), birth_time=TS("19630805"),
        addresses=(AD.of("9 Oak Ave", "Chicago", "IL", "60601"),)))
    fake = FakePatientIndex()
    fake.add(replace(JIMMY, person=replace(JIMMY.person, other_ids=())))
    fake.add(twin)
    r, el = answer(hl7_message, IPF, fake, assert_valid)
    assert (r.acknowledgement.type_code, r.query_response_code) == (AckType.AA,
                                                                   QueryResponseCode.NF)
    assert r.matches == ()
    assert r.requested_attributes == (RequestedAttribute.PATIENT_ADDRESS,)
    assert fake.links == {}  # nothing correlated on a guess


def test_a_busy_index_answers_responder_busy(hl7_message, assert_valid):
    r, _ = answer(hl7_message, IPF, FakePatientIndex(busy=True), assert_valid)
    assert (r.acknowledgement.type_code, r.query_response_code) == (AckType.AE,
                                                                   QueryResponseCode.AE)
    assert [i.code for i in r.detected_issues] == [IssueError.RESPONDER_BUSY]


def test_a_deferred_request_answers_answer_not_available(hl7_message, index, assert_valid):
    r, _ = answer(hl7_message, IPF_DEFERRED, index, assert_valid)
    assert r.acknowledgement.type_code is AckType.AE
    assert [i.code for i in r.detected_issues] == [IssueError.ANSWER_NOT_AVAILABLE]
    assert r.acknowledgement.details[0].code.code == "NS250"


def test_matching_configuration_comes_from_the_ports(hl7_message, index, assert_valid):
    strict = MatchConfig(threshold=100.0)
    r, _ = answer(hl7_message, IPF, index, assert_valid, matching=strict)
    assert r.query_response_code is QueryResponseCode.NF


def test_a_partner_id_correlated_before_finds_the_patient(hl7_message, index, assert_valid):
    index.record_correlation(CHIP.id, II("1.2.3.4.5", "Xsubjectid"), "1.2.3.4.5")
    r, _ = answer(hl7_message, "messages/connect/iti55-entity-patientDiscovery-request.xml",
                  index, assert_valid)
    # the placeholder demographics disagree with Chip's: his partner id alone does not decide
    assert r.query_response_code is QueryResponseCode.NF


def test_every_record_of_the_matched_person_is_returned(hl7_message, index, assert_valid):
    index.add(PatientRecord(II("2.9.9", "VA-7"), Person(
        names=(PN.of("James", "Jones"),), other_ids=(OtherId(JIMMY.id),))))
    r, _ = answer(hl7_message, IPF, index, assert_valid)
    assert {m.patient.id for m in r.matches} == {JIMMY.id, II("2.9.9", "VA-7")}
    assert len({m.score for m in r.matches}) == 1
