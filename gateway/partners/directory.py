"""The partner directory: gateway.toml's ``[[partners]]`` plus the database's.

A partner in the file wins over a database row with the same homeCommunityId (the
file is what the operator deployed; ``partners add`` refuses such a duplicate).
Database rows are read at most every ``ttl`` seconds (all of them: a directory has
hundreds of rows, and a fan-out looks partners up twice per call), so a partner
added with the CLI is seen by every worker within ``ttl`` without a restart.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from gateway.partners.model import Partner, PartnerError, Quirks, hcid
from gateway.partners.tables import PartnerRow
from gateway.store.db import Database
from gateway.store.models import utcnow
from profiles.oid import bare_oid


def _from_row(row: PartnerRow) -> Partner:
    return Partner(
        home_community_id=row.home_community_id,
        name=row.name,
        endpoints=dict(row.endpoints),
        ca_pem=row.ca_pem.encode() if row.ca_pem else None,
        timeout_seconds=row.timeout_seconds,
        max_documents_per_retrieve=row.max_documents_per_retrieve,
        quirks=Quirks.from_mapping(row.quirks or {}),
        base_url=row.base_url,
        source="database",
    )


class PartnerDirectory:
    """Every partner community, by homeCommunityId (``urn:oid:`` or bare, either works)."""

    def __init__(
        self, configured: Iterable[Partner] = (), database: Database | None = None, *,
        ttl: float = 5.0,
    ) -> None:
        self._configured = {p.home_community_id: p for p in configured}
        self.database = database
        self.ttl = ttl
        self._rows: dict[str, Partner] = {}
        self._loaded_at: float | None = None
        self._lock = threading.Lock()
        self._registered: tuple[Partner, ...] = ()
        self._registered_from: dict[str, Partner] | None = None

    def _stored(self) -> dict[str, Partner]:
        if self.database is None:
            return {}
        with self._lock:
            now = time.monotonic()
            if self._loaded_at is None or now - self._loaded_at >= self.ttl:
                with self.database.session() as session:
                    self._rows = {r.home_community_id: _from_row(r)
                                  for r in session.scalars(sa.select(PartnerRow))}
                self._loaded_at = now
            return self._rows

    def _invalidate(self) -> None:
        with self._lock:
            self._loaded_at = None

    def get(self, home_community_id: str) -> Partner | None:
        key = hcid(home_community_id)
        found = self._configured.get(key)
        return found if found is not None else self._stored().get(key)

    def all(self) -> list[Partner]:
        found = {**self._stored(), **self._configured}
        return sorted(found.values(), key=lambda p: (p.name.lower(), p.home_community_id))

    def __contains__(self, home_community_id: str) -> bool:
        return self.get(home_community_id) is not None

    def registered(self) -> tuple[Partner, ...]:
        """The database's partners that gateway.toml does not shadow.

        The same tuple object until the rows are read again (every ``ttl``), so a
        caller that derives something from it (the XUA gate's identity check) can
        tell in O(1) that nothing changed.
        """
        rows = self._stored()
        with self._lock:
            if self._registered_from is not rows:
                configured = {hcid(k) for k in self._configured}
                self._registered = tuple(p for k, p in rows.items() if k not in configured)
                self._registered_from = rows
            return self._registered

    # -- CLI-managed partners -------------------------------------------------------------

    def add(self, partner: Partner, *, replace: bool = False) -> None:
        """Store ``partner``; a homeCommunityId already known is refused unless ``replace``."""
        if self.database is None:
            raise PartnerError("no database: partners can only be added to gateway.toml")
        if partner.home_community_id in self._configured:
            raise PartnerError(
                f"{partner.home_community_id} is configured in gateway.toml; edit it there"
            )
        with self.database.session(immediate=True) as session:
            row = session.get(PartnerRow, partner.home_community_id)
            if row is not None and not replace:
                raise PartnerError(f"{partner.home_community_id} is already registered")
            if row is None:
                row = PartnerRow(home_community_id=partner.home_community_id)
                session.add(row)
            row.name = partner.name
            row.base_url = partner.base_url
            row.endpoints = dict(partner.endpoints)
            row.ca_pem = partner.ca_pem.decode() if partner.ca_pem else None
            row.timeout_seconds = partner.timeout_seconds
            row.max_documents_per_retrieve = partner.max_documents_per_retrieve
            row.quirks = partner.quirks.differences()
            row.updated_at = utcnow()
        self._invalidate()

    def remove(self, home_community_id: str) -> bool:
        """Delete a CLI-managed partner; False when there was none."""
        key = hcid(home_community_id)
        if key in self._configured:
            raise PartnerError(f"{key} is configured in gateway.toml; remove it there")
        if self.database is None:
            return False
        with self.database.session() as session:
            result = session.execute(sa.delete(PartnerRow).where(
                PartnerRow.home_community_id == key))
        self._invalidate()
        return bool(result.rowcount)


def describe(partner: Partner) -> dict[str, Any]:
    """A plain view for ``partners show`` (no certificate bytes)."""
    return {
        "home_community_id": partner.home_community_id,
        "name": partner.name,
        "source": partner.source,
        "base_url": partner.base_url,
        "endpoints": dict(partner.endpoints),
        "ca": "yes" if partner.ca_pem else "no (refused until one is registered)",
        "timeout_seconds": partner.timeout_seconds,
        "max_documents_per_retrieve": partner.max_documents_per_retrieve,
        "quirks": partner.quirks.differences() or "none (strict defaults)",
    }


def match(partners: Sequence[Partner], oid: str) -> Partner | None:
    return next((p for p in partners if p.bare_oid == bare_oid(oid)), None)
