"""``ihe-gateway documents import`` of C-CDA files and ``documents show``, against a real
configuration and database (PostgreSQL when GATEWAY_TEST_DATABASE_URL is set)."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from lxml import html

from gateway.ccda.importer import FAILED, IMPORTED, PRESENT, CcdaSettings, Importer
from gateway.cli import main
from gateway.config import load_config
from gateway.registry.models import DocumentEntryRow
from gateway.registry.store import load
from profiles.ccda.cda import V3, parse_document, text
from profiles.ccda.extract import Defaults, extract
from profiles.hl7v3.datatypes import II
from profiles.hl7v3.patient import OtherId, Person
from profiles.pix.ports import PatientRecord
from profiles.xds.metadata import DocumentEntry
from profiles.xds.rules import Report, check_document_entry
from tests.conftest import CONFORMANCE, _reset_postgres, postgres_url

CCDA = CONFORMANCE / "ccda"
DOCS = sorted(CCDA.glob("*.xml")) + sorted((CCDA / "non-ccda").glob("*.xml"))
OPERATOR_PATIENT = "OP1^^^&1.3.6.1.4.1.21367.13.20.1000&ISO"


def make_config(tmp_path: Path, name: str, url: str | None = None) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    if url is None:
        url = postgres_url()
        if url:
            _reset_postgres(url)
        else:
            url = f"sqlite:///{folder / 'gateway.db'}"
    path = folder / "gateway.toml"
    path.write_text(
        '[community]\nhome_community_id = "1.3.6.1.4.1.21367.2011.2.1"\n'
        f'[storage]\ndata_dir = "{folder / "data"}"\n[database]\nurl = "{url}"\n',
        encoding="utf-8",
    )
    return path


def add_patient(importer: Importer, cx: str, *links: str) -> None:
    def ii(value: str) -> II:
        ext, _, rest = value.partition("^^^&")
        return II(root=rest.removesuffix("&ISO"), extension=ext)

    others = tuple(OtherId(ii(x), ii(x).root) for x in links)
    importer.ports.patients.add(PatientRecord(ii(cx), Person(other_ids=others)))


def cli(*args: str):
    return CliRunner().invoke(main, ["documents", *args], catch_exceptions=False)


def registered(config_path: Path) -> dict[str, DocumentEntry]:
    from gateway.store.db import Database

    database = Database(load_config(config_path).database_url)
    try:
        with database.session() as s:
            rows = s.scalars(sa.select(DocumentEntryRow)).all()
            return {e.unique_id: e for e in load(rows) if isinstance(e, DocumentEntry)}
    finally:
        database.dispose()


def test_every_corpus_document_is_imported_with_its_metadata(tmp_path: Path) -> None:
    """Documents sharing a ClinicalDocument/id (the HL7 example ids) cannot share one
    registry: each round imports the n-th document of each uniqueId into a fresh one."""
    rounds: dict[int, list[Path]] = defaultdict(list)
    seen: dict[str, int] = defaultdict(int)
    for path in DOCS:
        uid = extract(parse_document(path.read_bytes()), now="20260101").entry.unique_id
        rounds[seen[uid]].append(path)
        seen[uid] += 1
    assert len(rounds) > 1 and sum(len(r) for r in rounds.values()) == len(DOCS) == 64
    for n, paths in sorted(rounds.items()):
        config_path = make_config(tmp_path, f"round{n}")
        config = load_config(config_path)
        expected = {}
        with Importer(config) as importer:
            importer.ports.patients.add(PatientRecord(II("1.3.6.1.4.1.21367.13.20.1000", "OP1")))
            for path in paths:
                data = path.read_bytes()
                x = extract(parse_document(data), now="20260101")
                operator = x.entry.patient_id is None  # no usable recordTarget id
                if not operator:
                    add_patient(importer, x.entry.patient_id)
                result = importer.import_file(path, patient=OPERATOR_PATIENT if operator else None)
                assert result.status == IMPORTED, (path.name, result.message)
                expected[result.unique_id] = (x.entry, hashlib.sha1(data).hexdigest(),
                                              len(data), result.patient_id)
        stored = registered(config_path)
        assert set(stored) == set(expected)
        for uid, (entry, sha1, size, patient) in expected.items():
            got = stored[uid]
            assert (got.hash, got.size, got.patient_id) == (sha1, size, patient)
            assert got.patient_id == (entry.patient_id or OPERATOR_PATIENT)
            for attr in ("title", "type_code", "class_code", "format_code", "creation_time",
                         "confidentiality_codes", "language_code", "authors",
                         "legal_authenticator", "service_start_time", "service_stop_time",
                         "event_codes", "reference_ids", "source_patient_info"):
                if attr == "creation_time" and entry.creation_time == "20260101":
                    continue  # unusable in the document: the import time stands in
                assert getattr(got, attr) == getattr(entry, attr), (uid, attr)
            report = Report("registry")
            check_document_entry(report, got)
            assert report.errors == []


def test_cli_imports_prints_a_line_per_file_and_is_idempotent(tmp_path: Path) -> None:
    config = make_config(tmp_path, "gw")
    files = [CCDA / "hl7ex_Discharge_Summary.xml", CCDA / "smart_HL7R1.1_DS.sample.xml"]
    with Importer(load_config(config)) as importer:
        add_patient(importer, "998991^^^&2.16.840.1.113883.19.5.99999.2&ISO")
        add_patient(importer, "12345^^^&2.16.840.1.113883.19&ISO")
    result = cli("import", *map(str, files), "--config", str(config))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"imported: {files[0]} 2.16.840.1.113883.19.5.99999.1^TT988 "
                               "patient 998991^^^&2.16.840.1.113883.19.5.99999.2&ISO "
                               "(Discharge Summary)")
    assert lines[1].startswith(f"imported: {files[1]} 2.16.840.1.113883.19^999021 ")
    assert lines[-1] == ("2 file(s): 2 imported, 0 already present, 0 refused, 0 failed")
    again = cli("import", *map(str, files), "--config", str(config))
    assert again.exit_code == 0, again.output
    assert again.output.count("already present: ") == 2
    assert again.output.splitlines()[-1] == (
        "2 file(s): 0 imported, 2 already present, 0 refused, 0 failed")
    assert len(registered(config)) == 2


def test_same_unique_id_with_other_bytes_is_refused(tmp_path: Path) -> None:
    config = make_config(tmp_path, "gw")
    first, second = CCDA / "hl7ccda21_C-CDA_R2-1_CCD.xml", CCDA / "hl7ex_CCD1_CCD.xml"
    with Importer(load_config(config)) as importer:
        add_patient(importer, "444222222^^^&2.16.840.1.113883.4.1&ISO")
        assert importer.import_file(first).status == IMPORTED
        refused = importer.import_file(second)
    assert refused.status == FAILED
    assert "registered for a different document" in refused.message
    assert "new version needs a new ClinicalDocument/id" in refused.message


NEGATIVE = {
    "oncrcv_Sample_blank_Empty_Document.xml": "the file is empty",
    "amida_broken.xml": "not well-formed XML",
    "oncrcv_Sample_invalid-SnippetOnly.xml": "not well-formed XML: Namespace prefix xsi for "
                                             "type on value is not defined, line 68",
    "oncrcv_Sample_basicHTML.xml": "the root element is <html>",
    "amida_empty_no_declaration.xml": "the root element is <empty>",
}


@pytest.mark.parametrize("name", sorted(NEGATIVE))
def test_negative_fixtures_fail_naming_the_problem(tmp_path: Path, name: str) -> None:
    config = make_config(tmp_path, "gw")
    path = CCDA / "negative" / name
    result = CliRunner().invoke(main, ["documents", "import", str(path), "--config",
                                       str(config)])
    assert result.exit_code == 1
    assert f"failed: {path}: not a CDA document: {NEGATIVE[name]}" in result.output
    assert "0 imported" in result.output and "1 failed" in result.output


def test_schema_failure_is_recorded_by_default_and_refused_when_strict(tmp_path: Path) -> None:
    config = make_config(tmp_path, "gw")
    path = CCDA / "negative" / "oncrcv_Sample_addSchemaErrors.xml"
    with Importer(load_config(config)) as importer:
        add_patient(importer, "1^^^&2.16.840.1.113883.4.6&ISO")
    strict = CliRunner().invoke(main, ["documents", "import", str(path), "--config",
                                       str(config), "--strict"])
    assert strict.exit_code == 1
    assert f"refused: {path}" in strict.output
    assert "fails validation (error: schema line 98: Element '{urn:hl7-org:v3}addr': This " \
           "element is not expected" in strict.output
    assert registered(config) == {}
    lenient = cli("import", str(path), "--config", str(config))
    assert lenient.exit_code == 0, lenient.output
    assert f"imported: {path}" in lenient.output
    assert "    error: schema line 136: Element '{urn:hl7-org:v3}dataEnterer'" in lenient.output
    assert list(registered(config)) == ["1.1.1.1.1.1.1.1.1^Test CCDA"]


def test_patient_is_mapped_into_the_affinity_domain_or_given(tmp_path: Path) -> None:
    config = load_config(make_config(tmp_path, "gw"))
    affinity = "1.3.6.1.4.1.21367.13.20.3000"
    ours = f"IHE-7^^^&{affinity}&ISO"
    theirs = "98765432^^^&1.3.6.1.4.1.16517.1&ISO"  # hl7ex_CCD2_CCD.xml's first id
    settings = CcdaSettings(defaults=Defaults(patient_domain=affinity))
    with Importer(config, settings) as importer:
        unknown = importer.import_file(CCDA / "hl7ex_CCD2_CCD.xml")
        assert unknown.status == FAILED and "no patient in the index matches" in unknown.message
        add_patient(importer, theirs)
        add_patient(importer, ours, theirs)  # the index links our id to the document's
        mapped = importer.import_file(CCDA / "hl7ex_CCD2_CCD.xml")
        assert (mapped.status, mapped.patient_id) == (IMPORTED, ours)
        add_patient(importer, OPERATOR_PATIENT)
        given = importer.import_file(CCDA / "smart_Partners_partners.ccda.xml",
                                     patient=OPERATOR_PATIENT)
        assert (given.status, given.patient_id) == (IMPORTED, OPERATOR_PATIENT)
        again = importer.import_file(CCDA / "hl7ex_CCD2_CCD.xml")
        assert again.status == PRESENT
    entry = registered(config.source)[mapped.unique_id]
    assert entry.patient_id == ours
    assert entry.source_patient_id == theirs  # the document's own id is kept as the source's


def test_show_renders_a_stored_document(tmp_path: Path) -> None:
    config = make_config(tmp_path, "gw")
    path = CCDA / "hl7ex_Transfer_Summary.xml"
    with Importer(load_config(config)) as importer:
        add_patient(importer, "444222222^^^&2.16.840.1.113883.4.1&ISO")
        uid = importer.import_file(path).unique_id
    out = tmp_path / "out.html"
    result = cli("show", uid, "--html", str(out), "--config", str(config))
    assert result.exit_code == 0, result.output
    doc = html.document_fromstring(out.read_bytes())
    headings = {" ".join(h.text_content().split()) for h in doc.iter("h2", "h3", "h4")}
    root = parse_document(path.read_bytes())
    titles = {text(t) for t in root.iter(f"{{{V3}}}title") if t.getparent().tag.endswith(
        "section")}
    assert titles and titles <= headings
    assert doc.find(".//script") is None
    missing = cli("show", "1.2.3^nope", "--html", str(out), "--config", str(config))
    assert missing.exit_code == 1 and "holds no document 1.2.3^nope" in missing.output


def test_schematron_findings_on_request(tmp_path: Path) -> None:
    pytest.importorskip("saxonche")
    config = make_config(tmp_path, "gw")
    path = CCDA / "hl7ccda21_C-CDA_R2-1_CCD.xml"
    with Importer(load_config(config)) as importer:
        add_patient(importer, "444222222^^^&2.16.840.1.113883.4.1&ISO")
    result = cli("import", str(path), "--config", str(config), "--schematron", "-v")
    assert result.exit_code == 0, result.output
    assert "    warning: schematron /ClinicalDocument/component/structuredBody/" in result.output
    assert "value-set assertion(s) not checked" in result.output
    strict = cli("import", str(CCDA / "hl7ex_CCD1_CCD.xml"), "--config", str(config),
                 "--schematron", "--strict")
    assert strict.exit_code == 1
    assert "refused: " in strict.output and "error: schematron " in strict.output


def test_settings_table() -> None:
    from gateway.ccda.importer import settings_from_table
    from profiles.xds.metadata import Code

    s = settings_from_table({
        "strict": True, "patient_domain": "1.2.3", "assume_offset": "-0500",
        "practice_code": "394802001^General medicine^2.16.840.1.113883.6.96",
        "class_codes": {"34133-9": "11369-6^History of immunization^2.16.840.1.113883.6.1"},
    })
    assert s.strict and not s.schematron
    assert s.defaults.patient_domain == "1.2.3" and s.defaults.assume_offset == "-0500"
    assert s.defaults.practice_setting_code == Code("394802001", "2.16.840.1.113883.6.96",
                                                    "General medicine")
    assert s.defaults.class_codes["34133-9"].code == "11369-6"
    with pytest.raises(ValueError, match="unknown key"):
        settings_from_table({"strictly": True})
    with pytest.raises(ValueError, match="CODE\\^DISPLAY\\^SCHEME"):
        settings_from_table({"type_code": "nope"})
