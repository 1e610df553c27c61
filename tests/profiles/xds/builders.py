"""Complete, valid metadata to mutate in tests, and an in-memory registry state."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from lxml import etree

from profiles.xds.codes import AssociationType, SubmissionSetStatus
from profiles.xds.metadata import (
    Association,
    Author,
    Code,
    DocumentEntry,
    Folder,
    LocalizedString,
    RegistryObject,
    Submission,
    SubmissionSet,
)

PATIENT = "PID-1^^^&1.2.3.4.5&ISO"
OTHER_PATIENT = "PID-2^^^&1.2.3.4.5&ISO"
LOINC = "2.16.840.1.113883.6.1"
SHA1 = "e543712c0e10501972de13a5bfcbe826c49feb75"
PARSER = etree.XMLParser(resolve_entities=False, no_network=True)


def code(value: str = "11488-4", scheme: str = LOINC, display: str | None = "Consult note") -> Code:
    return Code(value, scheme, display)


def document_entry(entry_uuid: str = "Document01", **changes) -> DocumentEntry:
    """A DocumentEntry with every attribute a registry requires."""
    entry = DocumentEntry(
        entry_uuid=entry_uuid,
        unique_id="1.2.3.4.5.100.1",
        patient_id=PATIENT,
        mime_type="text/xml",
        title=LocalizedString("Consult note"),
        class_code=code("34133-9", display="Summary of episode note"),
        type_code=code(),
        format_code=code("urn:ihe:pcc:xphr:2007", "1.3.6.1.4.1.19376.1.2.3", "XPHR"),
        healthcare_facility_type_code=code("225732001", "2.16.840.1.113883.6.96", "Community"),
        practice_setting_code=code("408440000", "2.16.840.1.113883.6.96", "Public health"),
        confidentiality_codes=(code("N", "2.16.840.1.113883.5.25", "normal"),),
        authors=(Author(person="^Smitty^Gerald^^^", institutions=("Cleveland Clinic",)),),
        creation_time="20240102030405",
        service_start_time="20240101",
        service_stop_time="20240102",
        hash=SHA1,
        size=4,
        language_code="en-US",
        source_patient_id="LOCAL-9^^^&1.2.3.9&ISO",
        source_patient_info=("PID-3|LOCAL-9^^^&1.2.3.9&ISO", "PID-5|Doe^John^^^"),
        repository_unique_id="1.2.3.4.5.200",
    )
    return replace(entry, **changes)


def submission_set(entry_uuid: str = "SubmissionSet01", **changes) -> SubmissionSet:
    ss = SubmissionSet(
        entry_uuid=entry_uuid,
        unique_id="1.2.3.4.5.100.2",
        source_id="1.2.3.4.5.300",
        patient_id=PATIENT,
        submission_time="20240102030405",
        content_type_code=code("18748-4", display="Diagnostic imaging study"),
        authors=(Author(person="^Dopplemeyer^Sherry^^^"),),
    )
    return replace(ss, **changes)


def folder(entry_uuid: str = "Folder01", **changes) -> Folder:
    f = Folder(
        entry_uuid=entry_uuid,
        unique_id="1.2.3.4.5.100.3",
        patient_id=PATIENT,
        codes=(code("Referrals", "1.3.6.1.4.1.21367.100.1", "Referrals"),),
        title=LocalizedString("Referrals"),
    )
    return replace(f, **changes)


def association(
    entry_uuid: str,
    source: str,
    target: str,
    kind: AssociationType = AssociationType.HAS_MEMBER,
    status: SubmissionSetStatus | None = None,
) -> Association:
    return Association(
        entry_uuid=entry_uuid, type=kind, source=source, target=target, submission_set_status=status
    )


def member(entry_uuid: str, target: str, status=SubmissionSetStatus.ORIGINAL) -> Association:
    return association(entry_uuid, "SubmissionSet01", target, status=status)


def submission(*, with_folder: bool = False, **changes) -> Submission:
    """SubmissionSet01 holding Document01 (and Folder01 holding it too)."""
    associations = [member("as01", "Document01")]
    folders = ()
    if with_folder:
        folders = (folder(),)
        associations += [
            association("as02", "SubmissionSet01", "Folder01"),
            association("as03", "Folder01", "Document01"),
            association("as04", "SubmissionSet01", "as03"),
        ]
    sub = Submission(
        submission_set=submission_set(),
        document_entries=(document_entry(),),
        folders=folders,
        associations=tuple(associations),
    )
    return replace(sub, **changes)


@dataclass
class FakeRegistry:
    """``RegistryState`` over dicts: known patients and registered objects."""

    patients: set[str] = field(default_factory=lambda: {PATIENT})
    objects: dict[str, RegistryObject] = field(default_factory=dict)

    def add(self, *objects: RegistryObject) -> FakeRegistry:
        for obj in objects:
            self.objects[obj.entry_uuid] = obj
        return self

    def known_patient(self, patient_id: str) -> bool:
        return patient_id in self.patients

    def existing(self, entry_uuid: str) -> RegistryObject | None:
        return self.objects.get(entry_uuid)

    def by_unique_id(self, unique_id: str) -> list[RegistryObject]:
        return [o for o in self.objects.values() if getattr(o, "unique_id", None) == unique_id]
