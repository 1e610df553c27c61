"""Relay a partner's registry objects byte for byte, without building their tree.

An initiating gateway passes the objects of every partner's ITI-38 answer through
(ITI TF-2b 3.38.4.1.3), adding only ``home``. Parsing 500 partners' answers into
lxml trees and serialising their objects again costs more than the whole budget of
a 500-community fan-out on two cores (``bench/fanout.py``). So an answer in the
plain shape every gateway sends is handled in three cheap steps:

1. ``profiles.xmlcheck.plain_well_formed``: libxml2 checks the whole answer
   (well-formed, every prefix bound) with the GIL released, building no tree;
2. ``split_answer`` finds the ``RegistryObjectList``'s children by their tags. This
   is exact because the answer is well-formed and has no comment, CDATA section,
   processing instruction or DOCTYPE: every ``<`` then opens a tag. A child's end is
   the first end tag of its own name, checked by counting that no element of the
   same name nests inside it;
3. the rest of the answer (envelope, status, errors, the list now empty), a few
   hundred bytes, is parsed and read as before, and ``relayed`` turns each child into
   a self-contained fragment: the namespace declarations in scope at the list are
   written onto its start tag, ``home`` added where missing.

Anything else (another encoding, comments, CDATA, a child that declares namespaces,
escaped attribute values, ``home=""``) returns None or raises ``NotRelayable``, and
the caller reads the answer with lxml as before: same results, more CPU.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

from profiles import xmlcheck

RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
RELAYED = frozenset({"ExtrinsicObject", "RegistryPackage", "Association", "ObjectRef",
                     "Classification", "ExternalIdentifier"})
NO_HOME = frozenset({"Classification", "ExternalIdentifier"})  # nested kinds: no home

_NAME = rb"[A-Za-z_][\w.\-]*"
_LIST_START = re.compile(rb"<((?:" + _NAME + rb":)?RegistryObjectList)(?=[\s/>])")
# The rest of a start tag: attributes (quoted values may hold '>') up to '>' or '/>'.
_ATTRIBUTES = rb"((?:[^>\"']|\"[^\"]*\"|'[^']*')*?)(/?)>"
_TAG_REST = re.compile(_ATTRIBUTES)
# A child's start tag up to its attributes (after whitespace): its name.
_CHILD_START = re.compile(rb"[ \t\r\n]*<(" + _NAME + rb"(?::" + _NAME + rb")?)(?=[\s/>])")
_SPACE = re.compile(rb"[ \t\r\n]*")
_DELIMITER = re.compile(rb"[\s/>]")
_END_REST = re.compile(rb"\s*>")
_ID = re.compile(rb"\sid\s*=\s*(?:\"([^\"]*)\"|'([^']*)')")
_HOME = re.compile(rb"\shome\s*=\s*(?:\"([^\"]*)\"|'([^']*)')")
_DECLARATION = re.compile(rb"^\s*<\?xml\b((?:[^?]|\?(?!>))*)\?>")
_ENCODING = re.compile(rb"encoding\s*=\s*[\"']([A-Za-z0-9._\-]+)[\"']")


class NotRelayable(Exception):
    """The answer is not in the shape ``relayed`` handles; read it the lxml way."""


class RawObject(NamedTuple):
    """One child of the answer's ``RegistryObjectList``, as offsets into the answer
    (a tuple: thousands are made per fan-out)."""

    qname: bytes  # as written: b"rim:ExtrinsicObject"
    name_end: int  # just past its name in its start tag
    end: int  # just past its end tag (or its '/>')
    id: str  # its attribute's value ("" if none); values here hold no '&'
    home: str  # its attribute's value, stripped ("" if none)


@dataclass(frozen=True)
class SplitAnswer:
    """An answer's registry objects located, and the rest of it to parse."""

    raw: bytes
    head: bytes  # the answer with the list's content cut out: small, parsed as usual
    objects: tuple[RawObject, ...]


def split_answer(raw: bytes) -> SplitAnswer | None:
    """The registry objects of a well-formed UTF-8 answer in the plain shape, or None."""
    if not _utf8(raw):
        return None
    at = raw.find(b"RegistryObjectList")  # the first: the list's start tag
    start = _LIST_START.match(raw, raw.rfind(b"<", 0, at)) if at > 0 else None
    if start is None:
        return None
    qname = start.group(1)
    rest = _TAG_REST.match(raw, start.end())
    if rest is None or rest.group(2):
        return None  # an empty list: nothing to gain
    content_start = rest.end()
    content_end = raw.rfind(b"</" + qname)  # the last: the list's end tag
    if content_end < content_start:
        return None
    # The one parse of every byte, off the GIL; it also refuses comments, CDATA, PIs
    # and DOCTYPEs, so below every '<' opens a tag.
    if not xmlcheck.plain_well_formed(raw):
        return None
    objects = _children(raw, content_start, content_end)
    if objects is None:
        return None
    head = raw[:content_start] + raw[content_end:]
    if head.count(b"RegistryObjectList") != 2:  # its start and end tag, nothing else
        return None
    return SplitAnswer(raw, head, objects)


def relayed(split: SplitAnswer, in_scope: Mapping[str | None, str], home: str,
            problems: list) -> list[tuple[str, str | None, bytes]]:
    """(id, home, self-contained XML) per registry object; unknown ones go to ``problems``.

    ``in_scope``: the namespaces in scope at the ``RegistryObjectList`` (its lxml
    ``nsmap`` in the parsed head), written onto each fragment's start tag.
    """
    declarations = _declarations(tuple(in_scope.items()))
    with_home = declarations + b' home="' + _escape(home) + b'"'
    kinds: dict[bytes, tuple[str, bool]] = {}  # qname: (local name, relayable)
    raw = memoryview(split.raw)  # each fragment is one copy of its bytes, joined
    out = []
    for obj in split.objects:
        kind = kinds.get(obj.qname)
        if kind is None:
            prefix, _, local = obj.qname.decode().rpartition(":")
            relayable = in_scope.get(prefix or None) == RIM and local in RELAYED
            kind = kinds[obj.qname] = (local, relayable)
        if not kind[1] or not obj.id:
            problems.append(kind[0])
            continue
        if obj.home or kind[0] in NO_HOME:
            out.append((obj.id, obj.home or None,
                        b"".join((b"<", obj.qname, declarations, raw[obj.name_end:obj.end]))))
        else:
            out.append((obj.id, home,
                        b"".join((b"<", obj.qname, with_home, raw[obj.name_end:obj.end]))))
    return out


@functools.lru_cache(maxsize=64)
def _declarations(in_scope: tuple[tuple[str | None, str], ...]) -> bytes:
    """The namespace declarations written onto each fragment (the answers of one fan-out
    mostly share one set)."""
    return b"".join(
        (b' xmlns="' if prefix is None else b" xmlns:" + prefix.encode() + b'="')
        + _escape(uri) + b'"' for prefix, uri in in_scope)


def _children(raw: bytes, pos: int, end: int) -> tuple[RawObject, ...] | None:
    """The elements between ``pos`` and ``end`` (the list's content), or None when
    anything else is there or one of them is not in the shape ``relayed`` handles."""
    objects = []
    while True:
        m = _CHILD_START.match(raw, pos, end)
        if m is None:  # only whitespace may be left before the list's end tag
            return tuple(objects) if _SPACE.match(raw, pos, end).end() == end else None
        qname, attributes_at = m.group(1), m.end()
        found = _start_tag_rest(raw, attributes_at, end)
        if found is None:
            return None
        tag, after, empty = found
        close = after if empty else _close(raw, qname, after, end)
        obj = _object(qname, tag, attributes_at, close)
        if obj is None or close < 0:
            return None
        objects.append(obj)
        pos = close


def _start_tag_rest(raw: bytes, pos: int, end: int) -> tuple[bytes, int, bool] | None:
    """(attributes, just past the start tag, empty element) of the start tag whose
    attributes begin at ``pos``. Its first '>' ends it unless that '>' is inside a
    quoted value: with only double quotes in between, an even count of them says it is
    not (the usual case, found by two C searches); else the exact pattern decides."""
    gt = raw.find(b">", pos, end)
    if gt < 0:
        return None
    tag = raw[pos:gt]
    if b"'" in tag or tag.count(b'"') % 2:
        m = _TAG_REST.match(raw, pos, end)
        return None if m is None else (m.group(1), m.end(), bool(m.group(2)))
    if tag.endswith(b"/"):
        return tag[:-1], gt + 1, True
    return tag, gt + 1, False


def _object(qname: bytes, tag: bytes, attributes_at: int, close: int) -> RawObject | None:
    if b"xmlns" in tag or b"&" in tag:
        return None  # own declarations or escaped values: the lxml path
    found = _ID.search(tag)
    object_id = (found.group(1) or found.group(2) or b"").decode() if found else ""
    home = b""
    if b"home" in tag:
        found = _HOME.search(tag)
        if found is not None:
            home = (found.group(1) or found.group(2) or b"").strip()
            if not home:
                return None  # home="" is to be replaced, not added to: the lxml path
    return RawObject(qname, attributes_at, close, object_id, home.decode())


def _close(raw: bytes, qname: bytes, pos: int, end: int) -> int:
    """Just past the end tag of the element named ``qname`` whose content starts at
    ``pos``; -1 if an element of the same name nests inside it (then the first end tag
    may not be its own; ebRIM objects never nest in their own kind)."""
    at = raw.find(qname, pos, end)  # a long pattern: C's fast search, not a regex
    while at >= 0:
        after = at + len(qname)
        if raw[at - 2 : at] == b"</":
            close = _END_REST.match(raw, after)
            if close is not None:
                return close.end()
        elif raw[at - 1] == 0x3C and _DELIMITER.match(raw, after):  # '<' qname: nested
            return -1
        at = raw.find(qname, after, end)  # the name in text or in another name
    return -1


def _utf8(raw: bytes) -> bool:
    """UTF-8 (the default, or declared): the relayed bytes go into a UTF-8 answer as they are."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return False
    m = _DECLARATION.match(raw[3:] if raw.startswith(b"\xef\xbb\xbf") else raw)
    if m is None:
        return True
    enc = _ENCODING.search(m.group(1))
    return enc is None or enc.group(1).lower() in (b"utf-8", b"utf8")


def _escape(value: str) -> bytes:
    return (value.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")
            .encode("utf-8"))
