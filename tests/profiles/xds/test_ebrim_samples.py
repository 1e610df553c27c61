"""The peers' ebRIM 3.0 messages parse, survive a round trip unchanged, and what we
write back validates against the official schemas."""

from __future__ import annotations

import re

import pytest
from lxml import etree

from profiles.errors import GatewayError, Severity, XDSRegistryError, XDSRegistryMetadataError
from profiles.xds import codes as c
from profiles.xds.codes import AssociationType, DocumentEntryType, ResponseStatus
from profiles.xds.ebrim import (
    XopInclude,
    adhoc_query_response_to_xml,
    parse_adhoc_query_response,
    parse_provide_and_register,
    parse_registry_response,
    parse_submit_objects_request,
    provide_and_register_to_xml,
    submit_objects_request_to_xml,
)
from profiles.xds.metadata import DocumentEntry, ExtraObject, ObjectRef, Slot, SubmissionSet
from tests.conftest import CONFORMANCE
from tests.profiles.xds.conftest import load_element, reparse

FILL = {"od_doc_uuid": "urn:uuid:5b6d0f4e-2f5e-4c3c-9d1e-0d6a4a0c3f10"}
# (file, DocumentEntries, Associations, whether the codec has something to report)
SUBMISSIONS = [
    ("messages/ipf/xds-iti42-SubmitObjectsRequest_full-metadata.xml", 1, 2, False),
    ("messages/ipf/xds-iti42-SubmitObjectsRequest_extra-metadata-slots.xml", 1, 2, False),
    ("messages/ipf/xds-iti42-SubmitObjectsRequest_nist-extra-slots.xml", 1, 1, False),
    ("messages/ipf/xds-iti41-ProvideAndRegisterDocumentSet-request_continua-hrn.xml", 1, 1, False),
    ("messages/ipf/xds-iti57-UpdateDocumentSet-request.xml", 1, 2, False),
    ("messages/ipf/xds-iti57-UpdateDocumentSet-request_same-logicalId-twice.xml", 2, 2, False),
    ("messages/ipf/xds-iti57-UpdateDocumentSet-request_nonstandard-association.xml", 0, 0, True),
    ("messages/nist-toolkit/xds-iti41-ProvideAndRegister-request_soap12.xml", 2, 2, False),
    ("messages/nist-toolkit/xds-iti41-ProvideAndRegister-request_mtom-http-wire.txt", 1, 1, False),
    (
        "messages/nist-toolkit/xdr-iti41-ProvideAndRegister-request_limited-metadata.xml",
        1,
        1,
        False,
    ),
    ("messages/connect/iti41-xdsb-repository-provideAndRegister-request.xml", 1, 1, False),
    ("messages/connect/iti41-xdr-adapter-request-multipleDocuments.xml", 2, 0, True),
    ("messages/connect/iti41-xdr-deferred-entity-request.xml", 1, 0, True),
    ("messages/connect/iti41-xdr-entity-docSubmission-request.xml", 1, 0, True),
    ("messages/connect/iti42-dds-entity-registerDocumentSet-request.xml", 1, 0, True),
    ("nist-testkit/tests/15805/Register_Snapshot/single_stable_doc.xml", 1, 2, False),
    ("nist-testkit/tests/PnrNoXop/submit/body.txt", 1, 1, False),
    ("nist-testkit/tests/PnrXop/NoXop/body.txt", 1, 1, False),
    ("nist-testkit/tests/PnrXop/Xop/body.txt", 1, 1, False),
    ("nist-testkit/tests/PnrXop/encodedURL/body.txt", 1, 1, False),
    ("nist-testkit/tests/PnrXop/dicom/body.txt", 1, 1, False),
]
QUERY_RESPONSES = [
    # (file, objects, status, problems: objects whose status is not an ebRIM StatusType)
    ("messages/nist-toolkit/xds-iti18-AdhocQueryResponse_leafclass.xml", 2, "SUCCESS", 0),
    ("messages/nist-toolkit/xds-iti18-AdhocQueryResponse_objectref.xml", 6, "SUCCESS", 0),
    ("messages/nist-toolkit/xca-iti38-CrossGatewayQuery-response_soap12.xml", 2, "SUCCESS", 0),
    (
        "messages/nist-toolkit/xca-iti38-CrossGatewayQuery-response_partial-with-error.xml",
        2,
        "FAILURE",
        0,
    ),
    ("messages/connect/iti18-registry-findDocuments-response.xml", 6, "SUCCESS", 6),
    ("messages/connect/iti18-registry-response-error-XDSTooManyResults.xml", 0, "FAILURE", 0),
    ("messages/connect/iti38-adapter-response-error-XDSRegistryError.xml", 0, "FAILURE", 0),
    (
        "messages/connect/iti38-adapter-response-error-XDSStoredQueryMissingParam.xml",
        0,
        "FAILURE",
        0,
    ),
    ("messages/connect/iti38-adapter-response-multiDoc.xml", 3, "SUCCESS", 3),
    ("messages/connect/iti38-adapter-response-singleDoc.xml", 1, "SUCCESS", 1),
    ("messages/connect/iti38-nhin-response-success-wire.xml", 3, "SUCCESS", 3),
    (
        "messages/metriport/xca-iti38-resp-partialsuccess-registryerror-no-security.xml",
        0,
        "PARTIAL_SUCCESS",
        0,
    ),
    ("messages/metriport/xca-iti38-resp-success-2-extrinsicobjects.xml", 2, "SUCCESS", 0),
    (
        "messages/metriport/xca-iti38-resp-success-empty-registryobjectlist-unprefixed-wsa.xml",
        0,
        "SUCCESS",
        0,
    ),
]


def _files_holding(pattern: str) -> set[str]:
    found = set()
    for base in ("messages", "nist-testkit/tests"):
        for path in (CONFORMANCE / base).rglob("*"):
            if path.suffix in (".xml", ".txt") and path.name != "testplan.xml":
                text = path.read_text(encoding="latin-1")
                if re.search(pattern, text) and "xsd:rim:3.0" in text:
                    found.add(str(path.relative_to(CONFORMANCE)))
    return found


def test_every_ebrim3_submission_and_query_response_sample_is_covered():
    assert _files_holding(r"<(\w+:)?SubmitObjectsRequest[\s>]") == {s[0] for s in SUBMISSIONS}
    assert _files_holding(r"<(\w+:)?AdhocQueryResponse[\s>]") == {q[0] for q in QUERY_RESPONSES}


@pytest.mark.parametrize(("sample", "entries", "associations", "reported"), SUBMISSIONS)
def test_submission_round_trip(assert_valid, sample, entries, associations, reported):
    el = load_element(sample, c.LCM, "SubmitObjectsRequest", FILL)
    problems: list[GatewayError] = []
    first = parse_submit_objects_request(el, problems=problems)
    assert len(first.document_entries) == entries
    assert len(first.associations) == associations
    assert first.submission_set is not None
    assert bool(problems) is reported
    written = submit_objects_request_to_xml(first)
    assert_valid(written, "lcm.xsd")
    again = parse_submit_objects_request(reparse(written), problems=[])
    assert again == first
    assert etree.tostring(submit_objects_request_to_xml(again)) == etree.tostring(written)


def test_extra_metadata_slots_survive_the_round_trip():
    el = load_element(SUBMISSIONS[1][0], c.LCM, "SubmitObjectsRequest")
    entry = parse_submit_objects_request(el).document_entries[0]
    assert entry.extra_slots == (Slot("urn:my:company:slot", ("somevalue",)),)
    el = load_element(SUBMISSIONS[2][0], c.LCM, "SubmitObjectsRequest")
    sub = parse_submit_objects_request(el)
    written = etree.tostring(submit_objects_request_to_xml(sub))
    for name in (b"urn:nist:extraDESlot", b"urn:nist:extraSSSlot", b"urn:nist:extraAssocSlot"):
        assert name in written
    assert sub.submission_set.extra_slots[0].name == "urn:nist:extraSSSlot"
    assert sub.associations[0].extra_slots[0].name == "urn:nist:extraAssocSlot"
    # Institutions in XON form and a second author are read too.
    assert len(sub.document_entries[0].authors) == 2
    assert sub.document_entries[0].authors[0].institutions[0].endswith("^^^^CleveClin")


def test_a_misspelt_author_slot_is_kept_not_corrected():
    el = load_element(SUBMISSIONS[0][0], c.LCM, "SubmitObjectsRequest")
    author = parse_submit_objects_request(el).document_entries[0].authors[0]
    assert author.specialties == ()
    assert author.extra_slots == (Slot("authorSpeciality", ("Orthopedic",)),)


def test_full_metadata_sample_reads_every_attribute():
    el = load_element(SUBMISSIONS[0][0], c.LCM, "SubmitObjectsRequest")
    sub = parse_submit_objects_request(el)
    d = sub.document_entries[0]
    # The sample's identificationScheme has a blank inside the UUID; it is still the patientId.
    assert d.patient_id == "SELF-5^^^&1.3.6.1.4.1.21367.2005.3.7&ISO"
    assert d.unique_id == "1.3.6.1.4.1.21367.2005.3.9999.32"
    assert (d.class_code.code, d.class_code.scheme) == (
        "History and Physical",
        "Connect-a-thon classCodes",
    )
    assert d.type_code.display == "Outpatient Evaluation And Management"
    assert [x.code for x in d.confidentiality_codes] == ["1.3.6.1.4.1.21367.2006.7.101"]
    assert d.source_patient_info[1] == "PID-5|Doe^John^^^"
    assert (d.creation_time, d.service_stop_time, d.language_code) == (
        "20051224",
        "200412230801",
        "en-us",
    )
    assert d.extra_slots == d.extra_classifications == d.extra_external_identifiers == ()
    ss = sub.submission_set
    assert isinstance(ss, SubmissionSet)
    assert (ss.source_id, ss.submission_time) == ("3670984664", "20041225235050")
    assert ss.comments.value == "Annual physical"
    assert ss.content_type_code.code == "History and Physical"
    assert sub.associations[1].type is AssociationType.IS_SNAPSHOT_OF


def test_limited_metadata_flags_are_read_and_written():
    el = load_element(SUBMISSIONS[9][0], c.LCM, "SubmitObjectsRequest")
    sub = parse_submit_objects_request(el)
    assert sub.document_entries[0].limited_metadata and sub.submission_set.limited_metadata
    written = etree.tostring(submit_objects_request_to_xml(sub))
    assert c.DE_LIMITED_METADATA.encode() in written and c.SS_LIMITED_METADATA.encode() in written


def test_connect_short_association_types_are_reported_and_kept():
    sample = "messages/connect/iti42-dds-entity-registerDocumentSet-request.xml"
    el = load_element(sample, c.LCM, "SubmitObjectsRequest")
    with pytest.raises(GatewayError) as caught:
        parse_submit_objects_request(el)
    assert [(d.code, d.location) for d in caught.value.details] == [
        ("XDSRegistryMetadataError", "as01")
    ]
    assert "'HasMember' is not an XDS association type" in caught.value.context
    problems: list[GatewayError] = []
    sub = parse_submit_objects_request(el, problems=problems)
    assert isinstance(problems[0], XDSRegistryMetadataError)
    (kept,) = sub.extra_objects
    assert isinstance(kept, ExtraObject) and b'associationType="HasMember"' in kept.xml
    assert b'associationType="HasMember"' in etree.tostring(submit_objects_request_to_xml(sub))


def test_two_submission_sets_are_reported():
    sample = "messages/connect/iti41-xdr-adapter-request-multipleDocuments.xml"
    problems: list[GatewayError] = []
    parse_submit_objects_request(
        load_element(sample, c.LCM, "SubmitObjectsRequest"), problems=problems
    )
    assert ("a submission carries exactly one SubmissionSet", "SubmissionSet02") in [
        (p.context, p.location) for p in problems
    ]


# CONNECT's adapter/entity messages wrap theirs in CONNECT's own namespace: not on the wire.
_WIRE_PNR = ("iti41", "Pnr")
PNR = [
    s[0]
    for s in SUBMISSIONS
    if any(k in s[0] for k in _WIRE_PNR) and not s[0].startswith("messages/connect/iti41-xdr")
]


@pytest.mark.parametrize("sample", PNR)
def test_provide_and_register_round_trip(assert_valid, sample):
    el = load_element(sample, c.XDS, "ProvideAndRegisterDocumentSetRequest")
    problems: list[GatewayError] = []
    sub, documents = parse_provide_and_register(el, problems=problems)
    assert problems == []
    written = provide_and_register_to_xml(sub, documents)
    again, again_documents = parse_provide_and_register(reparse(written), problems=[])
    assert (again, again_documents) == (sub, documents)
    # The schema sees the XOP-reconstituted infoset: xds:Document holds base64.
    inline = {k: v if isinstance(v, bytes) else b"attachment" for k, v in documents.items()}
    assert_valid(provide_and_register_to_xml(sub, inline), "XDS.b_DocumentRepository.xsd")


def test_inline_and_xop_documents():
    inline = load_element(
        "nist-testkit/tests/PnrXop/NoXop/body.txt", c.XDS, "ProvideAndRegisterDocumentSetRequest"
    )
    _, documents = parse_provide_and_register(inline)
    expected = (CONFORMANCE / "nist-testkit/tests/PnrXop/NoXop/my_document.txt").read_bytes()
    assert list(documents) == ["Document01"]
    assert documents["Document01"].replace(b"\r\n", b"\n").strip() == expected.strip()
    encoded = load_element(
        "nist-testkit/tests/PnrXop/encodedURL/body.txt",
        c.XDS,
        "ProvideAndRegisterDocumentSetRequest",
    )
    _, documents = parse_provide_and_register(encoded)
    (ref,) = documents.values()
    assert isinstance(ref, XopInclude)
    assert ref.content_id == "fdf975cc-9f08-4d94-b7f6-99f4807f3654-1@urn:ihe:iti:xds-b:2007"
    dicom = load_element(
        "nist-testkit/tests/PnrXop/dicom/body.txt", c.XDS, "ProvideAndRegisterDocumentSetRequest"
    )
    sub, documents = parse_provide_and_register(dicom)
    entry = sub.document_entries[0]
    assert set(documents) == {entry.entry_uuid} and entry.entry_uuid.startswith("urn:uuid:")


@pytest.mark.parametrize(("sample", "count", "status", "bad_statuses"), QUERY_RESPONSES)
def test_query_response_round_trip(assert_valid, sample, count, status, bad_statuses):
    el = load_element(sample, c.QUERY, "AdhocQueryResponse")
    problems: list[GatewayError] = []
    response, objects = parse_adhoc_query_response(el, problems=problems)
    assert (len(objects), response.status.name) == (count, status)
    assert [p.context for p in problems] == ["status 'Active' is not an availabilityStatus"] * (
        bad_statuses
    )
    written = adhoc_query_response_to_xml(
        objects, response.errors, partial=response.status is ResponseStatus.PARTIAL_SUCCESS
    )
    assert_valid(written, "query.xsd")
    again_response, again = parse_adhoc_query_response(reparse(written), problems=[])
    assert (again_response, again) == (response, objects)


def test_query_results_carry_home_and_on_demand_entries():
    sample = "messages/metriport/xca-iti38-resp-success-2-extrinsicobjects.xml"
    _, objects = parse_adhoc_query_response(load_element(sample, c.QUERY, "AdhocQueryResponse"))
    assert all(isinstance(o, DocumentEntry) for o in objects)
    assert {o.object_type for o in objects} == {DocumentEntryType.ON_DEMAND}
    assert {o.home_community_id for o in objects} == {"urn:oid:2.16.840.1.113883.3.9621"}
    refs = [ObjectRef("urn:uuid:22c85315-12cd-4d52-97a9-8d827f03ddc5")]
    plain = [o.__class__(**{**o.__dict__, "home_community_id": None}) for o in objects]
    written = adhoc_query_response_to_xml([*plain, *refs], home="urn:oid:1.2.3")
    homes = [
        el.get("home")
        for el in written.iter(f"{{{c.RIM}}}ExtrinsicObject", f"{{{c.RIM}}}ObjectRef")
    ]
    assert homes == ["urn:oid:1.2.3"] * 3


def test_registry_responses_parse():
    ok = load_element(
        "messages/nist-toolkit/xds-iti42-RegistryResponse_success_soap12.xml",
        c.RS,
        "RegistryResponse",
    )
    assert parse_registry_response(ok).ok
    odd = load_element(
        "messages/nist-toolkit/xds-RegistryResponse_XDSUnknownPatientId.xml",
        c.RS,
        "RegistryResponse",
    )
    response = parse_registry_response(odd)
    assert response.status is ResponseStatus.SUCCESS
    assert [e.code for e in response.errors] == ["XDSUnknownPatientId"]
    assert response.errors[0].severity is Severity.ERROR
    bad = etree.fromstring(f'<rs:RegistryResponse xmlns:rs="{c.RS}" status="Success"/>')
    with pytest.raises(XDSRegistryError):
        parse_registry_response(bad)
