"""The outbound client over real loopback TLS: only the partner's registered CA is
trusted (not REQUESTS_CA_BUNDLE), host names are checked, our certificate is shown."""

from __future__ import annotations

import http.server
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from lxml import etree

from certs.authority import create_authority, issue
from gateway.client import OutboundClient
from gateway.partners.model import Partner, Quirks, endpoints_for
from gateway.transport import (
    ClientCertificate,
    PartnerFault,
    PartnerTimeout,
    PartnerUnreachable,
    RequestsTransport,
    TlsRefused,
)
from profiles.xca.query import ITI38_ACTION, ITI38_REPLY
from tests.gateway.xca.peers import FAULT, query_answer

QUERY = "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"


@dataclass
class Pki:
    partner_ca: object
    rogue_ca: object
    our_ca: object
    directory: Path

    def write(self, name: str, data: bytes) -> Path:
        path = self.directory / name
        path.write_bytes(data)
        return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    p = Pki(create_authority("Partner CA"), create_authority("Rogue CA"),
            create_authority("Our CA"), d)
    ours = issue(p.our_ca, "our-gateway")
    ours.save(d / "client.pem", d / "client-key.pem")
    for name, ca in (("partner", p.partner_ca), ("rogue", p.rogue_ca), ("our", p.our_ca)):
        p.write(f"{name}-ca.pem", ca.certificate_pem())
        leaf = issue(ca, f"{name}-server")
        leaf.save(d / f"{name}-server.pem", d / f"{name}-server-key.pem")
    return p


class _Quiet(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        pass  # a client that gave up (timeout tests) is expected here


class Server:
    """A mutual-TLS HTTPS server answering every POST with ``answer`` (status, body)."""

    def __init__(self, pki: Pki, issuer: str, host: str = "127.0.0.1") -> None:
        self.answer = (200, query_answer("1.2.3.9", 2))
        self.release = threading.Event()
        self.delay = False
        self.client_subjects: list = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                server.client_subjects.append(self.connection.getpeercert()["subject"])
                if server.delay:
                    server.release.wait(5)
                status, body = server.answer
                self.send_response(status)
                self.send_header("Content-Type", "application/soap+xml; charset=UTF-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pki.directory / f"{issuer}-server.pem",
                            pki.directory / f"{issuer}-server-key.pem")
        ctx.load_verify_locations(pki.directory / "our-ca.pem")
        ctx.verify_mode = ssl.CERT_REQUIRED
        self.httpd = _Quiet((host, 0), Handler)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve(pki) -> Iterator:
    servers: list[Server] = []

    def start(issuer: str = "partner", host: str = "127.0.0.1") -> Server:
        servers.append(Server(pki, issuer, host))
        return servers[-1]

    yield start
    for s in servers:
        s.stop()


@pytest.fixture
def client(pki) -> Iterator[OutboundClient]:
    transport = RequestsTransport(ClientCertificate(pki.directory / "client.pem",
                                                    pki.directory / "client-key.pem"))
    yield OutboundClient(transport)
    transport.close()


def partner_at(pki: Pki, url: str, *, ca: bytes | None = b"", timeout: float = 5) -> Partner:
    ca_pem = pki.partner_ca.certificate_pem() if ca == b"" else ca
    return Partner("urn:oid:1.2.3.9", "loopback partner", endpoints_for(url), ca_pem, timeout,
                   10, Quirks(), url)


def query_body() -> etree._Element:
    return etree.Element(f"{{{QUERY}}}AdhocQueryRequest", nsmap={"query": QUERY})


def call(client: OutboundClient, partner: Partner):
    return client.call(partner, "ITI-38", ITI38_ACTION, query_body(), expect_action=ITI38_REPLY)


def test_a_partner_with_its_registered_ca_is_answered_and_sees_our_certificate(
        pki, serve, client):
    server = serve()
    answer = call(client, partner_at(pki, f"https://localhost:{server.port}"))
    assert etree.QName(answer.body).localname == "AdhocQueryResponse"
    assert answer.action == ITI38_REPLY
    assert ((("commonName", "our-gateway"),) in server.client_subjects[0])


def test_an_unregistered_certificate_is_refused_even_when_the_environment_trusts_it(
        pki, serve, client, monkeypatch):
    rogue = serve("rogue")
    # REQUESTS_CA_BUNDLE (set on this machine) trusting the rogue CA must change nothing.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(pki.directory / "rogue-ca.pem"))
    monkeypatch.setenv("CURL_CA_BUNDLE", str(pki.directory / "rogue-ca.pem"))
    with pytest.raises(TlsRefused) as refused:
        call(client, partner_at(pki, f"https://localhost:{rogue.port}"))
    assert "CERTIFICATE_VERIFY_FAILED" in refused.value.reason
    assert rogue.client_subjects == []


def test_the_host_name_is_checked(pki, serve, client):
    server = serve(host="127.0.0.2")  # the certificate names localhost and 127.0.0.1 only
    with pytest.raises(TlsRefused):
        call(client, partner_at(pki, f"https://127.0.0.2:{server.port}"))
    assert server.client_subjects == []


def test_a_partner_without_a_ca_is_never_called(pki, serve, client):
    server = serve()
    with pytest.raises(TlsRefused, match="no CA"):
        call(client, partner_at(pki, f"https://localhost:{server.port}", ca=None))
    assert server.client_subjects == []


def test_without_our_certificate_the_partner_refuses(pki, serve):
    server = serve()
    transport = RequestsTransport(None)
    try:
        with pytest.raises(PartnerUnreachable):
            call(OutboundClient(transport), partner_at(pki, f"https://localhost:{server.port}"))
    finally:
        transport.close()


def test_a_closed_port_is_unreachable(pki, client):
    from gateway.demo import free_port

    with pytest.raises(PartnerUnreachable) as down:
        call(client, partner_at(pki, f"https://localhost:{free_port()}"))
    assert not isinstance(down.value, TlsRefused)


def test_a_slow_partner_times_out_after_its_own_timeout(pki, serve, client):
    server = serve()
    server.delay = True
    with pytest.raises(PartnerTimeout):
        call(client, partner_at(pki, f"https://localhost:{server.port}", timeout=0.3))


def test_a_soap_fault_is_reported_with_its_reason(pki, serve, client):
    server = serve()
    server.answer = (500, FAULT)
    with pytest.raises(PartnerFault, match="Expected AdhocQueryRequest"):
        call(client, partner_at(pki, f"https://localhost:{server.port}"))


def test_namespaces_can_be_declared_on_the_envelope(pki):
    client = OutboundClient(transport=None)  # building only
    p = partner_at(pki, "https://localhost:1")
    p = replace(p, quirks=Quirks(namespace_placement="envelope"))
    env, _ = client.envelope(p, "https://localhost:1/xca/query", ITI38_ACTION, query_body())
    xml = etree.tostring(env)
    assert xml.count(b"xmlns:query=") == 1
    assert b"xmlns:query=" in xml.split(b">", 1)[0]  # on the Envelope's start tag
