"""XCA with misbehaving partners, every process real: VA's initiating gateway (``serve``)
fans ITI-18/43 out as ITI-38/39 over mutual TLS to DoD's responding gateway, which has
the documents, and to six communities that fail in the ways real ones do: one is down
(port closed), one never answers within its partner timeout, one answers a SOAP fault
(a real vendor's), one answers garbage, one a truncated envelope, one drops the
connection half-way through its answer, and one answers a valid response after VA's
overall deadline. Each failed community costs exactly one
XDSUnavailableCommunity with its homeCommunityId as location; DoD's documents all come
through, and retrieved bytes hash to what DoD imported.

``tests/e2e/test_federation.py`` covers the happy path (and a down community and an
ActionNotSupported fault beside DoD); this module is about every failure at once, with
short timeouts so it stays well under a minute. The misbehaving partners are
``tests/e2e/misbehaving_partner.py`` processes serving TLS with a test PKI of their own.

With GATEWAY_TEST_DATABASE_URL set, DoD runs on a PostgreSQL database of its own
(created next to that one and dropped afterwards), VA on SQLite.
"""

from __future__ import annotations

import hashlib
import selectors
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

import wsdl
from certs import authority
from gateway import consumer, demo
from gateway.federation import PERSON as SOMEONE
from gateway.federation import cli, correlate, in_parallel
from tests.conftest import CONFORMANCE
from tests.e2e.federation import (
    Federation,
    correlate_elsewhere,
    prepare,
    serving,
    va_and_dod,
    xop_inlined,
)

pytestmark = pytest.mark.e2e

SCRIPT = Path(__file__).with_name("misbehaving_partner.py")
METRIPORT = CONFORMANCE / "messages" / "metriport"
VA_ID = "V-700^^^&2.999.2.1&ISO"
DOD_ID = "D-700^^^&2.999.1.1&ISO"
READY_WAIT_S = 30.0

# VA's overall fan-out deadline is 0.8 x [limits] request_timeout_seconds.
DEADLINE_S = 4.0  # DoD answers in well under a second; room for a loaded machine
HANG_TIMEOUT_S = 1.0  # the silent partner's own timeout, well inside the deadline
LATE_AFTER_S = DEADLINE_S + 2.5  # the late partner answers after the deadline...
LATE_TIMEOUT_S = 30.0  # ...but within its own timeout: the deadline is what cuts it


@dataclass(frozen=True)
class Misbehaviour:
    key: str
    oid: str
    args: tuple[str, ...]  # the script's mode and options; () means no process (down)
    timeout: float = 5.0
    reason: str = ""  # what VA's RegistryError must say about it (a prefix or a part)


ANSWERS = (
    f"--answer=urn:ihe:iti:2007:CrossGatewayQuery="
    f"{METRIPORT / 'xca-iti38-resp-success-2-extrinsicobjects.xml'}",
    f"--answer=urn:ihe:iti:2007:CrossGatewayRetrieve="
    f"{METRIPORT / 'xca-iti39-resp-success-inline-2-docs.xml'}",
)
BAD = (
    Misbehaviour("down", "2.999.21", (), reason="connection failed"),
    Misbehaviour("hang", "2.999.22", ("hang",), HANG_TIMEOUT_S,
                 f"no answer within {HANG_TIMEOUT_S:g} s"),
    Misbehaviour("fault", "2.999.23", (
        "answer", "--status", "500",
        f"--answer=*={METRIPORT / 'xca-iti39-resp-soap12-fault-wrong-endpoint.xml'}"),
        reason="SOAP fault soap:Sender: Unexpected element"),
    Misbehaviour("garbage", "2.999.24", ("garbage",), reason="not well-formed XML"),
    Misbehaviour("truncated", "2.999.25", ("truncated", *ANSWERS),
                 reason="not well-formed XML"),
    Misbehaviour("cut", "2.999.27", ("cut", *ANSWERS), reason="the answer broke off"),
    Misbehaviour("late", "2.999.26", ("answer", "--delay", str(LATE_AFTER_S), *ANSWERS),
                 LATE_TIMEOUT_S, "no answer within"),
)


@dataclass
class World(Federation):
    partners: dict[str, subprocess.Popen] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)
    found: list = field(default_factory=list)  # DoD's DocumentEntries, from the query test

    def partner_log(self, key: str) -> str:
        return self.logs[key].read_text(errors="replace")


def _partner_pki(folder: Path) -> tuple[Path, Path, Path]:
    """A CA of the misbehaving communities' own and one server certificate from it."""
    folder.mkdir(parents=True, exist_ok=True)
    ca = authority.create_authority("Misbehaving partners test CA")
    leaf = authority.issue(ca, "misbehaving partner")
    (folder / "ca.pem").write_bytes(ca.certificate_pem())
    leaf.save(folder / "partner.pem", folder / "partner-key.pem")
    return folder / "ca.pem", folder / "partner.pem", folder / "partner-key.pem"


def _start(bad: Misbehaviour, pki: tuple[Path, Path, Path], client_ca: Path,
           folder: Path) -> tuple[subprocess.Popen, Path]:
    log = folder / f"{bad.key}.log"
    with log.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, str(SCRIPT), *bad.args, "--cert", str(pki[1]), "--key",
             str(pki[2]), "--client-ca", str(client_ca)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
    return process, log


def _ready_port(process: subprocess.Popen, log: Path) -> int:
    """The port from the process's ``READY <port>`` line (waits for it, not for a time)."""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(READY_WAIT_S):
            raise AssertionError(f"no READY line within {READY_WAIT_S:g} s:\n{log.read_text()}")
    line = process.stdout.readline().decode().split()
    if len(line) != 2 or line[0] != "READY":
        raise AssertionError(f"partner did not start ({line}):\n{log.read_text()}")
    return int(line[1])


@pytest.fixture(scope="module")
def world(tmp_path_factory, own_database_url) -> Iterator[World]:
    work: Path = tmp_path_factory.mktemp("xca-failures")
    world = prepare(va_and_dod(World, work, VA_ID, DOD_ID, own_database_url), work, SOMEONE)
    try:
        pki = _partner_pki(work / "misbehaving")
        for bad in BAD:
            if bad.args:
                world.partners[bad.key], world.logs[bad.key] = _start(
                    bad, pki, world.va.served.cert("ca.pem"), work / "misbehaving")
        config = world.va.served.config
        text = config.read_text(encoding="utf-8")
        assert "\n# [limits]\n" in text, "init no longer writes a commented [limits] table"
        config.write_text(text.replace(
            "\n# [limits]\n", f"\n[limits]\nrequest_timeout_seconds = {DEADLINE_S / 0.8:g}\n"),
            encoding="utf-8")
        ports = {bad.key: _ready_port(world.partners[bad.key], world.logs[bad.key])
                 if bad.args else demo.free_port() for bad in BAD}

        def register(bad: Misbehaviour) -> str:
            return cli(["partners", "add", "--config", str(config), "--home-community-id",
                        bad.oid, "--name", bad.key, "--url", f"https://localhost:{ports[bad.key]}",
                        "--ca", str(pki[0]), "--timeout", f"{bad.timeout:g}"],
                       world.envs["VA"], f"partners add {bad.key}")

        in_parallel(BAD, register)
        correlate(world.va, DOD_ID, world.dod)
        for bad in BAD:
            correlate_elsewhere(world.va, bad.oid, f"X-{bad.key}^^^&{bad.oid}.1&ISO")
        with serving(world):
            yield world
    finally:
        for process in world.partners.values():
            process.terminate()
            process.wait(10)
            process.stdout.close()


@pytest.fixture
def session(world):
    s = demo.mtls_session(world.va.served)
    yield s
    s.close()


def _failed(outcome) -> dict[str, str]:
    """location -> reason of each XDSUnavailableCommunity; one per community or it fails."""
    locations = [e.location for e in outcome.errors]
    assert len(locations) == len(set(locations)), outcome.errors
    assert {e.code for e in outcome.errors} == {"XDSUnavailableCommunity"}, outcome.errors
    assert {e.severity.rsplit(":", 1)[-1] for e in outcome.errors} == {"Error"}
    return {e.location: e.context for e in outcome.errors}


def _assert_each_failure_explained(world: World, failed: dict[str, str], path: str) -> None:
    assert set(failed) == {f"urn:oid:{bad.oid}" for bad in BAD}
    for bad in BAD:
        reason = failed[f"urn:oid:{bad.oid}"]
        assert reason.startswith(bad.reason) or bad.reason in reason, (bad.key, reason)
        if bad.args:  # the call really reached the process (not a TLS refusal)
            assert f"received {path}" in world.partner_log(bad.key), bad.key


def test_query_keeps_dod_documents_beside_every_kind_of_failure(world, session):
    outcome = consumer.query(session, world.va.served, VA_ID)
    wsdl.schema("ebrs").assertValid(outcome.body)
    assert outcome.status == "PartialSuccess"
    _assert_each_failure_explained(world, _failed(outcome), "/xca/query")
    # Only DoD's documents: the late partner's two ExtrinsicObjects were dropped.
    by_community = outcome.by_community()
    assert set(by_community) == {world.dod.hcid}
    dod = by_community[world.dod.hcid]
    assert {e.hash for e in dod} == set(world.dod.imported) and len(dod) == 2
    # The deadline, not the late partner, decided when VA answered.
    assert DEADLINE_S * 0.9 <= outcome.seconds < LATE_AFTER_S, outcome.seconds
    world.found[:] = dod


def test_retrieve_returns_dod_bytes_beside_every_kind_of_failure(world, session):
    found = world.found or consumer.query(session, world.va.served, VA_ID).by_community()[
        world.dod.hcid]
    elsewhere = [replace(found[0], home_community_id=f"urn:oid:{bad.oid}") for bad in BAD]
    outcome = consumer.retrieve(session, world.va.served, [*found, *elsewhere])
    wsdl.schema("ebrs").assertValid(xop_inlined(outcome.body))
    assert outcome.status == "PartialSuccess"
    _assert_each_failure_explained(world, _failed(outcome), "/xca/retrieve")
    assert len(outcome.documents) == len(found) == 2
    for doc in outcome.documents:
        assert doc.home_community_id == world.dod.hcid
        sha1 = hashlib.sha1(doc.content, usedforsecurity=False).hexdigest()
        assert doc.content == world.dod.imported[sha1].read_bytes()
    assert DEADLINE_S * 0.9 <= outcome.seconds < LATE_AFTER_S, outcome.seconds
