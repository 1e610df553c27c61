"""SOAP over the served gateway: faults on the wire, and the database it really uses."""

from __future__ import annotations

import uuid

import pytest
from lxml import etree

import wsdl
from gateway.config import load_config
from gateway.store import migrate
from profiles.errors import WSA_NS
from profiles.xml import parse_xml

pytestmark = pytest.mark.e2e

S12 = "http://www.w3.org/2003/05/soap-envelope"


def envelope(action: str, message_id: str, to: str) -> bytes:
    return (
        f'<s:Envelope xmlns:s="{S12}" xmlns:a="{WSA_NS}"><s:Header>'
        f'<a:Action s:mustUnderstand="true">{action}</a:Action>'
        f"<a:MessageID>{message_id}</a:MessageID><a:To>{to}</a:To>"
        '</s:Header><s:Body><x:Ping xmlns:x="urn:example:ping"/></s:Body></s:Envelope>'
    ).encode()


def resolve(el: etree._Element) -> tuple[str, str]:
    """A QName-valued element's (namespace, local name), its prefix looked up in scope."""
    prefix, local = el.text.strip().split(":")
    return el.nsmap[prefix], local


@pytest.mark.parametrize("path", ["/xds/registry", "/xca/query", "/pix"])
def test_unknown_action_gets_a_sender_fault_action_not_supported(gateway, session, path):
    url = f"{gateway.base_url}{path}"
    message_id = f"urn:uuid:{uuid.uuid4()}"
    resp = session.post(
        url,
        data=envelope("urn:example:NoSuchAction", message_id, url),
        headers={"Content-Type": "application/soap+xml; charset=UTF-8"},
        verify=str(gateway.cert("ca.pem")),
    )
    assert resp.status_code == 400
    assert resp.headers["Content-Type"].startswith("application/soap+xml")
    assert resp.headers["X-Request-Id"]

    doc = parse_xml(resp.content)
    wsdl.schema("soap12-envelope").assertValid(etree.ElementTree(doc))
    code = doc.find(f"{{{S12}}}Body/{{{S12}}}Fault/{{{S12}}}Code")
    assert resolve(code.find(f"{{{S12}}}Value")) == (S12, "Sender")
    assert resolve(code.find(f"{{{S12}}}Subcode/{{{S12}}}Value")) == (WSA_NS, "ActionNotSupported")
    header = doc.find(f"{{{S12}}}Header")
    assert header.findtext(f"{{{WSA_NS}}}RelatesTo") == message_id
    assert header.findtext(f"{{{WSA_NS}}}Action") == "http://www.w3.org/2005/08/addressing/fault"
    assert doc.findtext(f".//{{{WSA_NS}}}ProblemAction/{{{WSA_NS}}}Action") == (
        "urn:example:NoSuchAction"
    )


def test_unknown_path_is_not_found(gateway, session):
    resp = session.get(f"{gateway.base_url}/nowhere?wsdl", verify=str(gateway.cert("ca.pem")))
    assert resp.status_code == 404


def test_the_served_community_uses_the_configured_database(gateway, e2e_database_url):
    """PostgreSQL when the suite runs on it (GATEWAY_DATABASE_URL in the server's
    environment), else the SQLite file init made; migrated to head either way."""
    sqlite_file = gateway.directory / "data" / "gateway.db"
    if e2e_database_url:
        url = e2e_database_url
        assert not sqlite_file.exists()
    else:
        url = load_config(gateway.config).database_url
        assert url == f"sqlite:///{sqlite_file}" and sqlite_file.is_file()
    assert migrate.current(url) == migrate.head()
