"""Revocation from CRL files, and from an OCSP responder on loopback."""

from __future__ import annotations

import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from certs import revocation
from tests.certs import pki


@pytest.fixture(scope="module")
def ca():
    return pki.make("CRL CA", ca=True)


def test_crl_revoked_good_stale_and_forged(ca, tmp_path):
    revoked, fine = pki.make("revoked", ca), pki.make("fine", ca)
    path = tmp_path / "ca.crl"
    path.write_bytes(pki.crl(ca, [revoked.certificate]).public_bytes(serialization.Encoding.DER))
    crls = [revocation.load_crl(path)]
    assert revocation.crl_status(revoked.certificate, ca.certificate, crls) == "revoked"
    assert revocation.crl_status(fine.certificate, ca.certificate, crls) == "good"
    assert revocation.crl_status(fine.certificate, ca.certificate, []) == "unknown"
    old = pki.crl(ca, [], next_update=pki.NOW - timedelta(days=1))
    assert revocation.crl_status(fine.certificate, ca.certificate, [old]) == "stale"
    forged = pki.crl(ca, [fine.certificate], signer=pki.key())
    assert revocation.crl_status(fine.certificate, ca.certificate, [forged]) == "unknown"


def _responder(ca, revoked_serials: set[int]):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            request = ocsp.load_der_ocsp_request(body)
            bad = request.serial_number in revoked_serials
            cert = next(c for c in issued if c.serial_number == request.serial_number)
            builder = ocsp.OCSPResponseBuilder().add_response(
                cert=cert, issuer=ca.certificate, algorithm=hashes.SHA256(),
                cert_status=ocsp.OCSPCertStatus.REVOKED if bad else ocsp.OCSPCertStatus.GOOD,
                this_update=pki.NOW, next_update=pki.NOW + timedelta(days=1),
                revocation_time=pki.NOW if bad else None, revocation_reason=None,
            ).responder_id(ocsp.OCSPResponderEncoding.HASH, ca.certificate)
            der = builder.sign(ca.private_key, hashes.SHA256()).public_bytes(
                serialization.Encoding.DER)
            self.send_response(200)
            self.send_header("Content-Type", "application/ocsp-response")
            self.send_header("Content-Length", str(len(der)))
            self.end_headers()
            self.wfile.write(der)

        def log_message(self, *args):
            pass

    issued: list = []
    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, issued


def test_ocsp_on_loopback(ca):
    revoked, fine = pki.make("revoked", ca), pki.make("fine", ca)
    server, issued = _responder(ca, {revoked.certificate.serial_number})
    issued += [revoked.certificate, fine.certificate]
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        assert revocation.ocsp_status(revoked.certificate, ca.certificate, url) == "revoked"
        status = revocation.revocation_status(fine.certificate, ca.certificate, ocsp_url=url)
        assert status == "good"
        # Signed by someone else: not believed.
        other = pki.make("Other CA", ca=True)
        assert revocation.ocsp_status(fine.certificate, other.certificate, url) == "unknown"
    finally:
        server.shutdown()
        server.server_close()
    # Nobody listening any more: unknown, quickly, and the CRL answer stands.
    assert revocation.ocsp_status(fine.certificate, ca.certificate, url) == "unknown"
