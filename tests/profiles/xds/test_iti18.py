"""ITI-18 on an in-memory registry: single-patient rule, home on returned objects, answers."""

from __future__ import annotations

import pytest
from lxml import etree

from profiles.errors import GatewayError
from profiles.xds import codes as c
from profiles.xds import iti18
from profiles.xds.ebrim import parse_adhoc_query_response
from profiles.xds.metadata import ObjectRef
from profiles.xds.storedquery import QueryName, ReturnType, build
from tests.profiles.xds.builders import OTHER_PATIENT, document_entry, folder
from tests.profiles.xds.fake_registry import InMemoryRegistry

HOME = "urn:oid:1.3.6.1.4.1.21367.2011.2.1"


def query(return_type=ReturnType.LEAF_CLASS, home=None):
    return build(QueryName.GET_DOCUMENTS, {"$XDSDocumentEntryUniqueId": ["1.2.3"]},
                 return_type=return_type, home=home)


def test_leaf_class_answer_is_schema_valid(assert_valid):
    registry = InMemoryRegistry(answers=[document_entry("urn:uuid:1"), folder("urn:uuid:2")])
    response = iti18.run(registry, query(), HOME)
    assert registry.asked[0].name is QueryName.GET_DOCUMENTS and response.home is None
    el = iti18.serialize(response)
    assert_valid(el, "query.xsd")
    status, objects = parse_adhoc_query_response(etree.fromstring(etree.tostring(el)))
    assert status.ok and [o.entry_uuid for o in objects] == ["urn:uuid:1", "urn:uuid:2"]


def test_leaf_class_about_two_patients_is_refused():
    registry = InMemoryRegistry(answers=[document_entry("urn:uuid:1"),
                                         document_entry("urn:uuid:2", patient_id=OTHER_PATIENT)])
    with pytest.raises(GatewayError) as e:
        iti18.run(registry, query(), HOME)
    assert [d.code for d in e.value.details] == ["XDSResultNotSinglePatient"]
    refs = InMemoryRegistry(answers=[ObjectRef("urn:uuid:1"), ObjectRef("urn:uuid:2")])
    assert len(iti18.run(refs, query(ReturnType.OBJECT_REF), HOME).objects) == 2


def test_home_goes_on_every_object_when_the_query_names_a_community(assert_valid):
    registry = InMemoryRegistry(answers=[document_entry("urn:uuid:1")])
    bare_oid = HOME.removeprefix("urn:oid:")
    el = iti18.serialize(iti18.run(registry, query(home="urn:oid:9.9"), bare_oid))
    assert [e.get("home") for e in el.iter(f"{{{c.RIM}}}ExtrinsicObject")] == [HOME]
    refs = InMemoryRegistry(answers=[ObjectRef("urn:uuid:1")])
    el = iti18.serialize(iti18.run(refs, query(ReturnType.OBJECT_REF, home=HOME), HOME))
    assert [e.get("home") for e in el.iter(f"{{{c.RIM}}}ObjectRef")] == [HOME]
    assert_valid(el, "query.xsd")


def test_parse_reads_the_body():
    body = etree.fromstring(
        f"<q:AdhocQueryRequest xmlns:q='{c.QUERY}' xmlns:r='{c.RIM}'>"
        "<q:ResponseOption returnType='ObjectRef'/>"
        "<r:AdhocQuery id='urn:uuid:a7ae438b-4bc2-4642-93e9-be891f7bb155'>"
        "<r:Slot name='$uuid'><r:ValueList><r:Value>('urn:uuid:1')</r:Value></r:ValueList>"
        "</r:Slot></r:AdhocQuery></q:AdhocQueryRequest>"
    )
    q = iti18.parse(body)
    assert q.name is QueryName.GET_ASSOCIATIONS and q.values("$uuid") == ("urn:uuid:1",)
