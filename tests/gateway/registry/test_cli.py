"""``ihe-gateway documents list`` against a real configuration and database."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.registry.cli import documents_group
from gateway.registry.store import SqlRegistry
from gateway.store import migrate
from gateway.store.db import Database
from tests.gateway.registry.conftest import KnownPatients, register
from tests.profiles.xds.builders import PATIENT, submission


@pytest.fixture
def config(tmp_path: Path, database_url: str) -> str:
    path = tmp_path / "gateway.toml"
    path.write_text(
        '[community]\nhome_community_id = "1.3.6.1.4.1.21367.2011.2.1"\n'
        f'[storage]\ndata_dir = "{tmp_path / "data"}"\n[database]\nurl = "{database_url}"\n',
        encoding="utf-8")
    return str(path)


def cli(*args: str):
    return CliRunner().invoke(documents_group, list(args), catch_exceptions=False)


def test_list_prints_a_table(config, database_url):
    assert cli("list", "--patient", PATIENT, "--config", config).output == (
        f"no documents for {PATIENT}\n")
    migrate.upgrade(database_url)
    db = Database(database_url)
    try:
        ids = register(SqlRegistry(db, patients=KnownPatients()), submission())
    finally:
        db.dispose()
    result = cli("list", "--patient", PATIENT, "--config", config)
    assert result.exit_code == 0
    header, row = result.output.splitlines()
    assert header.split() == ["uniqueId", "status", "created", "class", "mimeType", "title",
                              "entryUUID"]
    assert row.startswith("1.2.3.4.5.100.1  Approved  20240102030405  Summary of episode note")
    assert row.endswith(ids["Document01"])


def test_bad_patient_id(config):
    result = CliRunner().invoke(documents_group, ["list", "--patient", "nope", "--config", config])
    assert result.exit_code == 2 and "id^^^&OID&ISO" in result.output
