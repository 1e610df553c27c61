"""``ihe-gateway patients add|show`` against a real configuration and database."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.patients.cli import patients_group

DOD = "2.16.840.1.113883.3.42.10001.100001.12"


@pytest.fixture
def config(tmp_path: Path, database_url: str) -> str:
    path = tmp_path / "gateway.toml"
    path.write_text(
        '[community]\nhome_community_id = "1.3.6.1.4.1.21367.2011.2.1"\n'
        f'[storage]\ndata_dir = "{tmp_path / "data"}"\n[database]\nurl = "{database_url}"\n',
        encoding="utf-8")
    return str(path)


def cli(*args: str):
    return CliRunner().invoke(patients_group, list(args), catch_exceptions=False)


def test_add_then_show_with_links(config):
    result = cli("add", f"1234567890^^^&{DOD}&ISO", "--config", config, "--given", "Ann",
                 "--given", "Marie", "--family", "Lee", "--birth", "19700101", "--gender", "F")
    assert result.exit_code == 0 and result.output == f"added 1234567890^^^&{DOD}&ISO\n"
    result = cli("add", "V-1^^^&2.16.840.1.113883.4.349&ISO", "--config", config,
                 "--family", "Lee", "--link", f"1234567890^^^&{DOD}&ISO")
    assert result.exit_code == 0
    result = cli("show", f"1234567890^^^&{DOD}&ISO", "--config", config)
    assert result.exit_code == 0
    assert "name:     Ann Marie Lee\n" in result.output
    assert "birth:    19700101\ngender:   F\n" in result.output
    assert "also:     V-1^^^&2.16.840.1.113883.4.349&ISO\n" in result.output
    again = cli("add", f"1234567890^^^&{DOD}&ISO", "--config", config, "--family", "Park")
    assert again.output.startswith("updated ")


def test_show_unknown_and_bad_input(config):
    result = cli("show", f"404^^^&{DOD}&ISO", "--config", config)
    assert result.exit_code == 1 and "no patient" in result.output
    result = cli("add", "123^^^&not-an-oid&ISO", "--config", config)
    assert result.exit_code == 2 and "ISO OID" in result.output
    result = cli("add", f"1^^^&{DOD}&ISO", "--config", config, "--birth", "5 May 1970")
    assert result.exit_code == 2 and "expected an HL7 date" in result.output
