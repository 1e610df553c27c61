"""DocumentEntry extraction checked field by field against values read by hand from the
XML of the conformance corpus (shared/conformance/ccda), then over the whole corpus
against the registry's own metadata rules."""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from profiles.ccda.cda import NotACdaDocument, parse_document, to_utc_dtm
from profiles.ccda.extract import Defaults, extract
from profiles.xds.metadata import Code
from profiles.xds.rules import Report, check_document_entry
from tests.conftest import CONFORMANCE

CCDA = CONFORMANCE / "ccda"
LOINC = "2.16.840.1.113883.6.1"
CONF = "2.16.840.1.113883.5.25"
NPI = "2.16.840.1.113883.4.6"
TAXONOMY = "2.16.840.1.113883.6.101"
NOW = "20261125120000"
R21 = Code("urn:hl7-org:sdwg:ccda-structuredBody:2.1", "1.3.6.1.4.1.19376.1.2.3",
           "C-CDA R2.1 Structured Body")
R11 = Code("urn:hl7-org:sdwg:ccda-structuredBody:1.1", "1.3.6.1.4.1.19376.1.2.3",
           "C-CDA R1.1 Structured Body")
ENCOUNTER = "urn:ihe:iti:xds:2015:encounterId"
ORDER = "urn:ihe:iti:xds:2013:order"


def oid_of(u: str) -> str:
    return f"2.25.{uuid.UUID(u).int}"


def corpus() -> list[Path]:
    return sorted(CCDA.glob("*.xml")) + sorted((CCDA / "non-ccda").glob("*.xml"))


def run(name: str, defaults: Defaults | None = None):
    return extract(parse_document((CCDA / name).read_bytes()), defaults, now=NOW)


# Values read from the XML by hand (ClinicalDocument header of each file).
EXPECTED: dict[str, dict] = {
    "hl7ccda21_C-CDA_R2-1_CCD.xml": dict(
        unique_id="2.16.840.1.113883.19.5.99999.1^TT988",
        type_code=Code("34133-9", LOINC, "Summarization of Episode Note"),
        title="Patient Chart Summary",
        creation_time="201308151830",  # 201308151030-0800
        confidentiality=["N"],
        language_code="en-US",
        patient_id="444222222^^^&2.16.840.1.113883.4.1&ISO",
        source_patient_info=("PID-5|Betterhalf^Eve", "PID-7|19750501", "PID-8|F",
                             "PID-11|2222 Home Street^^Beaverton^OR^97867^US"),
        person=f"5555555555^Primary^Patricia^Patty^M.D.^^^^&{NPI}&ISO",
        specialty=f"207QA0505X^^^&{TAXONOMY}&ISO",
        telecom="^WPN^PH^^^^^^^^^+1(555)555-1004",
        legal_authenticator=f"5555555555^Primary^Patricia^Patty^M.D.^^^^&{NPI}&ISO",
        service=("19750501", "20130815"),
        format_code=R21,
    ),
    "hl7ex_CCD2_CCD.xml": dict(
        unique_id=oid_of("be84a8e4-a22e-4210-a4a6-b3c48273e84c") + "^EHRVersion2.0",
        creation_time="20141015153026",  # 20141015103026-0500
        patient_id="98765432^^^&1.3.6.1.4.1.16517.1&ISO",  # the SSN id comes second
        authors=2,
        institution_of_second="The Doctors Together Physician Group"
        "^^^^^&1.3.6.1.4.1.22812.3.99930.3&ISO^^^^3",
        service=("20141001", "20141015153026"),  # high 20141015103026-0500
        format_code=R21,  # templates 2014-06-09
    ),
    "hl7ex_Care_Plan.xml": dict(
        unique_id=oid_of("db734647-fc99-424c-a864-7e3cda82e703"),
        type_code=Code("52521-2", LOINC, "Overall Plan of Care/Advance Care Directives"),
        title="Good Health Hospital Care Plan",
        creation_time="201308201920",  # 201308201120-0800
        person="20cf14fb-b65c-4c8c-a54d-b0cca834c18c^Nightingale^Nurse^^RN",
        institution="Good Health Hospital^^^^^^^^^2.16.840.1.113883.19.5",
        specialty=f"163W00000X^^^&{TAXONOMY}&ISO",
        service=("20130720", "20130815"),
        reference_ids=(f"9937012^^^&2.16.840.1.113883.19&ISO^{ENCOUNTER}",),
        parents=(("RPLC", oid_of("223769be-f6ee-4b04-a0ce-b56ae998c880")),),
        format_code=R11,
    ),
    "hl7ex_Unstructured_Document_embed.xml": dict(
        type_code=Code("11490-0", LOINC, "Physician Discharge summary"),
        title="Community Health and Hospitals: Discharge Summary",
        creation_time="20090330054411",  # 20090329224411-0700
        patient_id="111-00-2330^^^&2.16.840.1.113883.4.1&ISO",
        legal_authenticator=None,
        format_code=Code("urn:hl7-org:sdwg:ccda-nonXMLBody:2.1", "1.3.6.1.4.1.19376.1.2.3",
                         "C-CDA R2.1 Unstructured Document"),
    ),
    "onc2015_AtosPulse_wright_patienthealthrecord_08032017.xml": dict(
        unique_id=oid_of("6f614146-3bec-11e7-97a3-005056a3be8c"),
        confidentiality=["N"],  # nullFlavor NI -> the default, reported
        finding="confidentialityCode",
        creation_time="20170518170712",  # 20170518130712-0400
        patient_id="100000002^^^&1.3.6.1.4.1.21367.2010.1.2.300&ISO",
        person=None,  # a device author
        institution="Home Community^^^^^^^^^1.3.6.1.4.1.21367.2010.1.2.300",
        service=("20150722180000", "20150722230000"),  # no zone: taken as UTC
    ),
    "onc2015_ATG_SLI_CCD_b1AliceNewman_ATG_ATGEHR_10162017.xml": dict(
        unique_id=oid_of("822F4776-77A4-4EB7-B077-E19A31EE561A"),
        confidentiality=["R"],
        creation_time="20170824152832",  # 20170824102832.791-0500
        service=("20150622150500", "20170722200600"),
        event_codes=[Code("386661006", "2.16.840.1.113883.6.96", "Fever (finding)")],
        person=f"57044^Davis^Tracy^^^^^^&{NPI}&ISO",
        telecom="^^PH^^^^^^^^^555-555-1002",
        reference_ids=(f"61143^^^&{NPI}&ISO^{ENCOUNTER}",),
        legal_authenticator=None,
    ),
    "onc2015_AllscriptsProfessional_Referral_Summary_2015_Edition_Referral_Note-"
    "Community_Health_Hospitals.xml": dict(
        unique_id="1.3.6.1.4.1.22812.4.17.11.1^201702171510195296",
        type_code=Code("57133-1", LOINC, "Referral note"),  # no displayName: template's
        creation_time="20170217201019",  # +0000
        person="10131^Providerone^Pro^^^^^^&1.3.6.1.4.1.22812.4.17.11&ISO",
        legal_authenticator="10108^Davis^Albert^^^Dr^^^&1.3.6.1.4.1.22812.4.17.11&ISO",
        authors=2,
        institution_of_second="Healthmatics Clinic - Main Location"
        "^^^^^&1.3.6.1.4.1.22812.4.17.11&ISO^^^^11",
        event_codes=[Code("99201", "2.16.840.1.113883.6.12", "99201")],
        service=("20150622125209", "20150622152907"),
    ),
    "smart_Kinsights_kinsights-sample-timmy.xml": dict(
        unique_id="2.16.840.1.113883.3.3297^1.1.1.6.999..",
        creation_time=NOW,  # effectiveTime "-08" is unusable: the import time, reported
        finding="creationTime",
        patient_id="6^^^&2.16.840.1.113883.3.3297.1.1.1&ISO",
        person="^Wilkinson^Jackson",  # id root with nullFlavor NA
        service=(None, None),  # low/high nullFlavor UNK
        format_code=R11,
    ),
    "hl7ex_Referral_Note.xml": dict(
        unique_id=oid_of("6f1bd58b-c58f-40b7-b314-caf1294ed98b"),
        type_code=Code("57113-1", LOINC, "Referral Note"),  # sic, kept as sent
        language_code="en",  # "eng"
        creation_time="201309211300",  # 201309210500-0800
        telecom="^WPN^PH^^^^^^^^^+1(555)-1004",
    ),
    "smart_NIST_CCDA_CCD_b1_InPatient_v2.xml": dict(
        unique_id="1.1.1.1.1.1.1.1.1^Test CCDA",
        creation_time="20120806",  # date only
        patient_id=f"1^^^&{NPI}&ISO",
        service=("201208051928", "201208051958"),  # 201208060028+0500, 201208060058+0500
        event_codes=[Code("233604007", "2.16.840.1.113883.6.96", "Pnuemonia")],
        legal_authenticator=f"999999999^Seven^Henry^^^^^^&{NPI}&ISO",
        reference_ids=(f"1^^^&{NPI}&ISO^{ENCOUNTER}",),
        format_code=R11,
    ),
    "smart_ToC_CCDA_CCD_CompGuideSample_FullXML.xml": dict(
        creation_time="20121126000000",  # -0000
        telecom="^WPN^PH^^^^^^^^^+1(571)555-0179;ext=221",
        service=("19330316", "20121126"),
        reference_ids=(f"8d2f5ec8-7356-4740-b6d7-6c29419ad956^^^^{ENCOUNTER}",),
    ),
    "smart_Vitera_CCDA_SMART_Sample.xml": dict(
        unique_id="2.16.840.1.113883.3.140.1.0.6.1.13092597.12456139",
        title="Full Chart - Madison Medical Center P. A.",
        language_code="en",  # "eng"
        creation_time="20130925172736",  # 20130925132736-0400
        patient_id="11^^^&2.16.840.1.113883.3.140.1.0.6.4&ISO",
        source_patient_info_head=("PID-3|11^^^&2.16.840.1.113883.3.140.1.0.6.4&ISO",
                                  "PID-5|Carlson^Sharon^A", "PID-7|19381212", "PID-8|F"),
        person=f"9990058700^Ford^David^E^MD^^^^&{NPI}&ISO",
        service=("20010101", "20130925"),
    ),
    "oncrcv_tempResults_ValidatorBrokeETTGG.xml": dict(
        unique_id="1.3.6.1.4.1.22812.53.9999907.521.1^424242",
        type_code=Code("18842-5", LOINC, "Discharge summary"),
        title="My Custom Title",
        confidentiality=["PSY"],  # SNOMED, kept and reported
        finding="confidentialityCode",
        creation_time="20190605144830",  # 20190605104830-0400
        service=("20091110", None),
        event_codes=[Code("992102-45", "2.16.840.1.113883.6.12", "992102-45")],
        reference_ids=(
            f"22345^^^&1.3.6.1.4.1.22812.53.9999907.521.3.4&ISO^{ENCOUNTER}",
            f"1.424242.1^^^^{ORDER}",
            f"1.424243.1^^^^{ORDER}",
            f"424242^^^&1.3.6.1.4.1.22812.53.9999907.521.2&ISO^{ORDER}",
            f"424243^^^&1.3.6.1.4.1.22812.53.9999907.521.2&ISO^{ORDER}",
        ),
        parents=(("APND", oid_of("ae7b76b3-8307-425d-9a31-57e7984754b6")),
                 ("XFRM", oid_of("83533cd7-84bd-44f9-a223-e28c0cbb1255"))),
    ),
    "non-ccda/amida_VA_CCD_Sample_File_Version_12_5_1.xml": dict(
        unique_id="2.16.840.1.113883.4.349^2.25.153967320391171260195869192743051876940",
        title="Department of Veterans Affairs Summarization of Episode Note",
        creation_time="20130315134710",  # 20130315084710-0500
        patient_id="1012638924V546709^^^&2.16.840.1.113883.4.349&ISO",
        person=None,
        institution="Department of Veterans Affairs^^^^^^^^^2.16.840.1.113883.4.349",
        service=("19000101060000", "20130315134710"),  # -0600 and -0500
        format_code=Code("urn:ihe:pcc:xphr:2007", "1.3.6.1.4.1.19376.1.2.3",
                         "IHE Exchange of Personal Health Records"),
    ),
    "smart_Kareo_SummaryOfCare_export_Joey_Miller.xml": dict(
        unique_id="2.16.840.1.113883.19^2014_ClinicalSummary",
        confidentiality=["N"],  # confidentialityCode with no code
        finding="confidentialityCode",
        creation_time="20140531224732",  # 20140531154732-0700
        authors=0,  # the only author has id and name nullFlavor UNK
        patient_id="28366080^^^&2.16.840.1.113883.19&ISO",
    ),
    "onc2015_KeyChart_CCDA_723061_20Sep2017_1237580.xml": dict(
        language_code="en",
        creation_time="20170920105533",  # no zone: UTC assumed, reported
        finding="uniqueId",  # root "ClinicalDocumentGUID" is no OID
        patient_id="723061^^^&2.16.840.1.113883.4.1&ISO",
        document_type="C-CDA (US Realm Header)",
    ),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_metadata_matches_the_document(name: str) -> None:
    want = EXPECTED[name]
    x = run(name)
    e = x.entry
    simple = ("unique_id", "creation_time", "language_code", "patient_id", "legal_authenticator",
              "reference_ids", "format_code", "type_code")
    for attr in simple:
        if attr in want:
            assert getattr(e, attr) == want[attr], attr
    if "type_code" in want:
        assert e.class_code == want["type_code"]  # no class mapping configured
    if "title" in want:
        assert e.title.value == want["title"]
    if "confidentiality" in want:
        assert [c.code for c in e.confidentiality_codes] == want["confidentiality"]
    if "source_patient_info" in want:
        assert e.source_patient_info == want["source_patient_info"]
    if "source_patient_info_head" in want:
        assert e.source_patient_info[:4] == want["source_patient_info_head"]
        assert not any("643-00-5639" in v for v in e.source_patient_info)  # SSN kept out
    if "authors" in want:
        assert len(e.authors) == want["authors"]
    first = e.authors[0] if e.authors else None
    if "person" in want:
        assert first.person == want["person"]
    if "institution" in want:
        assert first.institutions == (want["institution"],)
    if "institution_of_second" in want:
        assert e.authors[1].institutions == (want["institution_of_second"],)
    if "specialty" in want:
        assert first.specialties == (want["specialty"],)
    if "telecom" in want:
        assert first.telecoms[0] == want["telecom"]
    if "service" in want:
        assert (e.service_start_time, e.service_stop_time) == want["service"]
    if "event_codes" in want:
        assert list(e.event_codes) == want["event_codes"]
    if "parents" in want:
        assert x.parents == want["parents"]
    if "finding" in want:
        assert any(f.field == want["finding"] for f in x.findings), x.findings
    if "document_type" in want:
        assert x.document_type == want["document_type"]
    assert e.mime_type == "text/xml"


def test_ten_or_more_documents_are_checked_by_hand() -> None:
    assert len(EXPECTED) >= 10
    assert all((CCDA / name).is_file() for name in EXPECTED)


@pytest.mark.parametrize("path", corpus(), ids=lambda p: p.name)
def test_every_document_passes_the_registry_rules(path: Path) -> None:
    x = extract(parse_document(path.read_bytes()), now=NOW)
    entry = x.entry
    if entry.patient_id is None:  # no usable recordTarget id: the operator names one
        assert any(f.field == "patientId" and f.severity == "error" for f in x.findings)
        entry = replace(entry, patient_id="1^^^&1.2.3&ISO", source_patient_id="1^^^&1.2.3&ISO")
    report = Report("registry")
    check_document_entry(report, replace(entry, hash="a" * 40, size=1,
                                         repository_unique_id="1.2.3.4"))
    assert [e.context for e in report.errors] == []
    assert entry.title and entry.creation_time and entry.class_code and entry.format_code
    assert x.is_ccda == (path.parent == CCDA)


def test_defaults_fill_what_documents_leave_out() -> None:
    conf = Code("R", CONF, "restricted")
    klass = Code("11369-6", LOINC, "History of immunization")
    d = Defaults(confidentiality_code=conf, class_codes={"34133-9": klass},
                 assume_offset="-0500", patient_domain="2.16.840.1.113883.4.1")
    x = run("onc2015_AtosPulse_wright_patienthealthrecord_08032017.xml", d)
    assert x.entry.confidentiality_codes == (conf,)
    assert x.entry.class_code == klass
    assert x.entry.service_start_time == "20150722230000"  # 180000 taken at -0500
    ccd2 = run("hl7ex_CCD2_CCD.xml", d)
    assert ccd2.entry.patient_id == "12345679^^^&2.16.840.1.113883.4.1&ISO"  # domain first


@pytest.mark.parametrize(
    ("value", "dtm"),
    [
        ("20120806", "20120806"),
        ("201308151030-0800", "201308151830"),
        ("20170824102832.791-0500", "20170824152832"),
        ("20121126000000-0000", "20121126000000"),
        ("20121231230000-0130", "20130101003000"),
        ("2012123123+0530", "201212311730"),  # hour precision, minutes in the offset
        ("-08", None),
        ("20121340", None),
        ("", None),
    ],
)
def test_times_become_utc_dtm(value: str, dtm: str | None) -> None:
    assert to_utc_dtm(value).dtm == dtm


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("oncrcv_Sample_blank_Empty_Document.xml", "the file is empty"),
        ("amida_broken.xml", "not well-formed XML"),
        ("oncrcv_Sample_invalid-SnippetOnly.xml", "Namespace prefix xsi"),
        ("oncrcv_Sample_basicHTML.xml", "root element is <html>"),
        ("amida_empty_no_declaration.xml", "root element is <empty>"),
    ],
)
def test_negative_fixtures_are_refused_naming_the_problem(name: str, problem: str) -> None:
    with pytest.raises(NotACdaDocument, match=problem.replace("<", ".").replace(">", ".")):
        parse_document((CCDA / "negative" / name).read_bytes())


def test_negative_fixtures_are_all_covered() -> None:
    names = {p.name for p in (CCDA / "negative").iterdir()}
    covered = {p[0] for p in test_negative_fixtures_are_refused_naming_the_problem.pytestmark[0]
               .args[1]} | {"oncrcv_Sample_addSchemaErrors.xml"}  # schema: test_validate
    assert names == covered


def test_a_doctype_is_refused() -> None:
    data = b'<!DOCTYPE x [<!ENTITY e "boom">]><ClinicalDocument xmlns="urn:hl7-org:v3"/>'
    with pytest.raises(NotACdaDocument, match="DOCTYPE"):
        parse_document(data)
