"""Association rules (ITI TF-3 4.2.2): every reference resolves, in the submission
or in the registry; each association type links only the kinds of objects it
may link; linked entries belong to one patient; and every DocumentEntry and
Folder of a submission is a member of its SubmissionSet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from profiles.errors import (
    UnresolvedReferenceException,
    XDSPatientIdDoesNotMatch,
    XDSRegistryDeprecatedDocumentError,
)
from profiles.xds.codes import (
    AssociationType,
    AvailabilityStatus,
    DocumentEntryType,
    SubmissionSetStatus,
)
from profiles.xds.metadata import Association, DocumentEntry, Folder, Submission, SubmissionSet
from profiles.xds.rules import ASSOCIATION_SLOTS, Report
from profiles.xds.values import is_uuid_urn

if TYPE_CHECKING:
    from profiles.xds.validate import RegistryState


class Associations:
    """Checks a submission's associations against itself and the registry's state."""

    def __init__(
        self, report: Report, submission: Submission, registry: RegistryState | None
    ) -> None:
        self.report, self.submission, self.registry = report, submission, registry
        self.local = submission.by_id()

    def check(self) -> None:
        members = set()
        for a in self.submission.associations:
            self._slots(a)
            source, target = self._resolve(a, a.source, "sourceObject"), None
            if source is not False:
                target = self._resolve(a, a.target, "targetObject")
            if source is False or target is False:
                continue
            if a.type is AssociationType.HAS_MEMBER:
                if source is self.submission.submission_set:
                    members.add(a.target)  # a member, even if the link has faults of its own
                self._has_member(a, source, target)
            elif a.type.is_document_relationship:
                self._relationship(a, source, target)
            elif a.type is AssociationType.IS_SNAPSHOT_OF:
                self._snapshot(a, source, target)
            else:
                self.report.meta(
                    f"association {a.entry_uuid}: {a.type.name} belongs to Metadata "
                    "Update (ITI-57), not to this transaction",
                    a.entry_uuid,
                )
        if self.submission.submission_set is not None:
            for obj in (*self.submission.document_entries, *self.submission.folders):
                if obj.entry_uuid not in members:
                    self.report.meta(
                        f"{type(obj).__name__} {obj.entry_uuid} is not a member of "
                        "the SubmissionSet (no HasMember association from it)",
                        obj.entry_uuid,
                    )

    def _slots(self, a: Association) -> None:
        for slot in a.extra_slots:
            if slot.name in ASSOCIATION_SLOTS:
                self.report.meta(
                    f"association {a.entry_uuid}: slot {slot.name} is repeated or "
                    f"has a bad value {list(slot.values)}",
                    a.entry_uuid,
                )

    def _resolve(self, a: Association, ref: str, attr: str):
        """The object ``ref`` names; None if unknowable here; False (reported) if unresolved."""
        if not ref:
            self.report.meta(f"association {a.entry_uuid} has no {attr}", a.entry_uuid)
            return False
        if ref in self.local:
            return self.local[ref]
        if not is_uuid_urn(ref):
            why = "is a symbolic id that names no object in this submission"
        elif self.registry is None:
            return None
        elif (found := self.registry.existing(ref)) is not None:
            return found
        else:
            why = "names no object in this submission or in the registry"
        self.report.add(
            UnresolvedReferenceException,
            f"association {a.entry_uuid}: {attr} {ref} {why}",
            a.entry_uuid,
        )
        return False

    def _is_new(self, obj) -> bool:
        return obj is not None and self.local.get(obj.entry_uuid) is obj

    def _same_patient(self, a: Association, one, other) -> None:
        """Linked objects share a patient; two objects of this submission were checked already."""
        if self._is_new(one) and self._is_new(other):
            return
        left, right = getattr(one, "patient_id", None), getattr(other, "patient_id", None)
        if left and right and left != right:
            self.report.add(
                XDSPatientIdDoesNotMatch,
                f"association {a.entry_uuid} links "
                f"{one.entry_uuid} ({left}) to {other.entry_uuid} ({right})",
                a.entry_uuid,
            )

    def _has_member(self, a: Association, source, target) -> None:
        where = a.entry_uuid
        if isinstance(source, SubmissionSet):
            if source is not self.submission.submission_set:
                self.report.meta(
                    f"association {where}: HasMember from a SubmissionSet other "
                    "than this submission's",
                    where,
                )
            elif isinstance(target, DocumentEntry) or (target is None and a.submission_set_status):
                self._member_entry(a, target)
            elif isinstance(target, SubmissionSet):
                self.report.meta(
                    f"association {where}: a SubmissionSet cannot contain a SubmissionSet", where
                )
        elif isinstance(source, Folder):
            if target is not None and not isinstance(target, DocumentEntry):
                self.report.meta(
                    f"association {where}: a Folder can only contain DocumentEntries", where
                )
            else:
                self._same_patient(a, source, target)
        elif source is not None:
            self.report.meta(
                f"association {where}: HasMember must come from a SubmissionSet or a Folder", where
            )

    def _member_entry(self, a: Association, target: DocumentEntry | None) -> None:
        where, status = a.entry_uuid, a.submission_set_status
        if status is None:
            self.report.meta(
                f"association {where}: HasMember from the SubmissionSet to a "
                "DocumentEntry needs a SubmissionSetStatus slot (Original or "
                "Reference)",
                where,
            )
            return
        if status is SubmissionSetStatus.ORIGINAL and not self._is_new(target):
            self.report.meta(
                f"association {where}: SubmissionSetStatus Original, but "
                f"{a.target} is not a DocumentEntry of this submission",
                where,
            )
            return
        if status is SubmissionSetStatus.REFERENCE and self._is_new(target):
            self.report.meta(
                f"association {where}: SubmissionSetStatus Reference names a "
                "DocumentEntry submitted here; use Original",
                where,
            )
            return
        self._same_patient(a, self.submission.submission_set, target)

    def _relationship(self, a: Association, source, target) -> None:
        where, kind = a.entry_uuid, a.type.name
        if not (isinstance(source, DocumentEntry) and self._is_new(source)):
            self.report.add(
                UnresolvedReferenceException,
                f"association {where}: the source of "
                f"{kind} must be a DocumentEntry of this submission",
                where,
            )
            return
        allowed = (
            (DocumentEntry, SubmissionSet) if a.type is AssociationType.SIGNS else (DocumentEntry,)
        )
        if target is not None and not isinstance(target, allowed):
            self.report.meta(
                f"association {where}: the target of {kind} must be a DocumentEntry", where
            )
            return
        if a.type.replaces and self._is_new(target):
            self.report.meta(
                f"association {where}: {kind} must replace a registered "
                "DocumentEntry, not one of this submission",
                where,
            )
            return
        status = getattr(target, "availability_status", None)
        if a.type is not AssociationType.SIGNS and status is AvailabilityStatus.DEPRECATED:
            self.report.add(
                XDSRegistryDeprecatedDocumentError,
                f"association {where}: {kind} targets the deprecated DocumentEntry {a.target}",
                where,
            )
        if isinstance(target, DocumentEntry):
            self._same_patient(a, source, target)

    def _snapshot(self, a: Association, source, target) -> None:
        where = a.entry_uuid
        if not (isinstance(source, DocumentEntry) and self._is_new(source)):
            self.report.add(
                UnresolvedReferenceException,
                f"association {where}: the source of "
                "IsSnapshotOf must be a DocumentEntry of this submission",
                where,
            )
        elif target is not None and not (
            isinstance(target, DocumentEntry) and target.object_type is DocumentEntryType.ON_DEMAND
        ):
            self.report.meta(
                f"association {where}: IsSnapshotOf must target an On-Demand DocumentEntry", where
            )
