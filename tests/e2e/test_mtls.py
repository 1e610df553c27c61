"""Mutual TLS at the door: who gets an answer from a served gateway, and who does not."""

from __future__ import annotations

import http.client
import json
import shutil
import ssl
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
import requests

from certs import authority
from certs.store import load_certificate, load_private_key
from tests.e2e.support import client_context, exchange, log_entry

pytestmark = pytest.mark.e2e

CLIENT_SUBJECT = (
    "commonName=community local client,"
    "organizationName=IHE Gateway DEVELOPMENT CA - NOT FOR PRODUCTION"
)


def client_pair(gateway):
    return gateway.cert("client.pem"), gateway.cert("client-key.pem")


def test_healthz_answers_a_client_with_a_certificate(gateway, session):
    resp = session.get(f"{gateway.base_url}/healthz", verify=str(gateway.cert("ca.pem")))
    assert resp.status_code == 200
    report = resp.json()
    assert report["status"] == "ok" and report["database"] == "ok"
    assert report["home_community_id"].startswith("urn:oid:2.25.")
    (own,) = report["certificates"]
    assert own["file"] == "gateway.pem" and own["status"] == "ok"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_as_the_readme_shows(gateway):
    certs = gateway.directory / "certs"
    base = ["curl", "-sS", "--max-time", "10", "--cacert", str(certs / "ca.pem")]
    url = f"{gateway.base_url}/healthz"
    ok = subprocess.run(
        [*base, "--cert", str(certs / "client.pem"), "--key", str(certs / "client-key.pem"), url],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["status"] == "ok"

    refused = subprocess.run([*base, url], capture_output=True, text=True, check=False)
    assert refused.returncode != 0 and refused.stdout == ""


def test_requests_without_a_certificate_is_refused(gateway):
    anonymous = requests.Session()
    anonymous.trust_env = False
    # Usually an SSLError (the server's alert); a reset that overtakes it is a ConnectionError.
    with pytest.raises(requests.exceptions.ConnectionError):
        anonymous.get(f"{gateway.base_url}/healthz", verify=str(gateway.cert("ca.pem")), timeout=10)


def test_no_certificate_fails_the_tls12_handshake(gateway):
    """In TLS 1.2 the server's verdict on the client certificate ends the handshake itself."""
    context = client_context(gateway, maximum=ssl.TLSVersion.TLSv1_2)
    with pytest.raises(ssl.SSLError, match="HANDSHAKE_FAILURE|CERTIFICATE_REQUIRED"):
        exchange(gateway, context)


def test_no_certificate_gets_no_http_answer_in_tls13(gateway):
    """TLS 1.3 clients finish first; the server's alert arrives instead of any HTTP byte."""
    context = client_context(gateway)
    try:
        received = exchange(gateway, context)
    except ssl.SSLError as exc:
        assert "CERTIFICATE_REQUIRED" in str(exc)
    except (ConnectionResetError, BrokenPipeError):
        pass  # the server's reset overtook its alert
    else:
        assert received == b""


def test_a_certificate_from_another_ca_is_refused(gateway, tmp_path):
    other = authority.create_authority("Some other CA")
    # Same subject as the real client: only the issuer differs.
    stranger = authority.issue(other, "community local client")
    stranger.save(tmp_path / "s.pem", tmp_path / "s-key.pem")
    pair = (tmp_path / "s.pem", tmp_path / "s-key.pem")

    context = client_context(gateway, pair, maximum=ssl.TLSVersion.TLSv1_2)
    with pytest.raises(ssl.SSLError, match="UNKNOWN_CA"):
        exchange(gateway, context)

    s = requests.Session()
    s.trust_env = False
    with pytest.raises(requests.exceptions.ConnectionError):
        s.get(
            f"{gateway.base_url}/healthz",
            cert=tuple(map(str, pair)),
            verify=str(gateway.cert("ca.pem")),
            timeout=10,
        )


def test_an_expired_certificate_from_the_trusted_ca_is_refused(gateway, tmp_path):
    ca = authority.Credential(
        load_certificate(gateway.cert("ca.pem")), load_private_key(gateway.cert("ca-key.pem"))
    )
    now = datetime.now(UTC)
    lapsed = authority.issue(
        ca, "lapsed client", not_before=now - timedelta(days=30), not_after=now - timedelta(days=1)
    )
    lapsed.save(tmp_path / "l.pem", tmp_path / "l-key.pem")
    context = client_context(
        gateway, (tmp_path / "l.pem", tmp_path / "l-key.pem"), maximum=ssl.TLSVersion.TLSv1_2
    )
    with pytest.raises(ssl.SSLError, match="CERTIFICATE_EXPIRED"):
        exchange(gateway, context)


def test_a_cipher_without_forward_secrecy_is_refused(gateway):
    context = client_context(
        gateway, client_pair(gateway), maximum=ssl.TLSVersion.TLSv1_2, ciphers="AES128-SHA256"
    )
    assert [c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"] == [
        "AES128-SHA256"
    ]
    with pytest.raises(ssl.SSLError):
        exchange(gateway, context)


@pytest.mark.parametrize(
    ("maximum", "version"), [(None, "TLSv1.3"), (ssl.TLSVersion.TLSv1_2, "TLSv1.2")]
)
def test_negotiated_protocol_and_cipher(gateway, maximum, version):
    context = client_context(gateway, client_pair(gateway), maximum=maximum)
    conn = http.client.HTTPSConnection("localhost", gateway.port, context=context, timeout=10)
    try:
        conn.request("GET", "/healthz")
        assert conn.getresponse().status == 200
        name, protocol, _bits = conn.sock.cipher()
        assert protocol == version
        if version == "TLSv1.2":
            assert name.startswith(("ECDHE-", "DHE-")) and ("GCM" in name or "CHACHA" in name)
    finally:
        conn.close()


def test_connection_is_kept_alive_between_requests(gateway):
    """gthread workers keep the connection (and its TLS session) for the next request."""
    context = client_context(gateway, client_pair(gateway))
    conn = http.client.HTTPSConnection("localhost", gateway.port, context=context, timeout=10)
    try:
        conn.request("GET", "/healthz")
        first = conn.getresponse()
        first.read()
        assert first.getheader("Connection", "").lower() != "close"
        sock = conn.sock
        conn.request("GET", "/healthz")
        second = conn.getresponse()
        second.read()
        assert second.status == 200
        assert conn.sock is sock  # http.client reconnects only when the server closed
    finally:
        conn.close()


def test_the_app_sees_the_verified_client_certificate(gateway, session):
    """views.peer_subject() reads the peer certificate through gthread's TLS socket."""
    resp = session.post(
        f"{gateway.base_url}/xds/registry",
        data=b"<not-soap/>",
        headers={"Content-Type": "application/soap+xml"},
        verify=str(gateway.cert("ca.pem")),
    )
    assert resp.status_code == 400
    entry = log_entry(gateway, resp.headers["X-Request-Id"])
    assert entry["peer"] == CLIENT_SUBJECT
    assert entry["status"] == 400 and entry["path"] == "/xds/registry"
