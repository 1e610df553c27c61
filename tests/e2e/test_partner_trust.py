"""A partner added with ``ihe-gateway partners add --ca`` is trusted inbound on a running
gateway, without a restart: its CA joins the TLS trust store (backed up, audited,
SIGHUP) and the XUA gate knows which homeCommunityId its certificate speaks for.

The gateway is a real ``serve`` started without the partner. The partner is a gateway
of another exchange, with a CA of its own, sending real ITI-38s (signed SAML assertion,
holder-of-key bound to its TLS certificate) through our outbound client. A second
community behind the same CA shows the two halves apart: after the first is removed
its CA stays trusted for the second, so the handshake passes and only the identity
check refuses it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from certs import authority
from gateway import demo
from gateway.client import OutboundClient
from gateway.federation import cli
from gateway.partners import Partner
from gateway.ports import SystemClock
from gateway.transport import OutboundError, default_transport
from gateway.xca.wiring import system_principal, xua_security
from profiles.xca.query import ITI38_ACTION, ITI38_REPLY, stored_query_to_xml
from profiles.xds.storedquery import QueryName, build
from profiles.xua import SigningCredentials
from tests.certs.support import Reload
from tests.e2e.databases import own_database
from tests.e2e.support import server_env, start_gateway, stop_gateway

pytestmark = pytest.mark.e2e

PARTNER, SIBLING, STRANGER = "2.999.51", "2.999.52", "2.999.59"


@pytest.fixture(scope="module")
def database_url() -> Iterator[str | None]:
    yield from own_database("partner_trust")


@pytest.fixture(scope="module")
def served(tmp_path_factory, database_url) -> Iterator[demo.Gateway]:
    gateway = start_gateway(tmp_path_factory.mktemp("partner-trust") / "community", database_url)
    yield gateway
    stop_gateway(gateway)


class PartnerGateway:
    """The partner's side: its certificate for TLS and for signing its assertions."""

    def __init__(self, folder: Path, ours: demo.Gateway) -> None:
        ca = authority.create_authority("Other exchange CA")
        (folder / "ca.pem").write_bytes(ca.certificate_pem())
        authority.issue(ca, "partner gateway").save(folder / "gw.pem", folder / "gw-key.pem")
        self.ca = folder / "ca.pem"
        tls = SimpleNamespace(certificate=folder / "gw.pem", private_key=folder / "gw-key.pem")
        self.credentials = SigningCredentials.from_pem(tls.private_key.read_bytes(),
                                                       tls.certificate.read_bytes())
        self.transport = default_transport(SimpleNamespace(tls=tls))
        self.us = Partner("1.2.3", "us", {"ITI-38": f"{ours.base_url}/xca/query"},
                          ours.cert("ca.pem").read_bytes(), timeout_seconds=10)

    def query(self, claimed: str) -> str:
        """An ITI-38 whose assertion says it comes from ``claimed``; the answer's root."""
        me = SimpleNamespace(community=SimpleNamespace(home_community_id=f"urn:oid:{claimed}",
                                                       name=f"community {claimed}"))
        client = OutboundClient(self.transport, security=xua_security(
            self.credentials, system_principal(me), SystemClock()))
        query = build(QueryName.FIND_DOCUMENTS, {
            "$XDSDocumentEntryPatientId": "'P-1^^^&2.999.51.1&ISO'",
            "$XDSDocumentEntryStatus": ["urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"],
        })
        answer = client.call(self.us, "ITI-38", ITI38_ACTION, stored_query_to_xml(query),
                             expect_action=ITI38_REPLY)
        answer.close()
        return answer.body.tag.rsplit("}", 1)[-1]


@pytest.fixture(scope="module")
def partner(tmp_path_factory, served) -> Iterator[PartnerGateway]:
    p = PartnerGateway(tmp_path_factory.mktemp("partner"), served)
    yield p
    p.transport.close()


def partners(served: demo.Gateway, database_url: str | None, *args: str) -> str:
    with Reload(served):
        out = cli(["partners", *args, "--config", str(served.config)],
                  server_env(database_url), f"partners {args[0]}")
    assert "signalled the running server" in out
    return out


def refused(partner: PartnerGateway, claimed: str) -> OutboundError:
    with pytest.raises(OutboundError) as info:
        partner.query(claimed)
    return info.value


def test_partners_add_and_remove_apply_to_inbound_trust_live(served, partner, database_url):
    trust_store = served.directory / "certs" / "trust.pem"
    before = trust_store.read_bytes()
    assert refused(partner, PARTNER).kind in ("tls", "unreachable")  # handshake refused

    add = ("add", "--url", "https://localhost:1", "--ca", str(partner.ca))
    out = partners(served, database_url, *add, "--home-community-id", PARTNER, "--name", "P")
    assert "CN=Other exchange CA" in out
    assert partner.query(PARTNER) == "AdhocQueryResponse"
    # Its certificate speaking for a community that is not its own.
    fault = refused(partner, STRANGER)
    assert fault.kind == "fault" and "FailedAuthentication" in " ".join(fault.subcodes)

    # A sibling community behind the same CA; then the first one leaves.
    partners(served, database_url, *add, "--home-community-id", SIBLING, "--name", "S")
    out = partners(served, database_url, "remove", PARTNER)
    assert "trust store unchanged" in out
    fault = refused(partner, PARTNER)  # the handshake passed: the identity check refused
    assert fault.kind == "fault" and "FailedAuthentication" in " ".join(fault.subcodes)
    assert partner.query(SIBLING) == "AdhocQueryResponse"

    out = partners(served, database_url, "remove", SIBLING)
    assert "untrusted" in out
    assert refused(partner, SIBLING).kind in ("tls", "unreachable")
    assert trust_store.read_bytes() == before
    assert served.process.poll() is None  # the same server all along
    log = served.server_log()
    assert log.count("XUA refused") >= 2
