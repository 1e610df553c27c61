"""``documents send``: VA's gateway sends a C-CDA to DoD's /xdr (ITI-41 MTOM over mutual
TLS with a signed XUA assertion); DoD registers it and lists it for its patient.

VA's repository uses DoD's /xds/registry as its registry (``[repository] registry_url``):
an ITI-41 to VA's /xdr registers the metadata at DoD (ITI-42 over mutual TLS), and DoD's
refusal leaves no metadata anywhere and comes back as DoD's error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

from gateway import demo
from gateway.federation import PERSON, Community, cli
from tests.e2e.federation import Federation, prepare, serving
from tests.e2e.support import server_env

pytestmark = pytest.mark.e2e

CCDA = Path(__file__).resolve().parents[2].parent / "shared" / "conformance" / "ccda"
CCD = CCDA / "hl7ccda21_C-CDA_R2-1_CCD.xml"
NOTE = CCDA / "hl7ccda30_progress-note-header-example.xml"
DOD_ID = "D-700^^^&2.999.1.1&ISO"
VA_ID = "V-700^^^&2.999.2.1&ISO"


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> Iterator[tuple[Community, Community, dict]]:
    work = tmp_path_factory.mktemp("xdr")
    env = server_env(None)
    fed = prepare(Federation(va=Community("VA", "VA", "2.999.2", VA_ID),
                             dod=Community("DoD", "DoD", "2.999.1", DOD_ID),
                             envs={"VA": env, "DoD": env}), work, PERSON)
    with open(fed.va.served.config, "a", encoding="utf-8") as f:
        f.write(f'\n[repository]\nregistry_url = "{fed.dod.served.base_url}/xds/registry"\n')
    with serving(fed):
        yield fed.dod, fed.va, env


def unique_id(file: Path) -> str:
    cda_id = etree.parse(str(file)).find("{urn:hl7-org:v3}id")
    ext = cda_id.get("extension")
    return cda_id.get("root") + (f"^{ext}" if ext else "")


def listed(community: Community, patient: str, env) -> str:
    return cli(["documents", "list", "--patient", patient, "--config",
                str(community.served.config)], env, "documents list")


@pytest.mark.skipif(not CCD.is_file(), reason="conformance C-CDA sample missing")
def test_send_ccda_to_partner_xdr_is_registered_there(pair):
    dod, va, env = pair
    out = cli(["documents", "send", str(CCD), "--partner", dod.oid, "--patient", DOD_ID,
               "--config", str(va.served.config)], env, "documents send")
    assert out.splitlines()[0] == "status Success", out
    assert unique_id(CCD) in listed(dod, DOD_ID, env)


def test_send_for_unknown_patient_reports_failure(pair):
    dod, va, env = pair
    with pytest.raises(demo.DemoFailed) as err:
        cli(["documents", "send", str(CCD), "--partner", dod.oid,
             "--patient", "NOBODY^^^&2.999.1.1&ISO", "--config", str(va.served.config)],
            env, "documents send")
    assert "XDSUnknownPatientId" in str(err.value)
    assert "status Failure" in str(err.value)


@pytest.mark.skipif(not NOTE.is_file(), reason="conformance C-CDA sample missing")
def test_xdr_to_repository_with_remote_registry_registers_there(pair):
    dod, va, env = pair
    out = cli(["documents", "send", str(NOTE), "--partner", va.oid, "--patient", DOD_ID,
               "--config", str(dod.served.config)], env, "documents send")
    assert out.splitlines()[0] == "status Success", out
    assert unique_id(NOTE) in listed(dod, DOD_ID, env)  # DoD's registry holds the metadata
    assert unique_id(NOTE) not in listed(va, DOD_ID, env)  # VA's own registry is unused


def test_remote_registry_refusal_leaves_no_metadata(pair):
    dod, va, env = pair
    nobody = VA_ID  # VA's own index knows it, DoD's registry does not: the refusal is DoD's
    with pytest.raises(demo.DemoFailed) as err:
        cli(["documents", "send", str(CCD), "--partner", va.oid, "--patient", nobody,
             "--config", str(dod.served.config)], env, "documents send")
    assert "status Failure" in str(err.value)
    assert "XDSUnknownPatientId" in str(err.value)
    for c in (dod, va):
        assert "no documents" in listed(c, nobody, env)
