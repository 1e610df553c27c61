"""ITI-44 handled end to end without I/O: IPF feeds change an in-memory index, acks validate."""

from __future__ import annotations

import pytest
from lxml import etree

from profiles.hl7v3.ack import parse_mcci_acknowledgement
from profiles.hl7v3.datatypes import II, PN
from profiles.hl7v3.errors import HL7_TABLE_0357
from profiles.hl7v3.patient import OtherId, Person
from profiles.hl7v3.wrapper import AckType
from profiles.pix.iti44 import ITI_44_ADD, ITI_44_MERGE, ITI_44_REVISE, feed_record
from profiles.pix.ports import PatientRecord
from tests.profiles.pix.fake_index import FakePatientIndex, run

IPF = "messages/ipf/"
ADD = "pixv3-iti44-PRPA_IN201301UV02-add_maximal.xml"
REVISE = "pixv3-iti44-PRPA_IN201302UV02-revise_maximal.xml"
MERGE = "pixv3-iti44-PRPA_IN201304UV02-merge_maximal.xml"
HIMSS = "1.3.6.1.4.1.21367.2005.1.1"
W3 = II(HIMSS, "PIX10515W3")
SSN = "2.16.840.1.113883.4.1"
TXN = {"PRPA_IN201301UV02": ITI_44_ADD, "PRPA_IN201302UV02": ITI_44_REVISE,
       "PRPA_IN201304UV02": ITI_44_MERGE}


def body(hl7_message, sample: str) -> etree._Element:
    return hl7_message(IPF + sample, sample.split("-")[2])


def ack_of(el):
    return parse_mcci_acknowledgement(el).acknowledgement


@pytest.fixture
def index() -> FakePatientIndex:
    return FakePatientIndex()


@pytest.mark.parametrize("sample", [
    ADD, REVISE, MERGE,
    "pixv3-iti44-PRPA_IN201301UV02-add_translated-from-ADT_A01.xml",
    "pixv3-iti44-PRPA_IN201302UV02-revise_translated-from-ADT_A08.xml",
    "pixv3-iti44-PRPA_IN201304UV02-merge_translated-from-ADT_A40.xml",
])
def test_every_feed_sample_is_stored_and_accepted(sample, hl7_message, assert_valid, index):
    el = body(hl7_message, sample)
    answer = run(TXN[sample.split("-")[2]], el, index)
    assert_valid(answer)
    ack = ack_of(answer)
    assert ack.type_code is AckType.AA
    assert ack.target_message == II(el.find("{*}id").get("root"), el.find("{*}id").get("extension"))
    survivor = el.find(".//{*}patient/{*}id")
    assert index.known(II(survivor.get("root"), survivor.get("extension")))


def test_add_keeps_demographics_and_cross_references_the_other_ids(hl7_message, index):
    run(ITI_44_ADD, body(hl7_message, ADD), index)
    record = index.get(W3)
    assert record.person.names[0].given == ("MARY", "ROSE")
    assert {(i.root, i.extension) for i in index.cross_references(W3)} == {
        ("1.2.3.4.5.1000", "PIX10515W4"), (SSN, "100-09-1234"), ("1.2.3", "100-09-123456")}
    assert {HIMSS, "1.2.3.4.5.1000", SSN, "1.2.3"} <= index.domains()


def test_revise_replaces_demographics(hl7_message, index):
    index.add(PatientRecord(W3, Person(names=(PN.of("OLD", "NAME"),))))
    run(ITI_44_REVISE, body(hl7_message, REVISE), index)
    assert index.get(W3).person.names[0].family != ("NAME",)
    assert index.known(W3) and len(index.records) == 1


def test_merge_retires_the_obsolete_id_and_moves_its_correlations(hl7_message, index):
    obsolete, survivor = II("1.2.3.4.666", "120-02"), II("1.2.3.4.5.1000", "120-01")
    other = II("1.2.9", "X-7")
    index.add(PatientRecord(obsolete, Person(names=(PN.of("A", "B"),))))
    index.add(PatientRecord(other, Person(names=(PN.of("A", "B"),),
                                          other_ids=(OtherId(obsolete),))))
    index.record_correlation(obsolete, II("7.7", "THEIRS"), "9.9.9")
    answer = run(ITI_44_MERGE, body(hl7_message, MERGE), index)
    assert ack_of(answer).type_code is AckType.AA
    assert not index.known(obsolete) and index.known(survivor)
    assert index.correlations(survivor)[0].theirs == II("7.7", "THEIRS")
    assert other in index.cross_references(survivor)  # the obsolete id's cross-reference moved
    assert obsolete not in index.cross_references(other)
    assert index.merges[0].merged == (II("1.2.3.4.666", "120-02", "domain1"),)


def test_an_action_announcing_another_interaction_is_refused(hl7_message, assert_valid, index):
    answer = run(ITI_44_ADD, body(hl7_message, REVISE), index)
    assert_valid(answer)
    ack = ack_of(answer)
    assert ack.type_code is AckType.AE and ack.details[0].code.code == "NS200"
    assert ack.target_message == II("21acf7be-007c-41e6-b176-d0969794983b", "678")
    assert not index.records


def test_a_closed_domain_list_refuses_with_204_at_the_patient_id(hl7_message, assert_valid):
    index = FakePatientIndex(closed_domains=True)
    answer = run(ITI_44_ADD, body(hl7_message, ADD), index)
    assert_valid(answer)
    (detail,) = ack_of(answer).details
    assert (detail.code.code, detail.code.code_system) == ("204", HL7_TABLE_0357)
    assert detail.location == (
        "/PRPA_IN201301UV02/controlActProcess/subject/registrationEvent/subject1/patient/id")


def test_a_busy_index_is_an_internal_error_not_an_accept(hl7_message, assert_valid):
    answer = run(ITI_44_ADD, body(hl7_message, ADD), FakePatientIndex(busy=True))
    assert_valid(answer)
    ack = ack_of(answer)
    assert ack.type_code is AckType.AE and ack.details[0].code.code == "INTERR"


def test_a_patient_id_without_extension_is_refused_where_it_is(hl7_message, assert_valid,
                                                               index):
    el = body(hl7_message, ADD)
    el.find(".//{*}patient/{*}id").attrib.pop("extension")
    answer = run(ITI_44_ADD, el, index)
    assert_valid(answer)
    (detail,) = ack_of(answer).details
    assert (detail.code.code, detail.location) == (
        "SYN101", "/PRPA_IN201301UV02/controlActProcess/subject/registrationEvent/subject1/"
                  "patient/id/@extension")
    assert not index.records


def test_feed_record_turns_further_ids_into_other_ids(hl7_message):
    feed = ITI_44_ADD.parse(body(hl7_message, ADD), None)
    record = feed_record(feed)
    assert record.id == feed.patient.id
    others = [o.id.extension for o in record.person.other_ids]
    assert others == ["PIX10515W4", "100-09-1234", "100-09-123456"]  # no root: dropped
