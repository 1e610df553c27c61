"""XCPD between real gateway processes on loopback over mutual TLS: VA's initiating gateway
discovers a person held by DoD and by a partner HIE (ITI-55 out with signed SAML, verified
by each responder), verifies and stores the correlations, and an ITI-18 to /ig/query then
finds both communities' documents. Nobody correlated anything by hand: the first ITI-18
for the uncorrelated patient runs discovery itself ([xcpd] discovery, on by default).
/ig/xcpd answers one merged PRPA_IN201306UV02 that validates against the HL7 v3 schema,
and ``patients discover`` / ``patients show`` print the same from the command line.

With GATEWAY_TEST_DATABASE_URL set, DoD runs on a PostgreSQL database of its own (created
next to that one and dropped afterwards), VA and the partner on SQLite.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

import wsdl
from gateway import consumer, demo
from gateway.federation import Community, Person, ccda_files, cli
from profiles.hl7v3.control import QueryResponseCode
from profiles.hl7v3.datatypes import II, PN, TS, gender
from profiles.hl7v3.wrapper import AckType, Device
from profiles.xcpd.models import PatientDiscoveryQuery, QueryParameters
from profiles.xcpd.query import patient_discovery_query_to_xml
from profiles.xcpd.response import parse_patient_discovery_response
from tests.e2e.federation import Federation, prepare, serving, va_and_dod
from tests.profiles.hl7v3_fixtures import SCHEMAS

pytestmark = pytest.mark.e2e

# OIDs under 2.999 (X.660's example arc); a synthetic person.
VA_ID, DOD_ID, HIE_ID = ("V-700^^^&2.999.2.1&ISO", "D-700^^^&2.999.1.1&ISO",
                         "MRN-700^^^&2.999.3.1&ISO")
SOMEONE = Person(given="Robin", family="Okafor", birth="19661023", gender="F")
ACTION = "urn:hl7-org:v3:PRPA_IN201305UV02:CrossGatewayPatientDiscovery"


class Fed(Federation):
    @property
    def hie(self) -> Community:
        return self.others[0]


@pytest.fixture(scope="module")
def fed(tmp_path_factory, own_database_url) -> Iterator[Fed]:
    work: Path = tmp_path_factory.mktemp("discovery")
    hie = Community("Partner", "Partner HIE", "2.999.3", HIE_ID,
                    ccda_files("Partner", work / "cda"))
    # one person, a different id in each community; nobody correlated
    fed = prepare(va_and_dod(Fed, work, VA_ID, DOD_ID, own_database_url, hie), work, SOMEONE)
    with serving(fed):
        yield fed


@pytest.fixture
def session(fed):
    s = demo.mtls_session(fed.va.served)
    yield s
    s.close()


def show(community: Community, pid: str, env) -> str:
    return cli(["patients", "show", pid, "--config", str(community.served.config)], env,
               "patients show")


def test_the_first_query_discovers_the_person_then_finds_both_communities_documents(
        fed, session):
    assert "partner:" not in show(fed.va, VA_ID, fed.envs["VA"])  # nobody correlated yet
    outcome = consumer.query(session, fed.va.served, VA_ID)
    wsdl.schema("ebrs").assertValid(outcome.body)
    assert outcome.status == "Success" and not outcome.errors
    found = outcome.by_community()
    assert set(found) == {fed.dod.hcid, fed.hie.hcid}
    for c in fed.responders:
        assert {e.hash for e in found[c.hcid]} == set(c.imported)
    shown = show(fed.va, VA_ID, fed.envs["VA"])
    assert f"partner:  {DOD_ID} at {fed.dod.hcid}" in shown
    assert f"partner:  {HIE_ID} at {fed.hie.hcid}" in shown
    # each responder verified VA's signed assertion and recorded VA's id for its patient
    for c in fed.responders:
        log = c.served.server_log().splitlines()
        assert not [line for line in log if "XUA refused" in line]
        assert any('"transaction":"ITI-55"' in line and '"status":200' in line for line in log)
        assert f"partner:  {VA_ID} at urn:oid:2.999.2" in show(c, c.patient_id, fed.envs[c.key])


def test_ig_xcpd_answers_one_merged_schema_valid_response(fed, session):
    params = QueryParameters(names=(PN.of("Robin", "Okafor"),), gender=gender("F"),
                             birth_time=TS("19661023"), ids=(II("2.999.2.1", "V-700"),))
    query = PatientDiscoveryQuery.new(params, sender=Device(II("2.999.2.50")),
                                      receiver=Device(II("2.999.2"), "2.999.2"),
                                      assigning_authority="2.999.2.1")
    answer = consumer.post(session, fed.va.served, "/ig/xcpd", ACTION,
                           patient_discovery_query_to_xml(query))
    assert answer.status == 200 and answer.fault() is None
    schema = etree.XMLSchema(etree.parse(str(SCHEMAS / "PRPA_IN201306UV02.xsd")))
    body = etree.fromstring(etree.tostring(answer.body))
    assert schema.validate(body), schema.error_log.last_error
    response = parse_patient_discovery_response(answer.body)
    assert (response.acknowledgement.type_code, response.query_response_code) == (
        AckType.AA, QueryResponseCode.OK)
    assert sorted((m.home_community_id, str(m.patient.id)) for m in response.matches) == [
        ("2.999.1", DOD_ID), ("2.999.3", HIE_ID)]
    assert all(m.score == 100 for m in response.matches)


def test_patients_discover_prints_every_community_verified(fed):
    out = cli(["patients", "discover", "--config", str(fed.va.served.config), "--given",
               SOMEONE.given, "--family", SOMEONE.family, "--birth", SOMEONE.birth,
               "--gender", SOMEONE.gender], fed.envs["VA"], "patients discover")
    rows = {line.split()[0]: line for line in out.splitlines()[1:3]}
    for c in fed.responders:
        assert c.patient_id in rows[c.hcid] and " yes " in rows[c.hcid]
    assert out.splitlines()[-1] == f"2 correlation(s) stored for {VA_ID}"
