"""``ihe-gateway certs`` commands on a community made by ``init``, with PKIs built here."""

from __future__ import annotations

import json
import sqlite3
import stat
from datetime import timedelta
from pathlib import Path

from click.testing import CliRunner
from cryptography.hazmat.primitives.serialization import Encoding

from certs import authority, inventory
from certs.changes import pem
from certs.store import load_certificate, load_certificates
from gateway.cli import main
from tests.certs import pki


def run(community: Path | None, *args: str, code: int = 0) -> str:
    extra = ["--config", str(community / "gateway.toml")] if community else []
    result = CliRunner().invoke(main, ["certs", *args, *extra])
    assert result.exit_code == code, result.output + repr(result.exception)
    return result.output


def audits(community: Path) -> int:
    with sqlite3.connect(community / "data" / "gateway.db") as db:
        rows = db.execute("SELECT xml FROM audit_records").fetchall()
    return sum(1 for (xml,) in rows if b"110129" in xml)


def test_list_on_a_new_community_reads_at_a_glance(community):
    out = run(community, "list")
    header, gateway_row, ca_row = out.splitlines()[:3]
    assert header.split()[:4] == ["STATUS", "DAYS", "NOT", "AFTER"]
    assert gateway_row.startswith("ok") and "this gateway" in gateway_row
    assert "trusted CA" in ca_row and "trust.pem" in ca_row
    assert "\n2 certificate(s): 2 ok\n[DEV] = development CA, NOT FOR PRODUCTION" in out
    assert "gateway (TLS + SAML) [DEV]" in gateway_row
    rows = json.loads(run(community, "list", "--json"))
    assert {r["role"] for r in rows} == {"gateway (TLS + SAML)", "trusted CA"}
    assert all(len(r["sha256"]) == 95 and r["serial"] and r["issuer"] for r in rows)
    assert "ok: 2 certificate(s)" in run(community, "check")


def test_check_fails_on_a_revoked_certificate(community, tmp_path):
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    certs_dir = community / "certs"
    ca = authority.Credential(load_certificate(certs_dir / "ca.pem"), load_pem_private_key(
        (certs_dir / "ca-key.pem").read_bytes(), None))
    clean = tmp_path / "clean.crl"
    clean.write_bytes(pki.crl(ca, []).public_bytes(Encoding.PEM))
    run(community, "check", "--crl", str(clean))
    revoked = tmp_path / "revoked.crl"
    gateway_cert = load_certificate(certs_dir / "gateway.pem")
    revoked.write_bytes(pki.crl(ca, [gateway_cert]).public_bytes(Encoding.DER))
    out = run(community, "check", "--crl", str(revoked), code=1)
    assert "REVOKED: gateway (TLS + SAML)" in out


def test_check_fails_on_expired_and_warning_window(community):
    store = community / "certs" / "trust.pem"
    soon = pki.make("Expiring partner CA", ca=True, end=pki.NOW + timedelta(days=10))
    store.write_bytes(store.read_bytes() + pem([soon.certificate]))
    out = run(community, "list")
    assert out.splitlines()[1].startswith("<30 DAYS") and "Expiring partner CA" in out
    run(community, "check", code=1)
    # Only the 90-day notice: check passes, list still says so.
    store.write_bytes(pem(load_certificates(store)[:1]))
    later = pki.make("Later CA", ca=True, end=pki.NOW + timedelta(days=60))
    store.write_bytes(store.read_bytes() + pem([later.certificate]))
    assert "<90 DAYS" in run(community, "list")
    run(community, "check")
    expired = pki.make("Gone CA", ca=True, start=pki.NOW - timedelta(days=9),
                       end=pki.NOW - timedelta(days=1))
    store.write_bytes(store.read_bytes() + pem([expired.certificate]))
    assert run(community, "list").splitlines()[1].startswith("EXPIRED")
    run(community, "check", code=1)


def test_trust_untrust_backed_up_and_audited(community, tmp_path):
    before = audits(community)
    partner_ca = pki.make("Partner CA", ca=True)
    (tmp_path / "p.pem").write_bytes(pem([partner_ca.certificate]))
    out = run(community, "trust", str(tmp_path / "p.pem"), "--partner", "urn:oid:1.2.3",
              "--name", "Partner")
    assert "no running server found" in out
    listed = json.loads(run(community, "list", "--json"))
    assert any(r["used_by"] == "Partner (urn:oid:1.2.3)" for r in listed)
    # A pinned leaf needs its partner; an expired certificate is never trusted.
    leaf = pki.make("partner leaf", partner_ca)
    (tmp_path / "leaf.der").write_bytes(leaf.certificate.public_bytes(Encoding.DER))
    assert "--partner" in run(community, "trust", str(tmp_path / "leaf.der"), code=1)
    old = pki.make("old", partner_ca, end=pki.NOW - timedelta(days=1),
                   start=pki.NOW - timedelta(days=5))
    (tmp_path / "old.pem").write_bytes(pem([old.certificate]))
    assert "expired" in run(community, "trust", str(tmp_path / "old.pem"), "--partner", "x",
                            code=1)
    prefix = inventory.fingerprint(partner_ca.certificate)[:11]
    run(community, "untrust", prefix)
    assert len(load_certificates(community / "certs" / "trust.pem")) == 1
    assert "empty the trust store" in run(community, "untrust",
                                          str(community / "certs" / "trust.pem"), code=1)
    backups = sorted((community / "certs" / "backup").iterdir())
    assert len(backups) == 2
    assert len(load_certificates(backups[-1] / "trust.pem")) == 2  # the state before untrust
    assert stat.S_IMODE((backups[-1] / "gateway-key.pem").stat().st_mode) == 0o600
    assert audits(community) == before + 2


def test_dev_ca_issue_csr_install(community, tmp_path):
    out = run(None, "dev-ca", str(tmp_path / "pki"), "--name", "Test dev CA")
    assert "NOT FOR PRODUCTION" in out
    assert stat.S_IMODE((tmp_path / "pki" / "ca-key.pem").stat().st_mode) == 0o600
    run(None, "issue", "peer.example", "--ca-cert", str(tmp_path / "pki" / "ca.pem"),
        "--ca-key", str(tmp_path / "pki" / "ca-key.pem"), "--out", str(tmp_path / "peer"))
    assert "DEVELOPMENT" in run(None, "show", str(tmp_path / "peer.pem"))

    run(None, "csr", "--out", str(tmp_path / "gw"), "--cn", "gw.example.org", "--o", "Example",
        "--ou", "NHIN-test", "--c", "US", "--name", "gw2.example.org")
    shown = run(None, "show", str(tmp_path / "gw.csr"))
    assert "CN=gw.example.org,OU=NHIN-test,O=Example,C=US" in shown
    assert "signature    valid" in shown

    # The exchange signs it: an intermediate under a root the community trusts.
    root = pki.make("Exchange root", ca=True)
    inter = pki.make("Exchange issuing CA", root, ca=True)
    from cryptography import x509

    request = x509.load_pem_x509_csr((tmp_path / "gw.csr").read_bytes())
    signed = _sign_for(request, inter)
    (tmp_path / "signed.pem").write_bytes(pem([signed]))
    (tmp_path / "chain.pem").write_bytes(pem([inter.certificate, root.certificate]))
    (tmp_path / "root-only.pem").write_bytes(pem([root.certificate]))
    key = str(tmp_path / "gw-key.pem")
    # Broken chain (no intermediate) and wrong key are refused; nothing is written.
    assert "does not chain" in run(community, "install", str(tmp_path / "signed.pem"),
                                   "--key", key, "--chain", str(tmp_path / "root-only.pem"),
                                   code=1)
    assert "does not match the private key" in run(
        community, "install", str(tmp_path / "signed.pem"), "--key",
        str(tmp_path / "peer-key.pem"), "--chain", str(tmp_path / "chain.pem"), code=1)
    assert load_certificate(community / "certs" / "gateway.pem") != signed
    run(community, "install", str(tmp_path / "signed.pem"), "--key", key,
        "--chain", str(tmp_path / "chain.pem"))
    assert load_certificates(community / "certs" / "gateway.pem") == [signed, inter.certificate]
    installed_key = community / "certs" / "gateway-key.pem"
    assert stat.S_IMODE(installed_key.stat().st_mode) == 0o600


def _sign_for(request, issuer):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    san = request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return (
        x509.CertificateBuilder()
        .subject_name(request.subject)
        .issuer_name(issuer.certificate.subject)
        .public_key(request.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(pki.NOW - timedelta(days=1))
        .not_valid_after(pki.NOW + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([pki.CLIENT, pki.SERVER]), critical=False)
        .add_extension(san, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer.private_key.public_key()), critical=False)
        .sign(issuer.private_key, hashes.SHA256())
    )


def test_rotate_gateway_keeps_previous_until_finished(community):
    old = load_certificate(community / "certs" / "gateway.pem")
    out = run(community, "rotate", "--overlap-days", "2")
    assert "DEVELOPMENT CA" in out
    new = load_certificate(community / "certs" / "gateway.pem")
    assert new != old and new.subject == old.subject
    assert load_certificate(community / "certs" / "gateway-previous.pem") == old
    assert "nothing to retire yet" in run(community, "rotate", "--finish")
    run(community, "rotate", "--finish", "--now")
    assert not (community / "certs" / "gateway-previous.pem").exists()
    assert authority.DEV_ORGANIZATION in new.issuer.rfc4514_string()


def test_show_pkcs12_and_key(community, tmp_path, monkeypatch):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    ca = pki.make("Show CA", ca=True)
    leaf = pki.make("show leaf", ca)
    (tmp_path / "b.p12").write_bytes(pkcs12.serialize_key_and_certificates(
        b"x", leaf.private_key, leaf.certificate, [ca.certificate],
        serialization.BestAvailableEncryption(b"pw")))
    monkeypatch.setenv("P12_PASS", "pw")
    out = run(None, "show", str(tmp_path / "b.p12"), "--passphrase-env", "P12_PASS")
    assert "PKCS#12 bundle: 2 certificate(s), a private key" in out and "show leaf" in out
    key_out = run(None, "show", str(community / "certs" / "gateway-key.pem"))
    assert "not encrypted" in key_out and "0o600" in key_out
