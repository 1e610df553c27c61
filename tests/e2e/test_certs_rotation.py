"""Rotation with overlap over real TLS: old and new client certificates are both
accepted during the overlap, only the new one after it (pinned-certificate trust)."""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Iterator

import pytest
from cryptography import x509

from certs.store import load_certificate
from gateway import demo
from tests.certs.support import Reload, accepted, certs_cli, context, serve_community
from tests.e2e.support import stop_gateway

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[demo.Gateway]:
    gateway = serve_community(tmp_path_factory.mktemp("certs-rotate") / "community")
    yield gateway
    stop_gateway(gateway)


def test_rotation_overlap_then_retirement(served, tmp_path):
    server_ca = tmp_path / "server-ca.pem"
    shutil.copy(served.cert("ca.pem"), server_ca)
    old_pair = (tmp_path / "old.pem", tmp_path / "old-key.pem")
    shutil.copy(served.cert("client.pem"), old_pair[0])
    shutil.copy(served.cert("client-key.pem"), old_pair[1])

    # Trust the client by its pinned certificate alone, not by the CA that issued it.
    with Reload(served):
        certs_cli(served, "trust", str(served.cert("client.pem")),
                  "--partner", "urn:oid:1.2.3.4", "--name", "Local client")
    with Reload(served):
        certs_cli(served, "untrust", str(server_ca))
    assert accepted(served, context(server_ca, old_pair))

    with Reload(served):
        out = certs_cli(served, "rotate", "--role", "client", "--overlap-days", "3",
                        "--ca-cert", str(server_ca))
    assert "DEVELOPMENT CA" in out.stdout
    new_pair = (served.cert("client.pem"), served.cert("client-key.pem"))
    assert load_certificate(new_pair[0]) != load_certificate(old_pair[0])
    assert accepted(served, context(server_ca, old_pair))
    assert accepted(served, context(server_ca, new_pair))

    listed = json.loads(certs_cli(served, "list", "--json").stdout)
    roles = sorted(r["role"] for r in listed if r["role"].startswith("pinned"))
    assert roles[0] == "pinned certificate" and roles[1].startswith("pinned certificate (retiring")
    assert all(r["used_by"] == "Local client (urn:oid:1.2.3.4)" for r in listed
               if r["role"].startswith("pinned"))

    early = certs_cli(served, "rotate", "--role", "client", "--finish")
    assert "nothing to retire yet" in early.stdout
    with Reload(served):
        certs_cli(served, "rotate", "--finish", "--now")
    assert not accepted(served, context(server_ca, old_pair))
    assert accepted(served, context(server_ca, new_pair))
    assert not served.cert("client-previous.pem").exists()


def _served_certificate(served, ctx) -> x509.Certificate:
    with (
        socket.create_connection(("127.0.0.1", served.port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))


def test_rotating_the_gateway_certificate_serves_the_new_one_live(served):
    # ca.pem is the dev CA (the trust store, trust.pem, is what the first test changed).
    dev_ca = served.cert("ca.pem")
    ctx = context(dev_ca, (served.cert("client.pem"), served.cert("client-key.pem")))
    before = _served_certificate(served, ctx)
    with Reload(served):
        certs_cli(served, "rotate", "--overlap-days", "1", "--ca-cert", str(dev_ca))
    after = _served_certificate(served, ctx)
    assert after != before and after == load_certificate(served.cert("gateway.pem"))
    assert before == load_certificate(served.cert("gateway-previous.pem"))
