"""The peers' ITI-41, XDR and ITI-43 messages, sent through the Flask app as they
are (or unwrapped from their test harness, with placeholders filled): every
submission is accepted and every document it carried comes back by ITI-43."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from lxml import etree

from profiles.xds import codes as c
from profiles.xds.ebrim import parse_provide_and_register
from tests.conftest import CONFORMANCE
from tests.gateway.repository.conftest import PNR, REPOSITORY_ID, RETRIEVE
from tests.gateway.repository.test_soap import (
    assert_schema_valid,
    documents,
    errors,
    retrieve_body,
    status,
)

X = f"{{{c.XDS}}}"
PARSER = etree.XMLParser(resolve_entities=False, no_network=True)
CONNECT_FILL = {
    "${#Project#DSDocument}": base64.b64encode(b"deferred document").decode(),
    "${#Project#LocalHCID}": "urn:oid:1.1",
    "${#Project#RemoteHCID}": "urn:oid:2.2",
    "${#Project#LocalHCDescription}": "local",
    "${#Project#RemoteHCDescription}": "remote",
}


def read(relative: str) -> bytes:
    path = CONFORMANCE / "messages" / relative
    if not path.is_file():
        pytest.fail(f"conformance file missing: {path}")
    raw = path.read_bytes()
    for key, value in CONNECT_FILL.items():
        raw = raw.replace(key.encode(), value.encode())
    return raw


def pnr_element(relative: str) -> etree._Element:
    """The xds:ProvideAndRegisterDocumentSetRequest of a sample; CONNECT's harness
    wrappers (nhinc namespaces) are unwrapped to their SubmitObjectsRequest and Documents."""
    root = etree.fromstring(read(relative), PARSER)
    found = next(root.iter(X + "ProvideAndRegisterDocumentSetRequest"), None)
    if found is not None:
        return etree.fromstring(etree.tostring(found), PARSER)
    sor = next(root.iter(f"{{{c.LCM}}}SubmitObjectsRequest"))
    pnr = etree.Element(X + "ProvideAndRegisterDocumentSetRequest", nsmap={"xds": c.XDS})
    pnr.append(etree.fromstring(etree.tostring(sor), PARSER))
    for doc in sor.getparent().iterchildren(X + "Document"):
        pnr.append(etree.fromstring(etree.tostring(doc), PARSER))
    return pnr


def know_patients(gateway, pnr: etree._Element) -> None:
    submission, _ = parse_provide_and_register(pnr, problems=[])
    pids = {o.patient_id for o in submission.registry_objects() if getattr(o, "patient_id", None)}
    gateway.know(*pids)


def assert_documents_come_back(gateway, pnr: etree._Element, sent: dict[str, bytes]) -> None:
    """ITI-43 of every DocumentEntry's uniqueId returns the bytes sent under its id."""
    submission, _ = parse_provide_and_register(pnr, problems=[])
    by_uid = {d.unique_id: sent[d.entry_uuid] for d in submission.document_entries}
    got = gateway.post("/xds/repository", RETRIEVE, retrieve_body(*by_uid))
    assert status(got) == "Success", errors(got)
    assert {uid: data for uid, (_, data) in documents(got).items()} == by_uid
    assert_schema_valid(got)


def _inline(pnr: etree._Element) -> dict[str, bytes]:
    return {
        d.get("id"): base64.b64decode("".join((d.text or "").split()))
        for d in pnr.iterchildren(X + "Document")
    }


def with_documents(pnr: etree._Element) -> etree._Element:
    """The NIST validator samples carry metadata only: give each entry a Document."""
    for eo in pnr.iter(f"{{{c.RIM}}}ExtrinsicObject"):
        doc = etree.SubElement(pnr, X + "Document", id=eo.get("id"))
        doc.text = base64.b64encode(f"content of {eo.get('id')}".encode()).decode()
    return pnr


def without_slots(pnr: etree._Element, *names: str) -> etree._Element:
    for slot in list(pnr.iter(f"{{{c.RIM}}}Slot")):
        if slot.get("name") in names:
            slot.getparent().remove(slot)
    return pnr


def repaired_connect(sample: str) -> etree._Element:
    """CONNECT's harness messages with a sourceId that is an OID and an ebRIM 3.0
    associationType, the two faults that make them fail as sent."""
    raw = read(sample).replace(b'value="3670984664"', b'value="1.3.6.1.4.1.21367.2005.3.7"')
    raw = raw.replace(
        b'associationType="HasMember"',
        b'associationType="urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"',
    )
    root = etree.fromstring(raw, PARSER)
    sor = next(root.iter(f"{{{c.LCM}}}SubmitObjectsRequest"))
    pnr = etree.Element(X + "ProvideAndRegisterDocumentSetRequest", nsmap={"xds": c.XDS})
    pnr.append(etree.fromstring(etree.tostring(sor), PARSER))
    for doc in sor.getparent().iterchildren(X + "Document"):
        pnr.append(etree.fromstring(etree.tostring(doc), PARSER))
    return pnr


NIST_PNR = "nist-toolkit/xds-iti41-ProvideAndRegister-request_soap12.xml"
IPF_PNR = "ipf/xds-iti41-ProvideAndRegisterDocumentSet-request_continua-hrn.xml"
CONNECT_PNR = "connect/iti41-xdsb-repository-provideAndRegister-request.xml"


def submit(gateway, path: str, pnr: etree._Element):
    know_patients(gateway, pnr)
    return gateway.post(path, PNR, pnr)


def test_nist_metadata_only_sample_misses_its_documents_then_is_accepted_with_them(gateway):
    answer = submit(gateway, "/xds/repository", pnr_element(NIST_PNR))
    assert errors(answer) == [
        ("XDSMissingDocument", "Document01"),
        ("XDSMissingDocument", "Document02"),
    ]
    pnr = with_documents(pnr_element(NIST_PNR))
    answer = submit(gateway, "/xds/repository", pnr)
    assert status(answer) == "Success", errors(answer)
    assert_documents_come_back(gateway, pnr, _inline(pnr))


def test_ipf_sample_with_a_placeholder_hash_is_refused_then_accepted_without_it(gateway):
    answer = submit(gateway, "/xds/repository", pnr_element(IPF_PNR))
    assert status(answer) == "Failure"
    assert errors(answer) == [("XDSRepositoryMetadataError", "Document01")] * 2
    pnr = without_slots(pnr_element(IPF_PNR), "hash", "size")
    answer = submit(gateway, "/xds/repository", pnr)
    assert status(answer) == "Success", errors(answer)
    assert_documents_come_back(gateway, pnr, _inline(pnr))


def test_connect_repository_sample_is_accepted(gateway):
    pnr = pnr_element(CONNECT_PNR)
    answer = submit(gateway, "/xds/repository", pnr)
    assert status(answer) == "Success", errors(answer)
    assert_documents_come_back(gateway, pnr, _inline(pnr))


def test_connect_xdr_samples_are_refused_as_sent_for_what_is_wrong(gateway):
    answer = submit(
        gateway, "/xdr", pnr_element("connect/iti41-xdr-entity-docSubmission-request.xml")
    )
    assert status(answer) == "Failure"
    found = errors(answer)
    assert ("XDSRepositoryMetadataError", "SubmissionSet01") in found  # sourceId not an OID
    assert ("XDSRepositoryMetadataError", "Document01") in found  # no HasMember it understands
    answer = submit(
        gateway, "/xdr", pnr_element("connect/iti41-xdr-adapter-request-multipleDocuments.xml")
    )
    assert ("XDSRepositoryDuplicateUniqueIdInMessage", "Document02") in errors(answer)


@pytest.mark.parametrize(
    "sample",
    [
        "connect/iti41-xdr-entity-docSubmission-request.xml",
        "connect/iti41-xdr-deferred-entity-request.xml",
    ],
)
def test_connect_xdr_samples_repaired_are_stored(gateway, sample):
    pnr = repaired_connect(sample)
    answer = submit(gateway, "/xdr", pnr)
    assert status(answer) == "Success", errors(answer)
    assert_documents_come_back(gateway, pnr, _inline(pnr))


def test_nist_limited_metadata_xdr_is_handed_off(gateway, tmp_path):
    pnr = with_documents(
        pnr_element("nist-toolkit/xdr-iti41-ProvideAndRegister-request_limited-metadata.xml")
    )
    answer = gateway.post("/xdr", PNR, pnr)
    assert errors(answer) == [  # limited metadata needs a hand-off folder
        ("XDSRepositoryMetadataError", "SubmissionSet01"),
        ("XDSRepositoryMetadataError", "Document01"),
    ]
    gateway.runtime.ports.repository.handoff_dir = tmp_path / "handoff"
    answer = gateway.post("/xdr", PNR, pnr)
    assert status(answer) == "Success", errors(answer)
    (folder,) = [p for p in (tmp_path / "handoff").iterdir() if p.name != ".tmp"]
    sent = sorted(_inline(pnr).values())
    assert sorted(p.read_bytes() for p in (folder / "documents").iterdir()) == sent


def test_nist_mtom_wire_capture_is_accepted_as_sent(gateway):
    raw = read("nist-toolkit/xds-iti41-ProvideAndRegister-request_mtom-http-wire.txt")
    head, _, body = raw.partition(b"\n\n")
    content_type = re.search(rb"^Content-Type: (.*?)\s*$", head, re.M).group(1).decode()
    start = body.index(b"<soapenv:Envelope")
    envelope = etree.fromstring(body[start : body.index(b"</soapenv:Envelope>") + 19], PARSER)
    pnr = next(envelope.iter(X + "ProvideAndRegisterDocumentSetRequest"))
    know_patients(gateway, pnr)
    answer = gateway.post_raw("/xds/repository", content_type, body)
    assert answer.status == 200 and status(answer) == "Success", errors(answer)
    # The document part: what the capture holds between its part headers and the delimiter.
    part = body.split(b"Content-ID: <1.urn:uuid:3D4B161591CD1DEC0C1286850962319@apache.org>")[1]
    part = part.split(b"\n", 2)[2]
    data = part[: part.rindex(b"--MIMEBoundary")].removesuffix(b"\n").removesuffix(b"\r")
    submission, _ = parse_provide_and_register(pnr, problems=[])
    (entry,) = submission.document_entries
    got = gateway.post("/xds/repository", RETRIEVE, retrieve_body(entry.unique_id))
    ((mime, returned),) = documents(got).values()
    assert mime == entry.mime_type and returned == data
    assert (
        hashlib.sha1(returned).hexdigest()
        == gateway.runtime.blobs.path(hashlib.sha1(data).hexdigest()).name
    )


def test_nist_retrieve_samples(gateway):
    pnr = with_documents(pnr_element(NIST_PNR))
    assert status(submit(gateway, "/xds/repository", pnr)) == "Success"
    submission, _ = parse_provide_and_register(pnr, problems=[])
    uids = [d.unique_id for d in submission.document_entries] * 2
    template = read("nist-toolkit/retrieve-template-RetrieveDocumentSet_two-docs.xml").decode()
    filled = (
        template.replace("$repuid$", REPOSITORY_ID)
        .replace("$docuid1$", uids[0])
        .replace("$docuid2$", uids[1])
    )
    got = gateway.post("/xds/repository", RETRIEVE, etree.fromstring(filled.encode(), PARSER))
    assert status(got) == "Success", errors(got)
    assert set(documents(got)) == set(uids)
    assert_schema_valid(got)
    # The toolkit's own request, as sent: its repositoryUniqueId is not ours.
    raw = read("nist-toolkit/xds-iti43-RetrieveDocumentSet-request_soap12.xml")
    answer = gateway.post_raw("/xds/repository", "application/soap+xml", raw)
    assert status(answer) == "Failure"
    assert [code for code, _ in errors(answer)] == ["XDSUnknownRepositoryId"] * 2
    assert_schema_valid(answer)
