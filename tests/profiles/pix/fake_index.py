"""An in-memory ``PatientIndex`` for the sans-IO tests (the SQL index's rules, in dicts), and
``run``: what the SOAP pipeline does with a transaction, without the SOAP."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import SimpleNamespace

from lxml import etree

from profiles.errors import GatewayError
from profiles.hl7v3.datatypes import II
from profiles.pix.demographics import Demographics, blocking_keys
from profiles.pix.ports import (
    Correlation,
    IndexBusy,
    MergeResult,
    PatientRecord,
    UnknownDomain,
    key_of,
)
from profiles.transaction import Context, Transaction

Key = tuple[str, str]


@dataclass
class FakePatientIndex:
    closed_domains: bool = False
    busy: bool = False
    records: dict[Key, PatientRecord] = field(default_factory=dict)
    retired: dict[Key, Key] = field(default_factory=dict)
    known_domains: set[str] = field(default_factory=set)
    links: dict[tuple[str, Key], Key] = field(default_factory=dict)  # (hcid, theirs) -> ours
    merges: list[MergeResult] = field(default_factory=list)
    _groups: itertools.count = field(default_factory=lambda: itertools.count(1))

    def _check(self) -> None:
        if self.busy:
            raise IndexBusy("busy")

    def known(self, pid: II) -> bool:
        self._check()
        return key_of(pid) in self.records

    def domains(self) -> set[str]:
        self._check()
        return set(self.known_domains)

    def add(self, record: PatientRecord) -> bool:
        self._check()
        if record.id.root not in self.known_domains:
            if self.closed_domains:
                raise UnknownDomain(record.id.root)
            self.known_domains.add(record.id.root)
        self.known_domains |= {o.id.root for o in record.person.other_ids if o.id.root}
        key = key_of(record.id)
        old = self.records.get(key)
        self.retired.pop(key, None)
        group = old.group if old else next(self._groups)
        named = {key_of(o.id) for o in record.person.other_ids}
        joined = {r.group for k, r in self.records.items() if k in named} | {
            r.group for r in self.records.values()
            if key in {key_of(o.id) for o in r.person.other_ids}}
        keep = min(joined | {group})
        for k, r in self.records.items():
            if r.group in joined | {group}:
                self.records[k] = replace(r, group=keep)
        self.records[key] = replace(record, group=keep, correlated=())
        return old is None

    update = add

    def merge_all(self, merges, *, source: str | None = None, audit=None
                  ) -> tuple[MergeResult, ...]:
        return tuple(self.merge(s, o, source=source) for s, o in merges)

    def merge(self, survivor: PatientRecord, obsolete: Iterable[II], *,
              source: str | None = None, audit=None) -> MergeResult:
        self.add(survivor)
        kept = self.records[key_of(survivor.id)]
        merged, unknown, moved = [], [], 0
        for ii in obsolete:
            old = self.records.pop(key_of(ii), None)
            if old is None:
                unknown.append(ii)
                continue
            merged.append(ii)
            self.retired[key_of(ii)] = key_of(survivor.id)
            for link, ours in self.links.items():
                if ours == key_of(ii):
                    self.links[link] = key_of(survivor.id)
                    moved += 1
            for k, r in self.records.items():
                if r.group == old.group:
                    self.records[k] = replace(r, group=kept.group)
        result = MergeResult(survivor.id, tuple(merged), tuple(unknown), moved)
        self.merges.append(result)
        return result

    def get(self, pid: II) -> PatientRecord | None:
        record = self.records.get(key_of(pid))
        if record is None:
            return None
        theirs = tuple(II(*t) for (_, t), o in self.links.items() if o == key_of(pid))
        return replace(record, correlated=theirs)

    def cross_references(self, pid: II) -> list[II]:
        record = self.records.get(key_of(pid))
        if record is None:
            return []
        members = [r for r in self.records.values() if r.group == record.group]
        found: dict[Key, II] = {}
        for ii in [*(r.id for r in members),
                   *(o.id for r in members for o in r.person.other_ids)]:
            if key_of(ii) not in self.retired:
                found.setdefault(key_of(ii), ii)
        found.pop(key_of(pid), None)
        return list(found.values())

    def local_ids(self, pid: II) -> list[II]:
        wanted = key_of(pid)
        groups = {r.group for k, r in self.records.items()
                  if k == wanted or any(key_of(o.id) == wanted for o in r.person.other_ids)}
        groups |= {self.records[o].group for (_, t), o in self.links.items()
                   if t == wanted and o in self.records}
        found: dict[Key, II] = {}
        members = [r for r in self.records.values() if r.group in groups]
        for ii in [*(r.id for r in members),
                   *(o.id for r in members for o in r.person.other_ids)]:
            if key_of(ii) not in self.retired:
                found.setdefault(key_of(ii), ii)
        found.pop(wanted, None)
        return list(found.values())

    def candidates(self, demographics: Demographics, *, limit: int = 200
                   ) -> list[PatientRecord]:
        self._check()
        keys = blocking_keys(demographics, query=True)
        wanted = {key_of(i) for i in demographics.ids}
        groups = set()
        for k, r in self.records.items():
            mine = blocking_keys(Demographics.of_person(r.person, [r.id]))
            if mine & keys or any(t in wanted and o == k for (_, t), o in self.links.items()):
                groups.add(r.group)
        return [self.get(r.id) for r in self.records.values() if r.group in groups]

    def record_correlation(self, ours: II, theirs: II, home_community_id: str) -> None:
        self._check()
        if key_of(ours) not in self.records:
            raise LookupError(ours)
        self.links[(home_community_id, key_of(theirs))] = key_of(ours)

    def correlations(self, ours: II) -> list[Correlation]:
        return [Correlation(ours, II(*t), h) for (h, t), o in self.links.items()
                if o == key_of(ours)]


HOME = "urn:oid:1.2.3.99"


def context(index, **ports) -> Context:
    return Context("r1", "action", None, None, HOME, datetime.now(UTC),
                   ports=SimpleNamespace(patients=index, **ports))


def run(txn: Transaction, el: etree._Element, index, **ports) -> etree._Element:
    """Parse, handle, serialize; a GatewayError becomes the transaction's error reply."""
    request = None
    ctx = context(index, **ports)
    try:
        request = txn.parse(el, ctx)
        return txn.serialize(txn.handle(request, ctx))
    except GatewayError as error:
        return txn.error_reply(request, error)
