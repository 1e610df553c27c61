"""Fixtures shared by the HL7 v3, PIX and XCPD codec tests: schemas and samples (bodies only).

Each of those folders' conftest.py imports them by name."""

from __future__ import annotations

import functools
import re

import pytest
from lxml import etree

from tests.conftest import CONFORMANCE

SCHEMAS = CONFORMANCE / "schemas" / "hl7v3" / "NE2008" / "multicacheschemas"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True)


@functools.cache
def _schema(name: str) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(SCHEMAS / f"{name}.xsd"), _PARSER))


def _fill(placeholder: str) -> str:
    """A plausible value for a template placeholder (NIST $x$, SoapUI ${#Project#x})."""
    name = placeholder.lower()
    if "dob" in name or "birthtime" in name:
        return "19630805"
    if "gender" in name:
        return "M"
    if "hcid" in name or name.endswith("aa"):
        return "1.2.3.4.5"
    return "X" + re.sub(r"\W", "", name)[:12]


@pytest.fixture(scope="session")
def hl7v3_schema():
    """``hl7v3_schema("PRPA_IN201306UV02")`` -> the compiled multicache schema."""
    if not SCHEMAS.is_dir():
        pytest.fail(f"HL7 v3 schemas not found at {SCHEMAS}")
    return _schema


@pytest.fixture(scope="session")
def hl7_message():
    """``hl7_message("messages/ipf/x.xml", "PRPA_IN201305UV02")`` -> that element of the sample,
    lifted out of any SOAP or CONNECT wrapper, template placeholders filled in."""

    def load(relative: str, name: str, *, fill: bool = True) -> etree._Element:
        raw = (CONFORMANCE / relative).read_text(encoding="utf-8")
        if fill:
            raw = re.sub(r"\$\{#Project#(\w+)\}|\$(\w+)\$",
                         lambda m: _fill(m.group(1) or m.group(2)), raw)
        root = etree.fromstring(raw.encode(), _PARSER)
        for el in root.iter():
            if isinstance(el.tag, str) and etree.QName(el).localname == name:
                return etree.fromstring(etree.tostring(el), _PARSER)
        raise LookupError(f"{name} not in {relative}")

    return load


@pytest.fixture(scope="session")
def samples_carrying():
    """``samples_carrying("PRPA_IN201305UV02")`` -> every message sample (path relative to the
    conformance folder) holding that element, so a new sample cannot go untested."""

    def find(name: str) -> list[str]:
        pattern = re.compile(rf"<(\w+:)?{name}[\s>]")
        files = [*(CONFORMANCE / "messages").rglob("*.xml"),
                 *(CONFORMANCE / "nist-testkit").rglob("*.xml")]
        return sorted(str(f.relative_to(CONFORMANCE)) for f in files
                      if pattern.search(f.read_text(encoding="utf-8", errors="replace")))

    return find


@pytest.fixture(scope="session")
def assert_valid(hl7v3_schema):
    """``assert_valid(el)``: el validates against the schema of its own message type."""

    def check(el: etree._Element) -> None:
        schema = hl7v3_schema(etree.QName(el).localname)
        doc = etree.fromstring(etree.tostring(el))
        assert schema.validate(doc), [str(e) for e in schema.error_log]

    return check
