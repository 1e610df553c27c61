"""ITI-43, sans I/O: several documents, PartialSuccess, unknown repository and
community, and a response the official schema accepts once XOP is resolved."""

from __future__ import annotations

import base64
from types import SimpleNamespace

import pytest
from lxml import etree

import wsdl
from profiles.errors import GatewayError
from profiles.transaction import Reply
from profiles.xds import codes as c
from profiles.xds.iti43 import handle, parse, serialize
from profiles.xop import XOP_INCLUDE, content_id_from_href
from tests.profiles.xds.fake_repository import REPOSITORY_ID, FakeRepository

X = f"{{{c.XDS}}}"
HOME = "urn:oid:1.2.3"
PARTIAL = "urn:ihe:iti:2007:ResponseStatusType:PartialSuccess"


def request(*docs: tuple[str, str] | tuple[str, str, str]) -> etree._Element:
    root = etree.Element(X + "RetrieveDocumentSetRequest", nsmap={"xds": c.XDS})
    for doc in docs:
        el = etree.SubElement(root, X + "DocumentRequest")
        if len(doc) == 3:
            etree.SubElement(el, X + "HomeCommunityId").text = doc[2]
        etree.SubElement(el, X + "RepositoryUniqueId").text = doc[0]
        etree.SubElement(el, X + "DocumentUniqueId").text = doc[1]
    return root


def ctx(repo):
    return SimpleNamespace(ports=SimpleNamespace(repository=repo), home_community_id=HOME)


def resolve_xop(reply: Reply) -> etree._Element:
    """The XOP-reconstituted infoset: each include replaced by its part's base64."""
    parts = {a.content_id: b"".join(a.chunks()) for a in reply.attachments}
    body = etree.fromstring(etree.tostring(reply.body))
    for inc in list(body.iter(XOP_INCLUDE)):
        parent = inc.getparent()
        parent.remove(inc)
        parent.text = base64.b64encode(parts[content_id_from_href(inc.get("href"))]).decode()
    return body


def assert_valid(el: etree._Element) -> None:
    schema = wsdl.schema("ebrs")
    assert schema.validate(el), [str(e) for e in schema.error_log]


@pytest.fixture
def repo():
    r = FakeRepository()
    r.put("1.1", b"first document", "text/plain")
    r.put("1.2", b"<second/>", "text/xml")
    return r


def test_several_documents_stream_back_with_mime_type_and_home(repo):
    response = handle(parse(request((REPOSITORY_ID, "1.2"), (REPOSITORY_ID, "1.1"))), ctx(repo))
    reply = serialize(response)
    body = resolve_xop(reply)
    assert_valid(body)
    status = body.find(f"{{{c.RS}}}RegistryResponse").get("status")
    assert status.endswith(":Success")
    found = [
        (
            d.findtext(X + "DocumentUniqueId"),
            d.findtext(X + "mimeType"),
            d.findtext(X + "HomeCommunityId"),
            d.findtext(X + "RepositoryUniqueId"),
            base64.b64decode(d.findtext(X + "Document")),
        )
        for d in body.iter(X + "DocumentResponse")
    ]
    assert found == [
        ("1.2", "text/xml", HOME, REPOSITORY_ID, b"<second/>"),
        ("1.1", "text/plain", HOME, REPOSITORY_ID, b"first document"),
    ]
    assert [a.content_type for a in reply.attachments] == ["text/xml", "text/plain"]
    assert [a.size for a in reply.attachments] == [9, 14]


def test_missing_and_unknown_repository_are_partial_success(repo):
    response = handle(
        parse(
            request(
                (REPOSITORY_ID, "1.1"),
                (REPOSITORY_ID, "9.9"),
                ("7.7.7", "1.2"),
                (REPOSITORY_ID, "1.2", "urn:oid:6.6"),
            )
        ),
        ctx(repo),
    )
    body = resolve_xop(serialize(response))
    assert_valid(body)
    rr = body.find(f"{{{c.RS}}}RegistryResponse")
    assert rr.get("status") == PARTIAL
    errors = [(e.get("errorCode"), e.get("location")) for e in rr.iter(f"{{{c.RS}}}RegistryError")]
    assert errors == [
        ("XDSMissingDocument", "9.9"),
        ("XDSUnknownRepositoryId", "1.2"),
        ("XDSUnknownCommunity", "1.2"),
    ]
    assert [d.findtext(X + "DocumentUniqueId") for d in body.iter(X + "DocumentResponse")] == [
        "1.1"
    ]


def test_nothing_found_is_failure_without_documents(repo):
    body = resolve_xop(serialize(handle(parse(request((REPOSITORY_ID, "9.9"))), ctx(repo))))
    assert_valid(body)
    assert body.find(f"{{{c.RS}}}RegistryResponse").get("status").endswith(":Failure")
    assert body.find(X + "DocumentResponse") is None


def test_a_request_without_ids_is_refused():
    root = request()
    etree.SubElement(
        etree.SubElement(root, X + "DocumentRequest"), X + "DocumentUniqueId"
    ).text = "1"
    with pytest.raises(GatewayError) as info:
        parse(root)
    assert info.value.code == "XDSRepositoryError"
    with pytest.raises(GatewayError):
        parse(request())
