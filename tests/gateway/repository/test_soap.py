"""ITI-41, ITI-43 and XDR as real SOAP through the Flask app, on the real
repository, registry and blob store (SQLite, or PostgreSQL when configured)."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import replace
from datetime import timedelta

import sqlalchemy as sa
from lxml import etree

import wsdl
from gateway.audit.search import AuditQuery, search
from gateway.registry.models import DocumentEntryRow
from gateway.repository.models import RepositoryDocument
from gateway.store.blobindex import sweep_orphans
from gateway.store.models import Blob
from profiles.xds import codes as c
from profiles.xds.ebrim import XopInclude, provide_and_register_to_xml
from tests.gateway.repository.conftest import PNR, REPOSITORY_ID, RETRIEVE
from tests.profiles.xds.builders import document_entry, member, submission

X = f"{{{c.XDS}}}"
RS = f"{{{c.RS}}}"
CONTENT = b"<ClinicalDocument>hello</ClinicalDocument>"
SHA1 = hashlib.sha1(CONTENT).hexdigest()


def sub(n: int = 1, **changes):
    """SubmissionSet01 with DocumentN entries (uniqueIds 1.2.3.4.5.100.1<i>)."""
    entries = tuple(
        document_entry(
            f"Document0{i}",
            unique_id=f"1.2.3.4.5.100.1{i}",
            hash=None,
            size=None,
            repository_unique_id=None,
            **changes,
        )
        for i in range(1, n + 1)
    )
    return submission(
        document_entries=entries,
        associations=tuple(member(f"as0{i}", f"Document0{i}") for i in range(1, n + 1)),
    )


def status(answer) -> str:
    """The answer's ebRS status; every answer checked against the official schema too."""
    assert_schema_valid(answer)
    el = answer.body
    if el.tag != RS + "RegistryResponse":
        el = el.find(RS + "RegistryResponse")
    return el.get("status").rsplit(":", 1)[1]


def errors(answer) -> list[tuple[str, str]]:
    return [(e.get("errorCode"), e.get("location")) for e in answer.body.iter(RS + "RegistryError")]


def retrieve_body(*ids: str, repository: str = REPOSITORY_ID) -> etree._Element:
    root = etree.Element(X + "RetrieveDocumentSetRequest", nsmap={"xds": c.XDS})
    for uid in ids:
        el = etree.SubElement(root, X + "DocumentRequest")
        etree.SubElement(el, X + "RepositoryUniqueId").text = repository
        etree.SubElement(el, X + "DocumentUniqueId").text = uid
    return root


def documents(answer) -> dict[str, tuple[str, bytes]]:
    """DocumentUniqueId -> (mimeType, bytes), XOP resolved against the answer's parts."""
    out = {}
    for d in answer.body.iter(X + "DocumentResponse"):
        inc = d.find(f"{X}Document/{{http://www.w3.org/2004/08/xop/include}}Include")
        cid = inc.get("href").removeprefix("cid:").replace("%40", "@")
        out[d.findtext(X + "DocumentUniqueId")] = (d.findtext(X + "mimeType"), answer.parts[cid])
    return out


def assert_schema_valid(answer) -> None:
    """The XOP-reconstituted response against the official schema."""
    body = etree.fromstring(etree.tostring(answer.body))
    for inc in list(body.iter("{http://www.w3.org/2004/08/xop/include}Include")):
        parent = inc.getparent()
        cid = inc.get("href").removeprefix("cid:").replace("%40", "@")
        parent.remove(inc)
        parent.text = base64.b64encode(answer.parts[cid]).decode()
    schema = wsdl.schema("ebrs")
    assert schema.validate(body), [str(e) for e in schema.error_log]


def rows(gateway, model) -> list:
    with gateway.runtime.database.session() as s:
        return list(s.scalars(sa.select(model)))


def test_mtom_provide_and_register_adopts_the_spooled_part_then_retrieves(gateway, monkeypatch):
    def no_copy(stream):
        raise AssertionError("an MTOM part must be moved into the blob store, not copied")

    monkeypatch.setattr(gateway.runtime.blobs, "put", no_copy)
    answer = gateway.post(
        "/xds/repository",
        PNR,
        provide_and_register_to_xml(sub(), {"Document01": XopInclude("cid:doc1@example.org")}),
        parts={"doc1@example.org": CONTENT},
    )
    assert answer.status == 200 and status(answer) == "Success", errors(answer)
    blobs = gateway.runtime.blobs
    assert blobs.path(SHA1).read_bytes() == CONTENT
    assert list(gateway.spool.iterdir()) == []  # moved, not copied, and nothing left behind
    (doc,) = rows(gateway, RepositoryDocument)
    assert (doc.unique_id, doc.sha1, doc.size, doc.mime_type, doc.repository_unique_id) == (
        "1.2.3.4.5.100.11",
        SHA1,
        len(CONTENT),
        "text/xml",
        REPOSITORY_ID,
    )
    (entry,) = rows(gateway, DocumentEntryRow)
    assert entry.unique_id == "1.2.3.4.5.100.11"
    xml = etree.fromstring(entry.xml) if hasattr(entry, "xml") else None
    if xml is not None:
        slots = {s.get("name"): s.findtext(".//{*}Value") for s in xml.iter("{*}Slot")}
        assert slots["hash"] == SHA1 and slots["size"] == str(len(CONTENT))
        assert slots["repositoryUniqueId"] == REPOSITORY_ID

    got = gateway.post("/xds/repository", RETRIEVE, retrieve_body("1.2.3.4.5.100.11"))
    assert got.content_type.startswith("multipart/related")
    assert status(got) == "Success"
    assert documents(got) == {"1.2.3.4.5.100.11": ("text/xml", CONTENT)}
    home = got.body.find(f"{X}DocumentResponse/{X}HomeCommunityId").text
    assert home == "urn:oid:1.3.6.1.4.1.21367.2011.2.1"
    assert_schema_valid(got)
    found = search(gateway.runtime.database, AuditQuery())
    assert {f.entry.event_type for f in found} >= {"ITI-41", "ITI-43"}
    assert all(f.entry.outcome == 0 for f in found)


def test_inline_documents_several_then_partial_retrieve(gateway):
    contents = {"Document01": b"one", "Document02": b"two two", "Document03": b"three"}
    answer = gateway.post("/xds/repository", PNR, provide_and_register_to_xml(sub(3), contents))
    assert status(answer) == "Success", errors(answer)
    got = gateway.post(
        "/xds/repository",
        RETRIEVE,
        retrieve_body("1.2.3.4.5.100.13", "1.2.3.4.5.100.11", "9.9.9"),
    )
    assert status(got) == "PartialSuccess"
    assert errors(got) == [("XDSMissingDocument", "9.9.9")]
    assert documents(got) == {
        "1.2.3.4.5.100.13": ("text/xml", b"three"),
        "1.2.3.4.5.100.11": ("text/xml", b"one"),
    }
    assert_schema_valid(got)
    other = gateway.post(
        "/xds/repository", RETRIEVE, retrieve_body("1.2.3.4.5.100.11", repository="1.9")
    )
    assert status(other) == "Failure"
    assert errors(other) == [("XDSUnknownRepositoryId", "1.2.3.4.5.100.11")]
    assert_schema_valid(other)


def test_a_refused_registration_leaves_only_an_orphan_blob_for_the_sweep(gateway):
    stranger = "NOBODY^^^&1.2.3.4.5&ISO"
    unknown = replace(
        sub(patient_id=stranger),
        submission_set=replace(submission().submission_set, patient_id=stranger),
    )
    answer = gateway.post(
        "/xds/repository",
        PNR,
        provide_and_register_to_xml(unknown, {"Document01": XopInclude("cid:d@x")}),
        parts={"d@x": CONTENT},
    )
    assert status(answer) == "Failure"
    assert ("XDSUnknownPatientId", "SubmissionSet01") in errors(answer)
    assert rows(gateway, RepositoryDocument) == [] and rows(gateway, DocumentEntryRow) == []
    assert rows(gateway, Blob) == []
    blobs = gateway.runtime.blobs
    assert blobs.exists(SHA1)  # written before the metadata: an orphan now
    report = sweep_orphans(gateway.runtime.database, blobs, timedelta(0))
    assert report.blobs_removed == 1 and not blobs.exists(SHA1)
    got = gateway.post("/xds/repository", RETRIEVE, retrieve_body("1.2.3.4.5.100.11"))
    assert errors(got) == [("XDSMissingDocument", "1.2.3.4.5.100.11")]


def test_wrong_hash_and_pairing_errors_come_back_together(gateway):
    bad = sub(2)
    bad = replace(
        bad,
        document_entries=(
            replace(bad.document_entries[0], hash="0" * 40, size=1),
            bad.document_entries[1],
        ),
    )
    answer = gateway.post(
        "/xds/repository",
        PNR,
        provide_and_register_to_xml(bad, {"Document01": CONTENT, "Stray": b"x"}),
    )
    assert status(answer) == "Failure"
    assert sorted(errors(answer)) == [
        ("XDSMissingDocument", "Document02"),
        ("XDSMissingDocumentMetadata", "Stray"),
    ]
    answer = gateway.post(
        "/xds/repository",
        PNR,
        provide_and_register_to_xml(
            bad.__class__(
                submission_set=bad.submission_set,
                document_entries=bad.document_entries[:1],
                associations=bad.associations[:1],
            ),
            {"Document01": CONTENT},
        ),
    )
    assert errors(answer) == [("XDSRepositoryMetadataError", "Document01")] * 2


def test_same_document_twice_shares_one_blob(gateway):
    first = provide_and_register_to_xml(sub(), {"Document01": CONTENT})
    assert status(gateway.post("/xds/repository", PNR, first)) == "Success"
    again = sub()
    again = replace(
        again,
        document_entries=(replace(again.document_entries[0], unique_id="1.2.3.4.5.100.99"),),
        submission_set=replace(again.submission_set, unique_id="1.2.3.4.5.100.98"),
    )
    answer = gateway.post(
        "/xds/repository", PNR, provide_and_register_to_xml(again, {"Document01": CONTENT})
    )
    assert status(answer) == "Success", errors(answer)
    assert [b.sha1 for b in rows(gateway, Blob)] == [SHA1]
    assert sorted(d.unique_id for d in rows(gateway, RepositoryDocument)) == [
        "1.2.3.4.5.100.11",
        "1.2.3.4.5.100.99",
    ]


def test_xdr_stores_full_metadata_in_the_local_registry(gateway):
    body = provide_and_register_to_xml(sub(), {"Document01": XopInclude("cid:x@y")})
    answer = gateway.post("/xdr", PNR, body, parts={"x@y": CONTENT})
    assert status(answer) == "Success", errors(answer)
    got = gateway.post("/xds/repository", RETRIEVE, retrieve_body("1.2.3.4.5.100.11"))
    assert documents(got) == {"1.2.3.4.5.100.11": ("text/xml", CONTENT)}


def test_limited_metadata_needs_the_xdr_hand_off_folder(gateway, tmp_path):
    limited = sub(limited_metadata=True, class_code=None, practice_setting_code=None)
    body = provide_and_register_to_xml(limited, {"Document01": XopInclude("cid:x@y")})
    refused = gateway.post("/xds/repository", PNR, body, parts={"x@y": CONTENT})
    assert {code for code, _ in errors(refused)} == {"XDSRepositoryMetadataError"}
    refused = gateway.post("/xdr", PNR, body, parts={"x@y": CONTENT})
    assert errors(refused) == [("XDSRepositoryMetadataError", "Document01")]
    assert "hand-off" in next(refused.body.iter(RS + "RegistryError")).get("codeContext")
    gateway.runtime.ports.repository.handoff_dir = tmp_path / "handoff"
    answer = gateway.post("/xdr", PNR, body, parts={"x@y": CONTENT})
    assert status(answer) == "Success", errors(answer)
    assert len([p for p in (tmp_path / "handoff").iterdir() if p.name != ".tmp"]) == 1


def test_xdr_hand_off_folder(gateway, tmp_path):
    folder = tmp_path / "handoff"
    gateway.runtime.ports.repository.handoff_dir = folder
    answer = gateway.post("/xdr", PNR, provide_and_register_to_xml(sub(), {"Document01": CONTENT}))
    assert status(answer) == "Success", errors(answer)
    (delivered,) = [p for p in folder.iterdir() if not p.name.startswith(".")]
    manifest = json.loads((delivered / "manifest.json").read_text())
    assert manifest == [
        {
            "uniqueId": "1.2.3.4.5.100.11",
            "mimeType": "text/xml",
            "size": len(CONTENT),
            "sha1": SHA1,
            "file": "documents/1",
        }
    ]
    assert (delivered / "documents" / "1").read_bytes() == CONTENT
    metadata = etree.fromstring((delivered / "metadata.xml").read_bytes())
    assert metadata.tag == f"{{{c.LCM}}}SubmitObjectsRequest"
    assert SHA1 in (delivered / "metadata.xml").read_text()
    assert rows(gateway, RepositoryDocument) == [] and rows(gateway, DocumentEntryRow) == []
