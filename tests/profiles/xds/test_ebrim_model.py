"""Models written by the codec: every attribute goes out schema-valid and comes back
equal; ids, long URIs, top-level objects and symbolic ids are handled as ebRIM says."""

from __future__ import annotations

from dataclasses import fields, replace

import pytest
from lxml import etree

from profiles.errors import (
    ErrorDetail,
    GatewayError,
    Severity,
    XDSRegistryError,
    XDSRepositoryMetadataError,
)
from profiles.xds import codes as c
from profiles.xds.codes import (
    AssociationType,
    AvailabilityStatus,
    DocumentAvailability,
    DocumentEntryType,
    SubmissionSetStatus,
)
from profiles.xds.ebrim import (
    XopInclude,
    parse_provide_and_register,
    parse_registry_object_list,
    parse_registry_response,
    parse_submit_objects_request,
    provide_and_register_to_xml,
    registry_object_list_to_xml,
    registry_response_to_xml,
    submit_objects_request_to_xml,
)
from profiles.xds.metadata import (
    Association,
    Author,
    Classification,
    Code,
    ExternalIdentifier,
    ExtraObject,
    LocalizedString,
    ObjectRef,
    Slot,
    Submission,
    assign_entry_uuids,
)
from tests.profiles.xds.builders import (
    PARSER,
    code,
    document_entry,
    folder,
    submission,
    submission_set,
)
from tests.profiles.xds.conftest import reparse

UUID_DE = "urn:uuid:0b1c6f54-6b2a-4f0e-9a57-1b6f3c0e8d21"
RIM = f"{{{c.RIM}}}"


def _everything() -> Submission:
    """Every attribute of every object set to something other than its default."""
    extra_cls = Classification(
        classified_object=UUID_DE,
        scheme="urn:uuid:11111111-2222-3333-4444-555555555555",
        node_representation="x",
        id="urn:uuid:aaaaaaaa-2222-3333-4444-555555555555",
        name=LocalizedString("extra"),
        slots=(Slot("s", ("v",)),),
    )
    extra_ei = ExternalIdentifier(
        registry_object=UUID_DE,
        scheme="urn:uuid:66666666-2222-3333-4444-555555555555",
        value="v",
        id="urn:uuid:bbbbbbbb-2222-3333-4444-555555555555",
        name=LocalizedString("n"),
    )
    entry = document_entry(
        UUID_DE,
        logical_id=UUID_DE,
        version="2",
        availability_status=AvailabilityStatus.APPROVED,
        home_community_id="urn:oid:1.2.3",
        title=LocalizedString("Título", lang="es", charset="UTF-8"),
        comments=LocalizedString("comments"),
        event_codes=(code("T-D4909", "SNOMED", "Kidney"), Code("x", "y", None)),
        confidentiality_codes=(code("N", "2.16.840.1.113883.5.25", "normal"), code("R", "z", "r")),
        authors=(
            Author(
                person="^A^B",
                institutions=("I1", "I2^^^^^&1.2&ISO^^^^9"),
                roles=("R",),
                specialties=("S",),
                telecoms=("^^Internet^a@b.c",),
                extra_slots=(Slot("urn:x", ("1",)),),
            ),
            Author(institutions=("Only institution",)),
        ),
        legal_authenticator="^Welby^Marcus^^^Dr^MD",
        uri="http://example.org/" + "x" * 600,
        reference_ids=("ref1^^^&1.2.3&ISO^urn:ihe:iti:xds:2013:accession",),
        document_availability=DocumentAvailability.ONLINE,
        object_type=DocumentEntryType.ON_DEMAND,
        limited_metadata=True,
        extra_slots=(Slot("urn:extra:slot", ("a", "b")), Slot("urn:empty", ())),
        extra_classifications=(extra_cls,),
        extra_external_identifiers=(extra_ei,),
    )
    class_code = Code("34133-9", "2.16.840.1.113883.6.1", "Summary", (Slot("urn:c", ("1",)),))
    entry = replace(entry, class_code=class_code)

    def extras(owner: str) -> dict:
        return {
            "extra_slots": (Slot(f"urn:{owner}", ("1",)),),
            "extra_classifications": (replace(extra_cls, classified_object=owner, id=None),),
            "extra_external_identifiers": (replace(extra_ei, registry_object=owner, id=None),),
        }

    ss = submission_set(
        intended_recipients=("Some Hospital^^^^^^^^^1.2.3|^Wel^Marcus",),
        comments=LocalizedString("c"),
        title=LocalizedString("t"),
        limited_metadata=True,
        logical_id="SubmissionSet01",
        version="1",
        home_community_id="urn:oid:1.2.3",
        availability_status=AvailabilityStatus.APPROVED,
        **extras("SubmissionSet01"),
    )
    f = folder(
        last_update_time="20240101",
        comments=LocalizedString("fc"),
        limited_metadata=True,
        logical_id="Folder01",
        version="3",
        availability_status=AvailabilityStatus.APPROVED,
        home_community_id="urn:oid:1.2.3",
        **extras("Folder01"),
    )
    update = Association(
        entry_uuid="as9",
        type=AssociationType.UPDATE_AVAILABILITY_STATUS,
        source="SubmissionSet01",
        target=UUID_DE,
        original_status="a",
        new_status="b",
        previous_version="1",
        submission_set_status=SubmissionSetStatus.REFERENCE,
        availability_status=AvailabilityStatus.SUBMITTED,
        version="1",
        logical_id="as9",
        home_community_id="urn:oid:1.2.3",
        **extras("as9"),
    )
    return Submission(
        submission_set=ss,
        document_entries=(entry,),
        folders=(f,),
        associations=(update,),
        extra_objects=(
            ObjectRef("urn:uuid:cccccccc-2222-3333-4444-555555555555", "urn:oid:9.9"),
            replace(extra_cls, classified_object="urn:uuid:dddddddd-2222-3333-4444-555555555555"),
            replace(extra_ei, registry_object="urn:uuid:dddddddd-2222-3333-4444-555555555555"),
        ),
    )


def test_every_attribute_survives_the_codec(assert_valid):
    sub = _everything()
    for obj in (*sub.registry_objects(), sub):
        unset = [f.name for f in fields(obj) if getattr(obj, f.name) == f.default]
        assert unset == [], f"{type(obj).__name__} leaves {unset} at default"
    written = submit_objects_request_to_xml(sub)
    assert_valid(written, "lcm.xsd")
    assert parse_submit_objects_request(reparse(written)) == sub


def test_long_uri_is_split_into_numbered_values_and_joined_again():
    uri = "http://example.org/" + "x" * 600
    el = registry_object_list_to_xml([document_entry(uri=uri)])
    values = [
        v.text for v in el.iter(RIM + "Value") if v.getparent().getparent().get("name") == "URI"
    ]
    assert len(values) == 3 and values[0].startswith("1|http") and values[2].startswith("3|")
    assert all(len(v) <= 256 for v in values)
    (entry,) = parse_registry_object_list(reparse(el))
    assert entry.uri == uri


def test_child_ids_are_derived_from_the_owner():
    uuid_entry = document_entry(UUID_DE)
    first = registry_object_list_to_xml([uuid_entry])
    second = registry_object_list_to_xml([uuid_entry])
    ids = [x.get("id") for x in first.iter(RIM + "Classification", RIM + "ExternalIdentifier")]
    assert ids == [
        x.get("id") for x in second.iter(RIM + "Classification", RIM + "ExternalIdentifier")
    ]
    assert all(i.startswith("urn:uuid:") for i in ids) and len(set(ids)) == len(ids)
    symbolic = registry_object_list_to_xml([document_entry("Document01")])
    ids = [x.get("id") for x in symbolic.iter(RIM + "Classification")]
    assert "Document01_classCode" in ids and not any(i.startswith("urn:uuid:") for i in ids)


def test_top_level_classifications_fold_into_their_object():
    xml = f"""<rim:RegistryObjectList xmlns:rim="{c.RIM}">
      <rim:RegistryPackage id="SS"/>
      <rim:Classification id="c1" classifiedObject="SS" classificationNode="{c.SUBMISSION_SET_NODE}"/>
      <rim:ExternalIdentifier id="e1" registryObject="SS" identificationScheme="{c.SS_UNIQUE_ID}"
          value="1.2.3"/>
      <rim:Classification id="c2" classifiedObject="urn:uuid:dddddddd-2222-3333-4444-555555555555"
          classificationScheme="{c.DE_CLASS_CODE}" nodeRepresentation="x"/>
      <rim:ObjectRef id="urn:uuid:dddddddd-2222-3333-4444-555555555555"/>
    </rim:RegistryObjectList>"""  # noqa: E501
    ss, outside, ref = parse_registry_object_list(etree.fromstring(xml, PARSER))
    empty = {"source_id": None, "patient_id": None, "submission_time": None}
    assert ss == submission_set(
        "SS", unique_id="1.2.3", content_type_code=None, authors=(), **empty
    )
    assert isinstance(outside, Classification) and outside.id == "c2"
    assert ref == ObjectRef("urn:uuid:dddddddd-2222-3333-4444-555555555555")


def test_a_package_that_is_neither_set_nor_folder_is_kept_and_reported():
    xml = f"""<rim:RegistryObjectList xmlns:rim="{c.RIM}"><rim:RegistryPackage id="P">
      <rim:Slot name="x"><rim:ValueList><rim:Value>1</rim:Value></rim:ValueList></rim:Slot>
      </rim:RegistryPackage></rim:RegistryObjectList>"""
    problems: list[GatewayError] = []
    (kept,) = parse_registry_object_list(etree.fromstring(xml, PARSER), problems=problems)
    assert isinstance(kept, ExtraObject) and b'id="P"' in kept.xml
    assert [(p.code, p.location) for p in problems] == [("XDSRegistryMetadataError", "P")]
    assert b"<rim:Value>1</rim:Value>" in etree.tostring(registry_object_list_to_xml([kept]))


def test_malformed_known_slots_stay_extra_for_validation_to_report():
    bad = document_entry()
    el = registry_object_list_to_xml([bad])
    entry_el = el[0]
    for slot in entry_el.findall(RIM + "Slot"):
        if slot.get("name") == "size":
            slot.find(f"{RIM}ValueList/{RIM}Value").text = "four"
        if slot.get("name") == "creationTime":
            etree.SubElement(slot.find(RIM + "ValueList"), RIM + "Value").text = "2024"
    (entry,) = parse_registry_object_list(reparse(el))
    assert (entry.size, entry.creation_time) == (None, None)
    assert {s.name for s in entry.extra_slots} == {"size", "creationTime"}


def test_assign_entry_uuids_replaces_symbolic_ids_everywhere():
    sub = submission(with_folder=True)
    sub = replace(sub, extra_objects=(Classification(classified_object="Document01", node="n"),))
    fresh = iter(f"urn:uuid:00000000-0000-0000-0000-00000000000{i}" for i in range(10))
    assigned, mapping = assign_entry_uuids(sub, lambda: next(fresh))
    assert set(mapping) == {
        "SubmissionSet01",
        "Document01",
        "Folder01",
        "as01",
        "as02",
        "as03",
        "as04",
    }
    ids = {o.entry_uuid for o in assigned.registry_objects()}
    assert ids == set(mapping.values())
    links = {(a.source, a.target) for a in assigned.associations}
    assert (mapping["Folder01"], mapping["Document01"]) in links
    assert (mapping["SubmissionSet01"], mapping["as03"]) in links
    assert assigned.extra_objects[0].classified_object == mapping["Document01"]
    assert assign_entry_uuids(assigned) == (assigned, {})


def test_provide_and_register_documents_problems_are_collected():
    sub = submission()
    el = provide_and_register_to_xml(sub, {"Document01": b"text", "Other": XopInclude("cid:a")})
    docs = el.findall(f"{{{c.XDS}}}Document")
    docs[1].set("id", "Document01")  # the same id twice
    extra = etree.SubElement(el, f"{{{c.XDS}}}Document")  # no id
    extra.text = "aGk="
    broken = etree.SubElement(el, f"{{{c.XDS}}}Document", id="Broken")
    broken.text = "not base64!"
    with pytest.raises(GatewayError) as caught:
        parse_provide_and_register(reparse(el))
    assert caught.value.code == "XDSRepositoryMetadataError"
    assert [d.location for d in caught.value.details] == ["Document01", "", "Broken"]
    problems: list[GatewayError] = []
    parsed, documents = parse_provide_and_register(reparse(el), problems=problems)
    assert parsed == sub and documents == {"Document01": b"text"}
    assert all(isinstance(p, XDSRepositoryMetadataError) for p in problems)


def test_wrong_root_elements_are_refused():
    with pytest.raises(XDSRegistryError):
        parse_submit_objects_request(etree.fromstring(f'<rim:X xmlns:rim="{c.RIM}"/>'))
    with pytest.raises(XDSRegistryError):
        parse_provide_and_register(submit_objects_request_to_xml(submission()))


def test_registry_response_build_and_parse(assert_valid):
    ok = registry_response_to_xml()
    assert_valid(ok, "rs.xsd")
    assert parse_registry_response(ok).ok and ok.find(f"{{{c.RS}}}RegistryErrorList") is None
    warning = ErrorDetail("XDSExtraMetadataNotSaved", "dropped urn:x", Severity.WARNING, "D1")
    answer = registry_response_to_xml([warning])
    assert_valid(answer, "rs.xsd")
    parsed = parse_registry_response(reparse(answer))
    assert parsed.ok and parsed.errors == (warning,)
    error = ErrorDetail("XDSMissingDocument", "no document", Severity.ERROR, "Document01")
    failed = parse_registry_response(reparse(registry_response_to_xml([warning, error])))
    assert failed.status is c.ResponseStatus.FAILURE and failed.errors == (warning, error)
    partial = parse_registry_response(reparse(registry_response_to_xml([error], partial=True)))
    assert partial.status is c.ResponseStatus.PARTIAL_SUCCESS


def test_objects_that_are_not_xds_metadata_are_kept_and_reported():
    xml = f"""<rim:RegistryObjectList xmlns:rim="{c.RIM}">
      <rim:ExtrinsicObject id="E" objectType="urn:uuid:00000000-0000-0000-0000-000000000000"/>
      <rim:Classification id="c1" classifiedObject="E" classificationScheme="{c.DE_CLASS_CODE}"
          nodeRepresentation="x"/>
      <rim:ExternalLink id="L" externalURI="http://example.org/"/>
    </rim:RegistryObjectList>"""
    problems: list[GatewayError] = []
    members = parse_registry_object_list(etree.fromstring(xml, PARSER), problems=problems)
    assert [type(m).__name__ for m in members] == ["ExtraObject", "Classification", "ExtraObject"]
    assert [(p.location, p.context[:32]) for p in problems] == [
        ("E", "ExtrinsicObject objectType 'urn:")
    ]
    again = parse_registry_object_list(reparse(registry_object_list_to_xml(members)), problems=[])
    assert again == members


def test_a_provide_and_register_without_metadata_is_reported():
    el = etree.fromstring(
        f'<xds:ProvideAndRegisterDocumentSetRequest xmlns:xds="{c.XDS}">'
        '<xds:Document id="D">aGk=</xds:Document></xds:ProvideAndRegisterDocumentSetRequest>'
    )
    problems: list[GatewayError] = []
    sub, documents = parse_provide_and_register(el, problems=problems)
    assert sub == Submission(submission_set=None) and documents == {"D": b"hi"}
    assert [p.code for p in problems] == ["XDSRepositoryMetadataError"]


def test_assign_entry_uuids_rewrites_nested_extras():
    nested = Classification(classified_object="Document01", node="n")
    ident = ExternalIdentifier(registry_object="Document01", scheme="s", value="v")
    entry = document_entry(extra_classifications=(nested,), extra_external_identifiers=(ident,))
    outside = ExternalIdentifier(registry_object="Document01", scheme="s", value="w")
    sub = replace(submission(), document_entries=(entry,), extra_objects=(outside, ObjectRef("x")))
    assigned, mapping = assign_entry_uuids(sub)
    (new_entry,) = assigned.document_entries
    new_id = mapping["Document01"]
    assert new_entry.entry_uuid == new_id
    assert new_entry.extra_classifications[0].classified_object == new_id
    assert new_entry.extra_external_identifiers[0].registry_object == new_id
    assert assigned.extra_objects == (replace(outside, registry_object=new_id), ObjectRef("x"))
