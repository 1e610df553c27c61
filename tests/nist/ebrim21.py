"""ebRIM 2.1 -> 3.0 for the NIST testkit's older SubmitObjectsRequests.

Follows the toolkit's own translation (TranslateToV3, as the testkit MANIFEST
describes it): namespace to rim 3.0 inside ``lcm:SubmitObjectsRequest/rim:RegistryObjectList``,
ObjectRefs dropped, ExternalIdentifiers get ``id`` and ``registryObject``, Associations and
Classifications get an ``id``, status and associationType values get their URN prefixes,
``majorVersion``/``minorVersion`` dropped, ``lang`` -> ``xml:lang``, and objectType set for
RegistryPackage/Association/Classification/ExternalIdentifier. Children are put in 3.0
schema order (Slot, Name, Description, Classification, ExternalIdentifier).
"""

from __future__ import annotations

import itertools

from lxml import etree

RIM21 = "urn:oasis:names:tc:ebxml-regrep:rim:xsd:2.1"
RS21 = "urn:oasis:names:tc:ebxml-regrep:registry:xsd:2.1"
RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
LCM = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
XML_NS = "http://www.w3.org/XML/1998/namespace"
OBJECT_TYPE = "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:"
STATUS = "urn:oasis:names:tc:ebxml-regrep:StatusType:"
ASSOC = "urn:oasis:names:tc:ebxml-regrep:AssociationType:"
IHE_ASSOC = "urn:ihe:iti:2007:AssociationType:"
_IHE_TYPES = {"RPLC", "APND", "XFRM", "XFRM_RPLC", "signs"}
_ORDER = {"Slot": 0, "Name": 1, "Description": 2, "VersionInfo": 3, "Classification": 4,
          "ExternalIdentifier": 5}


def is_v21(root: etree._Element) -> bool:
    return etree.QName(root).namespace in (RIM21, RS21)


def _association_type(value: str) -> str:
    if value.startswith("urn:"):
        return value
    return (IHE_ASSOC if value in _IHE_TYPES else ASSOC) + value


def _convert(el: etree._Element, parent_id: str | None, ids: itertools.count) -> etree._Element:
    local = etree.QName(el).localname
    out = etree.Element(f"{{{RIM}}}{local}", nsmap={"rim": RIM})
    for name, value in el.attrib.items():
        if name in ("majorVersion", "minorVersion"):
            continue
        if name == "lang":
            out.set(f"{{{XML_NS}}}lang", value)
        elif name == "status" and not value.startswith("urn:"):
            out.set(name, STATUS + value)
        elif name == "associationType":
            out.set(name, _association_type(value))
        else:
            out.set(name, value)
    if local in ("Association", "Classification", "ExternalIdentifier") and "id" not in out.attrib:
        out.set("id", f"ID_{local}_{next(ids)}")  # symbolic: the registry assigns
    if local == "ExternalIdentifier" and parent_id and "registryObject" not in out.attrib:
        out.set("registryObject", parent_id)
    if local == "Classification" and parent_id and "classifiedObject" not in out.attrib:
        out.set("classifiedObject", parent_id)
    if local in ("RegistryPackage", "Association", "Classification", "ExternalIdentifier"):
        out.set("objectType", OBJECT_TYPE + local)
    if el.text and el.text.strip():
        out.text = el.text
    children = [c for c in el if isinstance(c.tag, str)]
    converted = [_convert(c, out.get("id"), ids) for c in children]
    converted.sort(key=lambda c: _ORDER.get(etree.QName(c).localname, 9))
    out.extend(converted)
    return out


def to_v3(root: etree._Element) -> etree._Element:
    """A 3.0 ``lcm:SubmitObjectsRequest`` from a 2.1 one (or its LeafRegistryObjectList)."""
    lists = [root] if etree.QName(root).localname == "LeafRegistryObjectList" else [
        c for c in root if isinstance(c.tag, str)
        and etree.QName(c).localname == "LeafRegistryObjectList"
    ]
    ids = itertools.count(1)
    request = etree.Element(f"{{{LCM}}}SubmitObjectsRequest", nsmap={"lcm": LCM, "rim": RIM})
    objects = etree.SubElement(request, f"{{{RIM}}}RegistryObjectList")
    for leaf in lists:
        for child in leaf:
            if not isinstance(child.tag, str) or etree.QName(child).localname == "ObjectRef":
                continue
            objects.append(_convert(child, None, ids))
    return request
