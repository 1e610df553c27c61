"""C-CDA document templates, their LOINC codes and the formatCode each body implies
(HL7 THO v3-HL7DocumentFormatCodes, IHE PCC; see shared/notes/ccda-metadata.md)."""

from __future__ import annotations

from dataclasses import dataclass

from profiles.xds.metadata import Code

LOINC = "2.16.840.1.113883.6.1"
IHE_FORMAT = "1.3.6.1.4.1.19376.1.2.3"
CONFIDENTIALITY = "2.16.840.1.113883.5.25"
US_REALM_HEADER = "2.16.840.1.113883.10.20.22.1.1"
R21 = "2015-08-01"

# templateId root -> (document type, the LOINC code C-CDA binds or recommends)
DOCUMENT_TYPES: dict[str, tuple[str, str, str]] = {
    "2.16.840.1.113883.10.20.22.1.2": ("CCD", "34133-9", "Summary of episode note"),
    "2.16.840.1.113883.10.20.22.1.3": ("History and Physical", "34117-2",
                                       "History and physical note"),
    "2.16.840.1.113883.10.20.22.1.4": ("Consultation Note", "11488-4", "Consult note"),
    "2.16.840.1.113883.10.20.22.1.5": ("Diagnostic Imaging Report", "18748-4",
                                       "Diagnostic imaging study"),
    "2.16.840.1.113883.10.20.22.1.6": ("Procedure Note", "28570-0", "Procedure note"),
    "2.16.840.1.113883.10.20.22.1.7": ("Operative Note", "11504-8", "Surgical operation note"),
    "2.16.840.1.113883.10.20.22.1.8": ("Discharge Summary", "18842-5", "Discharge summary"),
    "2.16.840.1.113883.10.20.22.1.9": ("Progress Note", "11506-3", "Progress note"),
    "2.16.840.1.113883.10.20.22.1.10": ("Unstructured Document", "11490-0",
                                        "Physician discharge summary"),
    "2.16.840.1.113883.10.20.22.1.13": ("Transfer Summary", "18761-7", "Transfer summary note"),
    "2.16.840.1.113883.10.20.22.1.14": ("Referral Note", "57133-1", "Referral note"),
    "2.16.840.1.113883.10.20.22.1.15": ("Care Plan", "52521-2",
                                        "Overall plan of care/advance care directives"),
    "2.16.840.1.113883.10.20.29.1": ("Patient Generated Document", "", ""),
}
C_CDA_ROOTS = {US_REALM_HEADER, *DOCUMENT_TYPES}

# Pre-C-CDA templates that still arrive from older VA/DoD/eHealth Exchange endpoints.
XPHR_ROOTS = {
    "2.16.840.1.113883.10.20.1",  # HL7 CCD R1.0
    "2.16.840.1.113883.3.88.11.32.1",  # HITSP C32
    "2.16.840.1.113883.3.88.11.83.1",  # HITSP C32 v2.5
}
XPHR = Code("urn:ihe:pcc:xphr:2007", IHE_FORMAT, "IHE Exchange of Personal Health Records")


def ccda_format(body: str, version: str) -> Code:
    """``urn:hl7-org:sdwg:ccda-{structuredBody,nonXMLBody}:{1.1,2.1}``."""
    return Code(
        f"urn:hl7-org:sdwg:ccda-{body}:{version}",
        IHE_FORMAT,
        f"C-CDA R{version} "
        + ("Unstructured Document" if body == "nonXMLBody" else "Structured Body"),
    )


@dataclass(frozen=True)
class Templates:
    """What a document's own templateIds say about it."""

    roots: frozenset[str]
    extensions: frozenset[str]  # template versions on C-CDA document-level templateIds
    document_type: str | None  # C-CDA document type name, None when no type templateId
    type_loinc: Code | None  # the LOINC code of that type
    is_ccda: bool
    is_xphr: bool


def read_templates(pairs: list[tuple[str, str]]) -> Templates:
    """``pairs``: (root, extension) of every ``ClinicalDocument/templateId``."""
    roots = frozenset(r for r, _ in pairs)
    exts = frozenset(e for r, e in pairs if r in C_CDA_ROOTS and e)
    doc_type = type_code = None
    for root, _ in pairs:
        if root in DOCUMENT_TYPES:
            doc_type, code, display = DOCUMENT_TYPES[root]
            type_code = Code(code, LOINC, display) if code else None
            break
    return Templates(
        roots=roots,
        extensions=exts,
        document_type=doc_type,
        type_loinc=type_code,
        is_ccda=bool(roots & C_CDA_ROOTS),
        is_xphr=bool(roots & XPHR_ROOTS),
    )
