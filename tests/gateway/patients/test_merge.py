"""A merge moves the obsolete id's registry objects, correlations and cross-references to the
survivor in one transaction with its audit records (ITI TF-2a 3.8.4.1.3), whether it comes
as ITI-44 PRPA_IN201304UV02 over SOAP or as ITI-8 ADT^A40 over the MLLP answer function;
afterwards ITI-18 finds the documents under the survivor and none under the obsolete id.
A merge that fails half-way changes nothing. SQLite, or PostgreSQL when configured."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa
from lxml import etree

from gateway.app import create_app
from gateway.audit.hook import RequestFacts
from gateway.audit.models import AuditEntry
from gateway.audit.queue import AuditQueue
from gateway.config import config_from_dict
from gateway.mllp import pix_manager
from gateway.patients import merging
from gateway.registry.models import DocumentEntryRow
from gateway.registry.store import to_row
from profiles.atna.facts import Feed
from profiles.hl7v3.datatypes import II, PN
from profiles.hl7v3.patient import OtherId, Person
from profiles.pix.ports import PatientRecord, key_of, parse_cx
from profiles.xds import codes as c
from profiles.xds.storedquery import QueryName, build
from tests.conftest import make_config_dict
from tests.gateway.patients.conftest import sample_body
from tests.gateway.registry.test_soap import errors, ok, query, register, returned, world_submission
from tests.profiles.xds.builders import PATIENT, document_entry, submission

OLD = parse_cx(PATIENT)  # PID-1 in 1.2.3.4.5: the builders' documents are registered under it
NEW = II("1.2.3.4.5", "PID-7")
SSN = II("2.16.840.1.113883.4.1", "123-45-6789")
DE_PATIENT = "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427"  # XDSDocumentEntry.patientId
APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
A40 = (
    "MSH|^~\\&|ADT|HOSP|PIX|HIE|20240102030405||ADT^A40^ADT_A39|MSG-A40-1|P|2.3.1\r"
    "EVN|A40|20240102030405\r"
    f"PID|1||{NEW}||LEE^ANN||19700101|F\r"
    f"MRG|{OLD}\r"
).encode()


@pytest.fixture
def app(tmp_path: Path, database_url: str):
    cfg = config_from_dict(make_config_dict(tmp_path / "data", database_url), base=tmp_path,
                           environ={})
    application = create_app(cfg)
    application.extensions["gateway"].security = None  # XUA has its own tests
    yield application
    application.extensions["gateway"].database.dispose()


@pytest.fixture
def runtime(app):
    return app.extensions["gateway"]


@pytest.fixture
def world(app, runtime):
    """PID-1 (with an SSN among its ids and a partner's correlation) has a SubmissionSet,
    a DocumentEntry and a Folder; ICN-9 names PID-1 as one of its own ids."""
    index = runtime.ports.patients
    index.add(PatientRecord(OLD, Person(names=(PN.of("Ann", "Lee"),),
                                        other_ids=(OtherId(SSN),))))
    index.add(PatientRecord(II("2.16.840.1.113883.4.349", "ICN-9"),
                            Person(other_ids=(OtherId(OLD),))))
    index.record_correlation(OLD, II("9.8.7", "THEIRS-1"), "urn:oid:1.1.1")
    client = app.test_client()
    assert ok(register(client, world_submission()))
    return client


def another(pid: II, n: int):
    """A submission of one more document for ``pid`` (unique ids of its own)."""
    sub = submission(document_entries=(document_entry(
        unique_id=f"1.2.3.4.5.100.{n}.1", patient_id=str(pid)),))
    return replace(sub, submission_set=replace(sub.submission_set, patient_id=str(pid),
                                               unique_id=f"1.2.3.4.5.100.{n}.2"))


def find(client, kind: QueryName, pid: II) -> etree._Element:
    status = {QueryName.FIND_DOCUMENTS: "$XDSDocumentEntryStatus",
              QueryName.FIND_SUBMISSION_SETS: "$XDSSubmissionSetStatus",
              QueryName.FIND_FOLDERS: "$XDSFolderStatus"}[kind]
    param = {QueryName.FIND_DOCUMENTS: "$XDSDocumentEntryPatientId",
             QueryName.FIND_SUBMISSION_SETS: "$XDSSubmissionSetPatientId",
             QueryName.FIND_FOLDERS: "$XDSFolderPatientId"}[kind]
    answer = query(client, build(kind, {param: f"'{pid}'", status: [APPROVED]}))
    assert ok(answer), errors(answer)
    return answer


def merge_v3(app) -> None:
    body = sample_body("messages/ipf/pixv3-iti44-PRPA_IN201304UV02-merge_maximal.xml",
                       "PRPA_IN201304UV02")
    patient = body.find(".//{*}subject1/{*}patient/{*}id")
    patient.attrib.update({"root": NEW.root, "extension": NEW.extension})
    prior = body.find(".//{*}priorRegisteredRole/{*}id")
    prior.attrib.clear()
    prior.attrib.update({"root": OLD.root, "extension": OLD.extension})
    from tests.gateway.patients.test_soap import post as soap_post

    reply, _ = soap_post(app, "/pix", "urn:hl7-org:v3:PRPA_IN201304UV02", body)
    assert reply.find(".//{*}acknowledgement/{*}typeCode").get("code") == "AA"


def merge_v2(runtime) -> None:
    answer = pix_manager(runtime.ports.patients, runtime.audit)(A40)
    assert re.search(rb"MSA\|AA\|MSG-A40-1", answer), answer


def audit_events(runtime) -> list[tuple[str, str, int]]:
    AuditQueue(runtime.database).index_all()
    with runtime.database.session() as s:
        return sorted((e.event_type, e.action, e.outcome) for e in s.scalars(
            sa.select(AuditEntry).where(AuditEntry.event_id == "110110")))


@pytest.mark.parametrize("merge", ["v3", "v2"])
def test_a_merge_moves_the_documents_and_the_patient(app, runtime, world, merge):
    index = runtime.ports.patients
    before = {k: returned(find(world, k, OLD)) for k in (
        QueryName.FIND_DOCUMENTS, QueryName.FIND_SUBMISSION_SETS, QueryName.FIND_FOLDERS)}
    assert all(len(ids) == 1 for ids in before.values())

    merge_v3(app) if merge == "v3" else merge_v2(runtime)

    for kind, ids in before.items():  # ITI-18: found under the survivor, nothing under OLD
        assert returned(find(world, kind, NEW)) == ids
        assert returned(find(world, kind, OLD)) == []
    answer = find(world, QueryName.FIND_DOCUMENTS, NEW)
    (doc,) = answer.iter(f"{{{c.RIM}}}ExtrinsicObject")
    (pid,) = [e.get("value") for e in doc.iter(f"{{{c.RIM}}}ExternalIdentifier")
              if e.get("identificationScheme") == DE_PATIENT]
    assert pid == str(NEW)
    source = [s for s in doc.iter(f"{{{c.RIM}}}Slot") if s.get("name") == "sourcePatientId"]
    assert source[0].findtext(f".//{{{c.RIM}}}Value") == "LOCAL-9^^^&1.2.3.9&ISO"  # as sent
    # A new submission for the retired id is refused; one for the survivor is taken.
    assert errors(register(world, another(OLD, 8))) == ["XDSUnknownPatientId"]
    assert ok(register(world, another(NEW, 9)))
    # Correlations and cross-references follow the survivor.
    assert [(x.theirs, x.home_community_id) for x in index.correlations(NEW)] == [
        (II("9.8.7", "THEIRS-1"), "urn:oid:1.1.1")]
    assert {key_of(i) for i in index.cross_references(NEW)} >= {
        ("2.16.840.1.113883.4.349", "ICN-9"), key_of(SSN)}
    assert key_of(OLD) not in {key_of(i) for i in index.cross_references(
        II("2.16.840.1.113883.4.349", "ICN-9"))}
    assert index.merged_into(OLD) == NEW
    trigger_events = audit_events(runtime)
    kind = "ITI-44" if merge == "v3" else "ITI-8"
    assert [e for e in trigger_events if e[0] == kind] == [(kind, "D", 0), (kind, "U", 0)]


def test_every_pair_of_an_a40_merges_or_none(runtime, world, monkeypatch):
    """The second pair fails after the first pair's rows are written: nothing stays."""
    index = runtime.ports.patients
    index.add(PatientRecord(II("1.2.3.4.5", "PID-3")))
    two = A40 + b"PID|2||PID-8^^^&1.2.3.4.5&ISO||ROE^RAY\rMRG|PID-3^^^&1.2.3.4.5&ISO\r"
    calls = []

    def fail_second(session, obsolete, survivor):
        calls.append(obsolete)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real(session, obsolete, survivor)

    real = merging.move_patient
    monkeypatch.setattr(merging, "move_patient", fail_second)
    before = audit_events(runtime)
    answer = pix_manager(index, runtime.audit)(two)
    assert re.search(rb"MSA\|AE\|MSG-A40-1", answer) and b"ERR|" in answer and b"207" in answer
    assert calls == [OLD, II("1.2.3.4.5", "PID-3")]
    assert index.known(OLD) and index.known(II("1.2.3.4.5", "PID-3"))
    assert not index.known(NEW) and index.merged_into(OLD) is None
    assert [x.theirs for x in index.correlations(OLD)] == [II("9.8.7", "THEIRS-1")]
    with runtime.database.session() as s:
        assert set(s.scalars(sa.select(DocumentEntryRow.patient_id))) == {str(OLD)}
    # Nothing committed with the data; finish recorded the failed feed (outcome 4).
    assert audit_events(runtime) == sorted([*before, ("ITI-8", "D", 4), ("ITI-8", "U", 4),
                                            ("ITI-8", "D", 4), ("ITI-8", "U", 4)])


def test_audit_records_commit_with_the_merge_and_not_without_it(runtime, world, monkeypatch):
    index = runtime.ports.patients
    feed = Feed("PRPA_IN201304UV02", str(NEW), (str(OLD),))

    def failing(session, obsolete, survivor):
        raise RuntimeError("boom")

    audit = runtime.audit.request(RequestFacts("req-1", "https://gateway.test/pix"))
    audit.note(transaction="ITI-44", feed=feed)
    monkeypatch.setattr(merging, "move_patient", failing)
    with pytest.raises(RuntimeError):
        index.merge(PatientRecord(NEW), [OLD], source="ITI-44", audit=audit)
    assert audit_events(runtime) == []  # rolled back with the data
    assert index.known(OLD)
    monkeypatch.undo()

    audit = runtime.audit.request(RequestFacts("req-2", "https://gateway.test/pix"))
    audit.note(transaction="ITI-44", feed=feed)
    result = index.merge(PatientRecord(NEW), [OLD], source="ITI-44", audit=audit)
    assert (result.merged, result.correlations_moved, result.registry_objects_moved) == (
        (OLD,), 1, 3)
    # Before finish runs: the records are already there, committed with the merge.
    assert audit_events(runtime) == [("ITI-44", "D", 0), ("ITI-44", "U", 0)]
    audit.finish(transaction="ITI-44", outcome="success")
    assert audit_events(runtime) == [("ITI-44", "D", 0), ("ITI-44", "U", 0)]  # not twice


def test_merging_into_an_id_that_already_has_documents_keeps_both(runtime, world):
    index = runtime.ports.patients
    index.add(PatientRecord(NEW))
    answer = register(world, another(NEW, 2))
    assert ok(answer), errors(answer)
    merge_v2(runtime)
    assert len(returned(find(world, QueryName.FIND_DOCUMENTS, NEW))) == 2
    assert len(returned(find(world, QueryName.FIND_SUBMISSION_SETS, NEW))) == 2
    assert returned(find(world, QueryName.FIND_DOCUMENTS, OLD)) == []


def test_a_registration_in_flight_is_moved_not_stranded(runtime, world):
    """PostgreSQL: a registration that checked PID-1 holds its row; the merge waits for it
    and then moves its document too (SQLite serialises writers anyway)."""
    if runtime.database.dialect != "postgresql":
        pytest.skip("row locks are PostgreSQL's; SQLite runs one writer at a time")
    index, registry = runtime.ports.patients, runtime.ports.registry
    merged: list = []
    merger = threading.Thread(target=lambda: merged.append(
        index.merge(PatientRecord(NEW), [OLD], source="ITI-44")))

    def merge_waits() -> bool:
        with runtime.database.engine.connect() as c:
            return bool(c.scalar(sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()")))

    with registry.transaction() as tx:
        assert tx.known_patient(str(OLD))
        merger.start()
        deadline = time.monotonic() + 10
        while not merge_waits():
            assert time.monotonic() < deadline, "the merge never waited for the registration"
            time.sleep(0.01)  # polling another backend's state: there is no event to await
        tx.session.add(to_row(document_entry("urn:uuid:0b7e3a54-93a4-4f4c-9a52-1f1f3c2a9d01",
                                             unique_id="1.2.3.4.5.100.77")))
    merger.join(10)
    assert merged and merged[0].registry_objects_moved == 4  # the three, and the late one
    with runtime.database.session() as s:
        assert set(s.scalars(sa.select(DocumentEntryRow.patient_id))) == {str(NEW)}


def test_an_object_without_its_patient_identifier_fails_the_merge_whole(runtime, world):
    """Stored XML the codec would never write: the merge is refused and nothing changes."""
    from gateway.registry.models import FolderRow

    with runtime.database.session() as s:
        folder = s.scalars(sa.select(FolderRow)).one()
        el = etree.fromstring(folder.xml)
        for x in el.iterchildren(f"{{{c.RIM}}}ExternalIdentifier"):
            if x.get("identificationScheme") == c.FOLDER_PATIENT_ID:
                el.remove(x)
        folder.xml = etree.tostring(el)
    with pytest.raises(ValueError, match="no patientId ExternalIdentifier"):
        runtime.ports.patients.merge(PatientRecord(NEW), [OLD])
    assert runtime.ports.patients.known(OLD) and not runtime.ports.patients.known(NEW)
    with runtime.database.session() as s:
        assert set(s.scalars(sa.select(DocumentEntryRow.patient_id))) == {str(OLD)}


def test_cross_references_move_once(runtime):
    """A record naming both ids names the survivor once; the survivor, which named the
    obsolete id, names neither that nor itself; the obsolete id's own list joins its own."""
    from gateway.patients.models import Patient, PatientOtherId

    index = runtime.ports.patients
    icn = II("2.16.840.1.113883.4.349", "ICN-1")
    index.add(PatientRecord(OLD, Person(other_ids=(OtherId(SSN), OtherId(NEW)))))
    index.add(PatientRecord(icn, Person(other_ids=(OtherId(OLD), OtherId(NEW)))))
    index.merge(PatientRecord(NEW, Person(other_ids=(OtherId(OLD), OtherId(SSN)))), [OLD])
    with runtime.database.session() as s:
        named = {(p.extension, o.root, o.extension) for p, o in s.execute(
            sa.select(Patient, PatientOtherId).join(
                PatientOtherId, PatientOtherId.patient_id == Patient.id)
            .where(Patient.status == "active"))}
    assert named == {("ICN-1", NEW.root, NEW.extension), ("PID-7", SSN.root, SSN.extension)}
    assert {key_of(i) for i in index.cross_references(NEW)} == {key_of(icn), key_of(SSN)}
