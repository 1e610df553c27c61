"""The dispatch table and the published WSDLs say the same thing.

Every route publishes a WSDL; each WSDL's operations carry exactly the
(action, reply action) pairs of its route's transactions, bound with the same
SOAP action; every WSDL in wsdl/ belongs to a route; MTOM is advertised on exactly
the routes whose transactions move documents.
"""

from __future__ import annotations

import pytest
from lxml import etree

import wsdl
from gateway.dispatch import ROUTES, Route

W = "{http://schemas.xmlsoap.org/wsdl/}"
SOAP12 = "{http://schemas.xmlsoap.org/wsdl/soap12/}"
WSAW_ACTION = "{http://www.w3.org/2006/05/addressing/wsdl}Action"
WSAM_ACTION = "{http://www.w3.org/2007/05/addressing/metadata}Action"
USING_ADDRESSING = "{http://www.w3.org/2006/05/addressing/wsdl}UsingAddressing"
POLICY_REF = "{http://schemas.xmlsoap.org/ws/2004/09/policy}PolicyReference"
WSOMA = "{http://schemas.xmlsoap.org/ws/2004/09/policy/optimizedmimeserialization}"
WSU_ID = "{http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd}Id"

# Transactions that carry documents as XOP/MTOM (ITI TF-2x V.3.6 / each transaction's
# message semantics): their bindings must advertise OptimizedMimeSerialization.
MTOM_TRANSACTIONS = {"ITI-39", "ITI-41", "ITI-43", "DIAG-MTOM"}


def route_id(route: Route) -> str:
    return route.path


def parse(name: str) -> etree._ElementTree:
    return etree.parse(str(wsdl.path(name)), wsdl.local_parser())


def port_type_actions(tree: etree._ElementTree) -> dict[str, tuple[str, str]]:
    """operation name -> (input action, output action), both attribute spellings agreeing."""
    ops = {}
    for op in tree.iterfind(f"{W}portType/{W}operation"):
        actions = []
        for direction in ("input", "output"):
            el = op.find(W + direction)
            assert el is not None, f"{op.get('name')} has no {direction}"
            wsaw, wsam = el.get(WSAW_ACTION), el.get(WSAM_ACTION)
            assert wsaw, f"{op.get('name')} {direction} has no wsaw:Action"
            assert wsaw == wsam, f"{op.get('name')} {direction}: wsaw {wsaw} != wsam {wsam}"
            actions.append(wsaw)
        ops[op.get("name")] = (actions[0], actions[1])
    return ops


@pytest.mark.parametrize("route", ROUTES, ids=route_id)
def test_every_route_has_a_wsdl(route: Route) -> None:
    assert route.wsdl in wsdl.names(), f"{route.path}: no wsdl/{route.wsdl}"
    assert wsdl.path(route.wsdl).is_file()


@pytest.mark.parametrize("route", ROUTES, ids=route_id)
def test_wsdl_actions_equal_route_transactions(route: Route) -> None:
    ops = port_type_actions(parse(route.wsdl))
    published = set(ops.values())
    routed = {(t.action, t.reply_action) for t in route.transactions}
    assert published == routed, (
        f"{route.wsdl}: only in WSDL {published - routed}; only in dispatch {routed - published}"
    )
    # One operation per request action, or dispatch could not tell them apart.
    inputs = [a for a, _ in ops.values()]
    assert len(inputs) == len(set(inputs))


@pytest.mark.parametrize("route", ROUTES, ids=route_id)
def test_binding_matches_port_type(route: Route) -> None:
    tree = parse(route.wsdl)
    ops = port_type_actions(tree)
    bindings = tree.findall(f"{W}binding")
    assert len(bindings) == 1
    binding = bindings[0]
    soap = binding.find(f"{SOAP12}binding")
    assert soap is not None and soap.get("style") == "document"
    assert binding.find(USING_ADDRESSING) is not None
    bound = {}
    for op in binding.iterfind(f"{W}operation"):
        bound[op.get("name")] = op.find(f"{SOAP12}operation").get("soapAction")
        for direction in ("input", "output"):
            body = op.find(f"{W}{direction}/{SOAP12}body")
            assert body is not None and body.get("use") == "literal"
    assert bound == {name: actions[0] for name, actions in ops.items()}
    ports = tree.findall(f"{W}service/{W}port/{SOAP12}address")
    assert len(ports) == 1


def test_every_wsdl_is_used_by_a_route() -> None:
    unused = set(wsdl.names()) - {r.wsdl for r in ROUTES}
    assert not unused, f"WSDLs without a route in gateway/dispatch.py: {sorted(unused)}"


def test_mtom_transactions_are_known() -> None:
    """A transaction answering in MTOM must be listed here, so its WSDL gets the policy."""
    for route in ROUTES:
        for t in route.transactions:
            if t.mtom_response:
                assert t.id in MTOM_TRANSACTIONS, t.id


@pytest.mark.parametrize("route", ROUTES, ids=route_id)
def test_mtom_policy_exactly_where_documents_travel(route: Route) -> None:
    tree = parse(route.wsdl)
    binding = tree.find(f"{W}binding")
    refs = [r.get("URI") for r in binding.iterfind(POLICY_REF)]
    wants_mtom = any(t.id in MTOM_TRANSACTIONS for t in route.transactions)
    mtom_policies = {
        "#" + p.get(WSU_ID)
        for p in tree.getroot()
        if isinstance(p.tag, str)
        and p.tag.endswith("}Policy")
        and p.find(f".//{WSOMA}OptimizedMimeSerialization") is not None
    }
    has_mtom = any(ref in mtom_policies for ref in refs)
    assert has_mtom == wants_mtom, f"{route.wsdl}: MTOM policy {has_mtom}, expected {wants_mtom}"
