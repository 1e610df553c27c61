"""ITI-38 responding, sans I/O: our home on every object, foreign and missing community
refused, the partner's patient id translated through the index, errors located at us."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest
from lxml import etree

import wsdl
from profiles.errors import GatewayError
from profiles.hl7v3.datatypes import II
from profiles.hl7v3.patient import OtherId, Person
from profiles.pix.ports import PatientRecord, parse_cx
from profiles.xca import iti38
from profiles.xca.query import stored_query_to_xml
from profiles.xds.metadata import ObjectRef
from profiles.xds.storedquery import DE, QueryName, ReturnType, StoredQuery, build
from tests.profiles.pix.fake_index import FakePatientIndex
from tests.profiles.xds.builders import document_entry

HOME = "urn:oid:1.2.3.38"
OURS = "D-1^^^&1.2.3.38.1&ISO"
THEIRS = "V-9^^^&2.9.9.1&ISO"
APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"


@dataclass
class PatientRegistry:
    """Answers FindDocuments with the entries filed under the asked patient id."""

    by_patient: dict[str, list] = field(default_factory=dict)
    asked: list[StoredQuery] = field(default_factory=list)

    def run_query(self, query: StoredQuery) -> list:
        self.asked.append(query)
        found = self.by_patient.get(query.one(DE + "PatientId") or "", [])
        if query.return_type is ReturnType.OBJECT_REF:
            return [ObjectRef(d.entry_uuid) for d in found]
        return list(found)


def find(patient: str, *, home: str | None = None, rt=ReturnType.LEAF_CLASS) -> StoredQuery:
    return build(QueryName.FIND_DOCUMENTS, {DE + "PatientId": f"'{patient}'",
                                            DE + "Status": [APPROVED]},
                 return_type=rt, home=home)


def registry_of(pid: str, n: int = 2) -> PatientRegistry:
    return PatientRegistry({pid: [document_entry(f"urn:uuid:0000-{i}", patient_id=pid,
                                                 unique_id=f"1.2.3.38.9.{i}")
                                  for i in range(n)]})


def ctx(registry, patients=None):
    return SimpleNamespace(ports=SimpleNamespace(registry=registry, patients=patients),
                           home_community_id=HOME)


def answer(query: StoredQuery, registry, patients=None) -> etree._Element:
    el = iti38.serialize(iti38.handle(query, ctx(registry, patients)))
    wsdl.schema("ebrs").assertValid(etree.fromstring(etree.tostring(el)))
    return el


def test_every_returned_object_carries_our_home():
    el = answer(find(OURS), registry_of(OURS))
    objects = el.findall(f".//{{{RIM}}}ExtrinsicObject")
    assert len(objects) == 2 and {o.get("home") for o in objects} == {HOME}
    assert el.get("status").endswith(":Success")


def test_object_refs_carry_our_home_too():
    el = answer(find(OURS, rt=ReturnType.OBJECT_REF), registry_of(OURS))
    refs = el.findall(f".//{{{RIM}}}ObjectRef")
    assert len(refs) == 2 and {r.get("home") for r in refs} == {HOME}


@pytest.mark.parametrize("home", [HOME, "1.2.3.38", "urn:oid:1.2.3.38"])
def test_a_query_naming_us_in_either_form_is_answered(home):
    el = answer(find(OURS, home=home), registry_of(OURS))
    assert len(el.findall(f".//{{{RIM}}}ExtrinsicObject")) == 2


def test_a_query_for_another_community_is_refused_at_our_location():
    registry = registry_of(OURS)
    with pytest.raises(GatewayError) as e:
        iti38.handle(find(OURS, home="urn:oid:9.9.9"), ctx(registry))
    assert [(d.code, d.location) for d in e.value.details] == [("XDSUnknownCommunity", HOME)]
    assert registry.asked == []


def test_an_id_based_query_without_home_is_refused():
    query = build(QueryName.GET_DOCUMENTS, {DE + "UniqueId": ["1.2.3"]})
    with pytest.raises(GatewayError) as e:
        iti38.handle(query, ctx(registry_of(OURS)))
    assert [(d.code, d.location) for d in e.value.details] == [
        ("XDSMissingHomeCommunityId", HOME)]


def test_an_id_based_query_naming_us_is_run():
    registry = registry_of(OURS)
    registry.by_patient[""] = registry.by_patient[OURS]  # GetDocuments has no patient
    query = build(QueryName.GET_DOCUMENTS, {DE + "UniqueId": ["1.2.3.38.9.0"]}, home=HOME)
    el = answer(query, registry)
    assert {o.get("home") for o in el.iter(f"{{{RIM}}}ExtrinsicObject")} == {HOME}


def test_parse_errors_are_located_at_our_home():
    body = stored_query_to_xml(find(OURS))
    for slot in body.iter(f"{{{RIM}}}Slot"):
        if slot.get("name") == DE + "Status":
            slot.getparent().remove(slot)
    with pytest.raises(GatewayError) as e:
        iti38.parse(body, ctx(None))
    [detail] = e.value.details
    assert detail.code == "XDSStoredQueryMissingParam" and detail.location == HOME
    assert "$XDSDocumentEntryStatus" in detail.context


def test_partner_id_cross_referenced_in_our_index_finds_our_documents():
    index = FakePatientIndex()
    index.add(PatientRecord(parse_cx(OURS), Person(other_ids=(OtherId(parse_cx(THEIRS)),))))
    registry = registry_of(OURS)
    el = answer(find(THEIRS), registry, index)
    assert len(el.findall(f".//{{{RIM}}}ExtrinsicObject")) == 2
    assert [q.one(DE + "PatientId") for q in registry.asked] == [THEIRS, OURS]


def test_partner_id_correlated_with_our_patient_finds_our_documents():
    index = FakePatientIndex()
    index.add(PatientRecord(parse_cx(OURS)))
    index.record_correlation(parse_cx(OURS), II("2.9.9.1", "V-9"), "urn:oid:2.9.9")
    registry = registry_of(OURS, 3)
    el = answer(find(THEIRS), registry, index)
    assert len(el.findall(f".//{{{RIM}}}ExtrinsicObject")) == 3


def test_unknown_partner_id_is_queried_as_sent_and_finds_nothing():
    index = FakePatientIndex()
    index.add(PatientRecord(parse_cx(OURS)))
    registry = registry_of(OURS)
    el = answer(find(THEIRS), registry, index)
    assert el.findall(f".//{{{RIM}}}ExtrinsicObject") == []
    assert [q.one(DE + "PatientId") for q in registry.asked] == [THEIRS]


def test_transaction_descriptor():
    assert iti38.ITI_38.implemented and iti38.ITI_38.action.endswith("CrossGatewayQuery")
