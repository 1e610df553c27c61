"""ITI-45 handled without I/O: the IPF queries answered OK, NF and AE from an in-memory index."""

from __future__ import annotations

import pytest

from profiles.hl7v3.control import QueryResponseCode
from profiles.hl7v3.datatypes import II, PN
from profiles.hl7v3.errors import HL7_TABLE_0357
from profiles.hl7v3.patient import OtherId, Person
from profiles.hl7v3.wrapper import AckType
from profiles.pix.hl7v3 import PATIENT_IDENTIFIER_LOCATION, parse_pix_query_response
from profiles.pix.iti45 import ITI_45
from profiles.pix.ports import PatientRecord
from tests.profiles.pix.fake_index import FakePatientIndex, run
from tests.profiles.pix.test_iti44 import body

QUERY = "pixv3-iti45-PRPA_IN201309UV02-query.xml"
UNKNOWN_DOMAIN = "pixv3-iti45-PRPA_IN201309UV02-query_unknown-assigning-authority.xml"
UNKNOWN_PATIENT = "pixv3-iti45-PRPA_IN201309UV02-query_unknown-patient-id.xml"
HIMSS, OTHER = "1.3.6.1.4.1.21367.2005.1.1", "1.3.6.1.4.1.21367.2005.1.2"
PATIENT = II(HIMSS, "PIX10501")
SSN = "2.16.840.1.113883.4.1"


@pytest.fixture
def index() -> FakePatientIndex:
    fake = FakePatientIndex()
    fake.add(PatientRecord(II(OTHER, "OTHER-1"), Person(names=(PN.of("Ann", "Lee"),))))
    fake.add(PatientRecord(PATIENT, Person(names=(PN.of("Ann", "Lee"),), other_ids=(
        OtherId(II(OTHER, "OTHER-1")), OtherId(II(SSN, "123-45-6789"))))))
    return fake


def answer(hl7_message, sample, index, assert_valid):
    el = run(ITI_45, body(hl7_message, sample), index)
    assert_valid(el)
    return parse_pix_query_response(el)


def test_identifiers_in_the_requested_domain(hl7_message, index, assert_valid):
    r = answer(hl7_message, QUERY, index, assert_valid)
    assert (r.acknowledgement.type_code, r.query_response_code) == (AckType.AA,
                                                                   QueryResponseCode.OK)
    assert r.identifiers == (II(OTHER, "OTHER-1"),)  # the SSN is not in the data source asked
    assert r.patient_id == II(HIMSS, "PIX10501", "HIMSS2005")


def test_all_domains_when_none_is_requested(hl7_message, index, assert_valid):
    el = body(hl7_message, QUERY)
    source = el.find(".//{*}dataSource")
    source.getparent().remove(source)
    r = parse_pix_query_response(run(ITI_45, el, index))
    assert set(r.identifiers) == {II(OTHER, "OTHER-1"), II(SSN, "123-45-6789")}
    assert PATIENT not in r.identifiers


def test_known_patient_without_ids_in_the_requested_domain_is_nf(hl7_message, assert_valid):
    fake = FakePatientIndex()
    fake.add(PatientRecord(PATIENT, Person(names=(PN.of("Ann", "Lee"),))))
    fake.known_domains.add(OTHER)
    r = answer(hl7_message, QUERY, fake, assert_valid)
    assert (r.acknowledgement.type_code, r.query_response_code) == (AckType.AA, "NF")


def test_unknown_patient_in_a_known_domain_is_nf(hl7_message, index, assert_valid):
    r = answer(hl7_message, UNKNOWN_PATIENT, index, assert_valid)
    assert (r.acknowledgement.type_code, r.query_response_code) == (AckType.AA, "NF")
    assert r.identifiers == ()


def test_unknown_domain_is_ae_204_at_the_patient_identifier(hl7_message, index, assert_valid):
    r = answer(hl7_message, UNKNOWN_DOMAIN, index, assert_valid)
    assert (r.acknowledgement.type_code, r.query_response_code) == (AckType.AE, "AE")
    (detail,) = r.acknowledgement.details
    assert (detail.code.code, detail.code.code_system) == ("204", HL7_TABLE_0357)
    assert detail.location == PATIENT_IDENTIFIER_LOCATION


def test_unknown_data_source_is_ae_204_at_the_data_source(hl7_message, index, assert_valid):
    el = body(hl7_message, QUERY)
    el.find(".//{*}dataSource/{*}value").set("root", "2.999.1")
    r = parse_pix_query_response(run(ITI_45, el, index))
    assert r.acknowledgement.details[0].location.endswith("parameterList/dataSource/value")


def test_a_merged_id_is_no_longer_known(hl7_message, index, assert_valid):
    index.merge(PatientRecord(II(HIMSS, "SURVIVOR"), Person(names=(PN.of("Ann", "Lee"),))),
                [PATIENT])
    r = answer(hl7_message, QUERY, index, assert_valid)
    assert r.query_response_code is QueryResponseCode.NF


def test_a_busy_index_is_an_ae_internal_error(hl7_message, assert_valid):
    r = answer(hl7_message, QUERY, FakePatientIndex(busy=True), assert_valid)
    assert r.acknowledgement.type_code is AckType.AE
    assert r.acknowledgement.details[0].code.code == "INTERR"
