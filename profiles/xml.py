"""The one hardened XML parser for everything that arrives from outside.

A DOCTYPE is refused outright (no entity expansion, no XXE, no billion laughs),
the network is never touched and sizes are capped before parsing starts.
"""

from __future__ import annotations

import threading

from lxml import etree

from profiles.errors import SoapFault, sender_fault

DEFAULT_MAX_BYTES = 50 * 1024 * 1024


def _parser(huge: bool) -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=huge,
        remove_blank_text=False,
        collect_ids=False,
    )


# One parser pair per thread: an lxml parser parses one document at a time (it holds a
# lock), while separate parsers run in parallel with the GIL released, so threads that
# read partners' answers (the XCA fan-out) use both cores.
_local = threading.local()


def _parsers() -> tuple[etree.XMLParser, etree.XMLParser]:
    pair = getattr(_local, "pair", None)
    if pair is None:
        pair = _local.pair = (_parser(False), _parser(True))
    return pair


class XmlRefused(SoapFault):
    """The input is not acceptable XML; answered as a SOAP Sender fault."""


def parse_xml(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> etree._Element:
    """Parse untrusted bytes into an element, or raise a Sender fault.

    Documents with any DOCTYPE are refused: no IHE message needs one, and
    refusing it closes entity expansion and external entities together.
    """
    if len(data) > max_bytes:
        raise sender_fault("Message exceeds the size limit")
    parser = _parsers()[len(data) > 9_000_000]
    try:
        tree = etree.fromstring(data, parser).getroottree()
    except etree.XMLSyntaxError:
        raise sender_fault("Message is not well-formed XML") from None
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise sender_fault("DOCTYPE declarations are not accepted")
    return tree.getroot()


def to_bytes(el: etree._Element, *, declaration: bool = True) -> bytes:
    return etree.tostring(el, xml_declaration=declaration, encoding="UTF-8")


def qname(ns: str, local: str) -> str:
    return f"{{{ns}}}{local}"
