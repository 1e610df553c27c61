"""XCA between real gateway processes on loopback over mutual TLS: VA's initiating gateway
(ITI-18/43 in, ITI-38/39 out with signed SAML assertions) and DoD's responding gateway
(ITI-38/39 in, verified before they run), set up with the operator's commands. VA also
knows a community that is down and one whose endpoint answers a SOAP fault: each costs
one XDSUnavailableCommunity (its homeCommunityId as location) while DoD's documents come
through intact. Every answer validates against the ebRS schemas.

With GATEWAY_TEST_DATABASE_URL set, DoD runs on a PostgreSQL database of its own
(created next to that one and dropped afterwards), VA on SQLite.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from lxml import etree

import wsdl
from gateway import consumer, demo
from gateway.federation import PERSON as SOMEONE
from gateway.federation import cli, correlate
from tests.e2e.federation import (
    Federation,
    correlate_elsewhere,
    prepare,
    serving,
    va_and_dod,
    xop_inlined,
)

pytestmark = pytest.mark.e2e

DOWN, FAULTY = "2.999.8", "2.999.9"
VA_ID = "V-500^^^&2.999.2.1&ISO"
DOD_ID = "D-500^^^&2.999.1.1&ISO"


@pytest.fixture(scope="module")
def fed(tmp_path_factory, own_database_url) -> Iterator[Federation]:
    work: Path = tmp_path_factory.mktemp("federation")
    fed = prepare(va_and_dod(Federation, work, VA_ID, DOD_ID, own_database_url), work, SOMEONE)
    va, dod, env = fed.va, fed.dod, fed.envs["VA"]
    # A community nobody answers for, and one whose ITI-38/39 endpoints are DoD's
    # registry (a real gateway answering wsa:ActionNotSupported).
    ca = str(dod.served.cert("ca.pem"))
    cli(["partners", "add", "--config", str(va.served.config), "--home-community-id", DOWN,
         "--name", "Down", "--url", f"https://localhost:{demo.free_port()}", "--ca", ca,
         "--timeout", "5"], env, "partners add Down")
    registry = f"{dod.served.base_url}/xds/registry"
    cli(["partners", "add", "--config", str(va.served.config), "--home-community-id", FAULTY,
         "--name", "Faulty", "--endpoint", f"ITI-38={registry}", "--endpoint",
         f"ITI-39={registry}", "--ca", ca], env, "partners add Faulty")
    correlate(va, DOD_ID, dod)
    correlate_elsewhere(va, DOWN, "X-1^^^&2.999.8.1&ISO")
    correlate_elsewhere(va, FAULTY, "Y-1^^^&2.999.9.1&ISO")
    with serving(fed):
        yield fed


@pytest.fixture
def session(fed):
    s = demo.mtls_session(fed.va.served)
    yield s
    s.close()


def errors(outcome) -> list[tuple[str, str]]:
    return sorted((e.code, e.location) for e in outcome.errors)


def test_query_fans_out_and_keeps_dod_results_beside_failed_communities(fed, session):
    outcome = consumer.query(session, fed.va.served, VA_ID)
    wsdl.schema("ebrs").assertValid(outcome.body)
    assert outcome.status == "PartialSuccess"
    assert errors(outcome) == [("XDSUnavailableCommunity", f"urn:oid:{DOWN}"),
                               ("XDSUnavailableCommunity", f"urn:oid:{FAULTY}")]
    why = {e.location: e.context for e in outcome.errors}
    assert why[f"urn:oid:{DOWN}"].startswith("connection failed")
    assert why[f"urn:oid:{FAULTY}"].startswith("SOAP fault") and "not supported" in why[
        f"urn:oid:{FAULTY}"]
    dod = outcome.by_community()[fed.dod.hcid]
    assert {e.hash for e in dod} == set(fed.dod.imported) and len(dod) == 2
    assert set(outcome.by_community()) == {fed.dod.hcid}
    # DoD answered VA's ITI-38 after verifying its assertion; nothing was refused.
    log = fed.dod.served.server_log().splitlines()
    refused = [line for line in log if "XUA refused" in line]
    assert refused == []
    assert any('"transaction":"ITI-38"' in line and '"status":200' in line for line in log)


def test_retrieve_returns_dod_bytes_and_reports_the_down_community(fed, session):
    found = consumer.query(session, fed.va.served, VA_ID).by_community()[fed.dod.hcid]
    absent = replace(found[0], home_community_id=f"urn:oid:{DOWN}")
    outcome = consumer.retrieve(session, fed.va.served, [*found, absent])
    wsdl.schema("ebrs").assertValid(xop_inlined(outcome.body))
    assert outcome.status == "PartialSuccess"
    assert errors(outcome) == [("XDSUnavailableCommunity", f"urn:oid:{DOWN}")]
    assert len(outcome.documents) == 2
    for doc in outcome.documents:
        assert doc.home_community_id == fed.dod.hcid
        sha1 = hashlib.sha1(doc.content).hexdigest()
        assert doc.content == fed.dod.imported[sha1].read_bytes()


def test_responder_refuses_a_query_without_assertion(fed):
    """VA's certificate passes DoD's TLS, but /xca/query also needs XUA."""
    with demo.mtls_session(fed.va.served) as s:
        s.verify = str(fed.dod.served.cert("ca.pem"))
        answer = consumer.post(s, fed.dod.served, "/xca/query",
                               "urn:ihe:iti:2007:CrossGatewayQuery",
                               etree.fromstring(consumer.find_documents(DOD_ID)))
    assert answer.status == 400 and answer.fault()
    assert "InvalidSecurity" in etree.tostring(answer.body).decode()
