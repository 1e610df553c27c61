"""One ebRIM 3.0 registry object <-> one metadata model (ITI TF-3 4.2.5).

Reading first splits an element into its ebRIM parts (slots, Name, Description,
VersionInfo, Classifications, ExternalIdentifiers), then lets each model take
the parts it understands; whatever is left becomes ``extra_*``. A part is only
taken when it is well-formed (one slot, the right number of values, a number
where a number belongs); otherwise it stays in ``extra_*`` where validation
finds it and says what is wrong. Writing emits the schema's element order and
derives the ids of the Classifications and ExternalIdentifiers it creates.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from lxml import etree

from profiles.xds import codes as c
from profiles.xds.metadata import (
    Author,
    Classification,
    Code,
    ExternalIdentifier,
    LocalizedString,
    Slot,
)
from profiles.xds.values import is_uuid_urn
from profiles.xml import parse_xml

R = f"{{{c.RIM}}}"
XML_LANG = f"{{{c.XML_NS}}}lang"
MAX_VALUE = 256  # rim:Value is a LongName
DIGITS = re.compile(r"[0-9]+")
_URI_PART = re.compile(r"([0-9]+)\|(.*)", re.S)

Problem = Callable[[str, str], None]  # (context, location)
EXTRA_CLASSIFICATION, EXTRA_IDENTIFIER = "extraClassification", "extraExternalIdentifier"


def is_rim(el: object, local: str) -> bool:
    return getattr(el, "tag", None) == R + local


def squeeze(value: str | None) -> str | None:
    """A scheme or node URI with blanks removed, for matching only (samples have typos)."""
    return None if value is None else "".join(value.split())


# ---------------------------------------------------------------- reading parts


def read_slot(el: etree._Element) -> Slot:
    values = tuple(
        v.text or "" for vl in el if is_rim(vl, "ValueList") for v in vl if is_rim(v, "Value")
    )
    return Slot(el.get("name", ""), values)


def read_localized(el: etree._Element, local: str) -> LocalizedString | None:
    holder = next((ch for ch in el if is_rim(ch, local)), None)
    if holder is None:
        return None
    ls = next((ch for ch in holder if is_rim(ch, "LocalizedString")), None)
    if ls is None:
        return None
    return LocalizedString(ls.get("value", ""), ls.get(XML_LANG), ls.get("charset"))


def read_classification(el: etree._Element) -> Classification:
    return Classification(
        classified_object=el.get("classifiedObject", ""),
        scheme=el.get("classificationScheme"),
        node=el.get("classificationNode"),
        node_representation=el.get("nodeRepresentation"),
        id=el.get("id"),
        name=read_localized(el, "Name"),
        slots=tuple(read_slot(s) for s in el if is_rim(s, "Slot")),
    )


def read_external_identifier(el: etree._Element) -> ExternalIdentifier:
    return ExternalIdentifier(
        registry_object=el.get("registryObject", ""),
        scheme=el.get("identificationScheme", ""),
        value=el.get("value", ""),
        id=el.get("id"),
        name=read_localized(el, "Name"),
        slots=tuple(read_slot(s) for s in el if is_rim(s, "Slot")),
    )


@dataclass
class Parts:
    """A registry object split into what ebRIM says it is made of."""

    id: str
    attrs: dict[str, str]
    slots: list[Slot]
    name: LocalizedString | None
    description: LocalizedString | None
    version: str | None
    classifications: list[Classification] = field(default_factory=list)
    external_ids: list[ExternalIdentifier] = field(default_factory=list)


def read_parts(el: etree._Element) -> Parts:
    version = next((ch.get("versionName") for ch in el if is_rim(ch, "VersionInfo")), None)
    return Parts(
        id=el.get("id", ""),
        attrs=dict(el.attrib),
        slots=[read_slot(s) for s in el if is_rim(s, "Slot")],
        name=read_localized(el, "Name"),
        description=read_localized(el, "Description"),
        version=version,
        classifications=[read_classification(x) for x in el if is_rim(x, "Classification")],
        external_ids=[read_external_identifier(x) for x in el if is_rim(x, "ExternalIdentifier")],
    )


# ------------------------------------------------------------- taking parts


def take_slot(
    slots: list[Slot], name: str, *, single: bool, accept: Callable[[str], bool] | None = None
) -> tuple[str, ...] | None:
    """Remove and return the values of slot ``name`` if it is present once and well-formed."""
    found = [s for s in slots if s.name == name]
    if len(found) != 1 or (single and len(found[0].values) != 1):
        return None
    if accept is not None and not all(accept(v) for v in found[0].values):
        return None
    slots.remove(found[0])
    return found[0].values


def take_one(slots: list[Slot], name: str, accept: Callable[[str], bool] | None = None):
    values = take_slot(slots, name, single=True, accept=accept)
    return values[0] if values else None


def take_many(slots: list[Slot], name: str) -> tuple[str, ...]:
    return take_slot(slots, name, single=False) or ()


def is_member(enum: type) -> Callable[[str], bool]:
    return lambda v: v in enum._value2member_map_


def take_uri(slots: list[Slot]) -> str | None:
    """The URI slot: one value, or ``n|part`` values when it is longer than a Value allows."""
    found = [s for s in slots if s.name == c.URI]
    if len(found) != 1 or not found[0].values:
        return None
    values = found[0].values
    if len(values) == 1:
        slots.remove(found[0])
        return values[0]
    parts = [_URI_PART.fullmatch(v) for v in values]
    if not all(parts):
        return None
    slots.remove(found[0])
    return "".join(m.group(2) for m in sorted(parts, key=lambda m: int(m.group(1))))


def take_classifications(parts: Parts, match: Callable[[Classification], bool]) -> list:
    taken = [x for x in parts.classifications if match(x)]
    parts.classifications = [x for x in parts.classifications if not match(x)]
    return taken


def _code(x: Classification) -> Code:
    slots = list(x.slots)
    scheme = take_one(slots, c.CODING_SCHEME)
    display = x.name.value if x.name is not None else None
    return Code(x.node_representation or "", scheme, display, tuple(slots))


def take_codes(parts: Parts, scheme: str) -> tuple[Code, ...]:
    return tuple(
        _code(x) for x in take_classifications(parts, lambda x: squeeze(x.scheme) == scheme)
    )


def take_code(parts: Parts, scheme: str) -> Code | None:
    """A single-valued code; when it occurs more than once all copies stay extra."""
    if sum(squeeze(x.scheme) == scheme for x in parts.classifications) != 1:
        return None
    return take_codes(parts, scheme)[0]


def _author(x: Classification) -> Author:
    slots = list(x.slots)
    return Author(
        person=take_one(slots, c.AUTHOR_PERSON),
        institutions=take_many(slots, c.AUTHOR_INSTITUTION),
        roles=take_many(slots, c.AUTHOR_ROLE),
        specialties=take_many(slots, c.AUTHOR_SPECIALTY),
        telecoms=take_many(slots, c.AUTHOR_TELECOM),
        extra_slots=tuple(slots),
    )


def take_authors(parts: Parts, scheme: str) -> tuple[Author, ...]:
    taken = take_classifications(parts, lambda x: squeeze(x.scheme) == scheme)
    return tuple(_author(x) for x in taken)


def take_flag(parts: Parts, node: str) -> bool:
    """A classification-node flag (limitedMetadata): present or not."""
    match = lambda x: node in (squeeze(x.node), squeeze(x.scheme))  # noqa: E731
    return bool(take_classifications(parts, match))


def take_external(parts: Parts, scheme: str) -> str | None:
    found = [e for e in parts.external_ids if squeeze(e.scheme) == scheme]
    if len(found) != 1:
        return None
    parts.external_ids.remove(found[0])
    return found[0].value


# ------------------------------------------------------------------- writing


def child_id(owner: str, tag: str) -> str:
    """A stable id for a Classification/ExternalIdentifier the codec writes.

    UUID owners get a name-based UUID (so a registry answering twice answers the
    same); symbolic owners get a symbolic id, which the registry replaces.
    """
    if is_uuid_urn(owner):
        return f"urn:uuid:{uuid.uuid5(uuid.UUID(owner[9:]), tag)}"
    return f"{owner}_{tag}"


def sub(parent: etree._Element, local: str, **attrs: str | None) -> etree._Element:
    el = etree.SubElement(parent, R + local)
    for key, value in attrs.items():
        if value is not None:
            el.set(key, value)
    return el


def write_slot(parent: etree._Element, name: str, values: tuple[str, ...] | list[str]) -> None:
    slot = sub(parent, "Slot", name=name)
    value_list = sub(slot, "ValueList")
    for value in values:
        sub(value_list, "Value").text = value


def write_slots(parent: etree._Element, pairs: list[tuple[str, object]], extra) -> None:
    """Known slots (skipping empty ones), then the extra slots as they came."""
    for name, value in pairs:
        if value is None or value == ():
            continue
        write_slot(parent, name, value if isinstance(value, tuple) else (str(value),))
    for slot in extra:
        write_slot(parent, slot.name, slot.values)


def uri_values(uri: str) -> tuple[str, ...]:
    if len(uri) <= MAX_VALUE:
        return (uri,)
    size = MAX_VALUE - 8
    return tuple(f"{i + 1}|{uri[p : p + size]}" for i, p in enumerate(range(0, len(uri), size)))


def write_localized(parent: etree._Element, local: str, text: LocalizedString | None) -> None:
    if text is None:
        return
    holder = sub(parent, local)
    ls = sub(holder, "LocalizedString", charset=text.charset, value=text.value)
    if text.lang is not None:
        ls.set(XML_LANG, text.lang)


def write_head(parent: etree._Element, obj, title=None, comments=None) -> None:
    """Name, Description and VersionInfo, in the schema's order after the slots."""
    write_localized(parent, "Name", title)
    write_localized(parent, "Description", comments)
    if obj.version is not None:
        sub(parent, "VersionInfo", versionName=obj.version)


def write_classification(parent: etree._Element, x: Classification, default_id: str) -> None:
    el = sub(
        parent,
        "Classification",
        id=x.id or default_id,
        objectType=c.OT_CLASSIFICATION,
        classificationScheme=x.scheme,
        classifiedObject=x.classified_object,
        classificationNode=x.node,
        nodeRepresentation=x.node_representation,
    )
    for slot in x.slots:
        write_slot(el, slot.name, slot.values)
    write_localized(el, "Name", x.name)


def write_code(parent: etree._Element, owner: str, scheme: str, code: Code, tag: str) -> None:
    slots = (Slot(c.CODING_SCHEME, (code.scheme,)),) if code.scheme is not None else ()
    name = LocalizedString(code.display) if code.display is not None else None
    x = Classification(
        classified_object=owner,
        scheme=scheme,
        node_representation=code.code,
        name=name,
        slots=slots + code.extra_slots,
    )
    write_classification(parent, x, child_id(owner, tag))


def write_author(parent: etree._Element, owner: str, scheme: str, a: Author, tag: str) -> None:
    pairs = [
        (c.AUTHOR_PERSON, (a.person,) if a.person is not None else ()),
        (c.AUTHOR_INSTITUTION, a.institutions),
        (c.AUTHOR_ROLE, a.roles),
        (c.AUTHOR_SPECIALTY, a.specialties),
        (c.AUTHOR_TELECOM, a.telecoms),
    ]
    slots = tuple(Slot(n, v) for n, v in pairs if v) + a.extra_slots
    x = Classification(classified_object=owner, scheme=scheme, node_representation="", slots=slots)
    write_classification(parent, x, child_id(owner, tag))


def write_node(parent: etree._Element, owner: str, node: str, tag: str) -> None:
    x = Classification(classified_object=owner, node=node)
    write_classification(parent, x, child_id(owner, tag))


def write_external_identifier(parent: etree._Element, e: ExternalIdentifier, default_id: str):
    el = sub(
        parent,
        "ExternalIdentifier",
        id=e.id or default_id,
        objectType=c.OT_EXTERNAL_IDENTIFIER,
        registryObject=e.registry_object,
        identificationScheme=e.scheme,
        value=e.value,
    )
    for slot in e.slots:
        write_slot(el, slot.name, slot.values)
    write_localized(el, "Name", e.name)


def write_identifiers(parent: etree._Element, obj, pairs: list[tuple[str, str | None]]) -> None:
    owner = obj.entry_uuid
    for scheme, value in pairs:
        if value is not None:
            name = LocalizedString(c.EXTERNAL_IDENTIFIER_NAMES[scheme])
            e = ExternalIdentifier(registry_object=owner, scheme=scheme, value=value, name=name)
            write_external_identifier(parent, e, child_id(owner, name.value.split(".")[1]))
    for i, e in enumerate(obj.extra_external_identifiers):
        write_external_identifier(parent, e, child_id(owner, f"{EXTRA_IDENTIFIER}{i}"))


def write_extra_classifications(parent: etree._Element, obj) -> None:
    for i, x in enumerate(obj.extra_classifications):
        write_classification(parent, x, child_id(obj.entry_uuid, f"{EXTRA_CLASSIFICATION}{i}"))


def attributes(obj, home: str | None) -> dict[str, str | None]:
    status = obj.availability_status
    return {
        "id": obj.entry_uuid,
        "home": home if obj.home_community_id is None else obj.home_community_id,
        "lid": obj.logical_id,
        "status": status.value if status is not None else None,
    }


def with_external_identifier(xml: bytes, scheme: str, value: str) -> bytes | None:
    """A stored registry object's XML with the value of its one ExternalIdentifier of
    ``scheme`` replaced (None when it has none, or several). Edited in place, not through
    the model: a patient merge rewrites thousands of objects while it holds the write lock,
    and the stored XML is this codec's own output."""
    el = parse_xml(xml, max_bytes=len(xml) + 1)
    found = [x for x in el.iterchildren(f"{R}ExternalIdentifier")
             if x.get("identificationScheme") == scheme]
    if len(found) != 1:
        return None
    found[0].set("value", value)
    return etree.tostring(el)
