"""ITI-39 responding, sans I/O: our documents streamed back with our HomeCommunityId,
missing and foreign HomeCommunityIds refused per document, errors located at us."""

from __future__ import annotations

import base64
from types import SimpleNamespace

import pytest
from lxml import etree

import wsdl
from profiles.errors import GatewayError
from profiles.xca import iti39
from profiles.xds import codes as c
from tests.profiles.xds.fake_repository import REPOSITORY_ID, FakeRepository
from tests.profiles.xds.retrieve import resolve_xop, retrieve_request

X = f"{{{c.XDS}}}"
HOME = "urn:oid:1.2.3.39"
PARTIAL = "urn:ihe:iti:2007:ResponseStatusType:PartialSuccess"


def ctx(repo):
    return SimpleNamespace(ports=SimpleNamespace(repository=repo), home_community_id=HOME)


@pytest.fixture
def repo():
    r = FakeRepository()
    r.put("1.1", b"first document", "text/plain")
    r.put("1.2", b"<ClinicalDocument/>", "text/xml")
    return r


def run(repo, *docs) -> etree._Element:
    """Handle and serialize; the answer with XOP resolved, checked against the schema."""
    parsed = iti39.parse(retrieve_request(*docs), ctx(repo))
    reply = iti39.serialize(iti39.handle(parsed, ctx(repo)))
    assert iti39.ITI_39.mtom_response
    body = resolve_xop(reply)
    wsdl.schema("ebrs").assertValid(body)
    return body


def status(body) -> str:
    return body.find(f"{{{c.RS}}}RegistryResponse").get("status")


def errors(body) -> list[tuple[str, str]]:
    return [(e.get("errorCode"), e.get("location")) for e in body.iter(f"{{{c.RS}}}RegistryError")]


@pytest.mark.parametrize("home,repository", [(HOME, REPOSITORY_ID), ("1.2.3.39", REPOSITORY_ID),
                                             (HOME, f"urn:oid:{REPOSITORY_ID}")])
def test_our_documents_come_back_with_our_home(repo, home, repository):
    body = run(repo, (repository, "1.2", home), (repository, "1.1", home))
    assert status(body).endswith(":Success")
    got = [(d.findtext(X + "HomeCommunityId"), d.findtext(X + "DocumentUniqueId"),
            d.findtext(X + "mimeType"), base64.b64decode(d.findtext(X + "Document")))
           for d in body.iter(X + "DocumentResponse")]
    assert got == [(HOME, "1.2", "text/xml", b"<ClinicalDocument/>"),
                   (HOME, "1.1", "text/plain", b"first document")]


def test_missing_home_community_id_is_refused_while_others_are_answered(repo):
    body = run(repo, (REPOSITORY_ID, "1.1"), (REPOSITORY_ID, "1.2", HOME))
    assert status(body) == PARTIAL
    assert errors(body) == [("XDSMissingHomeCommunityId", HOME)]
    assert [d.findtext(X + "DocumentUniqueId") for d in body.iter(X + "DocumentResponse")] == [
        "1.2"]


def test_another_community_is_unknown(repo):
    body = run(repo, (REPOSITORY_ID, "1.1", "urn:oid:9.9"))
    assert status(body).endswith(":Failure")
    assert errors(body) == [("XDSUnknownCommunity", HOME)]
    assert "1.1" in body.find(f".//{{{c.RS}}}RegistryError").get("codeContext")


def test_unknown_document_and_repository_are_located_at_our_home(repo):
    body = run(repo, (REPOSITORY_ID, "7.7", HOME), ("9.9.9", "1.1", HOME),
               (REPOSITORY_ID, "1.1", HOME))
    assert status(body) == PARTIAL
    assert errors(body) == [("XDSMissingDocument", HOME), ("XDSUnknownRepositoryId", HOME)]
    assert "7.7" in body.find(f".//{{{c.RS}}}RegistryError").get("codeContext")


def test_malformed_request_error_is_located_at_our_home(repo):
    bad = retrieve_request((REPOSITORY_ID, "1.1", HOME))
    bad.find(f"{X}DocumentRequest/{X}RepositoryUniqueId").text = ""
    with pytest.raises(GatewayError) as e:
        iti39.parse(bad, ctx(repo))
    assert [(d.code, d.location) for d in e.value.details] == [("XDSRepositoryError", HOME)]
