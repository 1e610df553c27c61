"""Per-object metadata rules: which attributes each actor requires and what a
well-formed value looks like (ITI TF-3 4.2.3.2 DocumentEntry, 4.2.3.3
SubmissionSet, 4.2.3.4 Folder; optionality as in ITI TF-3 Table 4.3.1-3).

Each check reports through ``Report``, so ``validate`` collects every problem
of every object in one pass. ``Report.metadata`` is the actor's metadata error
(registry: XDSRegistryMetadataError, repository and XDR recipient:
XDSRepositoryMetadataError).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from profiles.errors import (
    GatewayError,
    XDSRegistryMetadataError,
    XDSRepositoryMetadataError,
)
from profiles.xds import codes as c
from profiles.xds.codes import DocumentEntryType
from profiles.xds.metadata import Author, Code, DocumentEntry, Folder, SubmissionSet
from profiles.xds.rim import squeeze
from profiles.xds.values import CX, MAX_OID, dtm_high, dtm_low, is_dtm, is_oid

Actor = Literal["registry", "repository", "xdr_recipient"]
ACTORS: tuple[Actor, ...] = ("registry", "repository", "xdr_recipient")

_HEX40 = re.compile(r"[0-9a-fA-F]{40}")
_MIME = re.compile(r"[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+(\s*;.*)?")
_LANGUAGE = re.compile(r"[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*")
_PID = re.compile(r"PID-[0-9]+\|.*", re.S)
MAX_UNIQUE_ID = 128
MAX_TITLE = 128

# Required ("R") attributes per column: registry (ITI-42), repository (ITI-41 as the
# Document Source sends it: the repository adds hash, size and repositoryUniqueId),
# XDR recipient (full metadata), XDR recipient for an object flagged limitedMetadata.
_ALL = (True, True, True, True)
_FULL = (True, True, True, False)  # R2 under limited metadata
_REGISTRY = (True, False, False, False)  # the repository computes these
DOCUMENT_ENTRY_REQUIRED = {
    "unique_id": ("uniqueId", _ALL),
    "mime_type": ("mimeType", _ALL),
    "patient_id": ("patientId", _FULL),
    "class_code": ("classCode", _FULL),
    "confidentiality_codes": ("confidentialityCode", _FULL),
    "creation_time": ("creationTime", _FULL),
    "format_code": ("formatCode", _FULL),
    "healthcare_facility_type_code": ("healthcareFacilityTypeCode", _FULL),
    "language_code": ("languageCode", _FULL),
    "practice_setting_code": ("practiceSettingCode", _FULL),
    "source_patient_id": ("sourcePatientId", _FULL),
    "type_code": ("typeCode", _FULL),
    "hash": ("hash", _REGISTRY),
    "size": ("size", _REGISTRY),
    "repository_unique_id": ("repositoryUniqueId", _REGISTRY),
}
SUBMISSION_SET_REQUIRED = {
    "unique_id": ("uniqueId", _ALL),
    "source_id": ("sourceId", _ALL),
    "submission_time": ("submissionTime", _ALL),
    "patient_id": ("patientId", _FULL),
    "content_type_code": ("contentTypeCode", _FULL),
}
FOLDER_REQUIRED = {
    "unique_id": ("uniqueId", _ALL),
    "patient_id": ("patientId", _FULL),
    "codes": ("codeList", _FULL),
    "title": ("title", _FULL),
}

# Attribute names whose presence among the extras means the sender wrote them wrongly
# (repeated, or with the wrong number or form of values).
_DE_SLOTS = {
    c.CREATION_TIME,
    c.SERVICE_START_TIME,
    c.SERVICE_STOP_TIME,
    c.HASH,
    c.SIZE,
    c.LANGUAGE_CODE,
    c.LEGAL_AUTHENTICATOR,
    c.SOURCE_PATIENT_ID,
    c.SOURCE_PATIENT_INFO,
    c.REPOSITORY_UNIQUE_ID,
    c.URI,
    c.REFERENCE_ID_LIST,
    c.DOCUMENT_AVAILABILITY,
}
_SS_SLOTS = {c.SUBMISSION_TIME, c.INTENDED_RECIPIENT}
_FOLDER_SLOTS = {c.LAST_UPDATE_TIME}
ASSOCIATION_SLOTS = {c.SUBMISSION_SET_STATUS, c.ORIGINAL_STATUS, c.NEW_STATUS, c.PREVIOUS_VERSION}
_AUTHOR_SLOTS = {
    c.AUTHOR_PERSON,
    c.AUTHOR_INSTITUTION,
    c.AUTHOR_ROLE,
    c.AUTHOR_SPECIALTY,
    c.AUTHOR_TELECOM,
}
_DE_SCHEMES = {
    c.DE_CLASS_CODE: "classCode",
    c.DE_TYPE_CODE: "typeCode",
    c.DE_FORMAT_CODE: "formatCode",
    c.DE_HEALTHCARE_FACILITY_TYPE_CODE: "healthcareFacilityTypeCode",
    c.DE_PRACTICE_SETTING_CODE: "practiceSettingCode",
}
_SS_SCHEMES = {c.SS_CONTENT_TYPE_CODE: "contentTypeCode"}
_DE_IDS = {c.DE_PATIENT_ID: "patientId", c.DE_UNIQUE_ID: "uniqueId"}
_SS_IDS = {c.SS_PATIENT_ID: "patientId", c.SS_UNIQUE_ID: "uniqueId", c.SS_SOURCE_ID: "sourceId"}
_FOLDER_IDS = {c.FOLDER_PATIENT_ID: "patientId", c.FOLDER_UNIQUE_ID: "uniqueId"}


def metadata_error(actor: Actor) -> type[GatewayError]:
    """The actor's code for a metadata fault; pass it to the codec as ``error=``."""
    return XDSRegistryMetadataError if actor == "registry" else XDSRepositoryMetadataError


@dataclass
class Report:
    """Where the rules put what they find; ``metadata`` is the actor's metadata error."""

    actor: Actor
    errors: list[GatewayError] = field(default_factory=list)

    @property
    def metadata(self) -> type[GatewayError]:
        return metadata_error(self.actor)

    def add(self, error: type[GatewayError], context: str, location: str) -> None:
        self.errors.append(error(context, location=location))

    def meta(self, context: str, location: str) -> None:
        self.add(self.metadata, context, location)


def _column(actor: Actor, limited: bool) -> int:
    if actor == "xdr_recipient":
        return 3 if limited else 2
    return 0 if actor == "registry" else 1


def _required(report: Report, obj, what: str, table: dict, limited: bool, known: set) -> None:
    """Required attributes that are absent (``known``: present but malformed, reported)."""
    column = _column(report.actor, limited)
    for attr, (name, columns) in table.items():
        value = getattr(obj, attr)
        empty = value is None or value == () or value == ""
        if columns[column] and empty and name not in known:
            report.meta(f"{what} {obj.entry_uuid}: {name} is required", obj.entry_uuid)


def _extras(report: Report, obj, what: str, slots: set, schemes: dict, ids: dict) -> set[str]:
    """Known attributes the codec could not take (repeated or malformed), reported once each."""
    where, found = obj.entry_uuid, {}
    for slot in obj.extra_slots:
        if slot.name in slots:
            found.setdefault(
                slot.name,
                f"slot {slot.name} is repeated or its values are malformed ({list(slot.values)})",
            )
    for x in obj.extra_classifications:
        if (name := schemes.get(squeeze(x.scheme))) is not None:
            found.setdefault(name, f"{name} is given more than once")
    for e in obj.extra_external_identifiers:
        if (name := ids.get(squeeze(e.scheme))) is not None:
            found.setdefault(name, f"{name} is given more than once")
    for problem in found.values():
        report.meta(f"{what} {where}: {problem}", where)
    return set(found)


def check_code(report: Report, code: Code, name: str, owner: str, *, display: bool = True) -> None:
    label = f"{name} {code.code!r} of {owner}"
    if not code.code:
        report.meta(f"{label}: the code (nodeRepresentation) is empty", owner)
    if not code.scheme:
        report.meta(f"{label}: the codingScheme slot is missing or malformed", owner)
    if display and not code.display:
        report.meta(f"{label}: the display name (Name) is missing", owner)


def _check_author(report: Report, author: Author, owner: str) -> None:
    if not (
        author.person
        or author.institutions
        or author.roles
        or author.specialties
        or author.telecoms
    ):
        report.meta(
            f"author of {owner} has no authorPerson, institution, role, specialty or "
            "telecommunication",
            owner,
        )
    for slot in author.extra_slots:
        if slot.name in _AUTHOR_SLOTS:
            report.meta(f"author of {owner}: {slot.name} is repeated or has several values", owner)


def check_patient_id(report: Report, value: str | None, name: str, owner: str) -> None:
    if value is None:
        return
    try:
        CX.parse(value)
    except GatewayError as e:
        report.meta(f"{name} of {owner}: {e.context}", owner)


def _check_oid(report: Report, value: str | None, name: str, owner: str) -> None:
    if value is not None and not is_oid(value):
        report.meta(
            f"{name} {value!r} of {owner} is not an OID of at most {MAX_OID} characters", owner
        )


def _check_time(report: Report, value: str | None, name: str, owner: str) -> None:
    if value is not None and not is_dtm(value):
        report.meta(
            f"{name} {value!r} of {owner} is not a UTC time YYYY[MM[DD[hh[mm[ss]]]]]", owner
        )


def _check_home(report: Report, obj) -> None:
    home = obj.home_community_id
    if home is not None and not (home.startswith("urn:oid:") and is_oid(home[8:])):
        report.meta(
            f"homeCommunityId {home!r} of {obj.entry_uuid} is not urn:oid:OID", obj.entry_uuid
        )


def check_document_unique_id(report: Report, value: str | None, owner: str) -> None:
    """OID, or OID^extension (ITI TF-3 4.2.3.2.26), at most 128 characters."""
    if value is None:
        return
    root, _, extension = value.partition("^")
    if len(value) > MAX_UNIQUE_ID or not is_oid(root) or ("^" in value and not extension):
        report.meta(
            f"uniqueId {value!r} of {owner} is neither an OID nor OID^extension "
            f"(OID at most {MAX_OID}, all at most {MAX_UNIQUE_ID} characters)",
            owner,
        )


def check_document_entry(report: Report, d: DocumentEntry) -> None:
    where = d.entry_uuid
    what = "DocumentEntry"
    if d.object_type is DocumentEntryType.ON_DEMAND:
        report.meta(f"{what} {where}: On-Demand entries are registered by ITI-61, not here", where)
    if d.limited_metadata and report.actor != "xdr_recipient":
        report.meta(f"{what} {where}: limitedMetadata is only accepted by an XDR recipient", where)
    known = _extras(report, d, what, _DE_SLOTS, _DE_SCHEMES, _DE_IDS)
    _required(report, d, what, DOCUMENT_ENTRY_REQUIRED, d.limited_metadata, known)
    check_patient_id(report, d.patient_id, "patientId", where)
    if d.source_patient_id is not None:
        parts = d.source_patient_id.split("^")
        if not parts[0] or len(parts) < 4 or not parts[3]:
            report.meta(
                f"sourcePatientId {d.source_patient_id!r} of {where} needs an id and an "
                "assigning authority (CX.1 and CX.4)",
                where,
            )
    check_document_unique_id(report, d.unique_id, where)
    _check_oid(report, d.repository_unique_id, "repositoryUniqueId", where)
    for name, value in (
        ("creationTime", d.creation_time),
        ("serviceStartTime", d.service_start_time),
        ("serviceStopTime", d.service_stop_time),
    ):
        _check_time(report, value, name, where)
    start, stop = d.service_start_time, d.service_stop_time
    if start and stop and is_dtm(start) and is_dtm(stop) and dtm_low(start) > dtm_high(stop):
        report.meta(f"serviceStartTime {start} of {where} is after serviceStopTime {stop}", where)
    if d.hash is not None and not _HEX40.fullmatch(d.hash):
        report.meta(f"hash {d.hash!r} of {where} is not a SHA-1 in 40 hex digits", where)
    if d.mime_type is not None and not _MIME.fullmatch(d.mime_type):
        report.meta(f"mimeType {d.mime_type!r} of {where} is not type/subtype", where)
    if d.language_code is not None and not _LANGUAGE.fullmatch(d.language_code):
        report.meta(f"languageCode {d.language_code!r} of {where} is not an RFC 5646 tag", where)
    if d.title is not None and len(d.title.value) > MAX_TITLE:
        report.meta(f"title of {where} is longer than {MAX_TITLE} characters", where)
    for info in d.source_patient_info:
        if not _PID.fullmatch(info):
            report.meta(f"sourcePatientInfo value {info!r} of {where} is not PID-n|value", where)
    for name, code in (
        ("classCode", d.class_code),
        ("typeCode", d.type_code),
        ("formatCode", d.format_code),
        ("healthcareFacilityTypeCode", d.healthcare_facility_type_code),
        ("practiceSettingCode", d.practice_setting_code),
    ):
        if code is not None:
            check_code(report, code, name, where)
    for code in d.confidentiality_codes:
        check_code(report, code, "confidentialityCode", where)
    for code in d.event_codes:
        check_code(report, code, "eventCodeList", where, display=False)
    for author in d.authors:
        _check_author(report, author, where)
    _check_home(report, d)


def check_submission_set(report: Report, s: SubmissionSet) -> None:
    where, what = s.entry_uuid, "SubmissionSet"
    if s.limited_metadata and report.actor != "xdr_recipient":
        report.meta(f"{what} {where}: limitedMetadata is only accepted by an XDR recipient", where)
    known = _extras(report, s, what, _SS_SLOTS, _SS_SCHEMES, _SS_IDS)
    _required(report, s, what, SUBMISSION_SET_REQUIRED, s.limited_metadata, known)
    check_patient_id(report, s.patient_id, "patientId", where)
    _check_oid(report, s.unique_id, "uniqueId", where)
    _check_oid(report, s.source_id, "sourceId", where)
    _check_time(report, s.submission_time, "submissionTime", where)
    if s.content_type_code is not None:
        check_code(report, s.content_type_code, "contentTypeCode", where)
    for author in s.authors:
        _check_author(report, author, where)
    for recipient in s.intended_recipients:
        if not recipient.strip("|^& "):
            report.meta(f"intendedRecipient of {where} is empty", where)
    _check_home(report, s)


def check_folder(report: Report, f: Folder) -> None:
    where, what = f.entry_uuid, "Folder"
    if f.limited_metadata and report.actor != "xdr_recipient":
        report.meta(f"{what} {where}: limitedMetadata is only accepted by an XDR recipient", where)
    known = _extras(report, f, what, _FOLDER_SLOTS, {}, _FOLDER_IDS)
    _required(report, f, what, FOLDER_REQUIRED, f.limited_metadata, known)
    check_patient_id(report, f.patient_id, "patientId", where)
    _check_oid(report, f.unique_id, "uniqueId", where)
    _check_time(report, f.last_update_time, "lastUpdateTime", where)
    for code in f.codes:
        check_code(report, code, "codeList", where)
    _check_home(report, f)
