"""Reading and writing HL7 v3 elements by namespace and local name.

Peers prefix HL7 elements any way they like (``urn:``, ``ns3:``, default
namespace) and one well-known sender leaves a few of them in no namespace at
all, so children are found by local name in the HL7 namespace or none, never
by prefix. Messages we write declare HL7 as the default namespace (and xsi)
on the message element itself, since some responders lift the body element
out of its envelope before parsing it.

Errors name the offending node with an XPath from the message element, e.g.
``/PRPA_IN201309UV02/controlActProcess/queryByParameter``, as ITI TF-2b asks
for acknowledgementDetail/location.
"""

from __future__ import annotations

from collections.abc import Iterator

from lxml import etree

from profiles.hl7v3.errors import AckDetailCode, Hl7v3SyntaxError, syntax

HL7 = "urn:hl7-org:v3"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
NSMAP = {None: HL7, "xsi": XSI}
_NAMESPACES = (HL7, None)


def local(el: etree._Element) -> str:
    return etree.QName(el).localname


def is_hl7(el: object, name: str | None = None) -> bool:
    """True for an element in the HL7 namespace (or none) with that local name."""
    if not isinstance(el, etree._Element) or not isinstance(el.tag, str):
        return False
    q = etree.QName(el)
    return q.namespace in _NAMESPACES and (name is None or q.localname == name)


def children(el: etree._Element | None, name: str) -> list[etree._Element]:
    if el is None:
        return []
    return [c for c in el if is_hl7(c, name)]


def child(el: etree._Element | None, name: str) -> etree._Element | None:
    found = children(el, name)
    return found[0] if found else None


def path(el: etree._Element | None, *names: str) -> etree._Element | None:
    """Follow a chain of first children, None when a link is missing."""
    for name in names:
        el = child(el, name)
    return el


def attr(el: etree._Element | None, name: str) -> str | None:
    """An attribute with surrounding whitespace removed; empty counts as absent."""
    if el is None:
        return None
    value = el.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def text(el: etree._Element | None) -> str | None:
    """The element's own text content (not its children's), stripped."""
    if el is None:
        return None
    value = (el.text or "").strip()
    return value or None


def location(el: etree._Element, *below: str) -> str:
    """XPath of ``el`` from the message element, plus names below it.

    Steps get an index only when siblings share the name, so a single
    parameter reads ``.../patientIdentifier/value`` as IHE's examples do.
    """
    steps: list[str] = []
    node: etree._Element | None = el
    while node is not None and is_hl7(node):
        parent = node.getparent()
        step = local(node)
        if parent is not None and is_hl7(parent):
            same = children(parent, step)
            if len(same) > 1:
                step += f"[{same.index(node) + 1}]"
        steps.append(step)
        if parent is None or not is_hl7(parent) or _is_message_root(node):
            break
        node = parent
    return "/" + "/".join(reversed(steps)) + "".join(f"/{b}" for b in below)


def _is_message_root(el: etree._Element) -> bool:
    name = local(el)
    return name[:4] in ("PRPA", "MCCI") and "_IN" in name


def required(el: etree._Element, name: str) -> etree._Element:
    """The single child ``name``: SYN105 when absent, SYN108 when repeated."""
    found = children(el, name)
    if not found:
        raise syntax(
            AckDetailCode.REQUIRED_ELEMENT_MISSING, f"{name} is required", location(el, name)
        )
    if len(found) > 1:
        raise syntax(
            AckDetailCode.TOO_MANY_REPETITIONS, f"only one {name} is allowed", location(found[1])
        )
    return found[0]


def optional(el: etree._Element | None, name: str) -> etree._Element | None:
    """At most one child ``name``: SYN108 when repeated."""
    found = children(el, name)
    if len(found) > 1:
        raise syntax(
            AckDetailCode.TOO_MANY_REPETITIONS, f"only one {name} is allowed", location(found[1])
        )
    return found[0] if found else None


def required_attr(el: etree._Element, name: str) -> str:
    value = attr(el, name)
    if value is None:
        raise syntax(AckDetailCode.REQUIRED_ATTRIBUTE_MISSING, f"@{name} is required",
                     location(el, f"@{name}"))
    return value


def expect_code(el: etree._Element, allowed: tuple[str, ...], what: str) -> str:
    """``el/@code`` must be one of ``allowed`` (an IHE-fixed value): else SYN111."""
    code = attr(el, "code")
    if code not in allowed:
        raise syntax(
            AckDetailCode.NOT_FIXED_VALUE, f"{what} must be {' or '.join(allowed)}", location(el)
        )
    return code


def check_root(el: etree._Element, name: str) -> None:
    """The body must be the HL7 v3 message this transaction carries."""
    if not isinstance(el.tag, str) or etree.QName(el) != etree.QName(HL7, name):
        raise Hl7v3SyntaxError(f"the body is not an HL7 v3 {name} message",
                               code=AckDetailCode.SYNTAX_ERROR, location="/")


def hl7(tag: str, attrib: dict[str, str | None] | None = None, *kids: etree._Element | None,
        text_value: str | None = None) -> etree._Element:
    """A new HL7 element; None attribute values and None children are skipped."""
    el = etree.Element(f"{{{HL7}}}{tag}")
    for key, value in (attrib or {}).items():
        if value is not None:
            el.set(key, value)
    if text_value is not None:
        el.text = text_value
    for kid in kids:
        if kid is not None:
            el.append(kid)
    return el


def sub(parent: etree._Element, tag: str, attrib: dict[str, str | None] | None = None,
        text_value: str | None = None) -> etree._Element:
    el = hl7(tag, attrib, text_value=text_value)
    parent.append(el)
    return el


def message_root(name: str) -> etree._Element:
    """The message element, declaring HL7 (default) and xsi on itself."""
    el = etree.Element(f"{{{HL7}}}{name}", nsmap=NSMAP)
    el.set("ITSVersion", "XML_1.0")
    return el


def set_xsi_type(el: etree._Element, type_name: str) -> None:
    """xsi:type with an unprefixed QName, which resolves to HL7 (the default namespace)."""
    el.set(f"{{{XSI}}}type", type_name)


def iter_hl7(el: etree._Element, name: str) -> Iterator[etree._Element]:
    return (d for d in el.iter() if is_hl7(d, name))
