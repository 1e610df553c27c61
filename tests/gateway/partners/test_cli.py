"""``ihe-gateway partners add|list|show|remove|test`` end to end (test: a real ITI-38
over mutual TLS to a loopback partner)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from certs.authority import create_authority, issue
from gateway.partners.cli import partners_group
from tests.gateway.test_client import Pki, Server

HCID = "2.16.840.1.113883.3.42"


@pytest.fixture
def setup(tmp_path: Path, database_url: str):
    pki = Pki(create_authority("Partner CA"), create_authority("Rogue CA"),
              create_authority("Our CA"), tmp_path)
    issue(pki.our_ca, "our-gateway").save(tmp_path / "client.pem", tmp_path / "client-key.pem")
    pki.write("our-ca.pem", pki.our_ca.certificate_pem())
    pki.write("partner-ca.pem", pki.partner_ca.certificate_pem())
    issue(pki.partner_ca, "partner-server").save(tmp_path / "partner-server.pem",
                                                 tmp_path / "partner-server-key.pem")
    config = tmp_path / "gateway.toml"
    config.write_text(f"""
[community]
home_community_id = "1.2.3.1"
name = "VA"
[storage]
data_dir = "data"
[database]
url = "{database_url}"
[tls]
certificate = "client.pem"
private_key = "client-key.pem"
trust_store = "our-ca.pem"
""")
    return pki, config


def run(*args: str):
    result = CliRunner().invoke(partners_group, list(args), catch_exceptions=False)
    return result


def test_add_list_show_test_remove(setup):
    pki, config = setup
    server = Server(pki, "partner")
    try:
        base = f"https://localhost:{server.port}"
        added = run("add", "--config", str(config), "--home-community-id", HCID,
                    "--name", "DoD MHS GENESIS", "--url", base,
                    "--ca", str(pki.directory / "partner-ca.pem"),
                    "--endpoint", "ITI-39=https://localhost:9/retrieve",
                    "--max-documents", "3", "--sha1", "--purpose-for-use")
        assert added.exit_code == 0, added.output
        assert f"ITI-38  {base}/xca/query" in added.output
        assert "ITI-39  https://localhost:9/retrieve" in added.output

        listed = run("list", "--config", str(config))
        assert f"urn:oid:{HCID}\tDoD MHS GENESIS\tdatabase" in listed.output
        assert "signature_hash=sha1" in listed.output

        shown = run("show", "--config", str(config), HCID)
        assert "max_documents_per_retrieve: 3" in shown.output
        assert "purpose_element: PurposeForUse" in shown.output

        tested = run("test", "--config", str(config), HCID)
        assert tested.exit_code == 0, tested.output
        assert "answered in" in tested.output and "2 object(s)" in tested.output
        assert server.client_subjects, "the partner saw no request"
    finally:
        server.stop()

    down = run("test", "--config", str(config), HCID)
    assert down.exit_code == 1 and "FAILED" in down.output and "unreachable" in down.output

    dup = run("add", "--config", str(config), "--home-community-id", HCID, "--name", "x",
              "--url", "https://localhost:1", "--ca", str(pki.directory / "partner-ca.pem"))
    assert dup.exit_code != 0 and "already registered" in dup.output

    removed = run("remove", "--config", str(config), f"urn:oid:{HCID}")
    assert removed.exit_code == 0
    assert "no partners" in run("list", "--config", str(config)).output
    assert run("remove", "--config", str(config), HCID).exit_code != 0


def test_add_refuses_a_file_that_is_no_certificate(setup):
    pki, config = setup
    bogus = pki.write("bogus.pem", b"not a certificate")
    result = run("add", "--config", str(config), "--home-community-id", HCID, "--name", "x",
                 "--url", "https://localhost:1", "--ca", str(bogus))
    assert result.exit_code != 0 and "no PEM certificate" in result.output
