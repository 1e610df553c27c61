"""ITI-42 on an in-memory registry: ids, statuses, lifecycle, atomicity, every error."""

from __future__ import annotations

from dataclasses import replace

import pytest

from profiles.errors import GatewayError
from profiles.xds import iti42
from profiles.xds.codes import AssociationType, AvailabilityStatus
from profiles.xds.ebrim import submit_objects_request_to_xml
from profiles.xds.metadata import Association, DocumentEntry, Folder, Submission, SubmissionSet
from profiles.xds.values import is_uuid_urn
from tests.profiles.xds.builders import (
    OTHER_PATIENT,
    association,
    document_entry,
    member,
    submission,
    submission_set,
)
from tests.profiles.xds.fake_registry import InMemoryRegistry

T1, T2 = "20250101120000", "20250202120000"
APPROVED, DEPRECATED = AvailabilityStatus.APPROVED, AvailabilityStatus.DEPRECATED


def register(registry: InMemoryRegistry, sub: Submission, time: str = T1) -> list[str]:
    request = iti42.parse(submit_objects_request_to_xml(sub))
    return list(iti42.register(registry, request, time).registered)


def codes(excinfo) -> list[str]:
    return [d.code for d in excinfo.value.details]


def of(registry: InMemoryRegistry, kind: type) -> list:
    return [o for o in registry.objects.values() if isinstance(o, kind)]


def test_a_submission_is_stored_with_uuids_approved_and_folder_time():
    registry = InMemoryRegistry()
    ids = register(registry, submission(with_folder=True))
    assert len(ids) == 7 and all(is_uuid_urn(i) for i in ids)
    assert set(registry.objects) == set(ids)
    assert all(o.availability_status is APPROVED for o in registry.objects.values())
    (doc,) = of(registry, DocumentEntry)
    assert doc.logical_id == doc.entry_uuid and doc.version == "1"
    (f,) = of(registry, Folder)
    assert f.last_update_time == T1
    targets = {a.target for a in of(registry, Association)}
    assert doc.entry_uuid in targets and f.entry_uuid in targets
    assert sorted(registry.locks[0]) == ["1.2.3.4.5.100.1", "1.2.3.4.5.100.2", "1.2.3.4.5.100.3"]


def test_unknown_patient_stores_nothing():
    registry = InMemoryRegistry(patients=set())
    with pytest.raises(GatewayError) as e:
        register(registry, submission())
    assert "XDSUnknownPatientId" in codes(e)
    assert registry.objects == {}


def test_every_problem_is_reported_together():
    sub = submission(
        document_entries=(document_entry(patient_id=OTHER_PATIENT, hash=None),),
        associations=(member("as01", "Document01"), association("as02", "Document01", "nowhere",
                                                                AssociationType.APND)),
    )
    with pytest.raises(GatewayError) as e:
        register(InMemoryRegistry(patients={"PID-1^^^&1.2.3.4.5&ISO", OTHER_PATIENT}), sub)
    assert {"XDSPatientIdDoesNotMatch", "XDSRegistryMetadataError",
            "UnresolvedReferenceException"} <= set(codes(e))


def test_unique_ids_already_registered():
    registry = InMemoryRegistry()
    register(registry, submission())
    again = submission(submission_set=submission_set(unique_id="1.2.3.4.5.100.9"))
    register(registry, again)  # the same document (same hash) may be registered again
    assert len(of(registry, DocumentEntry)) == 2
    changed = submission(
        submission_set=submission_set(unique_id="1.2.3.4.5.100.10"),
        document_entries=(document_entry(hash="f" * 40),),
    )
    with pytest.raises(GatewayError) as e:
        register(registry, changed)
    assert codes(e) == ["XDSNonIdenticalHash"]
    with pytest.raises(GatewayError) as e:
        entry = document_entry(unique_id="1.2.3.4.5.100.11")
        register(registry, submission(document_entries=(entry,)))
    assert codes(e) == ["XDSDuplicateUniqueIdInRegistry"]  # the SubmissionSet's uniqueId


def _replacement(old: str, kind: AssociationType, n: int) -> Submission:
    return submission(
        submission_set=submission_set(unique_id=f"1.2.3.4.5.200.{n}"),
        document_entries=(document_entry(unique_id=f"1.2.3.4.5.201.{n}"),),
        associations=(member("as01", "Document01"), association("as02", "Document01", old, kind)),
    )


@pytest.mark.parametrize("kind", [AssociationType.RPLC, AssociationType.XFRM_RPLC])
def test_replacement_deprecates_and_joins_the_folders(kind):
    registry = InMemoryRegistry()
    register(registry, submission(with_folder=True))
    (old,) = of(registry, DocumentEntry)
    (f,) = of(registry, Folder)
    ids = register(registry, _replacement(old.entry_uuid, kind, 1), T2)
    assert registry.objects[old.entry_uuid].availability_status is DEPRECATED
    new = next(o for o in of(registry, DocumentEntry) if o.entry_uuid in ids)
    assert new.availability_status is APPROVED
    copied = [a for a in of(registry, Association)
              if a.source == f.entry_uuid and a.target == new.entry_uuid]
    assert len(copied) == 1 and copied[0].type is AssociationType.HAS_MEMBER
    assert registry.objects[f.entry_uuid].last_update_time == T2
    with pytest.raises(GatewayError) as e:  # a deprecated entry cannot be replaced again
        register(registry, _replacement(old.entry_uuid, kind, 2), T2)
    assert codes(e) == ["XDSRegistryDeprecatedDocumentError"]


@pytest.mark.parametrize("kind", [AssociationType.APND, AssociationType.XFRM,
                                  AssociationType.SIGNS])
def test_links_that_do_not_replace(kind):
    registry = InMemoryRegistry()
    register(registry, submission())
    (old,) = of(registry, DocumentEntry)
    register(registry, _replacement(old.entry_uuid, kind, 3))
    assert registry.objects[old.entry_uuid].availability_status is APPROVED
    assert any(a.type is kind and a.target == old.entry_uuid for a in of(registry, Association))


def test_replacing_deprecates_addenda_and_transforms_too():
    """ITI CP 117 (NIST 12022): the APND and XFRM entries of a replaced entry go with it."""
    registry = InMemoryRegistry()
    register(registry, submission())
    (old,) = of(registry, DocumentEntry)
    added = register(registry, _replacement(old.entry_uuid, AssociationType.APND, 4))
    transformed = register(registry, _replacement(old.entry_uuid, AssociationType.XFRM, 5))
    signed = register(registry, _replacement(old.entry_uuid, AssociationType.SIGNS, 6))
    register(registry, _replacement(old.entry_uuid, AssociationType.RPLC, 7))

    def status(ids):
        return next(registry.objects[i].availability_status for i in ids
                    if isinstance(registry.objects[i], DocumentEntry))

    assert status([old.entry_uuid]) is DEPRECATED
    assert status(added) is DEPRECATED and status(transformed) is DEPRECATED
    assert status(signed) is APPROVED


def test_a_registered_folder_gaining_a_member_is_updated():
    registry = InMemoryRegistry()
    register(registry, submission(with_folder=True))
    (f,) = of(registry, Folder)
    sub = submission(
        submission_set=submission_set(unique_id="1.2.3.4.5.300.1"),
        document_entries=(document_entry(unique_id="1.2.3.4.5.300.2"),),
        associations=(
            member("as01", "Document01"),
            association("as02", f.entry_uuid, "Document01"),
            association("as03", "SubmissionSet01", "as02"),
        ),
    )
    register(registry, sub, T2)
    assert registry.objects[f.entry_uuid].last_update_time == T2


def test_codec_problems_are_answered_with_the_rest():
    xml = submit_objects_request_to_xml(submission())
    next(xml.iter("{*}ExtrinsicObject")).set("objectType", "urn:uuid:not-a-document-type")
    request = iti42.parse(xml)
    assert request.problems
    with pytest.raises(GatewayError) as e:
        iti42.register(InMemoryRegistry(), request, T1)
    assert "XDSRegistryMetadataError" in codes(e)


def test_success_answer_is_schema_valid(assert_valid):
    el = iti42.serialize(iti42.RegisterResponse(("urn:uuid:x",)))
    assert el.get("status").endswith(":Success") and len(el) == 0
    assert_valid(el, "rs.xsd")


def test_symbolic_logical_ids_are_replaced():
    registry = InMemoryRegistry()
    sub = submission(document_entries=(replace(document_entry(), logical_id="lid-1"),))
    register(registry, sub)
    (doc,) = of(registry, DocumentEntry)
    assert doc.logical_id == doc.entry_uuid
    assert isinstance(next(iter(of(registry, SubmissionSet))), SubmissionSet)
