"""ITI-43, sans I/O: several documents, PartialSuccess, unknown repository and
community, and a response the official schema accepts once XOP is resolved."""

from __future__ import annotations

import base64
from types import SimpleNamespace

import pytest
from lxml import etree

import wsdl
from profiles.errors import GatewayError
from profiles.xds import codes as c
from profiles.xds.iti43 import handle, parse, serialize
from tests.profiles.xds.fake_repository import REPOSITORY_ID, FakeRepository
from tests.profiles.xds.retrieve import resolve_xop, retrieve_request

X = f"{{{c.XDS}}}"
HOME = "urn:oid:1.2.3"
PARTIAL = "urn:ihe:iti:2007:ResponseStatusType:PartialSuccess"


def ctx(repo):
    return SimpleNamespace(ports=SimpleNamespace(repository=repo), home_community_id=HOME)


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
    request = retrieve_request((REPOSITORY_ID, "1.2"), (REPOSITORY_ID, "1.1"))
    response = handle(parse(request), ctx(repo))
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
            retrieve_request(
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
    request = retrieve_request((REPOSITORY_ID, "9.9"))
    body = resolve_xop(serialize(handle(parse(request), ctx(repo))))
    assert_valid(body)
    assert body.find(f"{{{c.RS}}}RegistryResponse").get("status").endswith(":Failure")
    assert body.find(X + "DocumentResponse") is None


def test_a_request_without_ids_is_refused():
    root = retrieve_request()
    etree.SubElement(
        etree.SubElement(root, X + "DocumentRequest"), X + "DocumentUniqueId"
    ).text = "1"
    with pytest.raises(GatewayError) as info:
        parse(root)
    assert info.value.code == "XDSRepositoryError"
    with pytest.raises(GatewayError):
        parse(retrieve_request())
