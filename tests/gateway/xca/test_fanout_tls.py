"""The fan-out over real mutual TLS on loopback: good, down, slow, fault, garbage and an
unregistered certificate, each isolated to its own XDSUnavailableCommunity."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from gateway.client import OutboundClient
from gateway.demo import free_port
from gateway.partners.directory import PartnerDirectory
from gateway.transport import ClientCertificate, RequestsTransport
from gateway.xca.initiating import FanOut
from profiles.xca import ig_query
from tests.gateway.test_client import Server, partner_at, pki  # noqa: F401 (fixture)
from tests.gateway.xca.peers import FAULT, query_answer
from tests.gateway.xca.test_fanout import (
    FakeCorrelations,
    answer,
    context,
    errors_of,
    find_documents,
)

RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"


@pytest.fixture
def servers(pki):  # noqa: F811
    started: list[Server] = []

    def start(issuer: str = "partner") -> Server:
        started.append(Server(pki, issuer))
        return started[-1]

    yield start
    for s in started:
        s.stop()


def test_fan_out_over_mutual_tls(pki, servers):  # noqa: F811
    good, slow, fault, garbage = (servers() for _ in range(4))
    rogue = servers("rogue")
    good.answer = (200, query_answer("1.9.1", 3))
    slow.delay = True
    fault.answer = (500, FAULT)
    garbage.answer = (200, b"<not-soap/>")
    ports = {"1.9.1": good.port, "1.9.2": free_port(), "1.9.3": slow.port,
             "1.9.4": fault.port, "1.9.5": garbage.port, "1.9.6": rogue.port}
    partners = []
    for oid, port in ports.items():
        p = partner_at(pki, f"https://localhost:{port}", timeout=0.5 if oid == "1.9.3" else 5)
        partners.append(type(p)(f"urn:oid:{oid}", oid, p.endpoints, p.ca_pem,
                                p.timeout_seconds))
    transport = RequestsTransport(ClientCertificate(pki.directory / "client.pem",
                                                    pki.directory / "client-key.pem"))
    try:
        with ThreadPoolExecutor(8) as pool:
            fanout = FanOut(OutboundClient(transport), PartnerDirectory(partners),
                            deadline_seconds=10, pool=pool,
                            correlations=FakeCorrelations(list(ports)))
            el = answer(ig_query.handle(find_documents(), context(fanout)))
    finally:
        transport.close()
    assert el.get("status") == "urn:ihe:iti:2007:ResponseStatusType:PartialSuccess"
    errors = errors_of(el)
    assert set(errors) == {f"urn:oid:1.9.{i}" for i in (2, 3, 4, 5, 6)}
    assert "Connection refused" in errors["urn:oid:1.9.2"][1]
    assert "0.5 s" in errors["urn:oid:1.9.3"][1]
    assert "SOAP fault" in errors["urn:oid:1.9.4"][1]
    assert "not a SOAP envelope" in errors["urn:oid:1.9.5"][1]
    assert "CERTIFICATE_VERIFY_FAILED" in errors["urn:oid:1.9.6"][1]
    assert len(el.findall(f".//{{{RIM}}}ExtrinsicObject")) == 3
    assert rogue.client_subjects == []  # refused before anything was sent
