"""A DocumentEntry from a CDA header (IHE PCC TF-2 4.1.1, ITI TF-3 4.2.3.2).

Every value is read from the document where PCC says it lives; what real
documents leave out or get wrong (date-only or zone-less times, nullFlavor
codes, ``eng``, non-OID ids) is repaired from ``Defaults`` and reported as a
``Finding``, so the result always passes the registry's metadata rules while
the operator learns what was assumed. The patient id chosen here is the
document's own; the gateway maps it to the affinity domain through its
patient index (``patient_ids`` lists every recordTarget id for that).

Sans-IO: takes a parsed element (``cda.parse_document``), returns dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree

from profiles.ccda.cda import (
    SSN_ROOT,
    Finding,
    child,
    children,
    ii,
    is_oid,
    is_uuid,
    name_of,
    text,
    to_utc_dtm,
    unique_id_of,
    v2,
    xcn,
    xon,
    xtn,
)
from profiles.ccda.templates import (
    CONFIDENTIALITY,
    LOINC,
    R21,
    XPHR,
    ccda_format,
    read_templates,
)
from profiles.xds.metadata import Author, Code, DocumentEntry, LocalizedString

SNOMED = "2.16.840.1.113883.6.96"
_CONSENT = "1.3.6.1.4.1.19376.1.5.3.1.2.5"
_LANGUAGES = {"eng": "en", "spa": "es", "fre": "fr", "fra": "fr", "ger": "de", "deu": "de"}
_GENDER = {"M": "M", "F": "F", "UN": "U", "U": "U", "O": "O"}
MAX_TITLE = 127


@dataclass(frozen=True, kw_only=True)
class Defaults:
    """Values for what a document does not say (the affinity domain's choices)."""

    class_codes: dict[str, Code] = field(default_factory=dict)  # typeCode code -> classCode
    type_code: Code = Code("34133-9", LOINC, "Summary of episode note")
    format_code: Code = Code("urn:ihe:iti:xds:2017:mimeTypeSufficient",
                             "1.3.6.1.4.1.19376.1.2.3", "mimeType Sufficient")
    confidentiality_code: Code = Code("N", CONFIDENTIALITY, "normal")
    healthcare_facility_type_code: Code = Code("35971002", SNOMED, "Ambulatory care site")
    practice_setting_code: Code = Code("394802001", SNOMED, "General medicine")
    language_code: str = "en-US"
    author_role: str | None = None
    assume_offset: str | None = None  # zone of times without one; None: UTC
    patient_domain: str | None = None  # assigning authority to prefer among recordTarget ids


@dataclass(frozen=True)
class Extraction:
    """The entry (``entry_uuid`` "Document01", no hash/size yet) and what was assumed."""

    entry: DocumentEntry
    findings: tuple[Finding, ...]
    patient_ids: tuple[tuple[str, str], ...]  # recordTarget ids (root, extension)
    document_type: str
    is_ccda: bool
    parents: tuple[tuple[str, str], ...] = ()  # (RPLC|APND|XFRM, parent uniqueId)


class _Notes:
    def __init__(self) -> None:
        self.items: list[Finding] = []

    def __call__(self, severity: str, name: str, message: str) -> None:
        self.items.append(Finding(severity, name, message))


def extract(
    root: etree._Element, defaults: Defaults | None = None, *, now: str | None = None
) -> Extraction:
    """The DocumentEntry of ClinicalDocument ``root``; ``now`` (a DTM) stands in for an
    unusable creationTime."""
    d = defaults or Defaults()
    note = _Notes()
    templates = read_templates([(t.get("root") or "", t.get("extension") or "")
                                for t in children(root, "templateId")])
    type_code = _type_code(root, templates, d, note)
    class_code = d.class_codes.get(type_code.code, type_code)
    patient_ids, patient, source_info = _patient(root, d, note)
    service_start, service_stop = _service_times(root, d, note)
    facility = _code(child(root, "componentOf", "encompassingEncounter", "location",
                           "healthCareFacility", "code"))
    if facility is None:
        facility = d.healthcare_facility_type_code
        note("info", "healthcareFacilityTypeCode", f"not in the document; default {facility.code}")
    note("info", "practiceSettingCode",
         f"not in a CDA header; default {d.practice_setting_code.code}")
    entry = DocumentEntry(
        entry_uuid="Document01",
        unique_id=_unique_id(root, note),
        patient_id=patient,
        source_patient_id=patient,
        source_patient_info=source_info,
        mime_type="text/xml",
        title=_title(root, type_code, note),
        class_code=class_code,
        type_code=type_code,
        format_code=_format_code(root, templates, d, note),
        healthcare_facility_type_code=facility,
        practice_setting_code=d.practice_setting_code,
        confidentiality_codes=_confidentiality(root, d, note),
        event_codes=tuple(c for e in _service_events(root) if (c := _code(child(e, "code")))),
        authors=_authors(root, d, note),
        creation_time=_creation_time(root, d, note, now),
        service_start_time=service_start,
        service_stop_time=service_stop,
        language_code=_language(root, d, note),
        legal_authenticator=_legal_authenticator(root),
        reference_ids=_reference_ids(root, note),
    )
    return Extraction(
        entry=entry,
        findings=tuple(note.items),
        patient_ids=patient_ids,
        document_type=templates.document_type
        or ("C-CDA (US Realm Header)" if templates.is_ccda else "CDA"),
        is_ccda=templates.is_ccda,
        parents=_parents(root),
    )


def _code(el: etree._Element | None) -> Code | None:
    if el is None or el.get("nullFlavor") or not el.get("code") or not el.get("codeSystem"):
        return None
    return Code(el.get("code"), el.get("codeSystem"), el.get("displayName") or el.get("code"))


def _unique_id(root: etree._Element, note: _Notes) -> str | None:
    value, why = unique_id_of(ii(child(root, "id")))
    if why:
        note("error" if value is None else "warning", "uniqueId", why)
    return value


def _type_code(root: etree._Element, templates, d: Defaults, note: _Notes) -> Code:
    code = _code(child(root, "code"))
    usual = templates.type_loinc
    if code is not None and usual and code.code == usual.code and code.display == code.code:
        code = usual  # no displayName: the template's own
    if code is not None and code.scheme == LOINC:
        if templates.type_loinc and templates.type_loinc.code != code.code:
            note("info", "typeCode", f"{code.code} differs from the {templates.document_type} "
                 f"template's usual {templates.type_loinc.code}")
        return code
    fallback = templates.type_loinc or d.type_code
    got = f"{code.code} in {code.scheme}" if code else "absent or nullFlavor"
    note("warning", "typeCode", f"ClinicalDocument/code is {got}, not LOINC; used {fallback.code}")
    return fallback


def _title(root: etree._Element, type_code: Code, note: _Notes) -> LocalizedString:
    title = text(child(root, "title"))
    if not title:
        title = type_code.display or type_code.code
        note("warning", "title", f"no title; used {title!r}")
    if len(title) > MAX_TITLE:
        note("warning", "title", f"title longer than {MAX_TITLE} characters, shortened")
        title = title[: MAX_TITLE - 1] + "…"
    return LocalizedString(title)


def _time(value: str | None, name: str, d: Defaults, note: _Notes) -> str | None:
    t = to_utc_dtm(value, assume_offset=d.assume_offset)
    if t.note and t.dtm is not None:
        note("info" if "fraction" in t.note and "zone" not in t.note else "warning", name, t.note)
    return t.dtm


def _creation_time(root, d: Defaults, note: _Notes, now: str | None) -> str | None:
    el = child(root, "effectiveTime")
    value = None if el is None else el.get("value")
    t = to_utc_dtm(value, assume_offset=d.assume_offset)
    if t.dtm is None:
        note("warning" if now else "error", "creationTime",
             f"ClinicalDocument/effectiveTime unusable ({t.note})"
             + (f"; used the import time {now}" if now else ""))
        return now
    return _time(value, "creationTime", d, note)


def _service_events(root) -> list[etree._Element]:
    return [e for doc in children(root, "documentationOf") if (e := child(doc, "serviceEvent"))
            is not None]


def _service_times(root, d: Defaults, note: _Notes) -> tuple[str | None, str | None]:
    for event in _service_events(root):
        et = child(event, "effectiveTime")
        if et is None:
            continue
        low, high = child(et, "low"), child(et, "high")
        start_value = low.get("value") if low is not None else et.get("value")
        stop_value = high.get("value") if high is not None else None
        start = _time(start_value, "serviceStartTime", d, note) if start_value else None
        stop = _time(stop_value, "serviceStopTime", d, note) if stop_value else None
        if start and stop and start.ljust(14, "0") > stop.ljust(14, "9"):
            note("warning", "serviceStopTime", f"{stop} is before serviceStartTime {start}; "
                 "left out")
            stop = None
        return start, stop
    return None, None


def _confidentiality(root, d: Defaults, note: _Notes) -> tuple[Code, ...]:
    el = child(root, "confidentialityCode")
    code = _code(el)
    if code is None:
        why = "missing" if el is None else (f"nullFlavor {el.get('nullFlavor')}"
                                            if el.get("nullFlavor") else "without a code")
        note("warning", "confidentialityCode", f"{why}; default {d.confidentiality_code.code}")
        code = d.confidentiality_code
    elif code.scheme != CONFIDENTIALITY:
        note("warning", "confidentialityCode",
             f"{code.code} is from {code.scheme}, not HL7 Confidentiality; kept as sent")
    found = [code]
    for auth in children(root, "authorization"):
        consent = child(auth, "consent")
        tids = {t.get("root") for t in children(consent, "templateId")}
        if _CONSENT in tids and (c := _code(child(consent, "code"))) and c not in found:
            found.append(c)
    return tuple(found)


def _language(root, d: Defaults, note: _Notes) -> str:
    el = child(root, "languageCode")
    value = (el.get("code") or "").strip() if el is not None else ""
    if not value:
        note("warning", "languageCode", f"missing; default {d.language_code}")
        return d.language_code
    if value.lower() in _LANGUAGES:
        note("info", "languageCode", f"{value!r} (ISO 639-2) written as RFC 5646 "
             f"{_LANGUAGES[value.lower()]!r}")
        return _LANGUAGES[value.lower()]
    return value


def _patient(root, d: Defaults, note: _Notes):
    role = child(root, "recordTarget", "patientRole")
    ids = tuple(i for e in children(role, "id") if (i := ii(e)) is not None)
    usable = [i for i in ids if is_oid(i[0]) and i[1]]
    ranked = sorted(usable, key=lambda i: (i[0] != d.patient_domain, i[0] == SSN_ROOT))
    patient = None
    if ranked:
        root_, ext = ranked[0]
        patient = f"{ext}^^^&{root_}&ISO"
        if root_ == SSN_ROOT:
            note("warning", "patientId", "the only usable recordTarget id is a US SSN")
    else:
        note("error", "patientId", "no recordTarget/patientRole/id with an OID root and an "
             f"extension (found {['^'.join(i) for i in ids] or 'none'}); give the patient id")
    info = [f"PID-3|{v2(e)}^^^&{r}&ISO" for r, e in usable if r != SSN_ROOT]
    person = child(role, "patient")
    name = name_of(person)
    if name is not None:
        given = [*name.given, ""]
        info.append(f"PID-5|{v2(name.family or name.unstructured)}^{v2(given[0])}"
                    f"^{v2(' '.join(name.given[1:]))}^{v2(name.suffix)}^{v2(name.prefix)}"
                    .rstrip("^"))
    birth = child(person, "birthTime")
    if birth is not None and (b := to_utc_dtm(birth.get("value")).dtm):
        info.append(f"PID-7|{b[:8]}")
    gender = child(person, "administrativeGenderCode")
    if gender is not None and (g := _GENDER.get(gender.get("code") or "")):
        info.append(f"PID-8|{g}")
    addr = next((a for a in children(role, "addr") if not a.get("nullFlavor")), None)
    if addr is not None:
        street = " ".join(text(s) for s in children(addr, "streetAddressLine"))
        parts = [street, "", *(text(child(addr, n)) for n in
                               ("city", "state", "postalCode", "country"))]
        if any(parts):
            info.append("PID-11|" + "^".join(v2(p) for p in parts).rstrip("^"))
    return ids, patient, tuple(i[:256] for i in info)


def _authors(root, d: Defaults, note: _Notes) -> tuple[Author, ...]:
    found = []
    for author in children(root, "author"):
        assigned = child(author, "assignedAuthor")
        if assigned is None:
            continue
        person_el = child(assigned, "assignedPerson")
        ident = next((i for e in children(assigned, "id") if (i := ii(e))), None)
        person = xcn(ident, name_of(person_el)) if person_el is not None else None
        org = child(assigned, "representedOrganization")
        org_id = next((i for e in children(org, "id") if (i := ii(e))), None)
        institution = xon(text(child(org, "name")), org_id)
        role = _code(child(author, "functionCode"))
        roles = (f"{v2(role.code)}^^^&{role.scheme}&ISO",) if role and is_oid(role.scheme) \
            else ((d.author_role,) if d.author_role else ())
        specialty = _code(child(assigned, "code"))
        specialties = (f"{v2(specialty.code)}^^^&{specialty.scheme}&ISO",) \
            if specialty and is_oid(specialty.scheme) else ()
        telecoms = tuple(t for e in children(assigned, "telecom")
                         if (t := xtn(e.get("value"), e.get("use"))))
        a = Author(person=person, institutions=(institution,) if institution else (),
                   roles=roles, specialties=specialties, telecoms=telecoms)
        if a.person or a.institutions or a.specialties:
            found.append(a)
        elif child(assigned, "assignedAuthoringDevice") is None:
            note("warning", "author", "an author with no person, organization or specialty "
                 "was left out")
    if not found:
        note("warning", "author", "no usable author")
    return tuple(found)


def _legal_authenticator(root) -> str | None:
    entity = child(root, "legalAuthenticator", "assignedEntity")
    if entity is None:
        return None
    ident = next((i for e in children(entity, "id") if (i := ii(e))), None)
    return xcn(ident, name_of(child(entity, "assignedPerson")))


def _reference_ids(root, note: _Notes) -> tuple[str, ...]:
    refs = []
    sources = [(e, "urn:ihe:iti:xds:2015:encounterId") for e in
               children(child(root, "componentOf", "encompassingEncounter"), "id")]
    sources += [(e, "urn:ihe:iti:xds:2013:order") for f in children(root, "inFulfillmentOf")
                for e in children(child(f, "order"), "id")]
    for el, kind in sources:
        ident = ii(el)
        if ident is None:
            continue
        r, ext = ident
        if is_oid(r) and ext:
            refs.append(f"{v2(ext)}^^^&{r}&ISO^{kind}")
        elif is_oid(r) or is_uuid(r):
            refs.append(f"{v2(r)}^^^^{kind}")
        else:
            note("info", "referenceIdList", f"{r}^{ext} has no OID root; left out")
    return tuple(dict.fromkeys(refs))


def _format_code(root, templates, d: Defaults, note: _Notes) -> Code:
    body = "nonXMLBody" if child(root, "component", "nonXMLBody") is not None \
        else "structuredBody"
    if templates.is_ccda:
        exts = templates.extensions
        if not exts:
            return ccda_format(body, "1.1")
        if R21 not in exts:
            note("info", "formatCode", f"template version(s) {', '.join(sorted(exts))} have no "
                 "formatCode of their own; used the C-CDA R2.1 code")
        return ccda_format(body, "2.1")
    if templates.is_xphr:
        return XPHR
    note("warning", "formatCode", f"no C-CDA or XPHR templateId; default {d.format_code.code}")
    return d.format_code


def _parents(root) -> tuple[tuple[str, str], ...]:
    found = []
    for rel in children(root, "relatedDocument"):
        uid, _ = unique_id_of(ii(child(rel, "parentDocument", "id")))
        if uid:
            found.append((rel.get("typeCode") or "", uid))
    return tuple(found)
