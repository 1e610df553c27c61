"""CDA R2 reading blocks shared by extraction, validation and rendering.

Parsing is hardened like ``profiles.xml`` (no DTD, no entities, no network) but
the refusal names the problem precisely, because an operator importing a file
must learn what is wrong with it (empty, not XML, the wrong root...). Times,
identifiers and names are turned into the HL7 v2 forms XDS metadata uses.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from lxml import etree

from profiles import oid

V3 = "urn:hl7-org:v3"
SDTC = "urn:hl7-org:sdtc"
NS = {"v": V3, "sdtc": SDTC}
DEFAULT_MAX_BYTES = 64 * 1024 * 1024

_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
    huge_tree=True, collect_ids=False,
)


class NotACdaDocument(ValueError):
    """The bytes are not a CDA ClinicalDocument; the message says why."""


@dataclass(frozen=True)
class Finding:
    """One thing worth telling about a document: ``severity`` is error, warning or info;
    ``field`` names the metadata attribute or the schema location it concerns."""

    severity: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.field}: {self.message}"


def parse_document(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> etree._Element:
    """The ``ClinicalDocument`` element of ``data``, or NotACdaDocument saying why not."""
    if not data.strip():
        raise NotACdaDocument("the file is empty" if not data else "the file holds only blanks")
    if len(data) > max_bytes:
        raise NotACdaDocument(f"the file is larger than {max_bytes} bytes")
    try:
        tree = etree.fromstring(data, _PARSER).getroottree()
    except etree.XMLSyntaxError as exc:
        raise NotACdaDocument(f"not well-formed XML: {exc}") from None
    root = tree.getroot()
    qn = etree.QName(root)
    if qn.localname != "ClinicalDocument" or qn.namespace != V3:
        where = f" in namespace {qn.namespace}" if qn.namespace else " (no namespace)"
        raise NotACdaDocument(
            f"the root element is <{qn.localname}>{where}, not a CDA "
            f"<ClinicalDocument> in {V3}"
        )
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise NotACdaDocument("a DOCTYPE declaration is not accepted in a CDA document")
    return root


def child(el: etree._Element | None, *path: str) -> etree._Element | None:
    """The first element down ``path`` (local names in the HL7 v3 namespace)."""
    for name in path:
        if el is None:
            return None
        el = el.find(f"{{{V3}}}{name}")
    return el


def children(el: etree._Element | None, name: str) -> list[etree._Element]:
    return [] if el is None else el.findall(f"{{{V3}}}{name}")


def text(el: etree._Element | None) -> str:
    """The element's text content with blanks collapsed ("" when absent)."""
    if el is None:
        return ""
    return " ".join("".join(el.itertext()).split())


# -- times --------------------------------------------------------------------------

_TS = re.compile(
    r"(?P<digits>\d{4}(?:\d{2}){0,5})(?P<fraction>\.\d+)?(?P<offset>[+-]\d{2}(?:\d{2})?)?"
)


@dataclass(frozen=True)
class Time:
    """A CDA TS turned into an XDS DTM (UTC); ``note`` says what had to be assumed."""

    dtm: str | None
    note: str | None = None


def to_utc_dtm(value: str | None, *, assume_offset: str | None = None) -> Time:
    """CDA ``YYYYMMDD[HH[MM[SS[.S]]]][+/-ZZzz]`` -> XDS ``YYYY[MM[DD[hh[mm[ss]]]]]`` in UTC.

    Fractional seconds are dropped; a date is kept as a date (its time zone cannot
    move it); a time without an offset is taken at ``assume_offset`` (UTC if None),
    which the note reports.
    """
    if not value or not value.strip():
        return Time(None, "no value")
    m = _TS.fullmatch(value.strip())
    if m is None:
        return Time(None, f"{value!r} is not an HL7 timestamp")
    digits, offset = m["digits"], m["offset"]
    notes = []
    if m["fraction"]:
        notes.append("fractional seconds dropped")
    try:
        datetime.strptime(digits + "0101000000"[len(digits) - 4:], "%Y%m%d%H%M%S")
    except ValueError:
        return Time(None, f"{value!r} is not a real date")
    if len(digits) <= 8:
        return Time(digits, "; ".join(notes) or None)
    if offset is None:
        offset = assume_offset or "+0000"
        notes.append(f"no time zone; taken as {offset}")
    sign = 1 if offset[0] == "+" else -1
    hours, minutes = int(offset[1:3]), int(offset[3:5] or 0)
    if hours > 14 or minutes > 59:
        return Time(None, f"{value!r} has an impossible time zone offset")
    precision = len(digits)
    if precision == 10 and minutes:
        precision = 12
    moment = datetime.strptime(digits.ljust(14, "0"), "%Y%m%d%H%M%S")
    moment -= sign * timedelta(hours=hours, minutes=minutes)
    return Time(moment.strftime("%Y%m%d%H%M%S")[:precision], "; ".join(notes) or None)


# -- identifiers and names ------------------------------------------------------------

_UUID = re.compile(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
SSN_ROOT = "2.16.840.1.113883.4.1"
_UNIQUE_ID_NS = uuid.UUID("5b1d5b8e-8f6c-4c36-9d0e-0c7b6c2f3a10")  # ours, for uuid5


def is_oid(value: str | None) -> bool:
    """An II root OID as CDA writes it: no leading zeros, any first arc, 64 characters."""
    return oid.is_oid(value, allow_any_first_arc=True, max_length=64)


def is_uuid(value: str | None) -> bool:
    return bool(value) and _UUID.fullmatch(value) is not None


def ii(el: etree._Element | None) -> tuple[str, str] | None:
    """(root, extension) of an II, None for a nullFlavor or root-less one."""
    if el is None or el.get("nullFlavor"):
        return None
    root = (el.get("root") or "").strip()
    if not root:
        return None
    return root, (el.get("extension") or "").strip()


_V2_ESCAPES = (("\\", "\\E\\"), ("|", "\\F\\"), ("^", "\\S\\"), ("&", "\\T\\"), ("~", "\\R\\"))


def v2(value: str | None) -> str:
    """A value escaped for an HL7 v2 component."""
    value = " ".join((value or "").split())
    for raw, escaped in _V2_ESCAPES:
        value = value.replace(raw, escaped)
    return value


@dataclass(frozen=True)
class Name:
    family: str = ""
    given: tuple[str, ...] = ()
    prefix: str = ""
    suffix: str = ""
    unstructured: str = ""

    def display(self) -> str:
        parts = [self.prefix, *self.given, self.family, self.suffix]
        return " ".join(p for p in parts if p) or self.unstructured


def name_of(el: etree._Element | None) -> Name | None:
    """The first usable name under ``el`` (a person or patient element)."""
    for name in children(el, "name"):
        if name.get("nullFlavor"):
            continue
        given = tuple(t for g in children(name, "given") if (t := text(g)))
        parsed = Name(
            family=" ".join(text(f) for f in children(name, "family") if text(f)),
            given=given,
            prefix=" ".join(text(p) for p in children(name, "prefix") if text(p)),
            suffix=" ".join(text(s) for s in children(name, "suffix") if text(s)),
            unstructured="" if len(name) else text(name),
        )
        if parsed.display():
            return parsed
    return None


def xcn(ident: tuple[str, str] | None, name: Name | None) -> str | None:
    """ITI XCN: ``id^family^given^second^suffix^prefix^^^&root&ISO``."""
    if name is None and (ident is None or not ident[1]):
        return None
    name = name or Name()
    family = name.family or name.unstructured
    given = [*name.given, "", ""]
    fields = [v2(family), v2(given[0]), v2(" ".join(name.given[1:])), v2(name.suffix),
              v2(name.prefix)]
    if ident is None:
        return "^".join(["", *fields]).rstrip("^") or None
    root, extension = ident
    if extension and is_oid(root):
        return "^".join([v2(extension), *fields, "", "", f"&{root}&ISO"])
    return "^".join([v2(extension or root), *fields]).rstrip("^")


def xon(name: str, ident: tuple[str, str] | None) -> str | None:
    """ITI XON: ``name^^^^^&OID&ISO^^^^id`` or ``name^^^^^^^^^OID`` or ``name``."""
    if not name:
        return None
    if ident is None or not is_oid(ident[0]):
        return v2(name)
    root, extension = ident
    if extension:
        return f"{v2(name)}^^^^^&{root}&ISO^^^^{v2(extension)}"
    return f"{v2(name)}^^^^^^^^^{root}"


def xtn(value: str | None, use: str | None) -> str | None:
    """ITI XTN from a CDA telecom URL (tel:, mailto:); None for other schemes."""
    if not value:
        return None
    scheme, _, rest = value.strip().partition(":")
    use_code = {"WP": "WPN", "HP": "PRN", "H": "PRN", "MC": "ORN"}.get(use or "", "")
    if scheme.lower() == "mailto" and rest:
        return f"^NET^Internet^{v2(rest)}"
    if scheme.lower() == "tel" and rest:
        return f"^{use_code}^PH^^^^^^^^^{v2(rest)}"
    return None


def unique_id_of(ident: tuple[str, str] | None) -> tuple[str | None, str | None]:
    """(uniqueId, why it had to be derived) for a ClinicalDocument/id.

    PCC: ``root^extension``, root alone without an extension. A UUID root becomes
    its OID (``2.25.<integer>``, ISO/IEC 9834-8); any other id the registry cannot
    take (a root that is no OID, too long) becomes a name-based ``2.25`` OID, the
    same for the same id, so importing the document again finds it again.
    """
    if ident is None:
        return None, "ClinicalDocument/id is missing"
    root, extension = ident
    why = None
    if is_uuid(root):
        root, why = f"2.25.{uuid.UUID(root).int}", "UUID root written as its 2.25 OID"
    value = f"{root}^{extension}" if extension else root
    if is_oid(root) and len(value) <= 128:
        return value, why
    derived = f"2.25.{uuid.uuid5(_UNIQUE_ID_NS, f'{ident[0]}^{ident[1]}').int}"
    return derived, f"id {ident[0]}^{ident[1]} is not an OID[^extension] of at most 128 " \
                    f"characters; derived {derived}"
