"""SqlRegistry as ITI-42 uses it: state for validation, atomic saves, concurrent claims."""

from __future__ import annotations

import threading

import pytest

from gateway.registry.store import SqlRegistry
from profiles.errors import GatewayError
from profiles.xds import iti42
from profiles.xds.codes import AvailabilityStatus
from profiles.xds.ebrim import submit_objects_request_to_xml
from profiles.xds.metadata import DocumentEntry, Folder, SubmissionSet
from profiles.xds.storedquery import QueryName, build
from tests.gateway.registry.conftest import KnownPatients, register
from tests.profiles.xds.builders import PATIENT, document_entry, submission, submission_set


def test_state_seen_by_validation(registry):
    ids = register(registry, submission(with_folder=True))
    with registry.transaction() as tx:
        doc = tx.existing(ids["Document01"])
        assert isinstance(doc, DocumentEntry)
        assert doc.availability_status is AvailabilityStatus.APPROVED
        assert isinstance(tx.existing(ids["Folder01"]), Folder)
        assert tx.existing("urn:uuid:00000000-0000-4000-8000-000000000000") is None
        assert [type(o) for o in tx.by_unique_id("1.2.3.4.5.100.2")] == [SubmissionSet]
        assert tx.folders_containing(ids["Document01"]) == [ids["Folder01"]]
        assert tx.known_patient(PATIENT) and not tx.known_patient("X^^^&1.2&ISO")
        assert not tx.known_patient("not a cx")


def test_no_patient_index_means_no_known_patient(db):
    assert not SqlRegistry(db).known_patient(PATIENT)


def test_an_exception_after_save_leaves_nothing(registry):
    request = iti42.parse(submit_objects_request_to_xml(submission()))
    with pytest.raises(RuntimeError), registry.transaction() as tx:
        tx.save(iti42.plan(request.submission, tx, "20250101000000"))
        raise RuntimeError("crash before commit")
    found = registry.run_query(build(QueryName.GET_DOCUMENTS, {
        "$XDSDocumentEntryUniqueId": ["1.2.3.4.5.100.1"]}))
    assert found == []


def test_home_is_not_stored_but_unknown_slots_are(registry):
    from profiles.xds.metadata import Slot

    entry = document_entry(home_community_id="urn:oid:9.9",
                           extra_slots=(Slot("urn:example:extra", ("kept",)),))
    register(registry, submission(document_entries=(entry,)))
    (doc,) = registry.run_query(build(QueryName.GET_DOCUMENTS, {
        "$XDSDocumentEntryUniqueId": ["1.2.3.4.5.100.1"]}))
    assert doc.home_community_id is None
    assert doc.extra_slots == (Slot("urn:example:extra", ("kept",)),)


def test_concurrent_claims_of_one_unique_id(db):
    """Two workers register submissions with the same SubmissionSet uniqueId at once:
    exactly one is stored, the other is told the uniqueId is taken."""
    registries = [SqlRegistry(db, patients=KnownPatients()) for _ in range(2)]
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def work(i: int) -> None:
        sub = submission(document_entries=(document_entry(unique_id=f"1.2.3.4.5.190.{i}"),),
                         submission_set=submission_set(unique_id="1.2.3.4.5.190.99"))
        request = iti42.parse(submit_objects_request_to_xml(sub))
        barrier.wait()
        try:
            iti42.register(registries[i], request, "20250101000000")
            outcomes.append("ok")
        except GatewayError as e:
            outcomes.append(e.details[0].code)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["XDSDuplicateUniqueIdInRegistry", "ok"]
