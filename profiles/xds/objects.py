"""Each XDS model <-> its ebRIM 3.0 element (ITI TF-3 4.2.5): DocumentEntry as an
ExtrinsicObject, SubmissionSet and Folder as classified RegistryPackages, and
Association. Readers take what they understand from ``rim.Parts``; writers
emit the schema's order: Slot*, Name, Description, VersionInfo, Classification*,
ExternalIdentifier*.
"""

from __future__ import annotations

from dataclasses import replace

from lxml import etree

from profiles.xds import codes as c
from profiles.xds.codes import (
    AssociationType,
    AvailabilityStatus,
    DocumentAvailability,
    DocumentEntryType,
    SubmissionSetStatus,
)
from profiles.xds.metadata import (
    Association,
    Code,
    DocumentEntry,
    Folder,
    SubmissionSet,
)
from profiles.xds.rim import (
    DIGITS,
    EXTRA_CLASSIFICATION,
    EXTRA_IDENTIFIER,
    Parts,
    Problem,
    attributes,
    child_id,
    is_member,
    squeeze,
    sub,
    take_authors,
    take_classifications,
    take_code,
    take_codes,
    take_external,
    take_flag,
    take_many,
    take_one,
    take_uri,
    uri_values,
    write_author,
    write_code,
    write_extra_classifications,
    write_head,
    write_identifiers,
    write_node,
    write_slots,
)


def common(parts: Parts, problem: Problem) -> dict:
    """The attributes every registry object has (id, lid, VersionInfo, status, home)."""
    status = parts.attrs.get("status")
    if status is not None and status not in AvailabilityStatus._value2member_map_:
        problem(f"status {status!r} is not an availabilityStatus", parts.id)
        status = None
    return {
        "entry_uuid": parts.id,
        "logical_id": parts.attrs.get("lid"),
        "version": parts.version,
        "availability_status": AvailabilityStatus(status) if status else None,
        "home_community_id": parts.attrs.get("home"),
    }


def leftovers(parts: Parts) -> dict:
    """What no attribute took; ids the writer derived (``child_id``) are dropped again."""

    def unless_derived(items: list, tag: str) -> tuple:
        return tuple(
            replace(x, id=None) if x.id == child_id(parts.id, f"{tag}{i}") else x
            for i, x in enumerate(items)
        )

    return {
        "extra_slots": tuple(parts.slots),
        "extra_classifications": unless_derived(parts.classifications, EXTRA_CLASSIFICATION),
        "extra_external_identifiers": unless_derived(parts.external_ids, EXTRA_IDENTIFIER),
    }


def read_document_entry(parts: Parts, problem: Problem) -> DocumentEntry | None:
    object_type = parts.attrs.get("objectType")
    if object_type not in DocumentEntryType._value2member_map_:
        problem(f"ExtrinsicObject objectType {object_type!r} is not a DocumentEntry type", parts.id)
        return None
    base = common(parts, problem)
    s = parts.slots
    size = take_one(s, c.SIZE, DIGITS.fullmatch)
    availability = take_one(s, c.DOCUMENT_AVAILABILITY, is_member(DocumentAvailability))
    return DocumentEntry(
        **base,
        object_type=DocumentEntryType(object_type),
        mime_type=parts.attrs.get("mimeType"),
        title=parts.name,
        comments=parts.description,
        creation_time=take_one(s, c.CREATION_TIME),
        service_start_time=take_one(s, c.SERVICE_START_TIME),
        service_stop_time=take_one(s, c.SERVICE_STOP_TIME),
        hash=take_one(s, c.HASH),
        size=int(size) if size is not None else None,
        language_code=take_one(s, c.LANGUAGE_CODE),
        legal_authenticator=take_one(s, c.LEGAL_AUTHENTICATOR),
        source_patient_id=take_one(s, c.SOURCE_PATIENT_ID),
        source_patient_info=take_many(s, c.SOURCE_PATIENT_INFO),
        repository_unique_id=take_one(s, c.REPOSITORY_UNIQUE_ID),
        uri=take_uri(s),
        reference_ids=take_many(s, c.REFERENCE_ID_LIST),
        document_availability=DocumentAvailability(availability) if availability else None,
        authors=take_authors(parts, c.DE_AUTHOR),
        class_code=take_code(parts, c.DE_CLASS_CODE),
        type_code=take_code(parts, c.DE_TYPE_CODE),
        format_code=take_code(parts, c.DE_FORMAT_CODE),
        healthcare_facility_type_code=take_code(parts, c.DE_HEALTHCARE_FACILITY_TYPE_CODE),
        practice_setting_code=take_code(parts, c.DE_PRACTICE_SETTING_CODE),
        confidentiality_codes=take_codes(parts, c.DE_CONFIDENTIALITY_CODE),
        event_codes=take_codes(parts, c.DE_EVENT_CODE),
        limited_metadata=take_flag(parts, c.DE_LIMITED_METADATA),
        patient_id=take_external(parts, c.DE_PATIENT_ID),
        unique_id=take_external(parts, c.DE_UNIQUE_ID),
        **leftovers(parts),
    )


def package_kind(parts: Parts) -> str | None:
    """``SUBMISSION_SET_NODE``/``FOLDER_NODE`` per the package's node classification."""
    kinds = {squeeze(x.node) for x in parts.classifications} & {
        c.SUBMISSION_SET_NODE,
        c.FOLDER_NODE,
    }
    if len(kinds) != 1:
        return None
    kind = kinds.pop()
    take_classifications(parts, lambda x: squeeze(x.node) == kind)
    return kind


def read_submission_set(parts: Parts, problem: Problem) -> SubmissionSet:
    base = common(parts, problem)
    s = parts.slots
    return SubmissionSet(
        **base,
        title=parts.name,
        comments=parts.description,
        submission_time=take_one(s, c.SUBMISSION_TIME),
        intended_recipients=take_many(s, c.INTENDED_RECIPIENT),
        authors=take_authors(parts, c.SS_AUTHOR),
        content_type_code=take_code(parts, c.SS_CONTENT_TYPE_CODE),
        limited_metadata=take_flag(parts, c.SS_LIMITED_METADATA),
        unique_id=take_external(parts, c.SS_UNIQUE_ID),
        source_id=take_external(parts, c.SS_SOURCE_ID),
        patient_id=take_external(parts, c.SS_PATIENT_ID),
        **leftovers(parts),
    )


def read_folder(parts: Parts, problem: Problem) -> Folder:
    base = common(parts, problem)
    return Folder(
        **base,
        title=parts.name,
        comments=parts.description,
        last_update_time=take_one(parts.slots, c.LAST_UPDATE_TIME),
        codes=take_codes(parts, c.FOLDER_CODE_LIST),
        limited_metadata=take_flag(parts, c.FOLDER_LIMITED_METADATA),
        unique_id=take_external(parts, c.FOLDER_UNIQUE_ID),
        patient_id=take_external(parts, c.FOLDER_PATIENT_ID),
        **leftovers(parts),
    )


def read_association(parts: Parts, problem: Problem) -> Association | None:
    kind = parts.attrs.get("associationType")
    if kind not in AssociationType._value2member_map_:
        problem(f"associationType {kind!r} is not an XDS association type", parts.id)
        return None
    base = common(parts, problem)
    s = parts.slots
    status = take_one(s, c.SUBMISSION_SET_STATUS, is_member(SubmissionSetStatus))
    return Association(
        **base,
        type=AssociationType(kind),
        source=parts.attrs.get("sourceObject", ""),
        target=parts.attrs.get("targetObject", ""),
        submission_set_status=SubmissionSetStatus(status) if status else None,
        original_status=take_one(s, c.ORIGINAL_STATUS),
        new_status=take_one(s, c.NEW_STATUS),
        previous_version=take_one(s, c.PREVIOUS_VERSION),
        **leftovers(parts),
    )


# ------------------------------------------------------------------- writing


def _codes(el: etree._Element, owner: str, scheme: str, codes, tag: str) -> None:
    for i, code in enumerate(codes):
        write_code(el, owner, scheme, code, f"{tag}{i}")


def _code(el: etree._Element, owner: str, scheme: str, code: Code | None, tag: str) -> None:
    if code is not None:
        write_code(el, owner, scheme, code, tag)


def _authors(el: etree._Element, owner: str, scheme: str, authors) -> None:
    for i, author in enumerate(authors):
        write_author(el, owner, scheme, author, f"author{i}")


def write_document_entry(
    parent: etree._Element, d: DocumentEntry, home: str | None = None
) -> etree._Element:
    el = sub(
        parent,
        "ExtrinsicObject",
        **attributes(d, home),
        objectType=d.object_type.value,
        mimeType=d.mime_type,
    )
    availability = d.document_availability.value if d.document_availability else None
    write_slots(
        el,
        [
            (c.CREATION_TIME, d.creation_time),
            (c.LANGUAGE_CODE, d.language_code),
            (c.SERVICE_START_TIME, d.service_start_time),
            (c.SERVICE_STOP_TIME, d.service_stop_time),
            (c.SOURCE_PATIENT_ID, d.source_patient_id),
            (c.SOURCE_PATIENT_INFO, d.source_patient_info),
            (c.LEGAL_AUTHENTICATOR, d.legal_authenticator),
            (c.HASH, d.hash),
            (c.SIZE, d.size),
            (c.REPOSITORY_UNIQUE_ID, d.repository_unique_id),
            (c.URI, uri_values(d.uri) if d.uri is not None else None),
            (c.REFERENCE_ID_LIST, d.reference_ids),
            (c.DOCUMENT_AVAILABILITY, availability),
        ],
        d.extra_slots,
    )
    write_head(el, d, d.title, d.comments)
    owner = d.entry_uuid
    _authors(el, owner, c.DE_AUTHOR, d.authors)
    _code(el, owner, c.DE_CLASS_CODE, d.class_code, "classCode")
    _codes(el, owner, c.DE_CONFIDENTIALITY_CODE, d.confidentiality_codes, "confidentialityCode")
    _codes(el, owner, c.DE_EVENT_CODE, d.event_codes, "eventCode")
    _code(el, owner, c.DE_FORMAT_CODE, d.format_code, "formatCode")
    _code(
        el,
        owner,
        c.DE_HEALTHCARE_FACILITY_TYPE_CODE,
        d.healthcare_facility_type_code,
        "healthcareFacilityTypeCode",
    )
    _code(el, owner, c.DE_PRACTICE_SETTING_CODE, d.practice_setting_code, "practiceSettingCode")
    _code(el, owner, c.DE_TYPE_CODE, d.type_code, "typeCode")
    if d.limited_metadata:
        write_node(el, owner, c.DE_LIMITED_METADATA, "limitedMetadata")
    write_extra_classifications(el, d)
    write_identifiers(el, d, [(c.DE_PATIENT_ID, d.patient_id), (c.DE_UNIQUE_ID, d.unique_id)])
    return el


def write_submission_set(
    parent: etree._Element, s: SubmissionSet, home: str | None = None
) -> etree._Element:
    el = sub(parent, "RegistryPackage", **attributes(s, home), objectType=c.OT_REGISTRY_PACKAGE)
    write_slots(
        el,
        [(c.SUBMISSION_TIME, s.submission_time), (c.INTENDED_RECIPIENT, s.intended_recipients)],
        s.extra_slots,
    )
    write_head(el, s, s.title, s.comments)
    owner = s.entry_uuid
    _authors(el, owner, c.SS_AUTHOR, s.authors)
    _code(el, owner, c.SS_CONTENT_TYPE_CODE, s.content_type_code, "contentTypeCode")
    write_node(el, owner, c.SUBMISSION_SET_NODE, "submissionSet")
    if s.limited_metadata:
        write_node(el, owner, c.SS_LIMITED_METADATA, "limitedMetadata")
    write_extra_classifications(el, s)
    write_identifiers(
        el,
        s,
        [
            (c.SS_UNIQUE_ID, s.unique_id),
            (c.SS_SOURCE_ID, s.source_id),
            (c.SS_PATIENT_ID, s.patient_id),
        ],
    )
    return el


def write_folder(parent: etree._Element, f: Folder, home: str | None = None) -> etree._Element:
    el = sub(parent, "RegistryPackage", **attributes(f, home), objectType=c.OT_REGISTRY_PACKAGE)
    write_slots(el, [(c.LAST_UPDATE_TIME, f.last_update_time)], f.extra_slots)
    write_head(el, f, f.title, f.comments)
    owner = f.entry_uuid
    _codes(el, owner, c.FOLDER_CODE_LIST, f.codes, "code")
    write_node(el, owner, c.FOLDER_NODE, "folder")
    if f.limited_metadata:
        write_node(el, owner, c.FOLDER_LIMITED_METADATA, "limitedMetadata")
    write_extra_classifications(el, f)
    write_identifiers(
        el, f, [(c.FOLDER_UNIQUE_ID, f.unique_id), (c.FOLDER_PATIENT_ID, f.patient_id)]
    )
    return el


def write_association(
    parent: etree._Element, a: Association, home: str | None = None
) -> etree._Element:
    el = sub(
        parent,
        "Association",
        **attributes(a, home),
        objectType=c.OT_ASSOCIATION,
        associationType=a.type.value,
        sourceObject=a.source,
        targetObject=a.target,
    )
    status = a.submission_set_status.value if a.submission_set_status else None
    write_slots(
        el,
        [
            (c.SUBMISSION_SET_STATUS, status),
            (c.ORIGINAL_STATUS, a.original_status),
            (c.NEW_STATUS, a.new_status),
            (c.PREVIOUS_VERSION, a.previous_version),
        ],
        a.extra_slots,
    )
    write_head(el, a)
    write_extra_classifications(el, a)
    write_identifiers(el, a, [])
    return el
