"""``GET path?wsdl`` over mutual TLS: zeep loads every published WSDL from the server itself."""

from __future__ import annotations

import pytest
import zeep
from zeep.wsdl.bindings.soap import Soap12Binding

from gateway.config import load_config
from gateway.dispatch import ROUTES

pytestmark = pytest.mark.e2e


class ServerOnlyTransport(zeep.Transport):
    """zeep's HTTP transport, refusing any document not served by the gateway under test:
    the WSDL and its whole schema closure must come from ``base``."""

    def __init__(self, base: str, **kwargs) -> None:
        super().__init__(cache=None, **kwargs)
        self.base = base
        self.fetched: list[str] = []

    def load(self, url: str) -> bytes:
        if not url.startswith(self.base + "/"):
            raise AssertionError(f"zeep asked for a document elsewhere: {url}")
        self.fetched.append(url)
        return super().load(url)


def served_routes():
    return [r for r in ROUTES if r.role != "diagnostics"]  # init leaves diagnostics off


def test_init_switches_on_every_role_but_diagnostics(gateway):
    config = load_config(gateway.config)
    assert {r.role for r in served_routes()} <= config.roles
    assert not config.diagnostics


@pytest.mark.parametrize("route", served_routes(), ids=lambda r: r.path)
def test_zeep_loads_the_served_wsdl(gateway, session, route):
    url = f"{gateway.base_url}{route.path}"
    transport = ServerOnlyTransport(gateway.base_url, session=session)
    client = zeep.Client(
        f"{url}?wsdl", transport=transport, settings=zeep.Settings(strict=True, forbid_dtd=True)
    )
    assert transport.fetched[0] == f"{url}?wsdl"
    assert all(u.startswith(f"{url}?xsd=") for u in transport.fetched[1:])

    (service,) = client.wsdl.services.values()
    (port,) = service.ports.values()
    assert isinstance(port.binding, Soap12Binding)
    assert port.binding_options["address"] == url
    actions = {op.abstract.wsa_action for op in port.binding._operations.values()}
    assert actions == {t.action for t in route.transactions}


def test_a_route_whose_role_is_off_serves_nothing(gateway, session):
    (diagnostics,) = [r for r in ROUTES if r.role == "diagnostics"]
    resp = session.get(
        f"{gateway.base_url}{diagnostics.path}?wsdl", verify=str(gateway.cert("ca.pem"))
    )
    assert resp.status_code == 404
