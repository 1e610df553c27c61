"""ITI-42 and ITI-18 as real SOAP requests through the in-process app at /xds/registry, on
SQLite and PostgreSQL: the peers' samples (NIST stored query templates with their
$placeholders$ filled, IPF and CONNECT messages) and every error code; each answer is
schema-valid."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from lxml import etree

import wsdl
from gateway.app import create_app
from gateway.config import config_from_dict
from profiles.errors import WSA_NS
from profiles.pix.ports import PatientRecord, parse_cx
from profiles.xds import codes as c
from profiles.xds.codes import AssociationType
from profiles.xds.ebrim import submit_objects_request_to_xml
from profiles.xds.storedquery import QueryName, build
from tests.conftest import CONFORMANCE, make_config_dict
from tests.profiles.xds.builders import (
    OTHER_PATIENT,
    PATIENT,
    association,
    code,
    document_entry,
    folder,
    member,
    submission,
    submission_set,
)

S12 = "http://www.w3.org/2003/05/soap-envelope"
REGISTER = "urn:ihe:iti:2007:RegisterDocumentSet-b"
QUERY = "urn:ihe:iti:2007:RegistryStoredQuery"
HCID = "urn:oid:1.3.6.1.4.1.21367.2011.2.1"  # make_config_dict's community
NIST = CONFORMANCE / "messages" / "nist-toolkit"
REF = "20061223^^^&1.2.5643.2&ISO^urn:ihe:iti:xds:2013:uniqueId"
CONF = "2.16.840.1.113883.5.25"
APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True)


@pytest.fixture
def app(tmp_path: Path, database_url: str):
    cfg = config_from_dict(make_config_dict(tmp_path / "data", database_url), base=tmp_path,
                           environ={})
    application = create_app(cfg)
    for cx in (PATIENT, OTHER_PATIENT, "SELF-5^^^&1.3.6.1.4.1.21367.2005.3.7&ISO"):
        application.extensions["gateway"].ports.patients.add(PatientRecord(parse_cx(cx)))
    yield application
    application.extensions["gateway"].database.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


def envelope(action: str, body: etree._Element | bytes) -> bytes:
    xml = body if isinstance(body, bytes) else etree.tostring(body)
    return (
        f"<e:Envelope xmlns:e='{S12}' xmlns:wsa='{WSA_NS}'><e:Header>"
        f"<wsa:Action e:mustUnderstand='true'>{action}</wsa:Action>"
        "<wsa:MessageID>urn:uuid:0f1e2d3c-0000-4000-8000-000000000042</wsa:MessageID>"
        "</e:Header><e:Body>"
    ).encode() + xml + b"</e:Body></e:Envelope>"


def post(client, action: str, body) -> etree._Element:
    resp = client.post("/xds/registry", data=envelope(action, body),
                       content_type="application/soap+xml")
    assert resp.status_code == 200, resp.data[:500]
    doc = etree.fromstring(resp.data, _PARSER)
    assert doc.findtext(f".//{{{WSA_NS}}}Action") == action + "Response"
    answer = doc.find(f"{{{S12}}}Body")[0]
    schema = wsdl.schema("ebrs")
    assert schema.validate(etree.ElementTree(answer)), [str(e) for e in schema.error_log]
    return answer


def errors(answer: etree._Element) -> list[str]:
    return [e.get("errorCode") for e in answer.iter(f"{{{c.RS}}}RegistryError")]


def ok(answer: etree._Element) -> bool:
    return answer.get("status") == "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"


def returned(answer: etree._Element) -> list[str]:
    objects = answer.find(f"{{{c.RIM}}}RegistryObjectList")
    return [o.get("id") for o in objects] if objects is not None else []


def register(client, sub) -> etree._Element:
    return post(client, REGISTER, submit_objects_request_to_xml(sub))


def query(client, q) -> etree._Element:
    el = etree.Element(f"{{{c.QUERY}}}AdhocQueryRequest", nsmap={"query": c.QUERY, "rim": c.RIM})
    etree.SubElement(el, f"{{{c.QUERY}}}ResponseOption", returnType=q.return_type.value)
    aq = etree.SubElement(el, f"{{{c.RIM}}}AdhocQuery", id=q.id)
    for name, groups in q.params.items():
        for group in groups:
            vl = etree.SubElement(etree.SubElement(aq, f"{{{c.RIM}}}Slot", name=name),
                                  f"{{{c.RIM}}}ValueList")
            items = [f"{v[0]}^^{v[1]}" if isinstance(v, tuple) else v for v in group]
            etree.SubElement(vl, f"{{{c.RIM}}}Value").text = (
                "(" + ",".join(f"'{i}'" for i in items) + ")")
    return post(client, QUERY, el)


def template(name: str, **fill: str) -> bytes:
    raw = (NIST / f"sq-template-{name}.xml").read_text(encoding="utf-8")
    raw = re.sub(r"\$(\w+)\$", lambda m: fill[m.group(1)].replace("&", "&amp;"), raw)
    return raw.encode()


def world_submission():
    doc = document_entry(
        reference_ids=(REF,),
        confidentiality_codes=(code("N", CONF, "normal"), code("R", CONF, "restricted")),
    )
    f = folder(codes=(code("Referrals", "1.3.6.1.4.1.21367.2017.3", "Referrals"),))
    return submission(with_folder=True, document_entries=(doc,), folders=(f,))


@pytest.fixture
def world(app, client):
    assert ok(register(client, world_submission()))
    registry = app.extensions["gateway"].ports.registry
    found = registry.run_query(build(QueryName.GET_ALL, {
        "$patientId": f"'{PATIENT}'",
        **dict.fromkeys(("$XDSDocumentEntryStatus", "$XDSSubmissionSetStatus",
                         "$XDSFolderStatus"), [APPROVED]),
    }))
    return {type(o).__name__: o.entry_uuid for o in found if type(o).__name__ != "Association"}


def test_register_then_find_documents(client, world):
    answer = post(client, QUERY, template("FindDocuments", patient_id=PATIENT))
    assert ok(answer) and returned(answer) == [world["DocumentEntry"]]
    doc = answer.find(f".//{{{c.RIM}}}ExtrinsicObject")
    assert doc.get("status").endswith(":Approved") and doc.get("home") is None


TEMPLATES = {
    "FindDocumentsByReferenceId": ({"patient_id": PATIENT}, ["DocumentEntry"]),
    "FindFolders": ({"patient_id": PATIENT}, ["Folder"]),
    "FindSubmissionSets": ({"patient_id": PATIENT}, ["SubmissionSet"]),
    "GetDocuments": ({"uid": "1.2.3.4.5.100.1"}, ["DocumentEntry"]),
    "GetFolders": ({"uuid1": "@Folder", "uuid2": "urn:uuid:00000000-0000-4000-8000-000000000000"},
                   ["Folder"]),
    "GetFoldersForDocument": ({"uniqueid": "1.2.3.4.5.100.1"}, ["Folder"]),
    "GetAssociations": ({"uuid": "@DocumentEntry"}, ["assoc", "assoc"]),
    "GetDocumentsAndAssociations": ({"uniqueid": "1.2.3.4.5.100.1"},
                                    ["DocumentEntry", "assoc", "assoc"]),
    "GetSubmissionSets": ({"uuid": "@DocumentEntry"}, ["SubmissionSet", "assoc"]),
    "GetSubmissionSetAndContents": ({"uniqueid": "1.2.3.4.5.100.2"},
                                    ["SubmissionSet", "DocumentEntry", "Folder", *["assoc"] * 4]),
    "GetFolderAndContents": ({"uuid": "@Folder"}, ["DocumentEntry", "Folder", "assoc"]),
    "GetRelatedDocuments": ({}, []),  # the template names an entry no registry holds
    "GetAll": ({"Patient_ID": PATIENT, "home": HCID},
               ["SubmissionSet", "DocumentEntry", "Folder", *["assoc"] * 4]),
}


@pytest.mark.parametrize("name", TEMPLATES)
def test_every_nist_stored_query_template(client, world, name):
    fill, expected = TEMPLATES[name]
    fill = {k: world[v[1:]] if v.startswith("@") else v for k, v in fill.items()}
    answer = post(client, QUERY, template(name, **fill))
    assert ok(answer), errors(answer)
    ids = returned(answer)
    assert [world.get(k) for k in expected if k != "assoc"] == [i for i in ids
                                                                 if i in world.values()]
    assert len(ids) == len(expected)
    if name == "GetAll":  # the query named a community: every object says it is ours
        objects = answer.find(f"{{{c.RIM}}}RegistryObjectList")
        assert {o.get("home") for o in objects} == {HCID}


def test_nist_soap_request_and_object_refs(client, world):
    raw = (NIST / "xds-iti18-FindDocuments-request_soap12.xml").read_bytes()
    resp = client.post("/xds/registry", data=raw, content_type="application/soap+xml")
    assert resp.status_code == 200  # NIST's own envelope, as it is
    answer = etree.fromstring(resp.data, _PARSER).find(f"{{{S12}}}Body")[0]
    assert ok(answer) and returned(answer) == []  # another patient, another classCode
    q = build(QueryName.GET_DOCUMENTS, {"$XDSDocumentEntryUniqueId": ["1.2.3.4.5.100.1"]})
    leaf = query(client, q)
    assert returned(leaf) == [world["DocumentEntry"]]
    from profiles.xds.storedquery import ReturnType

    ref = query(client, build(QueryName.GET_DOCUMENTS, {"$XDSDocumentEntryUniqueId": [
        "1.2.3.4.5.100.1"]}, return_type=ReturnType.OBJECT_REF))
    assert [etree.QName(o).localname for o in ref.find(f"{{{c.RIM}}}RegistryObjectList")] == [
        "ObjectRef"]


def test_sql_injection_in_patient_id_is_refused_and_harmless(client, world):
    raw = (CONFORMANCE / "messages/ipf/xds-iti18-FindDocuments-request_sql-injection-in-"
           "patientid.xml").read_bytes()
    answer = post(client, QUERY, raw)
    assert errors(answer) == ["XDSRegistryError"] and returned(answer) == []
    again = post(client, QUERY, template("FindDocuments", patient_id=PATIENT))
    assert returned(again) == [world["DocumentEntry"]]


@pytest.mark.parametrize("sample,code", [
    ("connect/iti18-registry-findDocuments-byPatientId-request.xml", "XDSRegistryError"),
    ("connect/iti18-registry-findDocuments-byUniqueId-request.xml", "XDSRegistryError"),
    ("nist-toolkit/xds-iti18-FindDocuments-request_missing-status_invalid.xml",
     "XDSStoredQueryMissingParam"),
    ("nist-toolkit/xds-iti18-FindDocuments-request_bad-code-format_invalid.xml",
     "XDSRegistryError"),
])
def test_peer_queries_with_errors(client, sample, code):
    root = etree.fromstring((CONFORMANCE / "messages" / sample).read_bytes(), _PARSER)
    body = next(root.iter(f"{{{c.QUERY}}}AdhocQueryRequest"))
    answer = post(client, QUERY, body)
    assert code in errors(answer) and answer.get("status").endswith(":Failure")


def test_query_error_codes(app, client, world):
    base = {"$XDSDocumentEntryPatientId": f"'{PATIENT}'",
            "$XDSDocumentEntryStatus": ["urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"]}
    two = template("GetFolders", uuid1="a", uuid2="b").replace(
        b"$XDSFolderEntryUUID", b"$XDSFolderEntryUUID").replace(
        b"</tag0:AdhocQuery>", b"<tag0:Slot name='$XDSFolderUniqueId'><tag0:ValueList>"
        b"<tag0:Value>('1.2')</tag0:Value></tag0:ValueList></tag0:Slot></tag0:AdhocQuery>")
    assert errors(post(client, QUERY, two)) == ["XDSStoredQueryParamNumber"]
    unknown = template("GetDocuments", uid="1.2").replace(
        b"urn:uuid:5c4f972b-d56b-40ac-a5fc-c8ca9b40b9d4",
        b"urn:uuid:00000000-0000-4000-8000-000000000001")
    assert errors(post(client, QUERY, unknown)) == ["XDSUnknownStoredQuery"]
    app.extensions["gateway"].ports.registry.max_results = 0
    assert errors(query(client, build(QueryName.FIND_DOCUMENTS, base))) == ["XDSTooManyResults"]
    app.extensions["gateway"].ports.registry.max_results = 1000
    other = submission(
        submission_set=submission_set(unique_id="1.2.3.4.5.150.2", patient_id=OTHER_PATIENT),
        document_entries=(document_entry(unique_id="1.2.3.4.5.150.1", patient_id=OTHER_PATIENT),),
    )
    assert ok(register(client, other))
    both = build(QueryName.GET_DOCUMENTS, {"$XDSDocumentEntryUniqueId": [
        "1.2.3.4.5.100.1", "1.2.3.4.5.150.1"]})
    assert errors(query(client, both)) == ["XDSResultNotSinglePatient"]


def _codes_after(client, sub) -> list[str]:
    answer = register(client, sub)
    assert answer.get("status").endswith(":Failure")
    return errors(answer)


def test_register_error_codes(client, world):
    fresh = {"submission_set": submission_set(unique_id="1.2.3.4.5.160.2")}
    unknown = submission(
        submission_set=submission_set(unique_id="1.2.3.4.5.160.2",
                                      patient_id="NOPE^^^&1.2.3.4.5&ISO"),
        document_entries=(document_entry(unique_id="1.2.3.4.5.160.1",
                                         patient_id="NOPE^^^&1.2.3.4.5&ISO"),))
    assert set(_codes_after(client, unknown)) == {"XDSUnknownPatientId"}
    assert _codes_after(client, submission(**fresh, document_entries=(
        document_entry(hash="0" * 40),))) == ["XDSNonIdenticalHash"]
    assert _codes_after(client, submission(**fresh, document_entries=(
        document_entry(size=5),))) == ["XDSNonIdenticalSize"]
    assert _codes_after(client, submission()) == ["XDSDuplicateUniqueIdInRegistry"]
    mismatch = submission(**fresh, document_entries=(
        document_entry(unique_id="1.2.3.4.5.160.1", patient_id=OTHER_PATIENT),))
    assert "XDSPatientIdDoesNotMatch" in _codes_after(client, mismatch)
    twice = submission(**fresh, document_entries=(
        document_entry(unique_id="1.2.3.4.5.160.2"),))
    assert _codes_after(client, twice) == ["XDSRegistryDuplicateUniqueIdInMessage"]
    dangling = submission(**fresh, document_entries=(document_entry(unique_id="1.2.3.4.5.160.1"),),
                          associations=(member("as01", "Document01"), association(
                              "as02", "Document01", "urn:uuid:00000000-0000-4000-8000-0000000000ff",
                              AssociationType.APND)))
    assert _codes_after(client, dangling) == ["UnresolvedReferenceException"]
    assert "XDSRegistryMetadataError" in _codes_after(client, submission(**fresh, document_entries=(
        document_entry(unique_id="1.2.3.4.5.160.1", mime_type=None),)))


def test_replace_deprecates_and_a_second_replace_is_refused(client, world):
    def replacement(n: int):
        return submission(
            submission_set=submission_set(unique_id=f"1.2.3.4.5.170.{n}"),
            document_entries=(document_entry(unique_id=f"1.2.3.4.5.171.{n}"),),
            associations=(member("as01", "Document01"), association(
                "as02", "Document01", world["DocumentEntry"], AssociationType.RPLC)))

    assert ok(register(client, replacement(1)))
    deprecated = post(client, QUERY, template("FindDocuments", patient_id=PATIENT).replace(
        b"StatusType:Approved", b"StatusType:Deprecated"))
    assert returned(deprecated) == [world["DocumentEntry"]]
    assert _codes_after(client, replacement(2)) == ["XDSRegistryDeprecatedDocumentError"]
    folder_docs = query(client, build(QueryName.GET_FOLDER_AND_CONTENTS, {
        "$XDSFolderEntryUUID": f"'{world['Folder']}'"}))
    assert len([i for i in returned(folder_docs) if i != world["Folder"]]) == 4  # 2 docs, 2 links


def test_failed_registration_stores_nothing(client, world):
    bad = submission(
        submission_set=submission_set(unique_id="1.2.3.4.5.180.2"),
        document_entries=(document_entry(unique_id="1.2.3.4.5.180.1"),
                          document_entry("Document02", unique_id="1.2.3.4.5.180.3", hash="0" * 40,
                                         patient_id=OTHER_PATIENT)),
        associations=(member("as01", "Document01"), member("as02", "Document02")),
    )
    assert _codes_after(client, bad)
    found = post(client, QUERY, template("GetDocuments", uid="1.2.3.4.5.180.1"))
    assert ok(found) and returned(found) == []


def test_ipf_and_connect_submissions(client):
    """IPF's full-metadata sample is a Document Source message (no hash, size or
    repositoryUniqueId; an IsSnapshotOf to an entry not held here); CONNECT's uses its short
    association type names."""
    ipf = CONFORMANCE / "messages" / "ipf"
    full = (ipf / "xds-iti42-SubmitObjectsRequest_full-metadata.xml").read_bytes()
    answer = post(client, REGISTER, next(etree.fromstring(full, _PARSER).iter(
        f"{{{c.LCM}}}SubmitObjectsRequest")))
    assert "UnresolvedReferenceException" in errors(answer)
    connect = (CONFORMANCE / "messages/connect/iti42-dds-entity-registerDocumentSet-request.xml")
    body = next(etree.fromstring(connect.read_bytes(), _PARSER).iter(
        f"{{{c.LCM}}}SubmitObjectsRequest"))
    assert "XDSRegistryMetadataError" in errors(post(client, REGISTER, body))


def test_extra_slots_round_trip(app, client):
    ipf = CONFORMANCE / "messages" / "ipf" / "xds-iti42-SubmitObjectsRequest_nist-extra-slots.xml"
    body = next(etree.fromstring(ipf.read_bytes(), _PARSER).iter(
        f"{{{c.LCM}}}SubmitObjectsRequest"))
    ss_pid = next(e.get("value") for e in body.iter(f"{{{c.RIM}}}ExternalIdentifier")
                  if e.get("identificationScheme") == c.SS_PATIENT_ID)
    app.extensions["gateway"].ports.patients.add(PatientRecord(parse_cx(ss_pid)))
    assert ok(post(client, REGISTER, body)), "the sample registers once its patient is known"
    answer = post(client, QUERY, template("GetAll", Patient_ID=ss_pid, home=HCID))
    sent = {s.get("name") for s in body.iter(f"{{{c.RIM}}}Slot")
            if s.get("name", "").startswith("urn:nist:extra")}
    got = {s.get("name") for s in answer.iter(f"{{{c.RIM}}}Slot")}
    assert sent and sent <= got, (sent, got)
