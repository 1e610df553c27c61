"""A read-only transaction's XUA replay tokens ride on the commit of its audit record.

The gate leaves them to the request; the group commit inserts them ahead of the record,
and a request whose token turns out taken (a replay, sequential or concurrent) is
answered with the gate's replay refusal instead of its answer: Sender fault with the
wsse subcode, log line, one alert, no success record. A transaction that may write still
consumes its tokens at the gate.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import sqlalchemy as sa
from lxml import etree

from gateway.audit.hook import Auditor, RequestFacts
from gateway.audit.models import AuditInboxEntry
from gateway.audit.queue import AuditQueue
from gateway.dispatch import ROUTES, Route
from gateway.security.replay import ReplayToken
from gateway.soap.service import Limits, SoapRequest, SoapResponse, handle_soap
from profiles.atna.events import Endpoint
from profiles.errors import WSSE_NS
from profiles.transaction import ErrorForm, Transaction
from profiles.xds.iti18 import ITI_18
from profiles.xds.iti42 import ITI_42
from profiles.xml import parse_xml
from tests.gateway.audit.helpers import SOURCE, break_the_inbox
from tests.gateway.security.messages import envelope, req_from, route, signed
from tests.profiles.xua.fixed_time import NOW

S12 = "http://www.w3.org/2003/05/soap-envelope"
LIMITS = Limits(max_message_bytes=1 << 20, max_attachment_bytes=1 << 20)
RETRIEVE = "urn:ihe:iti:2007:CrossGatewayRetrieve"  # the action of CONNECT's wire sample


@pytest.fixture
def auditor(db) -> Auditor:
    return Auditor(AuditQueue(db), SOURCE, node=Endpoint("ihe-gateway", host="gw.example.org"))


def retrieve_route(handle: Callable, *, read_only: bool = True) -> Route:
    txn = Transaction(
        "ITI-39", "Cross Gateway Retrieve", RETRIEVE, RETRIEVE + "Response",
        ErrorForm.RETRIEVE_RESPONSE, parse=lambda body, ctx: body.tag, handle=handle,
        serialize=lambda _result: etree.Element("{urn:test}Done"),
    )
    reads = frozenset({"ITI-39"}) if read_only else frozenset()
    return Route("/xca/retrieve", "responding_gateway", "xca-retrieve.wsdl", (txn,), reads)


def post(gate, rt: Route, data: bytes, pki, auditor: Auditor, request_id: str) -> SoapResponse:
    transport = req_from(pki.partner, request_id)
    req = SoapRequest(rt.path, "application/soap+xml", io.BytesIO(data), len(data), None,
                      request_id, transport.peer_subject, transport.peer_certificate)
    audit = auditor.request(RequestFacts(request_id, "https://gw.example.org" + rt.path))
    return handle_soap(rt, req, home_community_id="urn:oid:9.9", limits=LIMITS,
                       security=gate, audit=audit)


def meanwhile(fn: Callable, *args):
    """``fn(*args)`` on another thread (another request), waited for."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn, *args).result(timeout=60)


def refused_as_replay(response: SoapResponse) -> None:
    assert (response.status, response.outcome) == (400, "fault")
    doc = parse_xml(b"".join(response.body))
    value = doc.find(f".//{{{S12}}}Subcode/{{{S12}}}Value")
    prefix, local = value.text.split(":")
    assert (value.nsmap[prefix], local) == (WSSE_NS, "InvalidSecurity")
    assert doc.find(".//{urn:test}Done") is None  # the handler's answer never leaves


def remembered(db) -> set[str]:
    with db.session() as s:
        return set(s.scalars(sa.select(ReplayToken.token)))


def inbox(db) -> int:
    with db.session() as s:
        return s.scalar(sa.select(sa.func.count()).select_from(AuditInboxEntry))


def test_a_query_token_is_inserted_in_the_commit_of_its_record(make_gate, db, pki, auditor):
    seen_by_handler = []
    rt = retrieve_route(lambda request, ctx: seen_by_handler.append(remembered(db)))
    response = post(make_gate(), rt, signed(pki), pki, auditor, "req-1")
    assert response.status == 200
    assert seen_by_handler == [set()]  # not consumed before the handler ran
    assert len(remembered(db)) == 1 and inbox(db) == 1
    assert auditor.queue._group.commits == 1  # token and record: one commit


def test_a_sequential_replay_of_a_query_is_refused_at_the_commit(
    make_gate, db, pki, auditor, recorded
):
    """The gate does not read the token table for a query (a round trip on PostgreSQL);
    the replay runs its handler, which changes nothing, and its answer never leaves."""
    handled = []
    rt = retrieve_route(lambda request, ctx: handled.append(ctx.request_id))
    data = signed(pki)
    assert post(make_gate(), rt, data, pki, auditor, "req-1").status == 200
    refused_as_replay(post(make_gate(), rt, data, pki, auditor, "req-2"))
    assert handled == ["req-1", "req-2"]
    [refusal] = recorded.refusals
    assert refusal.request_id == "req-2" and "replayed token" in refusal.reason
    assert inbox(db) == 1  # the first request's record; the alert went to the recorder


def test_a_replay_that_commits_first_wins_and_the_original_is_refused(
    make_gate, db, pki, auditor, recorded, caplog
):
    """The replay is sent (by another thread) while the original is in its handler; the
    replay commits first and is answered, the original's
    commit finds its token taken and sends the gate's refusal instead of its answer."""
    gate, data, answers = make_gate(), signed(pki), []

    def handle(request, ctx):
        if ctx.request_id == "req-1":
            answers.append(meanwhile(post, gate, rt, data, pki, auditor, "req-2"))

    rt = retrieve_route(handle)
    with caplog.at_level(logging.WARNING, logger="gateway.security"):
        first = post(gate, rt, data, pki, auditor, "req-1")
    [second] = answers
    assert second.status == 200 and second.outcome == "success"
    refused_as_replay(first)
    [refusal] = recorded.refusals  # one alert, for the request refused
    assert refusal.request_id == "req-1" and refusal.subcode == "InvalidSecurity"
    assert "replayed token" in refusal.reason and refusal.path == "/xca/retrieve"
    [line] = [r for r in caplog.records if r.name == "gateway.security"]
    assert line.getMessage().startswith("XUA refused: InvalidSecurity (replayed token")
    assert line.request_id == "req-1"
    assert inbox(db) == 1  # the answered request's record only: no success record for req-1
    assert len(remembered(db)) == 1


def test_a_write_transaction_consumes_its_token_at_the_gate(make_gate, db, pki, auditor):
    gate, registry = make_gate(), route("/xds/registry")
    audit = auditor.request(RequestFacts("req-1", "https://gw.example.org/xds/registry"))
    assert registry.writes(ITI_42) and not registry.writes(ITI_18)
    gate(registry, envelope(signed(pki)), req_from(pki.partner), transaction=ITI_42, audit=audit)
    assert len(remembered(db)) == 1 and audit._tokens is None  # before any handler
    audit = auditor.request(RequestFacts("req-2", "https://gw.example.org/xds/registry"))
    gate(registry, envelope(signed(pki)), req_from(pki.partner), transaction=ITI_18, audit=audit)
    assert len(remembered(db)) == 1 and audit._tokens is not None  # left to the record


def test_a_write_route_refuses_a_replay_before_its_handler(make_gate, db, pki, auditor):
    handled = []
    rt = retrieve_route(lambda request, ctx: handled.append(ctx.request_id), read_only=False)
    data = signed(pki)
    assert post(make_gate(), rt, data, pki, auditor, "req-1").status == 200
    refused_as_replay(post(make_gate(), rt, data, pki, auditor, "req-2"))
    assert handled == ["req-1"]


def write_data(db, key: str) -> None:
    with db.session() as s:
        s.execute(sa.insert(ReplayToken.__table__).values(token=key, expires_at=NOW))


def test_a_read_only_handler_that_writes_after_all_commits_its_token_with_its_data(
    make_gate, db, pki, auditor
):
    rt = retrieve_route(lambda request, ctx: write_data(db, "data"))
    assert post(make_gate(), rt, signed(pki), pki, auditor, "req-1").status == 200
    assert len(remembered(db)) == 2  # the data and the token, committed together
    assert auditor.queue._group.commits == 0 and inbox(db) == 1  # the record rode along


def test_a_raced_replay_that_writes_rolls_its_data_back(make_gate, db, pki, auditor, recorded):
    gate, data, answers = make_gate(), signed(pki), []

    def handle(request, ctx):
        if ctx.request_id == "req-1":
            answers.append(meanwhile(post, gate, rt, data, pki, auditor, "req-2"))
            write_data(db, "data-of-the-replay")

    rt = retrieve_route(handle)
    refused_as_replay(post(gate, rt, data, pki, auditor, "req-1"))
    assert answers[0].status == 200
    assert "data-of-the-replay" not in remembered(db)
    assert [r.request_id for r in recorded.refusals] == ["req-1"] and inbox(db) == 1


def test_a_failed_commit_sends_no_answer(make_gate, db, pki, auditor, monkeypatch):
    break_the_inbox(monkeypatch)
    rt = retrieve_route(lambda request, ctx: None)
    response = post(make_gate(), rt, signed(pki), pki, auditor, "req-1")
    assert (response.status, response.outcome) == (500, "fault")
    doc = parse_xml(b"".join(response.body))
    assert doc.find(".//{urn:test}Done") is None
    assert remembered(db) == set()  # not durable, so not acknowledged either


def test_an_expired_token_may_be_used_again(make_gate, db, pki, clock):
    cache = make_gate().replay_cache
    assert cache.add_if_absent("k", NOW + timedelta(minutes=1))
    assert not cache.add_if_absent("k", NOW + timedelta(minutes=1))
    clock.at = NOW + timedelta(minutes=2)
    assert cache.add_if_absent("k", NOW + timedelta(minutes=3))


def test_only_queries_and_retrieves_leave_their_tokens_to_the_record():
    listed = {(r.path, t) for r in ROUTES for t in r.read_only}
    assert listed == {("/xca/query", "ITI-38"), ("/xca/retrieve", "ITI-39"),
                      ("/xds/registry", "ITI-18"), ("/xds/repository", "ITI-43"),
                      ("/pix", "ITI-45")}  # feeds, submissions, XCPD (correlates), /ig/* fan-out
    for r in ROUTES:
        assert r.read_only <= {t.id for t in r.transactions}
        assert all(r.writes(t) == (t.id not in r.read_only) for t in r.transactions)
    assert route("/ig/query").writes(route("/ig/query").transactions[0])
    assert route("/xds/registry").writes(route("/xca/query").transactions[0])  # not its own
