"""``ihe-gateway patients discover`` (against in-process partners) and ``patients show``:
the table per community, correlations stored, then shown with the merge history."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.client import OutboundClient
from gateway.partners.directory import PartnerDirectory
from gateway.patients.cli import patients_group
from gateway.xca.initiating import FanOut
from gateway.xcpd import wiring
from gateway.xcpd.fanout import DiscoveryFanOut
from profiles.hl7v3.datatypes import PN, TS, gender
from profiles.hl7v3.patient import Person
from tests.gateway.xca.peers import partner
from tests.gateway.xcpd.peers import XcpdPeers

HOME = "2.999.2"
DOD, PARTNER, DOWN = "2.999.1", "2.999.3", "2.999.4"
OURS = "V-500^^^&2.999.2.1&ISO"
ALEX = Person(names=(PN.of("Alex", "Rivera"),), gender=gender("M"), birth_time=TS("19700412"))


@pytest.fixture
def config(tmp_path: Path, database_url: str) -> str:
    path = tmp_path / "gateway.toml"
    path.write_text(
        f'[community]\nhome_community_id = "{HOME}"\n'
        f'[storage]\ndata_dir = "{tmp_path / "data"}"\n[database]\nurl = "{database_url}"\n',
        encoding="utf-8")
    return str(path)


@pytest.fixture
def peers(monkeypatch) -> XcpdPeers:
    peers = XcpdPeers()

    @contextmanager
    def standalone(config, database, index):
        with ThreadPoolExecutor(4) as pool:
            xca = FanOut(OutboundClient(peers.transport()),
                         PartnerDirectory([partner(o) for o in (DOD, PARTNER, DOWN)]),
                         pool=pool)
            yield DiscoveryFanOut.beside(xca, deadline_seconds=5)

    monkeypatch.setattr(wiring, "standalone", standalone)
    return peers


def cli(*args: str):
    return CliRunner().invoke(patients_group, list(args), catch_exceptions=False)


def test_discover_prints_each_community_and_stores_verified_matches(config, peers):
    assert cli("add", OURS, "--config", config, "--given", "Alex", "--family", "Rivera",
               "--birth", "19700412", "--gender", "M").exit_code == 0
    peers.knows(DOD, ALEX, "D-1")
    peers.knows(PARTNER, Person(names=(PN.of("Alexa", "Smith"),), birth_time=TS("19881111")),
                "MRN-9")
    peers.down(DOWN)
    result = cli("discover", "--config", config, "--given", "Alex", "--family", "Rivera",
                 "--birth", "19700412", "--gender", "M")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["community", "their", "id", "score", "verified", "time",
                                "error"]
    row = {line.split()[0]: line for line in lines[1:4]}
    assert f"D-1^^^&{DOD}.1&ISO" in row[f"urn:oid:{DOD}"]
    assert "100%" in row[f"urn:oid:{DOD}"] and " yes " in row[f"urn:oid:{DOD}"]
    assert "no: below the match threshold" in row[f"urn:oid:{PARTNER}"]
    assert "error" in row[f"urn:oid:{DOWN}"] and "refused" in row[f"urn:oid:{DOWN}"]
    assert lines[-1] == f"1 correlation(s) stored for {OURS}"
    shown = cli("show", OURS, "--config", config).output
    assert f"partner:  D-1^^^&{DOD}.1&ISO at urn:oid:{DOD} (for {OURS})\n" in shown
    assert "MRN-9" not in shown


def test_discover_for_someone_we_do_not_hold_stores_nothing(config, peers):
    peers.knows(DOD, ALEX, "D-1")
    peers.no_match(PARTNER)
    peers.no_match(DOWN)
    result = cli("discover", "--config", config, "--given", "Alex", "--family", "Rivera",
                 "--birth", "19700412", "--community", DOD)
    assert result.exit_code == 0, result.output
    assert [r.partner.bare_oid for r in peers.requests] == [DOD]
    assert result.output.splitlines()[-1] == "no patient of ours matches: nothing stored"


def test_show_lists_merge_history(config):
    old, new = "OLD-1^^^&2.999.2.1&ISO", "NEW-1^^^&2.999.2.1&ISO"
    for pid in (old, new):
        assert cli("add", pid, "--config", config, "--family", "Rivera").exit_code == 0
    from gateway.config import load_config
    from gateway.patients.index import SqlPatientIndex
    from gateway.store.db import Database
    from profiles.pix.ports import PatientRecord, parse_cx

    database = Database(load_config(config).database_url)
    try:
        SqlPatientIndex(database).merge(PatientRecord(parse_cx(new)), [parse_cx(old)],
                                        source="ITI-44")
    finally:
        database.dispose()
    shown = cli("show", new, "--config", config).output
    assert f"merged:   {old} on " in shown and "by ITI-44 (0 correlation(s) moved)" in shown
    assert f"{old} was merged into {new}" in cli("show", old, "--config", config).output
