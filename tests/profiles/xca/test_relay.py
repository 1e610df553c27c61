"""Relaying partners' registry objects byte for byte (``profiles.xca.relay``) gives what
parsing the whole answer gives, on real responders' answers and on every shape that could
fool a tag scanner; anything unusual falls back to the lxml path."""

from __future__ import annotations

import time

import pytest
from lxml import etree

from profiles import xmlcheck
from profiles.xca.query import read_query_response
from profiles.xca.relay import split_answer
from profiles.xml import parse_xml
from tests.conftest import CONFORMANCE
from tests.gateway.xca.peers import query_answer

QUERY = "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"
RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
HOME = "urn:oid:1.2.3"
REAL = sorted(
    p for p in (CONFORMANCE / "messages").rglob("*.xml")
    if b"RegistryObjectList" in p.read_bytes() and b"AdhocQueryResponse" in p.read_bytes()
)

def response_of(root: etree._Element) -> etree._Element:
    return next(root.iter(f"{{{QUERY}}}AdhocQueryResponse"))


def exclusive_c14n(xml: bytes) -> bytes:
    return etree.tostring(etree.fromstring(xml), method="c14n", exclusive=True)


def both_ways(raw: bytes):
    """(the split answer or None, the relayed result, the whole-tree result)."""
    whole = read_query_response(response_of(parse_xml(raw)), home_community_id=HOME)
    split = split_answer(raw)
    if split is None:
        return None, None, whole
    head = response_of(parse_xml(split.head))
    return split, read_query_response(head, home_community_id=HOME, split=split), whole


def assert_same(relayed, whole) -> None:
    assert relayed.status == whole.status
    assert relayed.errors == whole.errors
    assert [(o.id, o.home) for o in relayed.objects] == [(o.id, o.home) for o in whole.objects]
    for ours, theirs in zip(relayed.objects, whole.objects, strict=True):
        assert exclusive_c14n(ours.xml) == exclusive_c14n(theirs.xml)


def test_real_answers_relay_as_parsing_them_would():
    relayed_files = 0
    for path in REAL:
        split, relayed, whole = both_ways(path.read_bytes())
        if split is not None:
            relayed_files += 1
            assert_same(relayed, whole)
    assert relayed_files >= 5, relayed_files  # the fast path is the common one


def test_a_gateway_answer_is_relayed_and_its_fragments_stand_alone():
    split, relayed, whole = both_ways(query_answer("1.2.840.99.1", 10))
    assert split is not None and len(relayed.objects) == 10
    assert_same(relayed, whole)
    for obj in relayed.objects:  # parsed alone, with nothing around it: namespaces declared
        el = etree.fromstring(obj.xml)
        assert el.tag == f"{{{RIM}}}ExtrinsicObject" and el.get("home") == HOME


def answer(objects: str, *, ns: str = 'xmlns:rim="' + RIM + '"', prolog: str = "",
           header: str = "") -> bytes:
    return (prolog + '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope">'
            f"<s:Header>{header}</s:Header><s:Body>"
            f'<query:AdhocQueryResponse xmlns:query="{QUERY}" {ns} '
            'status="urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success">'
            f"<rim:RegistryObjectList>{objects}</rim:RegistryObjectList>"
            "</query:AdhocQueryResponse></s:Body></s:Envelope>").encode()


EO = '<rim:ExtrinsicObject id="urn:uuid:{n}" mimeType="text/xml">{inner}</rim:ExtrinsicObject>'
SLOT = '<rim:Slot name="x"><rim:ValueList><rim:Value>{v}</rim:Value></rim:ValueList></rim:Slot>'
FAKE_END = "</rim:ExtrinsicObject><rim:ExtrinsicObject id='urn:uuid:evil'>"


@pytest.mark.parametrize("raw", [
    # a comment or CDATA could hide an end tag from a scanner
    answer(EO.format(n=1, inner=f"<!-- {FAKE_END} -->")),
    answer(EO.format(n=1, inner=SLOT.format(v=f"<![CDATA[{FAKE_END}]]>"))),
    answer(EO.format(n=1, inner="<?pi data?>")),
    # the same element nested in itself
    answer(EO.format(n=1, inner=EO.format(n=2, inner=""))),
    # own namespace declarations, escaped attribute values, text between objects
    answer(EO.format(n=1, inner="").replace("<rim:ExtrinsicObject ",
                                            f'<rim:ExtrinsicObject xmlns:rim="{RIM}" ')),
    answer('<rim:ExtrinsicObject id="urn:uuid:a&amp;b"/>'),
    answer(EO.format(n=1, inner="") + "stray text" + EO.format(n=2, inner="")),
    # another encoding: its bytes cannot go into a UTF-8 answer as they are
    answer(EO.format(n=1, inner=""),
           prolog="<?xml version='1.0' encoding='ISO-8859-1'?>"),
    # not well-formed, or a prefix nobody declared
    answer(EO.format(n=1, inner="<rim:Slot>")),
    answer(EO.format(n=1, inner="<x:Slot/>")),
    answer(EO.format(n=1, inner=""))[:-30],
], ids=["comment", "cdata", "pi", "nested", "own-xmlns", "escaped-id", "stray-text",
        "latin-1", "unclosed", "unbound-prefix", "truncated"])
def test_shapes_a_scanner_could_misread_take_the_lxml_path(raw):
    assert split_answer(raw) is None


def test_a_doctype_is_never_expanded():
    laughs = ('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
              + "".join(f'<!ENTITY {c} "&{p};&{p};&{p};&{p};&{p};&{p};&{p};&{p};&{p};&{p};">'
                        for p, c in zip("abcdefgh", "bcdefghi", strict=True))
              + "]><r>&i;</r>").encode()
    started = time.perf_counter()
    assert not xmlcheck.plain_well_formed(laughs)
    assert time.perf_counter() - started < 1.0  # stopped at the DOCTYPE, nothing expanded
    assert split_answer(answer(EO.format(n=1, inner=""), prolog=laughs.decode()[:-12])) is None


@pytest.mark.parametrize("raw", [
    # '>' and '/>' inside attribute values, self-closing objects, a top-level Classification
    answer('<rim:ExtrinsicObject id="urn:uuid:1" mimeType="a>b" lid="x/>y">'
           + SLOT.format(v="a &gt; b &amp; c") + "</rim:ExtrinsicObject>"
           '<rim:ObjectRef id="urn:uuid:2"/>'
           '<rim:ObjectRef id="urn:uuid:3" home="urn:oid:9.9"/>'
           '<rim:Classification id="urn:uuid:4" classifiedObject="urn:uuid:1" '
           'classificationNode="urn:uuid:5"/>'),
    # single quotes: a '>' and double quotes inside them (the scan's exact pattern), an
    # even count of double quotes before a '>' that ends nothing
    answer("<rim:ExtrinsicObject id='urn:uuid:1' mimeType='a \"b\" >c'>"
           + SLOT.format(v="v") + "</rim:ExtrinsicObject>"
           "<rim:ObjectRef id='urn:uuid:2' lid=\"x\" status='>'/>"
           '<rim:ObjectRef id="urn:uuid:3" lid="a" home="urn:oid:9.9"/>'),
    # the object's name in text, in a longer name, and end tags written with space
    answer(EO.format(n=1, inner=SLOT.format(v="rim:ExtrinsicObject &lt;/rim:ExtrinsicObject&gt;"))
           .replace("</rim:ExtrinsicObject>", "</rim:ExtrinsicObject  >")
           + '<rim:ExtrinsicObjectX id="urn:uuid:9"/>'),
    # rim as the default namespace, no prefix anywhere
    answer(EO.format(n=1, inner=SLOT.format(v="v")).replace("rim:", ""), ns=f'xmlns="{RIM}"')
    .replace(b"rim:RegistryObjectList", b"RegistryObjectList"),
    # an unknown object among known ones: dropped with a warning either way
    answer('<rim:Foo id="urn:uuid:7"/>' + EO.format(n=1, inner="")),
    # the list's name in the header's text
    answer(EO.format(n=1, inner=""), header="<a>RegistryObjectList</a>"),
], ids=["attribute-values", "single-quotes", "names-in-text", "default-namespace", "unknown-object",
        "name-in-header"])
def test_unusual_but_plain_shapes_relay_exactly(raw):
    split, relayed, whole = both_ways(raw)
    if split is not None:
        assert_same(relayed, whole)
    else:
        assert raw.count(b"RegistryObjectList") > 2  # only the header case may fall back


def test_objects_keep_their_home_and_get_ours_where_missing():
    raw = answer('<rim:ObjectRef id="urn:uuid:2"/><rim:ObjectRef id="urn:uuid:3" home="h:9"/>'
                 '<rim:Classification id="urn:uuid:4" classifiedObject="urn:uuid:2" '
                 'classificationNode="urn:uuid:5"/>')
    split, relayed, _ = both_ways(raw)
    assert split is not None
    assert [(o.id, o.home) for o in relayed.objects] == [
        ("urn:uuid:2", HOME), ("urn:uuid:3", "h:9"), ("urn:uuid:4", None)]
