"""``ihe-gateway documents import`` against a real configuration and database: the file
goes through the ITI-41 code path and comes back by ITI-43's repository look-up."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from gateway.config import load_config
from gateway.patients.cli import patients_group
from gateway.registry.models import DocumentEntryRow
from gateway.repository.cli import import_document
from gateway.repository.store import SqlRepository
from gateway.store.blobs import FileBlobStore
from gateway.store.db import Database

PATIENT = "4711^^^&1.3.6.1.4.1.21367.2005.3.7&ISO"


@pytest.fixture
def config(tmp_path: Path, database_url: str) -> str:
    path = tmp_path / "gateway.toml"
    path.write_text(
        '[community]\nhome_community_id = "1.3.6.1.4.1.21367.2011.2.1"\n'
        f'[storage]\ndata_dir = "{tmp_path / "data"}"\n[database]\nurl = "{database_url}"\n',
        encoding="utf-8",
    )
    return str(path)


def run(*args: str):
    return CliRunner().invoke(import_document, list(args), catch_exceptions=False)


def test_import_registers_a_retrievable_document(config, tmp_path):
    file = tmp_path / "summary.xml"
    file.write_bytes(b"<ClinicalDocument/>")
    assert CliRunner().invoke(patients_group, ["add", PATIENT, "--config", config]).exit_code == 0
    result = run(
        str(file),
        "--patient",
        PATIENT,
        "--config",
        config,
        "--class-code",
        "11488-4^Consult note^2.16.840.1.113883.6.1",
        "--mime-type",
        "text/xml",
    )
    assert result.exit_code == 0, result.output
    unique_id = result.output.splitlines()[0].removeprefix("registered ")
    assert unique_id.startswith("2.25.")
    sha1 = hashlib.sha1(b"<ClinicalDocument/>").hexdigest()
    assert f"hash        {sha1}" in result.output
    assert file.exists()  # the operator's file is copied, never moved

    cfg = load_config(config)
    database = Database(cfg.database_url)
    try:
        repo = SqlRepository(
            database,
            FileBlobStore(cfg.data_dir / "blobs"),
            repository_unique_id="1.3.6.1.4.1.21367.2011.2.1.1",
        )
        (doc,) = repo.find([unique_id]).values()
        assert (doc.sha1, doc.size, doc.mime_type) == (sha1, 19, "text/xml")
        assert b"".join(repo.chunks(doc)) == b"<ClinicalDocument/>"
        with database.session() as s:
            entry = s.scalars(sa.select(DocumentEntryRow)).one()
        assert entry.unique_id == unique_id and entry.patient_id == PATIENT
        assert b"11488-4" in entry.xml and sha1.encode() in entry.xml
    finally:
        database.dispose()


def test_import_for_an_unknown_patient_is_refused(config, tmp_path):
    file = tmp_path / "note.txt"
    file.write_text("hello")
    result = CliRunner().invoke(
        import_document, [str(file), "--patient", PATIENT, "--config", config]
    )
    assert result.exit_code == 1
    assert "XDSUnknownPatientId" in result.output


def test_bad_arguments_are_refused_before_anything_runs(config, tmp_path):
    file = tmp_path / "note.txt"
    file.write_text("hello")
    result = CliRunner().invoke(import_document, [str(file), "--patient", "x", "--config", config])
    assert result.exit_code == 2 and "id^^^&OID&ISO" in result.output
    result = CliRunner().invoke(
        import_document,
        [str(file), "--patient", PATIENT, "--config", config, "--class-code", "nope"],
    )
    assert result.exit_code == 2 and "CODE^^SCHEME" in result.output
