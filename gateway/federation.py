"""Local communities that know each other: what the federation demo and its tests set up.

Everything goes through the operator's commands, as a person would type them:
``ihe-gateway init`` (a community with its own development PKI and database),
``partners add --url --ca`` (each registers the others and trusts their CA for inbound
mutual TLS and XUA), ``patients add`` and ``documents import``. The demo finds the
person's communities with XCPD; ``correlate`` writes a correlation straight into the
index, for tests whose partners cannot answer ITI-55 (misbehaving or absent ones).
Each community's setup runs in its own thread: they share nothing but the CA files.
"""

from __future__ import annotations

import hashlib
import subprocess
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

from gateway.demo import DemoFailed, Gateway, free_port, ihe_gateway_command


@dataclass(frozen=True)
class Person:
    given: str
    family: str
    birth: str  # YYYYMMDD
    gender: str  # M, F, UN


@dataclass
class Community:
    """One community: who it is, its patient id for the person, the files it holds."""

    key: str  # short label: DoD, VA, Partner
    name: str
    oid: str
    patient_id: str  # CX, in this community's own domain
    files: tuple[Path, ...] = ()
    links: tuple[str, ...] = ()  # other ids of the person this community's index lists
    gateway: Gateway | None = None
    imported: dict[str, Path] = field(default_factory=dict)  # SHA-1 -> file

    @property
    def hcid(self) -> str:
        return f"urn:oid:{self.oid}"

    @property
    def served(self) -> Gateway:
        if self.gateway is None:
            raise DemoFailed(f"{self.name} was not initialised")
        return self.gateway


def cli(args: Sequence[str], env: Mapping[str, str] | None, what: str) -> str:
    """Run ``ihe-gateway ARGS``; its output, or DemoFailed with its error output."""
    result = subprocess.run([*ihe_gateway_command(), *args], capture_output=True, text=True,
                            env=dict(env) if env is not None else None, check=False)
    if result.returncode != 0:
        raise DemoFailed(f"{what} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return result.stdout


def in_parallel(items: Sequence, work: Callable) -> list:
    """``work(item)`` for every item at once (each is a few CLI processes); first error raised."""
    with ThreadPoolExecutor(max(1, len(items))) as pool:
        return list(pool.map(work, items))


def init(community: Community, workdir: Path, env: Mapping[str, str] | None) -> str:
    """``ihe-gateway init DIR --community-id OID --name NAME --port N``."""
    directory = workdir / community.key.lower()
    port = free_port()
    out = cli(["init", str(directory), "--community-id", community.oid, "--name",
               community.name, "--port", str(port)], env, f"init {community.name}")
    community.gateway = Gateway(directory=directory, port=port)
    return out


def add_partner(community: Community, partner: Community, env: Mapping[str, str] | None,
                *extra: str) -> str:
    """``partners add``: ``partner`` is one of our gateways, trusted by its CA."""
    gw, other = community.served, partner.served
    return cli(["partners", "add", "--config", str(gw.config), "--home-community-id",
                partner.oid, "--name", partner.name, "--url", other.base_url, "--ca",
                str(other.cert("ca.pem")), *extra], env,
               f"{community.name}: partners add {partner.name}")


def add_patient(community: Community, person: Person, env: Mapping[str, str] | None) -> str:
    """``patients add``, listing the other ids this community knows for the person."""
    args = ["patients", "add", community.patient_id, "--config", str(community.served.config),
            "--given", person.given, "--family", person.family, "--birth", person.birth,
            "--gender", person.gender]
    for link in community.links:
        args += ["--link", link]
    return cli(args, env, f"{community.name}: patients add")


def import_documents(community: Community, env: Mapping[str, str] | None) -> list[str]:
    """``documents import FILE --patient ID`` per file; remembers each file by its SHA-1
    (how the registry's DocumentEntry.hash names it, whatever metadata import chose)."""
    lines = []
    for file in community.files:
        out = cli(["documents", "import", str(file), "--patient", community.patient_id,
                   "--config", str(community.served.config)], env,
                  f"{community.name}: documents import {file.name}")
        sha1 = hashlib.sha1(file.read_bytes(), usedforsecurity=False).hexdigest()
        community.imported[sha1] = file
        lines.append(f"{file.name}: {out.strip().splitlines()[0] if out.strip() else 'ok'}")
    return lines


def correlate(community: Community, partner_id: str, partner: Community) -> None:
    """Remember that ``partner`` knows our patient as ``partner_id`` (what XCPD records),
    without asking it: for tests whose partner cannot answer ITI-55."""
    from gateway.config import load_config
    from gateway.patients.index import SqlPatientIndex
    from gateway.store.db import Database
    from profiles.pix.ports import parse_cx

    config = load_config(community.served.config)
    database = Database(config.database_url, pool_size=1, max_overflow=0)
    try:
        SqlPatientIndex(database).record_correlation(
            parse_cx(community.patient_id), parse_cx(partner_id), partner.hcid)
    finally:
        database.dispose()


# -- the demo's federation: DoD, VA and a private-sector partner --------------------------

CCDA_DIR = Path(__file__).resolve().parents[2] / "shared" / "conformance" / "ccda"
CCDA_FILES = {
    "DoD": ("hl7ex_CCD1_CCD.xml", "hl7ex_Diagnostic_Imaging_Report.xml"),  # distinct ids
    "Partner": ("hl7ex_Progress_Note.xml", "hl7ex_Referral_Note.xml"),
}
# OIDs under 2.999, the arc ITU-T X.660 reserves for examples.
DOD_OID, VA_OID, PARTNER_OID = "2.999.1", "2.999.2", "2.999.3"
DOD_PATIENT = "1234567890^^^&2.999.1.1&ISO"  # an EDIPI-like DoD id
VA_PATIENT = "1012345678V123456^^^&2.999.2.1&ISO"  # an ICN-like VA id
PARTNER_PATIENT = "MRN-778899^^^&2.999.3.1&ISO"  # the partner hospital's MRN


def ccda_files(key: str, folder: Path) -> tuple[Path, ...]:
    """The conformance C-CDA samples when present, else small synthetic ones written here."""
    names = CCDA_FILES.get(key, ())
    if CCDA_DIR.is_dir() and all((CCDA_DIR / n).is_file() for n in names):
        return tuple(CCDA_DIR / n for n in names)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, name in enumerate(names):
        path = folder / f"{key}-{i + 1}.xml"
        path.write_text(
            '<?xml version="1.0" encoding="UTF-8"?>\n<ClinicalDocument xmlns="urn:hl7-org:v3">'
            f'<templateId root="2.16.840.1.113883.10.20.22.1.1"/><id root="{uuid.uuid4()}"/>'
            f"<title>{escape(key)} synthetic document {i + 1} ({escape(name)})</title>"
            "</ClinicalDocument>\n", encoding="utf-8")
        out.append(path)
    return tuple(out)


@dataclass
class Federation:
    dod: Community
    va: Community
    partner: Community

    @property
    def all(self) -> tuple[Community, ...]:
        return (self.dod, self.va, self.partner)

    @property
    def responders(self) -> tuple[Community, ...]:
        return (self.dod, self.partner)


def define(workdir: Path) -> Federation:
    return Federation(
        dod=Community("DoD", "DoD MHS GENESIS", DOD_OID, DOD_PATIENT,
                      ccda_files("DoD", workdir / "ccda")),
        va=Community("VA", "VA", VA_OID, VA_PATIENT),
        # The partner's index lists the VA id (a shared cross-reference): VA asks with its
        # own id, and the partner's responding gateway translates it to its MRN.
        partner=Community("Partner", "Partner HIE", PARTNER_OID, PARTNER_PATIENT,
                          ccda_files("Partner", workdir / "ccda"), links=(VA_PATIENT,)),
    )


PERSON = Person(given="Alex", family="Rivera", birth="19700412", gender="M")  # synthetic
