"""A patient merge as the XDS registry sees it: the obsolete id's objects move to the survivor.

ITI TF-2a 3.8.4.1.3 (Patient Identity Feed, merge; formerly the XDS Patient
Identity Merge supplement) asks the Document Registry to show the merge in its
stored query results: after ADT^A40 (or PRPA_IN201304UV02), the DocumentEntries,
SubmissionSets and Folders registered under the subsumed id answer queries for
the surviving id, the subsumed id finds nothing, and new submissions for it are
refused (XDSUnknownPatientId, since the index no longer holds it as active).

We rewrite the metadata rather than keep a side table that rewrites answers:
the ``patient_id`` column every stored query filters on and the value of the
patientId ExternalIdentifier inside the stored ebRIM XML, so LeafClass answers
carry the survivor's id. The stored XML is the codec's own output, so only that
one attribute is changed in place (``profiles.xds.rim.with_external_identifier``, no
model round trip): parsing each object into its model and writing it back cost ~1.7 ms
per object in ``bench/merge.py``, while a merge holds the write lock. A stored object
without that identifier (the codec always writes one) fails the merge, which then rolls
back whole.
``sourcePatientId`` (the source's local id) stays as registered, as the
specification requires. The child tables (codes, authors, referenceIdList) hang
off the row id, which does not change, so they follow without a write.

``move_patient`` runs in the caller's session: the patient index calls it inside
the merge's transaction, so the index change, these rewrites and the audit
records commit (or roll back) together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from gateway.registry.models import DocumentEntryRow, FolderRow, SubmissionSetRow
from profiles.hl7v3.datatypes import II
from profiles.xds import codes as c
from profiles.xds.rim import with_external_identifier

_CHUNK = 500
_SCHEME = {DocumentEntryRow: c.DE_PATIENT_ID, SubmissionSetRow: c.SS_PATIENT_ID,
           FolderRow: c.FOLDER_PATIENT_ID}


@dataclass(frozen=True)
class MovedObjects:
    """How many registry objects of each kind now name the survivor."""

    document_entries: int = 0
    submission_sets: int = 0
    folders: int = 0

    @property
    def total(self) -> int:
        return self.document_entries + self.submission_sets + self.folders

    def __add__(self, other: MovedObjects) -> MovedObjects:
        return MovedObjects(self.document_entries + other.document_entries,
                            self.submission_sets + other.submission_sets,
                            self.folders + other.folders)


def _move_table(session: Session, table: Any, old: str, new: str) -> int:
    """Rewrite ``table``'s rows of patient ``old`` (any status), a chunk at a time."""
    moved = 0
    while True:
        rows = session.execute(sa.select(table.id, table.xml).where(table.patient_id == old)
                               .order_by(table.id).limit(_CHUNK)).all()
        if not rows:
            return moved
        changes = []
        for row_id, xml in rows:
            fresh = with_external_identifier(xml, _SCHEME[table], new)
            if fresh is None:
                raise ValueError(f"{table.__tablename__} row {row_id}: its stored XML has no "
                                 "patientId ExternalIdentifier; the merge is not applied")
            changes.append({"id": row_id, "xml": fresh, "patient_id": new})
        session.execute(sa.update(table), changes)
        moved += len(rows)


def move_patient(session: Session, obsolete: II, survivor: II) -> MovedObjects:
    """Point every DocumentEntry, SubmissionSet and Folder of ``obsolete`` at ``survivor``."""
    old, new = str(obsolete), str(survivor)  # the CX form the registry stores
    if old == new:
        return MovedObjects()
    return MovedObjects(
        document_entries=_move_table(session, DocumentEntryRow, old, new),
        submission_sets=_move_table(session, SubmissionSetRow, old, new),
        folders=_move_table(session, FolderRow, old, new),
    )


__all__ = ["MovedObjects", "move_patient"]
