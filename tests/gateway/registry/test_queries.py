"""Every stored query and parameter as SQL on SQLite and PostgreSQL, over a small registry:
patient P has submissions A (a document in a folder) and B (a document with other codes),
patient O has submission C."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from gateway.registry.store import SqlRegistry
from profiles.errors import GatewayError
from profiles.xds.codes import AssociationType, AvailabilityStatus, DocumentEntryType
from profiles.xds.metadata import (
    Association,
    Author,
    DocumentEntry,
    Folder,
    ObjectRef,
    SubmissionSet,
)
from profiles.xds.storedquery import QueryName, ReturnType, build
from tests.gateway.registry.conftest import register
from tests.profiles.xds.builders import (
    OTHER_PATIENT,
    PATIENT,
    association,
    code,
    document_entry,
    member,
    submission,
    submission_set,
)

APPROVED = AvailabilityStatus.APPROVED.value
DEPRECATED = AvailabilityStatus.DEPRECATED.value
N = QueryName
REF = "ref-1^^^&1.2.3&ISO^urn:ihe:iti:xds:2013:uniqueId"
CONF = "2.16.840.1.113883.5.25"


@dataclass
class World:
    a: dict[str, str]
    b: dict[str, str]
    c: dict[str, str]


def _b():
    doc = document_entry(
        unique_id="1.2.3.4.5.110.1",
        class_code=code("11369-6", display="Immunization"),
        confidentiality_codes=(code("R", CONF, "restricted"), code("N", CONF, "normal")),
        event_codes=(code("e1", "1.9"), code("e2", "1.9")),
        authors=(Author(person="^Brown^Bob^^^"),),
        creation_time="20230101",
        service_start_time="2023",
        service_stop_time="2023",
    )
    ss = submission_set(unique_id="1.2.3.4.5.110.2", source_id="1.2.3.4.5.301",
                        submission_time="20240601000000", content_type_code=code("X", "1.9", "x"),
                        authors=(Author(person="^Jones^Al^^^"),))
    return submission(submission_set=ss, document_entries=(doc,))


def _c():
    doc = document_entry(unique_id="1.2.3.4.5.120.1", patient_id=OTHER_PATIENT)
    ss = submission_set(unique_id="1.2.3.4.5.120.2", patient_id=OTHER_PATIENT)
    return submission(submission_set=ss, document_entries=(doc,))


@pytest.fixture
def world(registry: SqlRegistry) -> World:
    doc_a = document_entry(reference_ids=(REF,), event_codes=(code("e1", "1.9"),))
    a = register(registry, submission(with_folder=True, document_entries=(doc_a,)))
    return World(a, register(registry, _b(), "20250202120000"), register(registry, _c()))


def run(registry, name, params, **kw) -> list[str]:
    found = registry.run_query(build(name, params, **kw))
    return [o.id if isinstance(o, ObjectRef) else o.entry_uuid for o in found]


def find(registry, **extra) -> list[str]:
    params = {"$XDSDocumentEntryPatientId": f"'{PATIENT}'",
              "$XDSDocumentEntryStatus": [APPROVED]}
    params.update({f"$XDSDocumentEntry{k}": v for k, v in extra.items()})
    return run(registry, N.FIND_DOCUMENTS, params)


def test_find_documents_by_patient_and_status(registry, world):
    da, db_ = world.a["Document01"], world.b["Document01"]
    assert find(registry) == [da, db_]
    found = registry.run_query(build(N.FIND_DOCUMENTS, {
        "$XDSDocumentEntryPatientId": f"'{OTHER_PATIENT}'", "$XDSDocumentEntryStatus": [APPROVED]}))
    assert [o.entry_uuid for o in found] == [world.c["Document01"]]
    assert isinstance(found[0], DocumentEntry) and found[0].availability_status.value == APPROVED
    assert find(registry, Status=[DEPRECATED]) == []


def test_find_documents_code_parameters(registry, world):
    da, db_ = world.a["Document01"], world.b["Document01"]
    loinc = "2.16.840.1.113883.6.1"
    assert find(registry, ClassCode=[("11369-6", loinc)]) == [db_]
    assert find(registry, ClassCode=[("11369-6", loinc), ("34133-9", loinc)]) == [da, db_]
    assert find(registry, ClassCode=[("11369-6", "other-scheme")]) == []
    assert find(registry, TypeCode=[("11488-4", loinc)]) == [da, db_]
    assert find(registry, FormatCode=[("urn:ihe:pcc:xphr:2007", "1.3.6.1.4.1.19376.1.2.3")]) == [
        da, db_]
    assert find(registry, PracticeSettingCode=[("408440000", "2.16.840.1.113883.6.96")]) == [
        da, db_]
    assert find(registry, HealthcareFacilityTypeCode=[("nope", "2.16.840.1.113883.6.96")]) == []
    assert find(registry, ConfidentialityCode=[("R", CONF)]) == [db_]
    assert find(registry, EventCodeList=[("e1", "1.9"), ("e2", "1.9")]) == [da, db_]


def test_repeated_slots_are_and(registry, world):
    from profiles.xds.storedquery import check

    slots = {"$XDSDocumentEntryPatientId": [f"'{PATIENT}'"],
             "$XDSDocumentEntryStatus": [f"('{APPROVED}')"],
             "$XDSDocumentEntryEventCodeList": ["('e1^^1.9')", "('e2^^1.9')"]}
    found = registry.run_query(check(N.FIND_DOCUMENTS, slots))
    assert [o.entry_uuid for o in found] == [world.b["Document01"]]


def test_find_documents_times_authors_and_type(registry, world):
    da, db_ = world.a["Document01"], world.b["Document01"]
    assert find(registry, CreationTimeFrom="20240101") == [da]
    assert find(registry, CreationTimeTo="20240101") == [db_]
    assert find(registry, CreationTimeFrom="2023", CreationTimeTo="20230102") == [db_]
    assert find(registry, ServiceStartTimeFrom="2024") == [da]
    assert find(registry, ServiceStopTimeTo="2024") == [db_]
    assert find(registry, AuthorPerson=["%Smitty%"]) == [da]
    assert find(registry, AuthorPerson=["%Smitty%", "^Brown%"]) == [da, db_]
    assert find(registry, Type=[DocumentEntryType.ON_DEMAND.value]) == []
    assert find(registry, Type=[DocumentEntryType.STABLE.value]) == [da, db_]


def test_find_documents_by_reference_id(registry, world):
    params = {"$XDSDocumentEntryPatientId": f"'{PATIENT}'", "$XDSDocumentEntryStatus": [APPROVED],
              "$XDSDocumentEntryReferenceIdList": [REF]}
    assert run(registry, N.FIND_DOCUMENTS_BY_REFERENCE_ID, params) == [world.a["Document01"]]
    params["$XDSDocumentEntryReferenceIdList"] = ["other"]
    assert run(registry, N.FIND_DOCUMENTS_BY_REFERENCE_ID, params) == []


def test_find_submission_sets(registry, world):
    sa_, sb = world.a["SubmissionSet01"], world.b["SubmissionSet01"]
    base = {"$XDSSubmissionSetPatientId": f"'{PATIENT}'", "$XDSSubmissionSetStatus": [APPROVED]}

    def fs(**extra):
        return run(registry, N.FIND_SUBMISSION_SETS,
                   {**base, **{f"$XDSSubmissionSet{k}": v for k, v in extra.items()}})

    assert fs() == [sa_, sb]
    assert fs(SourceId=["1.2.3.4.5.301"]) == [sb]
    assert fs(SubmissionTimeFrom="20240301") == [sb]
    assert fs(SubmissionTimeTo="20240301") == [sa_]
    assert fs(AuthorPerson="'%Dopplemeyer%'") == [sa_]
    assert fs(ContentType=[("X", "1.9")]) == [sb]


def test_find_folders(registry, world):
    f = world.a["Folder01"]
    base = {"$XDSFolderPatientId": f"'{PATIENT}'", "$XDSFolderStatus": [APPROVED]}
    assert run(registry, N.FIND_FOLDERS, base) == [f]
    codes = {"$XDSFolderCodeList": [("Referrals", "1.3.6.1.4.1.21367.100.1")]}
    assert run(registry, N.FIND_FOLDERS, {**base, **codes}) == [f]
    assert run(registry, N.FIND_FOLDERS, {**base, "$XDSFolderCodeList": [("x", "1")]}) == []
    assert run(registry, N.FIND_FOLDERS, {**base, "$XDSFolderLastUpdateTimeFrom": "2025"}) == [f]
    assert run(registry, N.FIND_FOLDERS, {**base, "$XDSFolderLastUpdateTimeTo": "2025"}) == []
    (folder,) = registry.run_query(build(N.FIND_FOLDERS, base))
    assert isinstance(folder, Folder) and folder.last_update_time == "20250101120000"


def test_get_all(registry, world):
    params = {"$patientId": f"'{PATIENT}'", "$XDSDocumentEntryStatus": [APPROVED],
              "$XDSSubmissionSetStatus": [APPROVED], "$XDSFolderStatus": [APPROVED]}
    found = registry.run_query(build(N.GET_ALL, params))
    kinds = [type(o).__name__ for o in found]
    assert kinds.count("SubmissionSet") == 2 and kinds.count("DocumentEntry") == 2
    assert kinds.count("Folder") == 1
    # A: as01 SS->doc, as02 SS->folder, as03 folder->doc, as04 SS->as03; B: one HasMember.
    assert kinds.count("Association") == 5
    assert set(run(registry, N.GET_ALL, {**params, "$XDSDocumentEntryConfidentialityCode": [
        ("R", CONF)]})) >= {world.b["Document01"]}
    assert world.a["Document01"] not in run(registry, N.GET_ALL, {
        **params, "$XDSDocumentEntryConfidentialityCode": [("R", CONF)]})


def test_get_documents_by_uuid_unique_id_and_logical_id(registry, world):
    da, dc = world.a["Document01"], world.c["Document01"]
    assert run(registry, N.GET_DOCUMENTS, {"$XDSDocumentEntryEntryUUID": [da]}) == [da]
    assert run(registry, N.GET_DOCUMENTS, {"$XDSDocumentEntryUniqueId": ["1.2.3.4.5.100.1"]}) == [
        da]
    assert run(registry, N.GET_DOCUMENTS, {"$XDSDocumentEntryLogicalID": [da]}) == [da]
    both = {"$XDSDocumentEntryEntryUUID": [da, dc]}
    with pytest.raises(GatewayError) as e:  # LeafClass for two patients
        from profiles.xds import iti18

        iti18.run(registry, build(N.GET_DOCUMENTS, both), "urn:oid:1.2")
    assert e.value.details[0].code == "XDSResultNotSinglePatient"
    assert run(registry, N.GET_DOCUMENTS, both, return_type=ReturnType.OBJECT_REF) == [da, dc]


def test_get_folders(registry, world):
    f = world.a["Folder01"]
    assert run(registry, N.GET_FOLDERS, {"$XDSFolderEntryUUID": [f]}) == [f]
    assert run(registry, N.GET_FOLDERS, {"$XDSFolderUniqueId": ["1.2.3.4.5.100.3"]}) == [f]
    assert run(registry, N.GET_FOLDERS, {"$XDSFolderLogicalID": [f]}) == [f]


def test_get_associations_and_documents_and_associations(registry, world):
    a = world.a
    found = run(registry, N.GET_ASSOCIATIONS, {"$uuid": [a["Document01"]]})
    assert sorted(found) == sorted([a["as01"], a["as03"]])
    found = run(registry, N.GET_DOCUMENTS_AND_ASSOCIATIONS,
                {"$XDSDocumentEntryUniqueId": ["1.2.3.4.5.100.1"]})
    assert found[0] == a["Document01"] and sorted(found[1:]) == sorted([a["as01"], a["as03"]])


def test_get_submission_sets(registry, world):
    a = world.a
    found = run(registry, N.GET_SUBMISSION_SETS, {"$uuid": [a["Document01"], a["Folder01"]]})
    assert found == [a["SubmissionSet01"], a["as01"], a["as02"]]


def test_get_submission_set_and_contents(registry, world):
    a = world.a
    found = run(registry, N.GET_SUBMISSION_SET_AND_CONTENTS,
                {"$XDSSubmissionSetUniqueId": "'1.2.3.4.5.100.2'"})
    assert found[:3] == [a["SubmissionSet01"], a["Document01"], a["Folder01"]]
    assert sorted(found[3:]) == sorted([a["as01"], a["as02"], a["as03"], a["as04"]])
    filtered = run(registry, N.GET_SUBMISSION_SET_AND_CONTENTS, {
        "$XDSSubmissionSetEntryUUID": f"'{a['SubmissionSet01']}'",
        "$XDSDocumentEntryConfidentialityCode": [("R", CONF)]})
    assert filtered == [a["SubmissionSet01"], a["Folder01"], a["as02"]]


def test_get_folder_and_contents(registry, world):
    a = world.a
    found = run(registry, N.GET_FOLDER_AND_CONTENTS, {"$XDSFolderEntryUUID": f"'{a['Folder01']}'"})
    assert found == [a["Document01"], a["Folder01"], a["as03"]]
    found = run(registry, N.GET_FOLDER_AND_CONTENTS, {
        "$XDSFolderUniqueId": "'1.2.3.4.5.100.3'", "$XDSDocumentEntryConfidentialityCode": [
            ("R", CONF)]})
    assert found == [a["Folder01"]]


def test_get_folders_for_document(registry, world):
    a = world.a
    assert run(registry, N.GET_FOLDERS_FOR_DOCUMENT,
               {"$XDSDocumentEntryUniqueId": "'1.2.3.4.5.100.1'"}) == [a["Folder01"]]
    assert run(registry, N.GET_FOLDERS_FOR_DOCUMENT,
               {"$XDSDocumentEntryEntryUUID": f"'{world.b['Document01']}'"}) == []


def test_replacement_and_get_related_documents(registry, world):
    old = world.a["Document01"]
    sub = submission(
        submission_set=submission_set(unique_id="1.2.3.4.5.130.2"),
        document_entries=(document_entry(unique_id="1.2.3.4.5.130.1"),),
        associations=(member("as01", "Document01"),
                      association("rplc", "Document01", old, AssociationType.RPLC)),
    )
    r = register(registry, sub, "20250303120000")
    new = r["Document01"]
    assert find(registry) == [world.b["Document01"], new]
    assert find(registry, Status=[DEPRECATED]) == [old]
    assert run(registry, N.GET_FOLDERS_FOR_DOCUMENT,
               {"$XDSDocumentEntryEntryUUID": f"'{new}'"}) == [world.a["Folder01"]]
    related = {"$XDSDocumentEntryEntryUUID": f"'{old}'",
               "$AssociationTypes": [AssociationType.RPLC.value]}
    assert run(registry, N.GET_RELATED_DOCUMENTS, related) == [old, new, r["rplc"]]
    related["$AssociationTypes"] = [AssociationType.APND.value]
    assert run(registry, N.GET_RELATED_DOCUMENTS, related) == []
    (folder,) = registry.run_query(build(N.GET_FOLDERS, {"$XDSFolderEntryUUID": [
        world.a["Folder01"]]}))
    assert folder.last_update_time == "20250303120000"


def test_replacement_deprecates_addenda_and_transforms(registry, world):
    old = world.a["Document01"]

    def linked(n: int, kind: AssociationType) -> str:
        sub = submission(
            submission_set=submission_set(unique_id=f"1.2.3.4.5.140.{n}"),
            document_entries=(document_entry(unique_id=f"1.2.3.4.5.141.{n}"),),
            associations=(member("as01", "Document01"),
                          association("link", "Document01", old, kind)),
        )
        return register(registry, sub)["Document01"]

    apnd, xfrm = linked(1, AssociationType.APND), linked(2, AssociationType.XFRM)
    replacement = linked(3, AssociationType.RPLC)
    assert find(registry, Status=[DEPRECATED]) == [old, apnd, xfrm]
    assert find(registry) == [world.b["Document01"], replacement]


def test_too_many_results(db, world):
    small = SqlRegistry(db, max_results=1)
    with pytest.raises(GatewayError) as e:
        find(small)
    assert e.value.details[0].code == "XDSTooManyResults"
    assert len(run(small, N.GET_DOCUMENTS, {"$XDSDocumentEntryUniqueId": ["1.2.3.4.5.100.1"]})) == 1


def test_leaf_class_models_round_trip(registry, world):
    (ss,) = registry.run_query(build(N.GET_SUBMISSION_SETS, {"$uuid": [
        world.b["Document01"]]}))[:1]
    assert isinstance(ss, SubmissionSet) and ss.authors[0].person == "^Jones^Al^^^"
    (assoc,) = registry.run_query(build(N.GET_ASSOCIATIONS, {"$uuid": [world.b["Document01"]]}))
    assert isinstance(assoc, Association) and assoc.source == world.b["SubmissionSet01"]
