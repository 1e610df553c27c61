"""The packaged WSDLs and schemas load offline, render for their address, and validate.

Network use is made to fail loudly (socket connect raises), so a test that passes
here passes without the network.
"""

from __future__ import annotations

import hashlib
import re
import socket
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import zeep
from lxml import etree
from zeep.wsdl.bindings.soap import Soap12Binding

import wsdl
from wsdl.offline import OfflineTransport

ADDRESS = "https://gateway.test:8443/some/route"
W = "{http://schemas.xmlsoap.org/wsdl/}"
SOAP12 = "{http://schemas.xmlsoap.org/wsdl/soap12/}"
XS = "{http://www.w3.org/2001/XMLSchema}"
SOAP_ENV = "{http://www.w3.org/2003/05/soap-envelope}"
WSAW_ACTION = "{http://www.w3.org/2006/05/addressing/wsdl}Action"
SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
REFS = (f"{XS}import", f"{XS}include", f"{XS}redefine")
SAFE = etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False)


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError(f"network use attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def load(path: Path) -> etree._ElementTree:
    return etree.parse(str(path), SAFE)


def expected_operations(name: str) -> dict[str, tuple[str, etree.QName, etree.QName]]:
    """From the file itself: operation -> (input action, input element, output element)."""
    tree = load(wsdl.path(name))
    root = tree.getroot()

    def element_of(message_ref: str, nsmap: dict) -> etree.QName:
        local = message_ref.split(":")[-1]
        part = root.find(f"{W}message[@name='{local}']/{W}part")
        prefix, el = part.get("element").split(":")
        return etree.QName(part.nsmap[prefix], el)

    ops = {}
    for op in root.iterfind(f"{W}portType/{W}operation"):
        inp, out = op.find(f"{W}input"), op.find(f"{W}output")
        ops[op.get("name")] = (
            inp.get(WSAW_ACTION),
            element_of(inp.get("message"), inp.nsmap),
            element_of(out.get("message"), out.nsmap),
        )
    return ops


def test_every_route_file_is_present() -> None:
    assert wsdl.names() == sorted(
        [
            "diagnostics.wsdl",
            "ig-query.wsdl",
            "ig-retrieve.wsdl",
            "ig-xcpd.wsdl",
            "pix.wsdl",
            "xca-query.wsdl",
            "xca-retrieve.wsdl",
            "xcpd.wsdl",
            "xdr.wsdl",
            "xds-registry.wsdl",
            "xds-repository.wsdl",
        ]
    )


@pytest.mark.parametrize("name", wsdl.names())
def test_types_compile_in_lxml(name: str) -> None:
    """The embedded schema (imports of xsd/ files) compiles offline with libxml2."""
    tree = load(wsdl.path(name))
    schemas = tree.findall(f"{W}types/{XS}schema")
    assert schemas
    base = str(wsdl.path(name))  # relative schemaLocations resolve from the WSDL's folder
    for el in schemas:
        text = etree.tostring(el)
        etree.XMLSchema(etree.fromstring(text, wsdl.local_parser(), base_url=base))


# xmlschema cannot compile the HL7v3 set (a QName resolved through an xmlns declared
# on a nested element; libxml2 and zeep handle it, see shared/conformance/schemas).
NON_HL7 = [n for n in wsdl.names() if n not in ("pix.wsdl", "xcpd.wsdl", "ig-xcpd.wsdl")]


@pytest.mark.parametrize("name", NON_HL7)
def test_valid_wsdl_11_for_a_second_parser(name: str) -> None:
    """xmlschema validates the WSDL 1.1 structure and resolves every message and binding."""
    from xmlschema.extras.wsdl import Wsdl11Document

    document = Wsdl11Document(str(wsdl.path(name)), allow="local")
    assert len(document.bindings) == 1
    assert set(next(iter(document.bindings.values())).operations) == {
        (op, None, None) for op in expected_operations(name)
    }


@pytest.mark.parametrize("name", wsdl.names())
def test_loads_in_zeep_offline(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fetched: list[str] = []
    original = OfflineTransport.load

    def recording_load(self: OfflineTransport, url: str) -> bytes:
        fetched.append(url)
        return original(self, url)

    monkeypatch.setattr(OfflineTransport, "load", recording_load)
    client = wsdl.zeep_client(name, ADDRESS)

    # Everything came through the served form: ?wsdl then ?xsd=..., nothing else.
    assert fetched[0] == f"{ADDRESS}?wsdl"
    assert all(u.startswith(f"{ADDRESS}?xsd=") for u in fetched[1:]), fetched
    assert len(fetched) > 1

    services = list(client.wsdl.services.values())
    assert len(services) == 1
    ports = list(services[0].ports.values())
    assert len(ports) == 1
    assert ports[0].binding_options["address"] == ADDRESS
    binding = ports[0].binding
    assert isinstance(binding, Soap12Binding)

    expected = expected_operations(name)
    assert set(binding._operations) == set(expected)
    for op_name, (action, request_el, response_el) in expected.items():
        op = binding.get(op_name)
        assert op.abstract.wsa_action == action
        assert op.soapaction == action
        assert op.style == "document"
        assert op.input.body.qname == request_el
        assert op.output.body.qname == response_el
        # The message element's type resolved into the schema (not an empty stub).
        assert client.get_element(request_el.text).type.elements or request_el.namespace in (
            "urn:ihe-gateway:diagnostics",
        )


def test_zeep_builds_a_diagnostics_request_that_validates() -> None:
    client = wsdl.zeep_client("diagnostics.wsdl", ADDRESS)
    envelope = client.create_message(
        client.service,
        "Diagnostics_MtomEcho",
        Part=[{"_value_1": b"hello", "sha1": "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d"}],
    )
    assert wsdl.schema("soap12-envelope").validate(envelope), wsdl.schema(
        "soap12-envelope"
    ).error_log
    header = envelope.find(f"{SOAP_ENV}Header")
    action = header.find("{http://www.w3.org/2005/08/addressing}Action")
    assert action.text == "urn:ihe-gateway:diagnostics:MtomEcho"
    body = envelope.find(f"{SOAP_ENV}Body")[0]
    assert body.tag == "{urn:ihe-gateway:diagnostics}EchoRequest"
    assert wsdl.schema("diagnostics").validate(body), wsdl.schema("diagnostics").error_log


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/evil.xsd",
        "https://www.w3.org/TR/some-other.xsd",
        "/etc/passwd",
        "file:///etc/passwd",
        f"{ADDRESS}/other?xsd=xds/rim.xsd",
        f"{ADDRESS}?xsd=../__init__.py",
    ],
)
def test_offline_transport_refuses_everything_else(url: str) -> None:
    transport = OfflineTransport("xca-query.wsdl", ADDRESS)
    with pytest.raises((wsdl.OfflineError, ValueError)):
        transport.load(url)


def test_offline_transport_serves_local_copies_and_package_files() -> None:
    transport = OfflineTransport("xca-query.wsdl", ADDRESS)
    xmldsig = "http://www.w3.org/TR/2002/REC-xmldsig-core-20020212/xmldsig-core-schema.xsd"
    assert transport.load(xmldsig) == (wsdl.XSD_DIR / "saml/xmldsig-core-schema.xsd").read_bytes()
    path = wsdl.path("xca-query.wsdl")
    assert transport.load(str(path)) == path.read_bytes()


@pytest.mark.parametrize("name", sorted(wsdl.SCHEMAS))
def test_every_schema_loads(name: str) -> None:
    compiled = wsdl.schema(name)
    assert isinstance(compiled, etree.XMLSchema)
    assert wsdl.schema(name) is compiled  # cached


def test_unknown_schema_name() -> None:
    with pytest.raises(KeyError):
        wsdl.schema("no-such-schema")


@pytest.mark.parametrize("name", wsdl.names())
def test_render_points_everything_at_the_address(name: str) -> None:
    original = load(wsdl.path(name))
    rendered = etree.fromstring(wsdl.render(name, ADDRESS), SAFE)
    addresses = rendered.findall(f".//{SOAP12}address")
    assert addresses and all(a.get("location") == ADDRESS for a in addresses)
    before = [e.get("schemaLocation") for e in original.iter(*REFS)]
    after = [e.get("schemaLocation") for e in rendered.iter(*REFS)]
    assert len(after) == len(before)
    assert after == [f"{ADDRESS}?xsd={loc.removeprefix('xsd/')}" for loc in before]
    # The rest of the document is untouched.
    assert len(list(rendered.iter())) == len(list(original.getroot().iter()))


def test_render_xsd_rewrites_relative_and_url_imports() -> None:
    query = etree.fromstring(wsdl.render_xsd("xds/query.xsd", ADDRESS), SAFE)
    assert {e.get("schemaLocation") for e in query.iter(*REFS)} == {
        f"{ADDRESS}?xsd=xds/rim.xsd",
        f"{ADDRESS}?xsd=xds/rs.xsd",
    }
    core = etree.fromstring(
        wsdl.render_xsd("hl7v3/NE2008/coreschemas/infrastructureRoot.xsd", ADDRESS), SAFE
    )
    assert f"{ADDRESS}?xsd=hl7v3/NE2008/coreschemas/voc.xsd" in {
        e.get("schemaLocation") for e in core.iter(*REFS)
    }
    saml = etree.fromstring(wsdl.render_xsd("saml/saml-schema-assertion-2.0.xsd", ADDRESS), SAFE)
    assert {e.get("schemaLocation") for e in saml.iter(*REFS)} == {
        f"{ADDRESS}?xsd=saml/xmldsig-core-schema.xsd",
        f"{ADDRESS}?xsd=saml/xenc-schema.xsd",
    }
    wss_bytes = wsdl.render_xsd("wss/oasis-200401-wss-wssecurity-secext-1.0.xsd", ADDRESS)
    wss = etree.fromstring(wss_bytes, SAFE)
    assert {e.get("schemaLocation") for e in wss.iter(*REFS)} == {
        f"{ADDRESS}?xsd=wss/oasis-200401-wss-wssecurity-utility-1.0.xsd",
        f"{ADDRESS}?xsd=wss/xml.xsd",
        f"{ADDRESS}?xsd=saml/xmldsig-core-schema.xsd",
    }
    assert "Copyright © OASIS Open".encode() in wss_bytes  # the notice travels with the schema


def test_rendered_closure_is_complete() -> None:
    """Following ?xsd= links from every served WSDL reaches only packaged schemas."""
    todo = [
        loc
        for name in wsdl.names()
        for loc in (
            e.get("schemaLocation")
            for e in etree.fromstring(wsdl.render(name, ADDRESS), SAFE).iter(*REFS)
        )
    ]
    seen: set[str] = set()
    while todo:
        url = todo.pop()
        base, _, query = url.partition("?")
        assert base == ADDRESS, url
        rel = parse_qs(query)["xsd"][0]
        if rel in seen:
            continue
        seen.add(rel)
        doc = etree.fromstring(wsdl.render_xsd(rel, ADDRESS), SAFE)
        todo.extend(e.get("schemaLocation") for e in doc.iter(*REFS) if e.get("schemaLocation"))
    assert "hl7v3/NE2008/coreschemas/voc.xsd" in seen
    assert "xds/rim.xsd" in seen
    assert "diagnostics.xsd" in seen


@pytest.mark.parametrize(
    "relpath",
    [
        "../__init__.py",
        "../xca-query.wsdl",
        "../../setup.cfg",
        "xds/../../offline.py",
        "xds/../../../../../etc/passwd.xsd",
        "/etc/passwd",
        "/work/main/wsdl/xsd/xds/rim.xsd",
        "xds\\..\\..\\__init__.xsd",
        "",
        "xds/",
        "xds//rim.xsd",
        "xds/rim.xsd\x00",
        "MANIFEST.md",
    ],
)
def test_render_xsd_refuses_paths_outside_xsd(relpath: str) -> None:
    with pytest.raises(ValueError):
        wsdl.render_xsd(relpath, ADDRESS)


def test_render_xsd_missing_schema() -> None:
    with pytest.raises(FileNotFoundError):
        wsdl.render_xsd("xds/nope.xsd", ADDRESS)


@pytest.mark.parametrize("name", ["../setup.cfg", "xsd/x.wsdl", "nope.wsdl", "__init__.py"])
def test_path_refuses_unknown_names(name: str) -> None:
    with pytest.raises((ValueError, FileNotFoundError)):
        wsdl.path(name)


def test_package_data_globs_cover_every_shipped_file() -> None:
    """setup.cfg's package_data (wsdl = *.wsdl, xsd/**/*) reaches every file a WSDL needs."""
    shipped = {p.relative_to(wsdl.HERE).as_posix() for p in wsdl.HERE.rglob("*") if p.is_file()}
    data = {p for p in shipped if not p.endswith((".py", ".pyc"))}
    covered = {p for p in data if ("/" not in p and p.endswith(".wsdl")) or p.startswith("xsd/")}
    assert data == covered


def test_copied_schemas_are_byte_identical_to_the_manifest() -> None:
    """Upstream schemas are never edited: each file matches the sha256 its MANIFEST records."""
    manifest = (wsdl.XSD_DIR / "MANIFEST.md").read_text(encoding="utf-8")
    recorded = dict(re.findall(r"^\| `([^`]+\.xsd)` \|.*\| `([0-9a-f]{16})` \|$", manifest, re.M))
    authored = {"diagnostics.xsd", "ihe-gateway-all.xsd", "hl7v3/IHE-HL7v3-messages.xsd"}
    on_disk = {p.relative_to(wsdl.XSD_DIR).as_posix() for p in wsdl.XSD_DIR.rglob("*.xsd")}
    assert set(recorded) == on_disk - authored
    for relpath, digest in recorded.items():
        data = (wsdl.XSD_DIR / relpath).read_bytes()
        assert hashlib.sha256(data).hexdigest()[:16] == digest, relpath


# --- validation against conformance material written by others ------------------------


def body_of(path: Path) -> etree._Element:
    root = load(path).getroot()
    if root.tag == f"{SOAP_ENV}Envelope":
        return root.find(f"{SOAP_ENV}Body")[0]
    return root


NIST = "messages/nist-toolkit"
VALID = [
    ("ebrs", f"{NIST}/xds-iti18-AdhocQueryResponse_leafclass.xml"),
    ("ebrs", f"{NIST}/xds-iti18-AdhocQueryResponse_objectref.xml"),
    ("ebrs", f"{NIST}/xds-iti18-FindDocuments-request.xml"),
    ("ebrs", f"{NIST}/xca-iti38-CrossGatewayQuery-request_soap12.xml"),
    ("ebrs", f"{NIST}/xca-iti39-CrossGatewayRetrieve-request_soap12.xml"),
    ("ebrs", f"{NIST}/xds-iti41-ProvideAndRegister-request_soap12.xml"),
    ("ebrs", f"{NIST}/xds-iti42-RegistryResponse_success_soap12.xml"),
    ("ebrs", f"{NIST}/xdr-iti41-ProvideAndRegister-request_limited-metadata.xml"),
    ("hl7v3", "messages/ipf/xcpd-iti55-PRPA_IN201305UV02-request.xml"),
    ("hl7v3", "messages/ipf/pdqv3-iti47-PRPA_IN201306UV02-response.xml"),
    ("atna", "messages/ipf/atna-dicom-audit_iti55-xcpd-query.xml"),
    ("atna", "messages/ipf/atna-dicom-audit_iti44-pixv3-feed.xml"),
]


@pytest.mark.parametrize(("schema_name", "sample"), VALID, ids=[v[1] for v in VALID])
def test_conformance_sample_validates(conformance: Path, schema_name: str, sample: str) -> None:
    compiled = wsdl.schema(schema_name)
    assert compiled.validate(body_of(conformance / sample)), compiled.error_log


@pytest.mark.parametrize(
    "sample",
    [
        f"{NIST}/xds-iti41-ProvideAndRegister-request_soap12.xml",
        f"{NIST}/xca-iti38-CrossGatewayQuery-request_soap12.xml",
    ],
)
def test_whole_envelope_validates_against_all(conformance: Path, sample: str) -> None:
    compiled = wsdl.schema("all")
    assert compiled.validate(load(conformance / sample)), compiled.error_log


def test_known_invalid_samples_fail(conformance: Path) -> None:
    # NIST testkit template: the $ssn_id$/$dob_id$ placeholders break HL7 datatypes.
    hl7 = wsdl.schema("hl7v3")
    assert not hl7.validate(load(conformance / "nist-testkit/xcpd/FindPatient/XCA/findpatient.xml"))
    # NIST ITI-43 response: wsa:mustUnderstand is not a WS-Addressing attribute.
    everything = wsdl.schema("all")
    response = conformance / f"{NIST}/xds-iti43-RetrieveDocumentSet-response_soap12.xml"
    assert not everything.validate(load(response))
    assert "mustUnderstand" in str(everything.error_log)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda root: root.attrib.pop("status"),  # required on every RegistryResponse
        lambda root: root.insert(0, etree.Element("{urn:example}Stray")),
        lambda root: root.find("{*}RegistryObjectList").set("bogus", "1"),
    ],
    ids=["missing-status", "stray-element", "stray-attribute"],
)
def test_mutated_response_fails(conformance: Path, mutate) -> None:
    root = body_of(conformance / f"{NIST}/xds-iti18-AdhocQueryResponse_leafclass.xml")
    ebrs = wsdl.schema("ebrs")
    assert ebrs.validate(root)
    mutate(root)
    assert not ebrs.validate(root)


def test_saml_assertion_validates_and_non_ncname_id_fails() -> None:
    ds = "http://www.w3.org/2000/09/xmldsig#"
    xml = f"""<saml:Assertion xmlns:saml="{SAML}" xmlns:ds="{ds}" ID="_a1" Version="2.0"
        IssueInstant="2024-01-01T00:00:00Z">
      <saml:Issuer>urn:example:issuer</saml:Issuer>
      <saml:Subject><saml:NameID>alice</saml:NameID></saml:Subject>
    </saml:Assertion>"""
    assertion = etree.fromstring(xml.encode(), SAFE)
    saml = wsdl.schema("saml")
    assert saml.validate(assertion), saml.error_log
    # Some peers (CONNECT) send IDs that start with a digit: not an xs:ID.
    assertion.set("ID", "759724ff-e9ce-4a7f-a55b-fc41ffe21a75")
    assert not saml.validate(assertion)


def test_schema_loading_never_uses_the_network() -> None:
    """Every URL import met while compiling is answered from LOCAL_COPIES."""
    asked: list[str] = []

    class Spy(etree.Resolver):
        def resolve(self, system_url, public_id, context):
            if urlsplit(system_url).scheme:
                asked.append(system_url)
            return None

    for relpath in wsdl.SCHEMAS.values():
        parser = wsdl.local_parser()
        parser.resolvers.add(Spy())
        etree.XMLSchema(etree.parse(str(wsdl.XSD_DIR / relpath), parser))
    # lxml asks its resolvers in no set order: the spy may see the mapped URLs, but
    # never one outside LOCAL_COPIES.
    assert set(asked) <= set(wsdl.LOCAL_COPIES), set(asked) - set(wsdl.LOCAL_COPIES)


def test_zeep_settings_default_is_strict() -> None:
    client = wsdl.zeep_client("xca-query.wsdl", ADDRESS)
    assert isinstance(client.transport, OfflineTransport)
    assert client.settings.strict and client.settings.forbid_dtd
    assert isinstance(client, zeep.Client)
