"""Fixtures for the XDS metadata core: the official ebRS/XDS.b schemas and the
peers' conformance messages, lifted out of their SOAP (or raw MIME) wrappers."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

import pytest
from lxml import etree

from tests.conftest import CONFORMANCE

SCHEMAS = CONFORMANCE / "schemas" / "xds"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True)
_ENVELOPE = re.compile(r"<(\w+:)?Envelope\b.*?</(\w+:)?Envelope>", re.S)


@functools.cache
def _schema(name: str) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(SCHEMAS / name), _PARSER))


@pytest.fixture(scope="session")
def assert_valid() -> Callable[[etree._Element, str], None]:
    """``assert_valid(el, "lcm.xsd")``: el validates against that official schema."""
    if not SCHEMAS.is_dir():
        pytest.fail(f"XDS schemas not found at {SCHEMAS}")

    def check(el: etree._Element, schema: str) -> None:
        compiled = _schema(schema)
        doc = etree.fromstring(etree.tostring(el), _PARSER)
        assert compiled.validate(doc), [str(e) for e in compiled.error_log]

    return check


def load_element(relative: str, ns: str, local: str, fill: dict[str, str] | None = None):
    """The first ``{ns}local`` in a conformance file (XML, or a MIME capture whose root part
    holds a SOAP envelope), with ``$placeholder$`` tokens replaced from ``fill``."""
    path = CONFORMANCE / relative
    if not path.is_file():
        pytest.fail(f"conformance file missing: {path}")
    raw = path.read_bytes().decode("latin-1")
    if not raw.lstrip().startswith("<"):
        match = _ENVELOPE.search(raw)
        assert match, f"no SOAP envelope in {relative}"
        raw = match.group(0)
    for key, value in (fill or {}).items():
        raw = raw.replace(f"${key}$", value)
    root = etree.fromstring(raw.encode("latin-1"), _PARSER)
    found = next(root.iter(f"{{{ns}}}{local}"), None)
    assert found is not None, f"{local} not in {relative}"
    return etree.fromstring(etree.tostring(found), _PARSER)


def reparse(el: etree._Element) -> etree._Element:
    """Serialise and parse again, so a test sees only what goes on the wire."""
    return etree.fromstring(etree.tostring(el), _PARSER)
