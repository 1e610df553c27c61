"""The Flask app in process: every route answers SOAP and ?wsdl; roles switch routes off."""

from pathlib import Path

import pytest
from lxml import etree

from gateway.app import create_app
from gateway.config import config_from_dict
from gateway.dispatch import ROUTES
from profiles.errors import WSA_NS
from tests.conftest import make_config_dict

S12 = "http://www.w3.org/2003/05/soap-envelope"
WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"


def app_for(tmp_path: Path, database_url: str, **overrides):
    cfg = config_from_dict(
        make_config_dict(tmp_path / "data", database_url, **overrides), base=tmp_path, environ={}
    )
    return create_app(cfg)


@pytest.fixture
def client(tmp_path, database_url):
    app = app_for(tmp_path, database_url, diagnostics={"enabled": True})
    yield app.test_client()
    app.extensions["gateway"].database.dispose()


def soap(action: str) -> bytes:
    return (
        f"<e:Envelope xmlns:e='{S12}' xmlns:wsa='{WSA_NS}'><e:Header>"
        f"<wsa:Action e:mustUnderstand='true'>{action}</wsa:Action>"
        "<wsa:MessageID>urn:uuid:0f1e2d3c-0000-4000-8000-000000000001</wsa:MessageID>"
        "</e:Header><e:Body><x:Anything xmlns:x='urn:x'/></e:Body></e:Envelope>"
    ).encode()


def test_healthz_reports_database(client):
    resp = client.get("/healthz")
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["status"] == "ok" and body["database"] == "ok"
    assert body["home_community_id"] == "urn:oid:1.3.6.1.4.1.21367.2011.2.1"


def test_healthz_shows_the_audit_backlog(client):
    """Records not yet delivered (or indexed) are visible, and are not a failure."""
    before = client.get("/healthz").get_json()["audit"]
    client.post("/xds/registry", data=soap("urn:example:Unknown"),
                content_type="application/soap+xml")  # refused: leaves a security alert
    body = client.get("/healthz").get_json()
    assert body["status"] == "ok"

    def owed(audit: dict) -> int:  # on PostgreSQL a read's record may still be in flight
        return audit["unindexed"] + audit["pending"] + audit.get("handed", {}).get(
            "unconfirmed", 0)

    assert owed(body["audit"]) > owed(before)


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.path)
def test_every_route_serves_its_wsdl(client, route):
    resp = client.get(route.path + "?wsdl")
    assert resp.status_code == 200
    doc = etree.fromstring(resp.data)
    assert etree.QName(doc) == etree.QName(WSDL_NS, "definitions")
    locations = [a.get("location") for a in doc.iter("{*}address")]
    assert locations and all(loc.endswith(route.path) for loc in locations)


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.path)
def test_every_route_refuses_an_action_of_another(client, route):
    resp = client.post(
        route.path, data=soap("urn:example:NotHere"), content_type="application/soap+xml"
    )
    assert resp.status_code == 400
    doc = etree.fromstring(resp.data)
    sub = doc.findtext(f".//{{{S12}}}Subcode/{{{S12}}}Value")
    prefix, local = sub.split(":")
    assert doc.find(f".//{{{S12}}}Subcode/{{{S12}}}Value").nsmap[prefix] == WSA_NS
    assert local == "ActionNotSupported"
    assert resp.headers["X-Request-Id"]


def test_cross_path_action_is_refused(client):
    """An XCA query sent to the registry is not silently mis-routed."""
    resp = client.post(
        "/xds/registry",
        data=soap("urn:ihe:iti:2007:CrossGatewayQuery"),
        content_type="application/soap+xml",
    )
    assert resp.status_code == 400 and b"ActionNotSupported" in resp.data


def test_planned_transaction_is_a_receiver_fault_until_implemented(client):
    planned = local_planned()
    if not planned:
        pytest.skip("every routed transaction is implemented")
    route, txn = planned[0]
    resp = client.post(route.path, data=soap(txn.action), content_type="application/soap+xml")
    assert resp.status_code == 500
    assert b"env:Receiver" in resp.data and b"not implemented" in resp.data


LOCAL_ROLES = {"registry", "repository", "initiating_gateway", "pix"}  # no XUA by default


def local_planned():
    return [
        (r, t)
        for r in ROUTES
        if r.role in LOCAL_ROLES
        for t in r.transactions
        if not t.implemented
    ]


def test_unknown_path_is_404(client):
    assert client.post("/nowhere", data=b"x").status_code == 404


def test_switched_off_role_has_no_route(tmp_path, database_url):
    app = app_for(tmp_path, database_url, roles={"registry": False})
    c = app.test_client()
    assert c.get("/xds/registry?wsdl").status_code == 404
    assert c.get("/xds/repository?wsdl").status_code == 200
    assert c.get("/diagnostics/mtom-echo?wsdl").status_code == 404
    app.extensions["gateway"].database.dispose()


def test_schema_imports_are_served_and_escapes_refused(client):
    doc = etree.fromstring(client.get("/xds/registry?wsdl").data)
    imports = [i.get("schemaLocation") for i in doc.iter("{*}import") if i.get("schemaLocation")]
    assert imports
    first = imports[0].split("?", 1)[1]
    assert client.get("/xds/registry?" + first).status_code == 200
    assert client.get("/xds/registry?xsd=../__init__.py").status_code == 404


def test_get_without_wsdl_is_405(client):
    assert client.get("/xds/registry").status_code == 405


def test_every_request_is_audited_even_when_refused(tmp_path, database_url):
    """A refused action leaves a security alert; a failed transaction its own event."""
    from gateway.audit.search import AuditQuery, search

    app = app_for(tmp_path, database_url)
    rt = app.extensions["gateway"]
    c = app.test_client()
    # The record is finished when the server closes the response, as a WSGI server does.
    c.post(
        "/xds/registry", data=soap("urn:example:NotHere"), content_type="application/soap+xml"
    ).close()
    planned = local_planned()
    if planned:
        route, txn = planned[0]
        c.post(route.path, data=soap(txn.action), content_type="application/soap+xml").close()
    found = list(search(rt.database, AuditQuery()))
    alerts = [f for f in found if f.entry.event_id == "110113"]
    assert len(alerts) == 1 and alerts[0].entry.outcome != 0
    if planned:
        failures = [f for f in found if f.entry.event_type and txn.id in f.entry.event_type]
        assert len(failures) == 1 and failures[0].entry.outcome == 8
    rt.database.dispose()
