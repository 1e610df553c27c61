"""Is this XML well-formed and plain? Answered by libxml2 without building a tree.

The initiating gateway relays partners' registry objects byte for byte
(``profiles.xca.relay``), so it needs to know that an answer is well-formed XML (and
namespace-well-formed: every prefix bound) but not its tree. lxml parsing into a
*target* that has no ``start``, ``end`` or ``data`` method leaves libxml2's SAX
callbacks unset: libxml2 checks every byte and builds nothing, with the GIL released,
in about a third of the CPU a tree costs (``bench/fanout.py``). The target hears only
what the plain shape excludes: comments, processing instructions and a DOCTYPE;
namespace errors (which libxml2 only logs) are read from the parser's error log; a
CDATA section, which the target cannot hear, is looked for in the bytes.

The parser is the hardened one's settings (``profiles.xml``): no network, no DTD
loading, no entity substitution; a DOCTYPE makes the document not plain anyway.
"""

from __future__ import annotations

import threading

from lxml import etree

_local = threading.local()


class _Plain:
    """A parser target that only notices what is not plain."""

    def __init__(self) -> None:
        self.plain = True

    def comment(self, _text: str) -> None:
        self.plain = False

    def pi(self, _target: str, _data: str | None = None) -> None:
        self.plain = False

    def doctype(self, *_args: object) -> None:
        self.plain = False

    def close(self) -> bool:
        return self.plain


def _checker() -> tuple[etree.XMLParser, _Plain]:
    """One parser per thread: a parser parses one document at a time."""
    pair = getattr(_local, "pair", None)
    if pair is None:
        target = _Plain()
        parser = etree.XMLParser(target=target, resolve_entities=False, no_network=True,
                                 load_dtd=False, huge_tree=False)
        pair = _local.pair = (parser, target)
    return pair


def plain_well_formed(data: bytes) -> bool:
    """True when ``data`` is one well-formed, namespace-well-formed XML document holding
    nothing but elements, attributes, text and references: no DOCTYPE, comment, CDATA
    section or processing instruction (the XML declaration is allowed).

    False for everything else: callers then read the document with
    ``profiles.xml.parse_xml``, which refuses it with the precise error or reads it.
    """
    if b"<![CDATA[" in data or b"<!DOCTYPE" in data[: _root_start(data)]:
        return False
    parser, target = _checker()
    target.plain = True
    try:
        plain = etree.fromstring(data, parser)
    except etree.XMLSyntaxError:
        return False
    return bool(plain) and not len(parser.error_log)


def _root_start(data: bytes) -> int:
    """Where the root element starts, at the latest: a DOCTYPE can only come before it."""
    at = data.find(b"<")
    while at != -1 and data[at + 1 : at + 2] in (b"?", b"!"):
        at = data.find(b"<", at + 1)
    return len(data) if at == -1 else at + 1
