"""The patient index as the PIX, XCPD and XDS transactions see it (``ctx.ports.patients``).

Identifiers are ``II`` values: ``root`` is the assigning authority (the
patient identifier domain, an OID) and ``extension`` the id within it; the
CX form ``ID^^^&OID&ISO`` is read by ``parse_cx``. A patient record is one
identifier in one domain with the demographics its source fed. Records of
the same person in several domains form a cross-reference group; a merge
retires an identifier into a surviving one. Correlations remember which
partner community (homeCommunityId) knows our patient under which of its ids.

``gateway.patients.index.SqlPatientIndex`` implements every Protocol here;
tests use an in-memory fake.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from profiles.hl7v3.datatypes import II, is_oid, strip_urn_oid
from profiles.hl7v3.patient import Person
from profiles.pix.demographics import Demographics

_CX = re.compile(r"^(?P<id>[^^]+)\^[^^]*\^[^^]*\^(?P<hd>[^^]*)(\^.*)?$")


def parse_cx(value: str) -> II:
    """``ID^^^&OID&ISO`` (or ``ID^^^NAME&OID&ISO``) -> II; ValueError when no OID domain."""
    m = _CX.match(value.strip())
    if not m:
        raise ValueError(f"not a CX identifier (ID^^^&OID&ISO): {value!r}")
    hd = m.group("hd").split("&")
    oid = strip_urn_oid(hd[1]) if len(hd) > 1 else None
    if not is_oid(oid) or (len(hd) > 2 and hd[2] not in ("", "ISO")):
        raise ValueError(f"the assigning authority must be an ISO OID: {value!r}")
    return II(root=oid, extension=m.group("id"), assigning_authority_name=hd[0] or None)


def key_of(ii: II) -> tuple[str, str]:
    """What identifies an identifier: (root, extension); names do not count."""
    return (ii.root or "", ii.extension or "")


def same_id(a: II, b: II) -> bool:
    return key_of(a) == key_of(b)


@dataclass(frozen=True)
class PatientRecord:
    """One identifier in one domain with its demographics.

    ``group`` names the cross-reference group (records of one person across
    domains); ``correlated`` lists partner ids known to stand for this record.
    """

    id: II
    person: Person = Person()
    group: int | None = None
    correlated: tuple[II, ...] = ()


@dataclass(frozen=True)
class Correlation:
    """Partner community ``home_community_id`` knows our ``patient`` as ``theirs``."""

    patient: II
    theirs: II
    home_community_id: str


@dataclass(frozen=True)
class MergeResult:
    """What a merge changed, so documents and audit can follow it."""

    survivor: II
    merged: tuple[II, ...]  # obsolete ids that were known and are now retired
    unknown: tuple[II, ...] = ()  # obsolete ids the index never held
    correlations_moved: int = 0
    registry_objects_moved: int = 0  # DocumentEntries, SubmissionSets, Folders re-pointed


class UnknownDomain(ValueError):
    """The index keeps a closed list of domains and this identifier is in none of them."""


class IndexBusy(Exception):
    """The index cannot answer now (pool exhausted, lock timeout): try again later."""


class KnownPatients(Protocol):
    """What the XDS registry needs: is this patient id one we hold?"""

    def known(self, pid: II) -> bool: ...

    def domains(self) -> set[str]:
        """Every patient identifier domain (assigning authority OID) the index knows."""
        ...


class PatientFeed(Protocol):
    """ITI-8 / ITI-44: records arrive, change and merge."""

    def add(self, record: PatientRecord) -> bool:
        """Store a record (an update when its id is known); True when it was new."""
        ...

    def update(self, record: PatientRecord) -> bool: ...

    def merge(self, survivor: PatientRecord, obsolete: Iterable[II], *,
              source: str | None = None, audit: Any = None) -> MergeResult:
        """Store ``survivor`` and retire each obsolete id into it, moving what the obsolete
        id held (correlations, cross-references, registry documents) in one transaction.
        ``source`` names the transaction (ITI-44, ITI-8) in the merge history; ``audit``
        (the request's AuditSink) gets its records committed with the merge."""
        ...

    def merge_all(self, merges: Sequence[tuple[PatientRecord, Iterable[II]]], *,
                  source: str | None = None, audit: Any = None) -> tuple[MergeResult, ...]:
        """Several merges (one A40 message's PID/MRG pairs), all or none."""
        ...


class CrossReferences(Protocol):
    """ITI-9 / ITI-45: the same person's ids in other domains."""

    def get(self, pid: II) -> PatientRecord | None: ...

    def cross_references(self, pid: II) -> list[II]: ...

    def local_ids(self, pid: II) -> list[II]:
        """Our ids for the person ``pid`` names (its group's, and the groups of the records
        that list it as another id or were correlated with it by a partner), without it."""
        ...


class Candidates(Protocol):
    """ITI-55: records that may be the person described (found by indexed keys)."""

    def candidates(self, demographics: Demographics, *, limit: int = 200
                   ) -> list[PatientRecord]:
        """Active records sharing a blocking key with ``demographics`` (its query keys,
        ``blocking_keys(..., query=True)``) or holding one of its ids as a correlation,
        each with the other records of its group. At most ``limit`` records are found by
        key, those sharing the most keys first."""
        ...


class Correlations(Protocol):
    def record_correlation(self, ours: II, theirs: II, home_community_id: str) -> None:
        """Remember (or move) partner id ``theirs`` at ``home_community_id`` -> ``ours``."""
        ...

    def correlations(self, ours: II) -> list[Correlation]: ...


class PatientIndex(KnownPatients, PatientFeed, CrossReferences, Candidates, Correlations,
                   Protocol):
    """Everything together: the port the gateway registers as ``ports.patients``."""
