"""XDS metadata as frozen dataclasses (ITI TF-3 4.2.3): DocumentEntry,
SubmissionSet, Folder, Association and the values they are built from.

Values that have a wire format (patient ids, uniqueIds, timestamps) stay the
strings that travelled; ``profiles.xds.values`` checks and compares them and
``profiles.xds.validate`` reports every bad one. Anything the model does not
interpret is kept in ``extra_slots``, ``extra_classifications`` and
``extra_external_identifiers`` (and ``Submission.extra_objects``), so a message
parsed and serialised again loses nothing a peer sent.

Ids: ``entry_uuid`` is the object's ebRIM ``id``. In a submission it may be a
symbolic id (anything not starting with ``urn:uuid:``) that only links objects
in that message; ``assign_entry_uuids`` replaces those with UUIDs as a registry
must. Ids of the Classifications and ExternalIdentifiers that carry the
attributes below are not kept: the codec derives them from the owner's id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from profiles.xds.codes import (
    AssociationType,
    AvailabilityStatus,
    DocumentAvailability,
    DocumentEntryType,
    SubmissionSetStatus,
)
from profiles.xds.values import is_symbolic, new_uuid_urn


@dataclass(frozen=True)
class Slot:
    """An ebRIM Slot: a name and its ordered values."""

    name: str
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class LocalizedString:
    """One ebRIM LocalizedString; ``lang``/``charset`` only when the sender gave them."""

    value: str
    lang: str | None = None
    charset: str | None = None


@dataclass(frozen=True)
class Code:
    """A coded value: ``nodeRepresentation``, the ``codingScheme`` slot and the Name.

    ``scheme`` is None when the sender left the codingScheme slot out, so that
    validation can say so instead of the codec guessing.
    """

    code: str
    scheme: str | None
    display: str | None = None
    extra_slots: tuple[Slot, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Author:
    """The author classification's slots (XCN person, XON institutions, XTN telecoms)."""

    person: str | None = None
    institutions: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    specialties: tuple[str, ...] = ()
    telecoms: tuple[str, ...] = ()
    extra_slots: tuple[Slot, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Classification:
    """A Classification the model does not interpret, kept as it came."""

    classified_object: str
    scheme: str | None = None
    node: str | None = None
    node_representation: str | None = None
    id: str | None = None
    name: LocalizedString | None = None
    slots: tuple[Slot, ...] = ()


@dataclass(frozen=True, kw_only=True)
class ExternalIdentifier:
    """An ExternalIdentifier the model does not interpret, kept as it came."""

    registry_object: str
    scheme: str
    value: str
    id: str | None = None
    name: LocalizedString | None = None
    slots: tuple[Slot, ...] = ()


@dataclass(frozen=True, kw_only=True)
class _RegistryObject:
    entry_uuid: str
    logical_id: str | None = None
    version: str | None = None
    availability_status: AvailabilityStatus | None = None
    home_community_id: str | None = None
    extra_slots: tuple[Slot, ...] = ()
    extra_classifications: tuple[Classification, ...] = ()
    extra_external_identifiers: tuple[ExternalIdentifier, ...] = ()


@dataclass(frozen=True, kw_only=True)
class DocumentEntry(_RegistryObject):
    """One document's metadata (ITI TF-3 4.2.3.2), stable or on-demand."""

    object_type: DocumentEntryType = DocumentEntryType.STABLE
    unique_id: str | None = None
    patient_id: str | None = None
    mime_type: str | None = None
    title: LocalizedString | None = None
    comments: LocalizedString | None = None
    class_code: Code | None = None
    type_code: Code | None = None
    format_code: Code | None = None
    healthcare_facility_type_code: Code | None = None
    practice_setting_code: Code | None = None
    confidentiality_codes: tuple[Code, ...] = ()
    event_codes: tuple[Code, ...] = ()
    authors: tuple[Author, ...] = ()
    creation_time: str | None = None
    service_start_time: str | None = None
    service_stop_time: str | None = None
    hash: str | None = None
    size: int | None = None
    language_code: str | None = None
    legal_authenticator: str | None = None
    source_patient_id: str | None = None
    source_patient_info: tuple[str, ...] = ()
    repository_unique_id: str | None = None
    uri: str | None = None
    reference_ids: tuple[str, ...] = ()
    document_availability: DocumentAvailability | None = None
    limited_metadata: bool = False


@dataclass(frozen=True, kw_only=True)
class SubmissionSet(_RegistryObject):
    """The package a submission travels in (ITI TF-3 4.2.3.3)."""

    unique_id: str | None = None
    source_id: str | None = None
    patient_id: str | None = None
    submission_time: str | None = None
    content_type_code: Code | None = None
    authors: tuple[Author, ...] = ()
    intended_recipients: tuple[str, ...] = ()
    title: LocalizedString | None = None
    comments: LocalizedString | None = None
    limited_metadata: bool = False


@dataclass(frozen=True, kw_only=True)
class Folder(_RegistryObject):
    """A named collection of one patient's DocumentEntries (ITI TF-3 4.2.3.4)."""

    unique_id: str | None = None
    patient_id: str | None = None
    codes: tuple[Code, ...] = ()
    last_update_time: str | None = None
    title: LocalizedString | None = None
    comments: LocalizedString | None = None
    limited_metadata: bool = False


@dataclass(frozen=True, kw_only=True)
class Association(_RegistryObject):
    """A typed link from ``source`` to ``target`` (ITI TF-3 4.2.2)."""

    type: AssociationType
    source: str
    target: str
    submission_set_status: SubmissionSetStatus | None = None
    original_status: str | None = None  # UpdateAvailabilityStatus (ITI-57)
    new_status: str | None = None
    previous_version: str | None = None


@dataclass(frozen=True)
class ObjectRef:
    """A reference to a registry object by id (ObjectRef query results, remote refs)."""

    id: str
    home: str | None = None


@dataclass(frozen=True)
class ExtraObject:
    """A RegistryObjectList member this model does not interpret, kept as its XML."""

    xml: bytes


RegistryObject = DocumentEntry | SubmissionSet | Folder | Association
ListMember = (
    DocumentEntry
    | SubmissionSet
    | Folder
    | Association
    | ObjectRef
    | Classification
    | ExternalIdentifier
    | ExtraObject
)


@dataclass(frozen=True, kw_only=True)
class Submission:
    """What one SubmitObjectsRequest carries (ITI-41, ITI-42, XDR).

    ``extra_objects`` holds ObjectRefs, top-level Classifications and
    ExternalIdentifiers of objects outside the message, and anything else.
    """

    submission_set: SubmissionSet | None
    document_entries: tuple[DocumentEntry, ...] = ()
    folders: tuple[Folder, ...] = ()
    associations: tuple[Association, ...] = ()
    extra_objects: tuple[ObjectRef | Classification | ExternalIdentifier | ExtraObject, ...] = ()

    def registry_objects(self) -> Iterator[RegistryObject]:
        """Every SubmissionSet, DocumentEntry, Folder and Association, in that order."""
        if self.submission_set is not None:
            yield self.submission_set
        yield from self.document_entries
        yield from self.folders
        yield from self.associations

    def by_id(self) -> dict[str, RegistryObject]:
        """The submission's objects by ebRIM id (the first wins if ids repeat)."""
        found: dict[str, RegistryObject] = {}
        for obj in self.registry_objects():
            found.setdefault(obj.entry_uuid, obj)
        return found


def assign_entry_uuids(
    submission: Submission, new_id: Callable[[], str] = new_uuid_urn
) -> tuple[Submission, dict[str, str]]:
    """Give every symbolic id a fresh ``urn:uuid:`` and rewrite references to it.

    Returns the new submission and the mapping old id -> new id (the repository
    needs it to pair documents, which are keyed by the symbolic id).
    """
    mapping = {
        obj.entry_uuid: new_id()
        for obj in submission.registry_objects()
        if is_symbolic(obj.entry_uuid)
    }
    if not mapping:
        return submission, {}

    def ref(value: str) -> str:
        return mapping.get(value, value)

    def rewrite(obj):
        changes = {"entry_uuid": ref(obj.entry_uuid)}
        changes["extra_classifications"] = tuple(
            replace(c, classified_object=ref(c.classified_object))
            for c in obj.extra_classifications
        )
        changes["extra_external_identifiers"] = tuple(
            replace(e, registry_object=ref(e.registry_object))
            for e in obj.extra_external_identifiers
        )
        if isinstance(obj, Association):
            changes.update(source=ref(obj.source), target=ref(obj.target))
        return replace(obj, **changes)

    def rewrite_extra(obj):
        if isinstance(obj, Classification):
            return replace(obj, classified_object=ref(obj.classified_object))
        if isinstance(obj, ExternalIdentifier):
            return replace(obj, registry_object=ref(obj.registry_object))
        return obj

    ss = submission.submission_set
    return (
        Submission(
            submission_set=rewrite(ss) if ss is not None else None,
            document_entries=tuple(rewrite(d) for d in submission.document_entries),
            folders=tuple(rewrite(f) for f in submission.folders),
            associations=tuple(rewrite(a) for a in submission.associations),
            extra_objects=tuple(rewrite_extra(o) for o in submission.extra_objects),
        ),
        mapping,
    )


__all__ = [
    "Association",
    "Author",
    "Classification",
    "Code",
    "DocumentEntry",
    "ExternalIdentifier",
    "ExtraObject",
    "Folder",
    "ListMember",
    "LocalizedString",
    "ObjectRef",
    "RegistryObject",
    "Slot",
    "Submission",
    "SubmissionSet",
    "assign_entry_uuids",
]
