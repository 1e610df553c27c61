"""A migrated database (SQLite, or PostgreSQL when configured), the index on it, and the
conformance samples' HL7 v3 bodies."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

from gateway.patients.index import SqlPatientIndex
from gateway.store import migrate
from gateway.store.db import Database


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    migrate.upgrade(database_url)
    database = Database(database_url)
    yield database
    database.dispose()


@pytest.fixture
def index(db: Database) -> SqlPatientIndex:
    return SqlPatientIndex(db)


CONFORMANCE = Path(__file__).resolve().parents[3].parent / "shared" / "conformance"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True)


def _fill(placeholder: str) -> str:
    """A value for a template placeholder (NIST $x$, SoapUI ${#Project#x})."""
    name = placeholder.lower()
    if "dob" in name or "birthtime" in name:
        return "19630805"
    if "gender" in name:
        return "M"
    if "hcid" in name or name.endswith("aa"):
        return "1.2.3.4.5"
    return "X" + re.sub(r"\W", "", name)[:12]


def sample_body(relative: str, name: str) -> etree._Element:
    """Element ``name`` of a conformance sample, out of any wrapper, placeholders filled."""
    raw = (CONFORMANCE / relative).read_text(encoding="utf-8")
    raw = re.sub(r"\$\{#Project#(\w+)\}|\$(\w+)\$", lambda m: _fill(m.group(1) or m.group(2)),
                 raw)
    for el in etree.fromstring(raw.encode(), _PARSER).iter():
        if isinstance(el.tag, str) and etree.QName(el).localname == name:
            return etree.fromstring(etree.tostring(el), _PARSER)
    raise LookupError(f"{name} not in {relative}")
