"""The ITI TF-3 4.2.3/4.2.4 rules for a submission, per receiving actor.

``validate_submission`` returns every problem it finds, each a ``GatewayError``
with the IHE error code, a codeContext that says what is wrong, and the id of
the object at fault as its location; ``check_submission`` raises them as one
(``GatewayError.collect``). What needs the registry's contents (known patients,
uniqueIds and entryUUIDs already registered, targets of associations) comes
through the ``RegistryState`` protocol, so storage plugs in later and tests
pass an in-memory one.

Codes: metadata faults are the actor's metadata error (``Report.metadata``);
the specific codes are XDSPatientIdDoesNotMatch, XDSUnknownPatientId,
XDS{Registry,Repository}DuplicateUniqueIdInMessage, XDSDuplicateUniqueIdInRegistry,
XDSNonIdenticalHash, XDSNonIdenticalSize, XDSRegistryDeprecatedDocumentError,
XDSMissingDocument, XDSMissingDocumentMetadata and UnresolvedReferenceException.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol

from profiles.errors import (
    GatewayError,
    XDSDuplicateUniqueIdInRegistry,
    XDSMissingDocument,
    XDSMissingDocumentMetadata,
    XDSNonIdenticalHash,
    XDSNonIdenticalSize,
    XDSPatientIdDoesNotMatch,
    XDSRegistryDeprecatedDocumentError,
    XDSRegistryDuplicateUniqueIdInMessage,
    XDSRepositoryDuplicateUniqueIdInMessage,
    XDSUnknownPatientId,
)
from profiles.xds.associations import Associations
from profiles.xds.codes import DocumentEntryType
from profiles.xds.metadata import (
    DocumentEntry,
    Folder,
    RegistryObject,
    Submission,
    SubmissionSet,
)
from profiles.xds.rules import (
    ACTORS,
    Actor,
    Report,
    check_document_entry,
    check_folder,
    check_submission_set,
    metadata_error,
)
from profiles.xds.values import CX, is_uuid_urn

__all__ = [
    "Actor",
    "RegistryState",
    "XDSRegistryDeprecatedDocumentError",
    "XDSRegistryDuplicateUniqueIdInMessage",
    "XDSRepositoryDuplicateUniqueIdInMessage",
    "check_document",
    "check_submission",
    "metadata_error",
    "validate_submission",
]


class RegistryState(Protocol):
    """What validation may ask of the registry's contents."""

    def known_patient(self, patient_id: str) -> bool:
        """Did the Patient Identity Feed (or an operator) make this CX known?"""
        ...

    def existing(self, entry_uuid: str) -> RegistryObject | None:
        """The registered object with this entryUUID, if any."""
        ...

    def by_unique_id(self, unique_id: str) -> Sequence[RegistryObject]:
        """Registered DocumentEntries, SubmissionSets and Folders with this uniqueId."""
        ...


def check_submission(
    submission: Submission,
    *,
    actor: Actor,
    registry: RegistryState | None = None,
    documents: Collection[str] | None = None,
) -> None:
    """Raise every problem ``validate_submission`` finds, as one GatewayError."""
    errors = validate_submission(submission, actor=actor, registry=registry, documents=documents)
    if errors:
        raise GatewayError.collect(errors)


def validate_submission(
    submission: Submission,
    *,
    actor: Actor,
    registry: RegistryState | None = None,
    documents: Collection[str] | None = None,
) -> list[GatewayError]:
    """Every rule violation in ``submission`` for the receiving ``actor``.

    ``documents``: the ids of the Documents of a Provide and Register request
    (ITI-41, XDR), to pair them with DocumentEntries. ``registry``: the registry's
    state; without it the checks that need stored objects are skipped.
    """
    if actor not in ACTORS:
        raise ValueError(f"actor must be one of {ACTORS}")
    report = Report(actor)
    ss = submission.submission_set
    if ss is None:
        report.meta(
            "the submission has no SubmissionSet (a RegistryPackage classified "
            "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd)",
            "",
        )
    else:
        check_submission_set(report, ss)
    for entry in submission.document_entries:
        check_document_entry(report, entry)
    for folder in submission.folders:
        check_folder(report, folder)
    _check_ids(report, submission, registry)
    _check_unique_ids(report, submission)
    _check_patients(report, submission, registry)
    Associations(report, submission, registry).check()
    if documents is not None:
        _check_documents(report, submission, documents)
    if registry is not None:
        _check_registered_unique_ids(report, submission, registry)
    return report.errors


def check_document(
    entry: DocumentEntry, *, sha1: str, size: int, actor: Actor = "repository"
) -> list[GatewayError]:
    """A submitted hash or size that disagrees with the stored document (ITI-41)."""
    report = Report(actor)
    if entry.hash is not None and entry.hash.lower() != sha1.lower():
        report.meta(
            f"hash {entry.hash} of {entry.entry_uuid} is not the document's SHA-1 {sha1.lower()}",
            entry.entry_uuid,
        )
    if entry.size is not None and entry.size != size:
        report.meta(
            f"size {entry.size} of {entry.entry_uuid} is not the document's size {size}",
            entry.entry_uuid,
        )
    return report.errors


def _check_ids(report: Report, submission: Submission, registry: RegistryState | None) -> None:
    seen: set[str] = set()
    for obj in submission.registry_objects():
        name = type(obj).__name__
        oid = obj.entry_uuid
        if not oid:
            report.meta(f"a {name} has no id", "")
            continue
        if oid in seen:
            report.meta(f"id {oid} names more than one object in the submission", oid)
        seen.add(oid)
        if oid.startswith("urn:uuid:") and not is_uuid_urn(oid):
            report.meta(f"{name} id {oid} starts with urn:uuid: but is not a UUID", oid)
        elif registry is not None and is_uuid_urn(oid) and registry.existing(oid) is not None:
            report.meta(f"{name} entryUUID {oid} is already in the registry", oid)


def _check_unique_ids(report: Report, submission: Submission) -> None:
    dup = (
        XDSRegistryDuplicateUniqueIdInMessage
        if report.actor == "registry"
        else XDSRepositoryDuplicateUniqueIdInMessage
    )
    seen: dict[str, str] = {}
    for obj in submission.registry_objects():
        uid = getattr(obj, "unique_id", None)
        if uid is None:
            continue
        if uid in seen:
            report.add(
                dup,
                f"uniqueId {uid} is used by both {seen[uid]} and {obj.entry_uuid}",
                obj.entry_uuid,
            )
        else:
            seen[uid] = obj.entry_uuid


def _check_patients(report: Report, submission: Submission, registry: RegistryState | None) -> None:
    ss = submission.submission_set
    expected = ss.patient_id if ss is not None else None
    holders: list[SubmissionSet | DocumentEntry | Folder] = [
        *([ss] if ss is not None else []),
        *submission.document_entries,
        *submission.folders,
    ]
    asked: set[str] = set()
    for obj in holders:
        pid = obj.patient_id
        if pid is None:
            continue
        if expected is not None and pid != expected:
            report.add(
                XDSPatientIdDoesNotMatch,
                f"patientId {pid} of {obj.entry_uuid} differs from the SubmissionSet's {expected}",
                obj.entry_uuid,
            )
        if registry is not None and pid not in asked and _well_formed(pid):
            asked.add(pid)
            if not registry.known_patient(pid):
                report.add(
                    XDSUnknownPatientId,
                    f"patient id {pid} is not known to the registry",
                    obj.entry_uuid,
                )


def _well_formed(pid: str) -> bool:
    try:
        CX.parse(pid)
    except GatewayError:
        return False
    return True


def _check_documents(report: Report, submission: Submission, documents: Collection[str]) -> None:
    entries = {d.entry_uuid for d in submission.document_entries}
    for d in submission.document_entries:
        if d.object_type is DocumentEntryType.STABLE and d.entry_uuid not in documents:
            report.add(
                XDSMissingDocument,
                f"DocumentEntry {d.entry_uuid} has no Document in the request",
                d.entry_uuid,
            )
    for doc_id in documents:
        if doc_id not in entries:
            report.add(
                XDSMissingDocumentMetadata, f"Document {doc_id} has no DocumentEntry", doc_id
            )


def _check_registered_unique_ids(
    report: Report, submission: Submission, registry: RegistryState
) -> None:
    """A resubmitted document must be the same document; other uniqueIds must be new."""
    for obj in submission.registry_objects():
        uid = getattr(obj, "unique_id", None)
        if uid is None:
            continue
        for old in registry.by_unique_id(uid):
            where = obj.entry_uuid
            if isinstance(obj, DocumentEntry) and isinstance(old, DocumentEntry):
                if obj.hash and old.hash and obj.hash.lower() != old.hash.lower():
                    report.add(
                        XDSNonIdenticalHash,
                        f"uniqueId {uid} is registered with hash "
                        f"{old.hash}, {where} has {obj.hash}",
                        where,
                    )
                elif obj.size is not None and old.size is not None and obj.size != old.size:
                    report.add(
                        XDSNonIdenticalSize,
                        f"uniqueId {uid} is registered with size "
                        f"{old.size}, {where} has {obj.size}",
                        where,
                    )
            else:
                report.add(
                    XDSDuplicateUniqueIdInRegistry,
                    f"uniqueId {uid} of {where} is "
                    f"already used by {type(old).__name__} {old.entry_uuid}",
                    where,
                )
            break
