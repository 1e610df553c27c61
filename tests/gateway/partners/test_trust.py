"""``partners add --ca`` trusts the partner's CA for inbound TLS, ``partners remove``
undoes it unless another partner (or the operator) still trusts it; each change backed
up and audited. On a community made by ``init`` (SQLite), through ``ihe-gateway``."""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from pathlib import Path

from click.testing import CliRunner

from certs.changes import pem
from certs.inventory import fingerprint
from certs.store import load_certificates
from gateway.cli import main
from tests.certs import pki


def run(community: Path, *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(main, [*args, "--config", str(community / "gateway.toml")])
    assert result.exit_code == code, result.output + repr(result.exception)
    return result.output


def add(community: Path, oid: str, ca: Path, *extra: str, code: int = 0) -> str:
    return run(community, "partners", "add", "--home-community-id", oid, "--name",
               f"P{oid}", "--url", "https://localhost:1", "--ca", str(ca), *extra, code=code)


def store(community: Path) -> list:
    return load_certificates(community / "certs" / "trust.pem")


def bindings(community: Path) -> dict:
    return json.loads((community / "certs" / "inventory.json").read_text())["bindings"]


def audits(community: Path) -> int:
    with sqlite3.connect(community / "data" / "gateway.db") as db:
        rows = db.execute("SELECT xml FROM audit_records").fetchall()
    return sum(1 for (xml,) in rows if b"110129" in xml)  # Security Alert events


def ca_file(tmp_path: Path, name: str, **kw) -> tuple[Path, object]:
    ca = pki.make(name, ca=True, **kw)
    path = tmp_path / f"{name.replace(' ', '-')}.pem"
    path.write_bytes(pem([ca.certificate]))
    return path, ca.certificate


def test_add_trusts_the_ca_and_remove_takes_it_out(community, tmp_path):
    own = store(community)
    before = audits(community)
    path, cert = ca_file(tmp_path, "Exchange CA")
    out = add(community, "2.999.41", path)
    assert "trusted " in out and "CN=Exchange CA" in out and "no running server found" in out
    assert [c for c in store(community) if c == cert]
    binding = bindings(community)[fingerprint(cert)]
    assert binding["partner"] == "P2.999.41 (urn:oid:2.999.41)"
    assert binding["origin"] == "partners add"
    assert audits(community) == before + 1

    # A second community behind the same CA: nothing new in the store, the binding is
    # its; removing it keeps the CA (the first still needs it) and passes the binding back.
    add(community, "2.999.42", path)
    assert len(store(community)) == len(own) + 1
    assert bindings(community)[fingerprint(cert)]["partner"] == "P2.999.42 (urn:oid:2.999.42)"
    out = run(community, "partners", "remove", "2.999.42")
    assert "trust store unchanged" in out
    assert [c for c in store(community) if c == cert]
    assert bindings(community)[fingerprint(cert)]["partner"] == "P2.999.41 (urn:oid:2.999.41)"

    out = run(community, "partners", "remove", "2.999.41")
    assert "untrusted " in out and "CN=Exchange CA" in out
    assert store(community) == own
    assert fingerprint(cert) not in bindings(community)
    assert audits(community) == before + 4
    assert len(list((community / "certs" / "backup").iterdir())) == 4


def test_a_ca_the_operator_trusted_stays_when_its_partner_goes(community, tmp_path):
    path, cert = ca_file(tmp_path, "Operator CA")
    run(community, "certs", "trust", str(path))
    add(community, "2.999.43", path)
    assert "origin" not in bindings(community)[fingerprint(cert)]
    run(community, "partners", "remove", "2.999.43")
    assert [c for c in store(community) if c == cert]


def test_replace_with_a_new_ca_releases_the_old_one(community, tmp_path):
    old, old_cert = ca_file(tmp_path, "Old CA")
    new, new_cert = ca_file(tmp_path, "New CA")
    add(community, "2.999.44", old)
    add(community, "2.999.44", new, "--replace")
    certs = store(community)
    assert [c for c in certs if c == new_cert] and not [c for c in certs if c == old_cert]


def test_an_expired_ca_is_refused_and_nothing_is_registered(community, tmp_path):
    path, _ = ca_file(tmp_path, "Lapsed CA", start=pki.NOW - timedelta(days=9),
                      end=pki.NOW - timedelta(days=1))
    out = add(community, "2.999.45", path, code=1)
    assert "refused" in out and "expired" in out
    assert "2.999.45" not in run(community, "partners", "list")
    assert len(store(community)) == 1
