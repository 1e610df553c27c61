"""Data type elements <-> models: ``parse_ii(el) -> II`` and ``ii_to_xml(tag, II) -> el``.

Parsing is lenient about what peers get wrong harmlessly (blank attributes,
stray whitespace, ``partType`` on name parts) and keeps every value a string.
"""

from __future__ import annotations

from lxml import etree

from profiles.hl7v3.datatypes import AD, II, NAME_PARTS, PN, TEL, TS, AddressPart, Code, NamePart
from profiles.hl7v3.errors import AckDetailCode, syntax
from profiles.hl7v3.xmlutil import attr, hl7, is_hl7, local, location, set_xsi_type, sub, text


def _uses(el: etree._Element) -> tuple[str, ...]:
    return tuple((attr(el, "use") or "").split())


# Model field -> XML attribute, one table for both directions so they cannot drift.
_II_ATTRIBUTES = {
    "root": "root",
    "extension": "extension",
    "assigning_authority_name": "assigningAuthorityName",
    "null_flavor": "nullFlavor",
}
_CODE_ATTRIBUTES = {
    "code": "code",
    "code_system": "codeSystem",
    "code_system_name": "codeSystemName",
    "display_name": "displayName",
    "null_flavor": "nullFlavor",
}


def _read_attributes(el: etree._Element, fields: dict[str, str]) -> dict[str, str | None]:
    return {field: attr(el, name) for field, name in fields.items()}


def _write_attributes(tag: str, value: II | Code, fields: dict[str, str]) -> etree._Element:
    return hl7(tag, {name: getattr(value, field) for field, name in fields.items()})


def parse_ii(el: etree._Element) -> II:
    return II(**_read_attributes(el, _II_ATTRIBUTES))


def ii_to_xml(tag: str, ii: II) -> etree._Element:
    return _write_attributes(tag, ii, _II_ATTRIBUTES)


def parse_code(el: etree._Element) -> Code:
    return Code(**_read_attributes(el, _CODE_ATTRIBUTES))


def code_to_xml(tag: str, code: Code) -> etree._Element:
    return _write_attributes(tag, code, _CODE_ATTRIBUTES)


def parse_pn(el: etree._Element) -> PN:
    """Parts in document order; free text directly inside the name becomes ``text``."""
    parts = []
    loose = [el.text or ""]
    for c in el:
        if is_hl7(c) and local(c) in NAME_PARTS:
            value = text(c)
            if value:
                parts.append(NamePart(local(c), value, attr(c, "qualifier")))
        loose.append(c.tail or "")
    free = " ".join(" ".join(loose).split()) or None
    return PN(tuple(parts), _uses(el), free, attr(el, "nullFlavor"))


def _parts_holder(tag: str, value: PN | AD, xsi_type: str | None) -> etree._Element:
    """A name's or an address's own element: use, nullFlavor, xsi:type and free text."""
    el = hl7(tag, {"use": " ".join(value.use) or None, "nullFlavor": value.null_flavor})
    if xsi_type:
        set_xsi_type(el, xsi_type)
    if value.text:
        el.text = value.text
    return el


def pn_to_xml(tag: str, pn: PN, *, xsi_type: str | None = None) -> etree._Element:
    el = _parts_holder(tag, pn, xsi_type)
    for part in pn.parts:
        sub(el, part.kind, {"qualifier": part.qualifier}, part.value)
    return el


_NOT_ADDRESS_PARTS = ("useablePeriod",)


def parse_ad(el: etree._Element) -> AD:
    parts = []
    for c in el:
        if is_hl7(c) and local(c) not in _NOT_ADDRESS_PARTS:
            value = text(c)
            if value:
                parts.append(AddressPart(local(c), value))
    return AD(tuple(parts), _uses(el), text(el), attr(el, "nullFlavor"))


def ad_to_xml(tag: str, ad: AD, *, xsi_type: str | None = None) -> etree._Element:
    el = _parts_holder(tag, ad, xsi_type)
    for part in ad.parts:
        sub(el, part.kind, None, part.value)
    return el


def parse_tel(el: etree._Element) -> TEL:
    return TEL(attr(el, "value"), _uses(el), attr(el, "nullFlavor"))


def tel_to_xml(tag: str, tel: TEL) -> etree._Element:
    return hl7(tag, {"value": tel.value, "use": " ".join(tel.use) or None,
                     "nullFlavor": tel.null_flavor})


def parse_ts(el: etree._Element) -> TS:
    """Lenient: whatever the sender wrote, ISO-8601 normalised (see ``checked_ts``)."""
    raw = attr(el, "value")
    return TS(None, attr(el, "nullFlavor")) if raw is None else TS.parse(raw)


def checked_ts(el: etree._Element) -> TS:
    """A TS that must be a well-formed HL7 time (a birth time we will match on): else SYN102."""
    ts = parse_ts(el)
    if ts.value is not None and not ts.is_valid:
        raise syntax(AckDetailCode.DATA_TYPE_ERROR, "not a valid HL7 TS", location(el, "@value"))
    return ts


def ts_to_xml(tag: str, ts: TS) -> etree._Element:
    return hl7(tag, {"value": ts.value, "nullFlavor": ts.null_flavor})


def parse_bool(el: etree._Element | None) -> bool | None:
    value = attr(el, "value")
    return None if value is None else value.lower() == "true"


def bool_to_xml(tag: str, value: bool) -> etree._Element:
    return hl7(tag, {"value": "true" if value else "false"})


def parse_int(el: etree._Element | None) -> int | None:
    """INT ``@value``; SYN102 when it is not an integer."""
    value = attr(el, "value")
    if value is None or el is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise syntax(
            AckDetailCode.DATA_TYPE_ERROR, "not a valid HL7 INT", location(el, "@value")
        ) from None


def int_to_xml(tag: str, value: int, *, xsi_type: bool = False) -> etree._Element:
    el = hl7(tag, {"value": str(value)})
    if xsi_type:
        set_xsi_type(el, "INT")
    return el
