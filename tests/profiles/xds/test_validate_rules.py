"""Each rule on a hand-mutated copy of a valid submission: the IHE error code, the object
at fault as location, and a codeContext that says what is wrong."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest

from profiles.errors import GatewayError
from profiles.xds import codes as c
from profiles.xds.codes import (
    AssociationType,
    AvailabilityStatus,
    DocumentEntryType,
    SubmissionSetStatus,
)
from profiles.xds.ebrim import parse_registry_object_list, registry_object_list_to_xml
from profiles.xds.metadata import (
    Author,
    Classification,
    Code,
    ExternalIdentifier,
    LocalizedString,
    Slot,
    Submission,
)
from profiles.xds.validate import check_submission, validate_submission
from tests.profiles.xds.builders import (
    OTHER_PATIENT,
    PATIENT,
    FakeRegistry,
    association,
    code,
    document_entry,
    folder,
    member,
    submission,
    submission_set,
)
from tests.profiles.xds.conftest import reparse

OLD = "urn:uuid:7d3c5b2a-1e4f-4a6b-8c9d-0e1f2a3b4c5d"  # a registered DocumentEntry
OLD_FOLDER = "urn:uuid:1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
META = "XDSRegistryMetadataError"


def entry(**changes) -> Submission:
    return replace(submission(), document_entries=(document_entry(**changes),))


def ss(**changes) -> Submission:
    return replace(submission(), submission_set=submission_set(**changes))


def with_folder(**changes) -> Submission:
    return replace(submission(with_folder=True), folders=(folder(**changes),))


def plus(*associations) -> Submission:
    sub = submission()
    return replace(sub, associations=sub.associations + associations)


def old_entry(**changes):
    """A registered entry (a different document unless ``unique_id`` says otherwise)."""
    fields = {"unique_id": "1.2.3.4.5.100.9", "availability_status": AvailabilityStatus.APPROVED}
    return document_entry(OLD, **{**fields, **changes})


def registry(*objects, patients=(PATIENT,)) -> FakeRegistry:
    return FakeRegistry(set(patients)).add(*objects)


RPLC = AssociationType.RPLC
# (case id, submission, registry state, expected [(code, location)], codeContext fragment)
CASES = [
    # ---- required attributes and value formats (ITI TF-3 4.2.3)
    ("classCode required", entry(class_code=None), None, [(META, "Document01")],
     "classCode is required"),
    ("hash required at registry", entry(hash=None), None, [(META, "Document01")],
     "hash is required"),
    ("patientId CX", replace(entry(patient_id="PID-1^^^&1.2.3.4.5"),
                             submission_set=submission_set(patient_id="PID-1^^^&1.2.3.4.5")),
     None, [(META, "SubmissionSet01"), (META, "Document01")], "CX.4 must be &OID&ISO"),
    ("sourcePatientId", entry(source_patient_id="LOCAL-9"), None, [(META, "Document01")],
     "needs an id and an assigning authority"),
    ("uniqueId not an OID", entry(unique_id="abc"), None, [(META, "Document01")],
     "neither an OID nor OID^extension"),
    ("uniqueId empty extension", entry(unique_id="1.2.3^"), None, [(META, "Document01")],
     "neither an OID nor OID^extension"),
    ("uniqueId too long", entry(unique_id="1.2.3^" + "x" * 123), None, [(META, "Document01")],
     "all at most 128"),
    ("SubmissionSet uniqueId over 64", ss(unique_id="1." + "2" * 63), None,
     [(META, "SubmissionSet01")], "not an OID of at most 64"),
    ("sourceId", ss(source_id="3670984664"), None, [(META, "SubmissionSet01")],
     "sourceId '3670984664'"),
    ("repositoryUniqueId", entry(repository_unique_id="repo"), None, [(META, "Document01")],
     "repositoryUniqueId 'repo'"),
    ("creationTime format", entry(creation_time="2024-01-02"), None, [(META, "Document01")],
     "is not a UTC time"),
    ("service times order", entry(service_start_time="20240103"), None,
     [(META, "Document01")], "is after serviceStopTime"),
    ("submissionTime required", ss(submission_time=None), None, [(META, "SubmissionSet01")],
     "submissionTime is required"),
    ("hash format", entry(hash="abc"), None, [(META, "Document01")], "not a SHA-1"),
    ("mimeType required", entry(mime_type=None), None, [(META, "Document01")],
     "mimeType is required"),
    ("mimeType format", entry(mime_type="text"), None, [(META, "Document01")],
     "is not type/subtype"),
    ("languageCode", entry(language_code="en_US"), None, [(META, "Document01")], "RFC 5646"),
    ("title length", entry(title=LocalizedString("t" * 129)), None, [(META, "Document01")],
     "longer than 128"),
    ("sourcePatientInfo", entry(source_patient_info=("PID3|x",)), None, [(META, "Document01")],
     "is not PID-n|value"),
    ("codingScheme", entry(type_code=Code("x", None, "X")), None, [(META, "Document01")],
     "codingScheme slot is missing"),
    ("display name", entry(format_code=Code("x", "y")), None, [(META, "Document01")],
     "display name (Name) is missing"),
    ("empty code", entry(class_code=Code("", "y", "Y")), None, [(META, "Document01")],
     "nodeRepresentation) is empty"),
    ("empty author", entry(authors=(Author(),)), None, [(META, "Document01")],
     "has no authorPerson"),
    ("author person twice", entry(authors=(Author(extra_slots=(
        Slot("authorPerson", ("a", "b")),)),)), None, [(META, "Document01")] * 2,
     "authorPerson is repeated"),
    ("homeCommunityId", entry(home_community_id="1.2.3"), None, [(META, "Document01")],
     "is not urn:oid:OID"),
    ("contentTypeCode required", ss(content_type_code=None), None,
     [(META, "SubmissionSet01")], "contentTypeCode is required"),
    ("intendedRecipient", ss(intended_recipients=("|",)), None, [(META, "SubmissionSet01")],
     "intendedRecipient of SubmissionSet01 is empty"),
    ("limitedMetadata at a registry", entry(limited_metadata=True), None,
     [(META, "Document01")], "only accepted by an XDR recipient"),
    ("on-demand entry", entry(object_type=DocumentEntryType.ON_DEMAND), None,
     [(META, "Document01")], "registered by ITI-61"),
    ("slot given twice", entry(extra_slots=(Slot("creationTime", ("2024",)),)), None,
     [(META, "Document01")], "slot creationTime is repeated"),
    ("classCode twice", entry(extra_classifications=(Classification(
        classified_object="Document01", scheme=c.DE_CLASS_CODE, node_representation="x"),)),
     None, [(META, "Document01")], "classCode is given more than once"),
    ("patientId twice", entry(extra_external_identifiers=(ExternalIdentifier(
        registry_object="Document01", scheme=c.DE_PATIENT_ID, value=PATIENT),)), None,
     [(META, "Document01")], "patientId is given more than once"),
    ("folder codeList and title", with_folder(codes=(), title=None), None,
     [(META, "Folder01")] * 2, "codeList is required"),
    ("folder lastUpdateTime", with_folder(last_update_time="yesterday"), None,
     [(META, "Folder01")], "lastUpdateTime 'yesterday'"),
    # ---- the submission as a whole
    ("no SubmissionSet", replace(submission(), submission_set=None, associations=()), None,
     [(META, "")], "has no SubmissionSet"),
    ("ids repeat", plus(association("as01", "SubmissionSet01", "Folder01")), None,
     [(META, "as01"), ("UnresolvedReferenceException", "as01")], "names more than one object"),
    ("malformed urn:uuid id", plus(association("urn:uuid:nope", "SubmissionSet01", OLD)), None,
     [(META, "urn:uuid:nope")], "is not a UUID"),
    ("entryUUID registered", replace(submission(), document_entries=(document_entry(OLD),),
                                     associations=(member("as01", OLD),)),
     registry(old_entry()), [(META, OLD)], "is already in the registry"),
    ("entry of another patient", entry(patient_id=OTHER_PATIENT), None,
     [("XDSPatientIdDoesNotMatch", "Document01")], "differs from the SubmissionSet's"),
    ("folder of another patient", with_folder(patient_id=OTHER_PATIENT), None,
     [("XDSPatientIdDoesNotMatch", "Folder01")], "differs from the SubmissionSet's"),
    ("unknown patient", submission(), registry(patients=()),
     [("XDSUnknownPatientId", "SubmissionSet01")], "is not known to the registry"),
    ("uniqueId twice in message", entry(unique_id="1.2.3.4.5.100.2"), None,
     [("XDSRegistryDuplicateUniqueIdInMessage", "Document01")], "used by both SubmissionSet01"),
    ("uniqueId of a registered folder", entry(unique_id="1.2.3.4.5.100.7"),
     registry(folder(OLD_FOLDER, unique_id="1.2.3.4.5.100.7")),
     [("XDSDuplicateUniqueIdInRegistry", "Document01")], "already used by Folder"),
    ("SubmissionSet uniqueId registered", submission(),
     registry(submission_set("urn:uuid:2a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d")),
     [("XDSDuplicateUniqueIdInRegistry", "SubmissionSet01")], "already used by SubmissionSet"),
    ("resubmission with another hash", submission(), registry(old_entry(
        unique_id="1.2.3.4.5.100.1", hash="f" * 40)),
     [("XDSNonIdenticalHash", "Document01")], "registered with hash"),
    ("resubmission with another size", submission(), registry(old_entry(
        unique_id="1.2.3.4.5.100.1", size=5)),
     [("XDSNonIdenticalSize", "Document01")], "registered with size 5"),
    # ---- associations (ITI TF-3 4.2.2)
    ("HasMember without SubmissionSetStatus", replace(submission(), associations=(
        member("as01", "Document01", status=None),)), None,
     [(META, "as01")], "needs a SubmissionSetStatus"),
    ("bad SubmissionSetStatus", replace(submission(), associations=(replace(
        member("as01", "Document01", status=None),
        extra_slots=(Slot("SubmissionSetStatus", ("Copy",)),)),)), None,
     [(META, "as01"), (META, "as01")], "has a bad value ['Copy']"),
    ("Original names a registered entry", plus(member("as09", OLD)), registry(old_entry()),
     [(META, "as09")], "SubmissionSetStatus Original, but"),
    ("Reference names a submitted entry", replace(submission(), associations=(
        member("as01", "Document01", SubmissionSetStatus.REFERENCE),)), None,
     [(META, "as01")], "use Original"),
    ("Reference to another patient's entry", plus(member(
        "as09", OLD, SubmissionSetStatus.REFERENCE)),
     registry(old_entry(patient_id=OTHER_PATIENT)),
     [("XDSPatientIdDoesNotMatch", "as09")], "links SubmissionSet01"),
    ("HasMember from an entry", plus(association("as09", "Document01", OLD)), None,
     [(META, "as09")], "must come from a SubmissionSet or a Folder"),
    ("SubmissionSet in a SubmissionSet", plus(association(
        "as09", "SubmissionSet01", "SubmissionSet01")), None, [(META, "as09")],
     "cannot contain a SubmissionSet"),
    ("HasMember from another SubmissionSet", plus(association(
        "as09", "urn:uuid:2a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d", "Document01")),
     registry(submission_set("urn:uuid:2a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
                             unique_id="1.9")),
     [(META, "as09")], "other than this submission's"),
    ("folder holds a folder", replace(submission(with_folder=True), associations=(
        *submission(with_folder=True).associations,
        association("as09", "Folder01", "Folder01"))), None, [(META, "as09")],
     "can only contain DocumentEntries"),
    ("registered folder of another patient",
     plus(association("as09", OLD_FOLDER, "Document01")),
     registry(folder(OLD_FOLDER, unique_id="1.9", patient_id=OTHER_PATIENT)),
     [("XDSPatientIdDoesNotMatch", "as09")], f"links {OLD_FOLDER}"),
    ("Metadata Update association", plus(association(
        "as09", "SubmissionSet01", "Document01", AssociationType.UPDATE_AVAILABILITY_STATUS)),
     None, [(META, "as09")], "belongs to Metadata Update (ITI-57)"),
    ("symbolic target missing", plus(association("as09", "SubmissionSet01", "Folder07")), None,
     [("UnresolvedReferenceException", "as09")], "targetObject Folder07 is a symbolic id"),
    ("UUID target not registered", plus(association("as09", "Document01", OLD, RPLC)),
     registry(), [("UnresolvedReferenceException", "as09")], "in this submission or in the"),
    ("empty sourceObject", plus(association("as09", "", "Document01")), None,
     [(META, "as09")], "has no sourceObject"),
    ("RPLC from a registered entry", plus(association("as09", OLD, "Document01", RPLC)),
     registry(old_entry()), [("UnresolvedReferenceException", "as09")],
     "the source of RPLC must be a DocumentEntry of this submission"),
    ("RPLC of a submitted entry", replace(submission(), document_entries=(
        document_entry(), document_entry("Document02", unique_id="1.2.3.4.5.100.4"))
     , associations=(member("as01", "Document01"), member("as02", "Document02"),
                     association("as09", "Document02", "Document01", RPLC))), None,
     [(META, "as09")], "must replace a registered DocumentEntry"),
    ("RPLC of a deprecated entry", plus(association("as09", "Document01", OLD, RPLC)),
     registry(old_entry(availability_status=AvailabilityStatus.DEPRECATED)),
     [("XDSRegistryDeprecatedDocumentError", "as09")], "targets the deprecated DocumentEntry"),
    ("RPLC across patients", plus(association("as09", "Document01", OLD, RPLC)),
     registry(old_entry(patient_id=OTHER_PATIENT)),
     [("XDSPatientIdDoesNotMatch", "as09")], "links Document01"),
    ("APND to a folder", plus(association("as09", "Document01", OLD_FOLDER,
                                          AssociationType.APND)),
     registry(folder(OLD_FOLDER, unique_id="1.9")), [(META, "as09")],
     "the target of APND must be a DocumentEntry"),
    ("IsSnapshotOf from a registered entry", plus(association(
        "as09", OLD, "Document01", AssociationType.IS_SNAPSHOT_OF)), registry(old_entry()),
     [("UnresolvedReferenceException", "as09")], "source of IsSnapshotOf"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("sub", "state", "expected", "fragment"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_rule(sub, state, expected, fragment):
    errors = validate_submission(sub, actor="registry", registry=state)
    assert [(e.code, e.location) for e in errors] == expected, [e.context for e in errors]
    assert any(fragment in e.context for e in errors), [e.context for e in errors]


@pytest.mark.parametrize("with_folder_too", [False, True])
def test_a_complete_submission_passes_for_every_actor(with_folder_too):
    sub = submission(with_folder=with_folder_too)
    assert validate_submission(sub, actor="registry", registry=registry()) == []
    assert validate_submission(sub, actor="repository", documents={"Document01"}) == []
    assert validate_submission(sub, actor="xdr_recipient", documents={"Document01"}) == []


def test_identical_resubmission_and_allowed_links_pass():
    same = old_entry(unique_id="1.2.3.4.5.100.1")  # same uniqueId, hash and size
    replaced = old_entry(unique_id="1.2.3.4.5.100.8")
    sub = plus(
        association("as09", "Document01", replaced.entry_uuid, RPLC),
        association("as10", "Document01", "SubmissionSet01", AssociationType.SIGNS),
        association(
            "as11",
            "Document01",
            "urn:uuid:3a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
            AssociationType.XFRM,
        ),
    )
    errors = validate_submission(sub, actor="registry", registry=registry(same, replaced))
    assert [(e.code, e.location) for e in errors] == [("UnresolvedReferenceException", "as11")]
    # Without the registry's state a urn:uuid reference cannot be judged, so it is not refused.
    assert validate_submission(sub, actor="repository") == []


def test_the_repository_neither_requires_nor_checks_what_it_computes():
    sub = entry(hash=None, size=None, repository_unique_id=None)
    assert validate_submission(sub, actor="repository", documents={"Document01"}) == []
    dup = entry(unique_id="1.2.3.4.5.100.2")
    errors = validate_submission(dup, actor="repository")
    assert [(e.code, e.location) for e in errors] == [
        ("XDSRepositoryDuplicateUniqueIdInMessage", "Document01")
    ]
    errors = validate_submission(entry(class_code=None), actor="xdr_recipient")
    assert [(e.code, e.location) for e in errors] == [("XDSRepositoryMetadataError", "Document01")]


def test_documents_pair_with_entries():
    sub = submission()
    errors = validate_submission(sub, actor="repository", documents={"Doc9"})
    assert [(e.code, e.location) for e in errors] == [
        ("XDSMissingDocument", "Document01"),
        ("XDSMissingDocumentMetadata", "Doc9"),
    ]
    on_demand = entry(object_type=DocumentEntryType.ON_DEMAND)
    codes = [e.code for e in validate_submission(on_demand, actor="repository", documents=())]
    assert "XDSMissingDocument" not in codes


def test_every_problem_is_reported_at_once():
    sub = replace(
        submission(),
        submission_set=submission_set(source_id="x"),
        document_entries=(
            document_entry(class_code=None, patient_id=OTHER_PATIENT, creation_time="1"),
        ),
        associations=(member("as01", "Document01"), association("as02", "Document01", "Gone")),
    )
    with pytest.raises(GatewayError) as caught:
        check_submission(sub, actor="registry", registry=registry(patients=(PATIENT,)))
    details = caught.value.details
    assert caught.value.code == META and caught.value.location == "SubmissionSet01"
    assert [(d.code, d.location) for d in details] == [
        (META, "SubmissionSet01"),
        (META, "Document01"),
        (META, "Document01"),
        ("XDSPatientIdDoesNotMatch", "Document01"),
        ("XDSUnknownPatientId", "Document01"),
        ("UnresolvedReferenceException", "as02"),
    ]
    assert len({d.context for d in details}) == len(details)


def test_actor_is_checked():
    with pytest.raises(ValueError):
        validate_submission(submission(), actor="consumer")  # type: ignore[arg-type]


def test_codes_with_the_model_are_kept_apart_from_display():
    sub = entry(event_codes=(code("x", "y", None),))
    assert validate_submission(sub, actor="registry") == []


def test_malformed_wire_attributes_are_reported_once():
    """Through the codec: a classCode sent twice and a size that is no number stay extra,
    and validation names each once instead of also calling them missing."""
    el = registry_object_list_to_xml([document_entry()])
    rim = f"{{{c.RIM}}}"
    entry_el = el[0]
    class_code = next(
        x
        for x in entry_el.iter(rim + "Classification")
        if x.get("classificationScheme") == c.DE_CLASS_CODE
    )
    twin = copy.deepcopy(class_code)
    twin.set("id", "twin")
    class_code.addnext(twin)
    size = next(s for s in entry_el.iter(rim + "Slot") if s.get("name") == "size")
    size.find(f"{rim}ValueList/{rim}Value").text = "four"
    (parsed,) = parse_registry_object_list(reparse(el))
    assert parsed.class_code is None and parsed.size is None
    sub = replace(submission(), document_entries=(parsed,))
    contexts = [e.context for e in validate_submission(sub, actor="registry")]
    assert contexts == [
        "DocumentEntry Document01: slot size is repeated or its values are malformed (['four'])",
        "DocumentEntry Document01: classCode is given more than once",
    ]


def test_objects_without_ids_and_unparseable_patients():
    sub = replace(
        submission(),
        submission_set=submission_set(patient_id="not a cx"),
        document_entries=(document_entry("", patient_id="not a cx"),),
        associations=(),
    )
    errors = validate_submission(sub, actor="registry", registry=registry(patients=()))
    contexts = [e.context for e in errors]
    assert "a DocumentEntry has no id" in contexts
    # A malformed patient id is reported as such, not also as unknown.
    assert "XDSUnknownPatientId" not in [e.code for e in errors]
    assert sum("is not of the form id^^^&OID&ISO" in x for x in contexts) == 2
