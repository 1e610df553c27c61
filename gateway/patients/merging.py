"""A merge in the SQL patient index: everything the obsolete id held moves, in one transaction.

``retire`` runs inside the index's write session, so these commit or roll back
together (a failure anywhere leaves the obsolete id as it was):

* the record: status ``merged``, pointing at the survivor; its blocking keys go,
  so it is no candidate any more; its cross-reference group joins the survivor's;
* partner correlations (XCPD): moved to the survivor. One partner id names one of
  our records (unique per community and id), so moving never makes a duplicate;
* cross-references: the other ids the obsolete record listed (SSN, ids in other
  domains) are added to the survivor's unless it lists them already, and records
  that named the obsolete id now name the survivor (once);
* the XDS registry's DocumentEntries, SubmissionSets and Folders of the obsolete
  id now name the survivor (``gateway.registry.merge``, ITI TF-2a 3.8.4.1.3).

``bound`` binds the request's audit to the same session (``RequestAudit.bind``):
the feed's records (Patient Record Delete + Update, ITI TF-2a 3.8.5 / 3.44.5) are
built from its notes as the session commits and join it, so an acknowledged merge
is audited exactly when it is stored; a rolled-back merge leaves its records to
``finish``, which then writes them with the failure outcome.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from sqlalchemy.orm import Session

from gateway.patients.models import MERGED, Patient, PatientCorrelation, PatientKey, PatientOtherId
from gateway.registry.merge import MovedObjects, move_patient
from gateway.store.models import utcnow
from profiles.hl7v3.datatypes import II

log = logging.getLogger("gateway.patients")


def retire(session: Session, row: Patient, survivor: Patient) -> int:
    """Merge record ``row`` into ``survivor``; returns how many correlations moved.

    The patient row is updated first: on PostgreSQL that waits for a registration
    holding it (``SqlRegistryTransaction.known_patient`` locks it for share), so the
    documents such a registration commits are moved below, not left behind.
    """
    row.status, row.merged_into_id, row.updated_at = MERGED, survivor.id, utcnow()
    session.flush()
    moved = session.execute(
        sa.update(PatientCorrelation).where(PatientCorrelation.patient_id == row.id)
        .values(patient_id=survivor.id, updated_at=utcnow())).rowcount
    session.execute(sa.update(Patient).where(Patient.group_id == row.group_id)
                    .values(group_id=survivor.group_id))
    session.execute(sa.delete(PatientKey).where(PatientKey.patient_id == row.id))
    _move_other_ids(session, row, survivor)
    session.flush()
    session.refresh(survivor)
    return moved or 0


def _move_other_ids(session: Session, row: Patient, survivor: Patient) -> None:
    O = PatientOtherId  # noqa: E741 - short for the table, as in SQL
    mine = {(survivor.root, survivor.extension), (row.root, row.extension)}
    listed = set(session.execute(sa.select(O.root, O.extension).where(O.patient_id == row.id)))
    held = set(session.execute(sa.select(O.root, O.extension)
                               .where(O.patient_id == survivor.id)))
    if fresh := sorted(listed - held - mine):
        session.execute(sa.insert(O), [{"patient_id": survivor.id, "root": r, "extension": e}
                                       for r, e in fresh])
    naming_old = sa.and_(O.root == row.root, O.extension == row.extension)
    namers = set(session.scalars(sa.select(O.patient_id).where(naming_old, O.patient_id != row.id)))
    if not namers:
        return
    session.execute(sa.delete(O).where(naming_old, O.patient_id.in_(namers)))
    naming_new = sa.and_(O.root == survivor.root, O.extension == survivor.extension)
    already = set(session.scalars(sa.select(O.patient_id).where(naming_new,
                                                                O.patient_id.in_(namers))))
    if add := sorted(namers - already - {survivor.id}):
        session.execute(sa.insert(O), [{"patient_id": p, "root": survivor.root,
                                        "extension": survivor.extension} for p in add])


def move_documents(session: Session, obsolete: II, survivor: II) -> MovedObjects:
    """The registry objects of ``obsolete`` (known to the index or not) to ``survivor``."""
    moved = move_patient(session, obsolete, survivor)
    if moved.total:
        log.info("merge moved registry objects", extra={
            "document_entries": moved.document_entries,
            "submission_sets": moved.submission_sets, "folders": moved.folders})
    return moved


__all__ = ["MovedObjects", "move_documents", "retire"]
