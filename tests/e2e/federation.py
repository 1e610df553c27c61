"""VA's initiating gateway and DoD's (and others') responding ones, as real processes.

What the federation end-to-end modules share, set up with the operator's commands:
``ihe-gateway init`` for each community (its own development PKI and database; DoD's
on a PostgreSQL database of the module's own when the suite runs on PostgreSQL), VA
and each responder registering each other (``partners add --url --ca``), one person
added everywhere, each responder's C-CDA files imported; then ``serve`` for each until
/healthz answers over mutual TLS, and a clean stop afterwards. What a module adds (more
partners, correlations, a config edit) goes between ``prepare`` and ``serving``.
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from lxml import etree

from gateway import demo
from gateway.federation import (
    Community,
    Person,
    add_partner,
    add_patient,
    ccda_files,
    correlate,
    import_documents,
    in_parallel,
    init,
)
from tests.e2e.support import server_env, stop_gateway

XOP = "{http://www.w3.org/2004/08/xop/include}Include"


@dataclass
class Federation:
    """VA initiates; DoD and ``others`` respond. ``envs``: each one's process environment."""

    va: Community
    dod: Community
    envs: dict[str, dict[str, str]]
    others: tuple[Community, ...] = ()

    @property
    def responders(self) -> tuple[Community, ...]:
        return (self.dod, *self.others)

    @property
    def communities(self) -> tuple[Community, ...]:
        return (self.va, *self.responders)


F = TypeVar("F", bound=Federation)


def va_and_dod(kind: type[F], work: Path, va_id: str, dod_id: str,
               dod_database_url: str | None, *others: Community) -> F:
    """VA (no documents) and DoD (its C-CDA files) with these patient ids, and ``others``;
    DoD on ``dod_database_url`` (None: its SQLite), everyone else on SQLite."""
    dod = Community("DoD", "DoD MHS GENESIS", "2.999.1", dod_id, ccda_files("DoD", work / "cda"))
    va = Community("VA", "VA", "2.999.2", va_id)
    envs = {c.key: server_env(None) for c in (va, *others)}
    envs["DoD"] = server_env(dod_database_url)
    return kind(va=va, dod=dod, envs=envs, others=others)


def prepare(fed: F, work: Path, person: Person) -> F:
    """``init`` each community under ``work``; VA and each responder register each other;
    ``person`` added everywhere (each its own id); each responder's files imported."""
    in_parallel(fed.communities, lambda c: init(c, work, fed.envs[c.key]))
    for c in fed.responders:
        add_partner(fed.va, c, fed.envs["VA"])
        add_partner(c, fed.va, fed.envs[c.key])
    in_parallel(fed.communities, lambda c: add_patient(c, person, fed.envs[c.key]))
    for c in fed.responders:
        import_documents(c, fed.envs[c.key])
    return fed


@contextmanager
def serving(fed: Federation) -> Iterator[Federation]:
    """``serve`` every community until /healthz answers; each stopped cleanly afterwards."""
    try:
        for c in fed.communities:
            demo.start_server(c.served, env=fed.envs[c.key])
        for c in fed.communities:
            with demo.mtls_session(c.served) as s:
                demo.wait_until_ready(c.served, s)
        yield fed
    finally:
        for c in fed.communities:
            if c.gateway is not None and c.gateway.process is not None:
                stop_gateway(c.gateway)


def correlate_elsewhere(community: Community, oid: str, their_id: str) -> None:
    """Record that community ``oid`` (no gateway of ours) knows our patient as ``their_id``."""
    correlate(community, their_id, Community(oid, oid, oid, their_id))


def xop_inlined(body: etree._Element) -> etree._Element:
    """A copy of an MTOM answer with each xop:Include replaced by inline base64, so the
    ebRS schema (which expects base64Binary content) can validate it."""
    resolved = copy.deepcopy(body)
    for inc in list(resolved.iter(XOP)):
        inc.getparent().text = base64.b64encode(b"x").decode()
        inc.getparent().remove(inc)
    return resolved
