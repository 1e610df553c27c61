"""CDA R2 (sdtc) schema findings agree with the corpus MANIFEST's XSD column; SVRL is read
into findings with the right severity."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

import wsdl
from profiles.ccda.cda import parse_document
from profiles.ccda.validate import has_errors, schema_findings, svrl_findings
from tests.conftest import CONFORMANCE

CCDA = CONFORMANCE / "ccda"
DOCS = sorted(CCDA.glob("*.xml")) + sorted((CCDA / "non-ccda").glob("*.xml"))
# MANIFEST.md, XSD column: the real documents that fail the SDTC schema, and why.
INVALID = {
    "hl7ex_Referral_Note.xml": "'IND' is not a valid value",
    "hl7ex_Transfer_Summary.xml": "'IND' is not a valid value",
    "hl7ex_Consult_Document_Closing_Referral_C-CDAR2.1.xml": "Character content",
    "hl7ccda30_care-plan-complete-example.xml": "'#tobaccouse' is not a valid value",
    "smart_Kinsights_kinsights-sample-timmy.xml": "The value '-08' is not accepted",
    "oncrcv_2023SVAPCCD.xml": "specimen",
}


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_schema_findings_match_the_manifest(path: Path) -> None:
    findings = schema_findings(parse_document(path.read_bytes()), wsdl.schema("cda"))
    if path.name in INVALID:
        assert has_errors(findings)
        assert any(INVALID[path.name] in f.message for f in findings), findings[:3]
        assert all(f.field.startswith("schema line ") for f in findings)
    else:
        assert findings == []


def test_the_negative_schema_fixture_names_the_misplaced_elements() -> None:
    data = (CCDA / "negative" / "oncrcv_Sample_addSchemaErrors.xml").read_bytes()
    findings = schema_findings(parse_document(data), wsdl.schema("cda"))
    assert [f.field for f in findings] == ["schema line 98", "schema line 136"]
    assert "'{urn:hl7-org:v3}addr': This element is not expected" in findings[0].message
    assert "'{urn:hl7-org:v3}dataEnterer': This element is not expected" in findings[1].message


def test_svrl_failed_asserts_become_findings() -> None:
    svrl = etree.fromstring(b"""<svrl:schematron-output xmlns:svrl="http://purl.oclc.org/dsdl/svrl">
      <svrl:failed-assert test="x" location="/ClinicalDocument[1]/title[1]">
        <svrl:text>SHALL contain exactly one [1..1] title (CONF:1198-5254).</svrl:text>
      </svrl:failed-assert>
      <svrl:failed-assert test="y" role="warning" location="/ClinicalDocument[1]">
        <svrl:text>SHOULD contain zero or one [0..1] setId.</svrl:text>
      </svrl:failed-assert>
      <svrl:fired-rule context="x"/>
    </svrl:schematron-output>""")
    found = svrl_findings(svrl)
    assert [(f.severity, f.field) for f in found] == [
        ("error", "schematron /ClinicalDocument[1]/title[1]"),
        ("warning", "schematron /ClinicalDocument[1]"),
    ]
    assert "CONF:1198-5254" in found[0].message
