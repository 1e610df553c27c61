"""ITI-41 and XDR, sans I/O: documents paired with their entries, bytes measured,
metadata completed, every problem reported at once."""

from __future__ import annotations

import hashlib
import io
from dataclasses import replace
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from profiles.errors import GatewayError, XDSRegistryError
from profiles.transaction import Attachment, Context
from profiles.xds.ebrim import XopInclude, provide_and_register_to_xml
from profiles.xds.iti41 import handle, handle_xdr, parse, parse_xdr, serialize
from tests.profiles.xds.builders import document_entry, member, submission
from tests.profiles.xds.fake_repository import REPOSITORY_ID, FakeRepository

CONTENT = b"<ClinicalDocument/>"
SHA1 = hashlib.sha1(CONTENT).hexdigest()


def ctx(repo, attachments=None) -> Context:
    return Context(
        request_id="r1",
        action="urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b",
        message_id=None,
        peer_subject=None,
        home_community_id="urn:oid:1.2.3",
        received_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        attachments=attachments or {},
        ports=SimpleNamespace(repository=repo),
    )


def attachment(cid: str, data: bytes) -> Attachment:
    return Attachment(
        cid, "text/xml", len(data), hashlib.sha1(data).hexdigest(), lambda: io.BytesIO(data)
    )


def sub(**entry_changes):
    changes = {"hash": None, "size": None, "repository_unique_id": None, **entry_changes}
    entry = document_entry(**changes)
    return submission(document_entries=(entry,))


def run(submission_, documents, *, attachments=None, xdr=False):
    repo = FakeRepository()
    c = ctx(repo, attachments)
    body = provide_and_register_to_xml(submission_, documents)
    request = (parse_xdr if xdr else parse)(body, c)
    response = (handle_xdr if xdr else handle)(request, c)
    return repo, response


def codes(exc: GatewayError) -> list[tuple[str, str]]:
    return [(d.code, d.location) for d in exc.details]


def test_inline_document_is_stored_and_its_entry_completed():
    repo, response = run(sub(), {"Document01": CONTENT})
    (registered,) = repo.registered
    entry = registered.document_entries[0]
    assert (entry.hash, entry.size, entry.repository_unique_id) == (SHA1, 19, REPOSITORY_ID)
    assert repo.blobs[SHA1] == CONTENT
    (doc,) = response.documents
    assert (doc.unique_id, doc.mime_type, doc.sha1) == ("1.2.3.4.5.100.1", "text/xml", SHA1)
    assert serialize(response).get("status").endswith(":Success")


def test_mtom_document_comes_from_its_attachment():
    repo, _ = run(
        sub(),
        {"Document01": XopInclude("cid:doc1%40example")},
        attachments={"doc1@example": attachment("doc1@example", CONTENT)},
    )
    assert repo.registered[0].document_entries[0].hash == SHA1


def test_submitted_hash_and_size_that_agree_are_accepted_case_insensitively():
    repo, _ = run(sub(hash=SHA1.upper(), size=len(CONTENT)), {"Document01": CONTENT})
    assert repo.registered[0].document_entries[0].hash == SHA1


def test_wrong_hash_and_size_are_repository_metadata_errors_and_nothing_registers():
    with pytest.raises(GatewayError) as info:
        run(sub(hash="0" * 40, size=3), {"Document01": CONTENT})
    assert codes(info.value) == [("XDSRepositoryMetadataError", "Document01")] * 2


def test_missing_document_and_missing_metadata_are_both_reported():
    two = sub()
    second = document_entry("Document02", unique_id="1.2.3.4.5.100.9", hash=None, size=None)
    two = replace(
        two,
        document_entries=(*two.document_entries, second),
        associations=(*two.associations, member("as02", "Document02")),
    )
    with pytest.raises(GatewayError) as info:
        run(two, {"Document01": CONTENT, "Orphan": b"x"})
    assert sorted(codes(info.value)) == [
        ("XDSMissingDocument", "Document02"),
        ("XDSMissingDocumentMetadata", "Orphan"),
    ]


def test_include_of_a_part_that_is_not_in_the_message_is_a_missing_document():
    with pytest.raises(GatewayError) as info:
        run(sub(), {"Document01": XopInclude("cid:nowhere")})
    assert codes(info.value) == [("XDSMissingDocument", "Document01")]


def test_the_registry_refusal_is_the_answer():
    repo = FakeRepository(refuse=XDSRegistryError("no", location="x"))
    c = ctx(repo)
    request = parse(provide_and_register_to_xml(sub(), {"Document01": CONTENT}), c)
    with pytest.raises(GatewayError) as info:
        handle(request, c)
    assert codes(info.value) == [("XDSRegistryError", "x")]


def test_repository_refuses_limited_metadata_that_xdr_accepts():
    limited = sub(limited_metadata=True, class_code=None, practice_setting_code=None)
    with pytest.raises(GatewayError) as info:
        run(limited, {"Document01": CONTENT})
    assert {c for c, _ in codes(info.value)} == {"XDSRepositoryMetadataError"}
    repo, _ = run(limited, {"Document01": CONTENT}, xdr=True)
    assert not repo.registered
    ((delivered, docs),) = repo.delivered
    assert delivered.document_entries[0].hash == SHA1 and docs[0].size == len(CONTENT)
