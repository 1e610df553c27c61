"""The peers' submissions against the rules: the good ones pass for the actor they are
meant for, the flawed ones fail with the IHE code and the object at fault."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest

from profiles.errors import GatewayError
from profiles.xds import codes as c
from profiles.xds.codes import DocumentEntryType
from profiles.xds.ebrim import (
    parse_adhoc_query_response,
    parse_provide_and_register,
    parse_submit_objects_request,
)
from profiles.xds.metadata import DocumentEntry
from profiles.xds.validate import (
    check_document,
    check_submission,
    metadata_error,
    validate_submission,
)
from tests.profiles.xds.builders import FakeRegistry, document_entry
from tests.profiles.xds.conftest import load_element

OD_UUID = "urn:uuid:5b6d0f4e-2f5e-4c3c-9d1e-0d6a4a0c3f10"
SELF5 = "SELF-5^^^&1.3.6.1.4.1.21367.2005.3.7&ISO"

REPOSITORY_GOOD = [
    "messages/ipf/xds-iti41-ProvideAndRegisterDocumentSet-request_continua-hrn.xml",
    "messages/nist-toolkit/xds-iti41-ProvideAndRegister-request_mtom-http-wire.txt",
    "messages/connect/iti41-xdsb-repository-provideAndRegister-request.xml",
    "nist-testkit/tests/PnrNoXop/submit/body.txt",
    "nist-testkit/tests/PnrXop/NoXop/body.txt",
    "nist-testkit/tests/PnrXop/Xop/body.txt",
    "nist-testkit/tests/PnrXop/encodedURL/body.txt",
    "nist-testkit/tests/PnrXop/dicom/body.txt",
]


def _codes(errors: list[GatewayError]) -> list[tuple[str, str]]:
    return [(e.code, e.location) for e in errors]


def _pnr(sample: str):
    return parse_provide_and_register(
        load_element(sample, c.XDS, "ProvideAndRegisterDocumentSetRequest")
    )


@pytest.mark.parametrize("sample", REPOSITORY_GOOD)
def test_provide_and_register_samples_pass_the_repository(sample):
    submission, documents = _pnr(sample)
    assert documents
    assert validate_submission(submission, actor="repository", documents=documents) == []
    check_submission(submission, actor="xdr_recipient", documents=documents)


def test_repository_then_registry_accepts_an_inline_document():
    """What ITI-41 does: check the documents, complete hash/size/repositoryUniqueId, register."""
    submission, documents = _pnr("nist-testkit/tests/PnrXop/NoXop/body.txt")
    content = documents["Document01"]
    sha1 = hashlib.sha1(content).hexdigest()
    entry = submission.document_entries[0]
    assert check_document(entry, sha1=sha1, size=len(content)) == []
    stored = replace(entry, hash=sha1, size=len(content), repository_unique_id="1.2.3.4")
    registered = replace(submission, document_entries=(stored,))
    registry = FakeRegistry(patients={submission.submission_set.patient_id})
    assert validate_submission(registered, actor="registry", registry=registry) == []
    wrong = check_document(replace(entry, hash="0" * 40, size=3), sha1=sha1, size=len(content))
    assert _codes(wrong) == [("XDSRepositoryMetadataError", "Document01")] * 2
    assert "is not the document's size" in wrong[1].context


def test_the_registry_accepts_the_nist_extra_slots_submission():
    el = load_element(
        "messages/ipf/xds-iti42-SubmitObjectsRequest_nist-extra-slots.xml",
        c.LCM,
        "SubmitObjectsRequest",
    )
    submission = parse_submit_objects_request(el)
    registry = FakeRegistry(patients={submission.submission_set.patient_id})
    assert validate_submission(submission, actor="registry", registry=registry) == []
    assert _codes(validate_submission(submission, actor="registry", registry=FakeRegistry())) == [
        ("XDSUnknownPatientId", submission.submission_set.entry_uuid)
    ]


def _snapshot_submission():
    el = load_element(
        "nist-testkit/tests/15805/Register_Snapshot/single_stable_doc.xml",
        c.LCM,
        "SubmitObjectsRequest",
        {"od_doc_uuid": OD_UUID},
    )
    submission = parse_submit_objects_request(el)
    # The toolkit assigns uniqueIds at send time (the file carries "SubmissionSet01").
    ss = replace(submission.submission_set, unique_id="1.2.3.4.99.1")
    entry = replace(submission.document_entries[0], unique_id="1.2.3.4.99.2")
    return replace(submission, submission_set=ss, document_entries=(entry,))


def test_nist_snapshot_registration_needs_its_on_demand_entry():
    submission = _snapshot_submission()
    on_demand = document_entry(OD_UUID, patient_id=SELF5, object_type=DocumentEntryType.ON_DEMAND)
    registry = FakeRegistry(patients={SELF5}).add(on_demand)
    assert validate_submission(submission, actor="registry", registry=registry) == []
    snapshot = submission.associations[1].entry_uuid
    errors = validate_submission(submission, actor="registry", registry=FakeRegistry({SELF5}))
    assert _codes(errors) == [("UnresolvedReferenceException", snapshot)]
    stable = FakeRegistry({SELF5}).add(replace(on_demand, object_type=DocumentEntryType.STABLE))
    errors = validate_submission(submission, actor="registry", registry=stable)
    assert _codes(errors) == [("XDSRegistryMetadataError", snapshot)]
    assert "must target an On-Demand DocumentEntry" in errors[0].context


def test_limited_metadata_is_for_the_xdr_recipient_only():
    submission, _ = _pnr(
        "messages/nist-toolkit/xdr-iti41-ProvideAndRegister-request_limited-metadata.xml"
    )
    assert validate_submission(submission, actor="xdr_recipient") == []
    errors = validate_submission(submission, actor="repository")
    refused = [e for e in errors if "limitedMetadata is only accepted" in e.context]
    assert _codes(refused) == [
        ("XDSRepositoryMetadataError", "SubmissionSet01"),
        ("XDSRepositoryMetadataError", "Document01"),
    ]
    assert "DocumentEntry Document01: classCode is required" in [e.context for e in errors]
    # The same entry without the flag must carry full metadata even at an XDR recipient.
    full = replace(
        submission,
        document_entries=(replace(submission.document_entries[0], limited_metadata=False),),
    )
    missing = [e.context for e in validate_submission(full, actor="xdr_recipient")]
    assert "DocumentEntry Document01: typeCode is required" in missing


def test_nist_provide_and_register_without_documents():
    submission, documents = _pnr(
        "messages/nist-toolkit/xds-iti41-ProvideAndRegister-request_soap12.xml"
    )
    assert documents == {}
    errors = validate_submission(submission, actor="repository", documents=documents)
    assert _codes(errors) == [
        ("XDSMissingDocument", "Document01"),
        ("XDSMissingDocument", "Document02"),
    ]
    stray = validate_submission(
        submission, actor="repository", documents={"Document01", "Document02", "Document03"}
    )
    assert _codes(stray) == [("XDSMissingDocumentMetadata", "Document03")]


def test_ipf_full_metadata_sample_is_a_document_source_message():
    """IPF's sample has no hash/size/repositoryUniqueId (an ITI-41 input), a sourceId that is
    not an OID and an IsSnapshotOf to an entry this registry does not hold."""
    el = load_element(
        "messages/ipf/xds-iti42-SubmitObjectsRequest_full-metadata.xml",
        c.LCM,
        "SubmitObjectsRequest",
    )
    submission = parse_submit_objects_request(el)
    assert _codes(validate_submission(submission, actor="repository")) == [
        ("XDSRepositoryMetadataError", "SubmissionSet01")
    ]
    errors = validate_submission(submission, actor="registry", registry=FakeRegistry({SELF5}))
    assert _codes(errors) == [
        ("XDSRegistryMetadataError", "SubmissionSet01"),
        ("XDSRegistryMetadataError", "Document01"),
        ("XDSRegistryMetadataError", "Document01"),
        ("XDSRegistryMetadataError", "Document01"),
        ("UnresolvedReferenceException", "as02"),
    ]
    assert [e.context.split(": ")[-1] for e in errors[1:4]] == [
        "hash is required",
        "size is required",
        "repositoryUniqueId is required",
    ]
    with pytest.raises(GatewayError) as caught:
        check_submission(submission, actor="registry", registry=FakeRegistry({SELF5}))
    assert caught.value.code == "XDSRegistryMetadataError" and len(caught.value.details) == 5


@pytest.mark.parametrize(
    "sample",
    [
        "messages/connect/iti42-dds-entity-registerDocumentSet-request.xml",
        "messages/connect/iti41-xdr-entity-docSubmission-request.xml",
    ],
)
def test_connect_internal_messages_are_refused_for_their_short_association_type(sample):
    problems: list[GatewayError] = []
    el = load_element(sample, c.LCM, "SubmitObjectsRequest")
    submission = parse_submit_objects_request(
        el, problems=problems, error=metadata_error("repository")
    )
    problems += validate_submission(submission, actor="repository")
    assert ("XDSRepositoryMetadataError", "as01") in _codes(problems)
    # Without its (unreadable) HasMember the entry is not a member of the SubmissionSet.
    assert ("XDSRepositoryMetadataError", "Document01") in _codes(problems)
    assert all(isinstance(e, GatewayError) for e in problems)


def test_entries_from_a_query_response_are_models_like_any_other():
    el = load_element(
        "messages/nist-toolkit/xca-iti38-CrossGatewayQuery-response_soap12.xml",
        c.QUERY,
        "AdhocQueryResponse",
    )
    _, objects = parse_adhoc_query_response(el)
    assert all(isinstance(o, DocumentEntry) and o.home_community_id for o in objects)
