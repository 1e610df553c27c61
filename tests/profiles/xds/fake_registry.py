"""An in-memory ``profiles.xds.ports.Registry``: registration state in dicts, an
all-or-nothing transaction, and canned query answers."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

from profiles.xds.codes import AssociationType, AvailabilityStatus
from profiles.xds.metadata import Association, Folder, ListMember
from profiles.xds.ports import Registration
from profiles.xds.storedquery import StoredQuery
from tests.profiles.xds.builders import FakeRegistry


@dataclass
class InMemoryRegistry(FakeRegistry):
    answers: list[ListMember] = field(default_factory=list)
    asked: list[StoredQuery] = field(default_factory=list)
    locks: list[list[str]] = field(default_factory=list)

    @contextmanager
    def transaction(self, *, lock: Iterable[str] = ()) -> Iterator[InMemoryRegistry]:
        self.locks.append(list(lock))
        before = dict(self.objects)
        try:
            yield self
        except BaseException:
            self.objects = before
            raise

    def folders_containing(self, document_uuid: str) -> list[str]:
        return [
            a.source
            for a in self.objects.values()
            if isinstance(a, Association)
            and a.type is AssociationType.HAS_MEMBER
            and a.target == document_uuid
            and isinstance(self.objects.get(a.source), Folder)
        ]

    def addenda_and_transforms(self, document_uuid: str) -> list[str]:
        kinds = (AssociationType.APND, AssociationType.XFRM)
        return [
            a.source
            for a in self.objects.values()
            if isinstance(a, Association) and a.type in kinds and a.target == document_uuid
            and self.objects[a.source].availability_status is AvailabilityStatus.APPROVED
        ]

    def save(self, registration: Registration) -> None:
        self.add(*registration.submission.registry_objects())
        for uuid in registration.deprecate:
            self.objects[uuid] = replace(
                self.objects[uuid], availability_status=AvailabilityStatus.DEPRECATED
            )
        for uuid in registration.touched_folders:
            self.objects[uuid] = replace(self.objects[uuid], last_update_time=registration.time)

    def run_query(self, query: StoredQuery) -> list[ListMember]:
        self.asked.append(query)
        return list(self.answers)
