"""A recipe rebuilds, byte for byte, the records the request would have built."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from profiles.atna.codec import audit_message_to_bytes
from profiles.atna.codes import FEED_ACTIONS, TRANSACTIONS, AuditSourceType, Kind, Side
from profiles.atna.events import DocumentRef, Endpoint, HumanRequestor, Occasion
from profiles.atna.facts import (
    AuditFacts,
    Feed,
    OutboundCall,
    outbound_record,
    transaction_records,
)
from profiles.atna.message import AuditError, AuditSourceIdentification, CodedValue, EventOutcome
from profiles.atna.recipe import is_recipe, outbound_recipe, rebuild, transaction_recipe

SOURCE = AuditSourceIdentification(
    "urn:oid:1.2.3", "Hôpital Ω", (AuditSourceType.APPLICATION_SERVER,)
)
HUMAN = HumanRequestor(
    subject_id="Dr. Jane Smith", name_id="jsmith", issuer="https://idp.example.net",
    sp_provided_id="js", organization="Example", organization_id="urn:oid:1.2",
    roles=(CodedValue("307969004", "SNOMED_CT", "Public Health", "PH"),),
    purposes_of_use=(CodedValue("TREATMENT", "nhin-purpose", "Treatment"),),
)
INITIATOR = Endpoint("http://www.w3.org/2005/08/addressing/anonymous", host="10.1.2.3",
                     user_name="CN=partner")
RESPONDER = Endpoint("https://gw.example.org/xca/query", host="gw", process_id="42")
REPORTER = Endpoint("ihe-gateway", host="gw", process_id="42")


def facts_for(kind: Kind) -> AuditFacts:
    return AuditFacts(
        query=b"<AdhocQueryRequest \xc3\xa9/>" if kind is Kind.QUERY else None,
        query_id="urn:uuid:q-1", patient_ids=["P-1^^^&1.2.3&ISO", "P-2^^^&1.2.3&ISO"],
        home_community_id="urn:oid:1.2.3",
        documents=[DocumentRef("1.2.3.4", "1.2.3.5", "urn:oid:1.2.3"), DocumentRef("9.9")],
        submission_set_id="1.2.3.99", message_id="m-1@1.2.3",
        feeds=[Feed(t, "P-1^^^&1.2.3&ISO", ("P-0^^^&1.2.3&ISO",)) for t in FEED_ACTIONS][:2],
    )


@pytest.mark.parametrize("side", [Side.RESPONDER, Side.INITIATOR])
@pytest.mark.parametrize("transaction", sorted(TRANSACTIONS))
@pytest.mark.parametrize("human", [HUMAN, None])
def test_a_recipe_rebuilds_the_same_bytes(transaction: str, human, side: Side) -> None:
    kind = TRANSACTIONS[transaction].kind
    occasion = Occasion(SOURCE, datetime(2026, 11, 25, 23, 0, 1, 123456, tzinfo=UTC),
                        EventOutcome.MINOR_FAILURE, "XDSRegistryError")
    common = {"initiator": INITIATOR, "responder": RESPONDER, "human": human,
              "facts": facts_for(kind), "fallback_id": "urn:uuid:m-1"}
    try:
        wanted = transaction_records(transaction, side, occasion, **common)
    except AuditError:
        pytest.skip(f"{transaction}: these facts do not describe it")
    recipe = transaction_recipe(transaction, side, occasion, **common,
                                reporter=REPORTER, subject=RESPONDER.user_id)
    assert is_recipe(recipe)
    assert [audit_message_to_bytes(m) for m in rebuild(recipe)] == [
        audit_message_to_bytes(m) for m in wanted
    ]


@pytest.mark.parametrize("outcome", ["success", "fault"])
def test_an_outbound_calls_recipe_rebuilds_its_record(outcome: str) -> None:
    call = OutboundCall("ITI-38", "https://partner.example.org/xca/query", outcome,
                        query=b"<AdhocQueryRequest/>", query_id="urn:uuid:q-2",
                        home_community_id="urn:oid:1.2.840.99.7",
                        patient_ids=("P-9^^^&1.2.840.99.7&ISO",),
                        reason=None if outcome == "success" else "timed out")
    occasion = Occasion(SOURCE, datetime(2026, 11, 26, 6, 0, tzinfo=UTC),
                        EventOutcome.SUCCESS if outcome == "success"
                        else EventOutcome.SERIOUS_FAILURE, call.reason)
    common = {"initiator": REPORTER, "human": HUMAN, "fallback_id": "urn:uuid:m-2"}
    recipe = outbound_recipe(call, occasion, **common, reporter=REPORTER)
    (wanted,) = [outbound_record(call, occasion, **common)]
    assert [audit_message_to_bytes(m) for m in rebuild(recipe)] == [
        audit_message_to_bytes(wanted)
    ]


def test_facts_the_builder_refuses_become_the_security_alert() -> None:
    occasion = Occasion(SOURCE, datetime(2026, 11, 25, tzinfo=UTC), EventOutcome.SUCCESS)
    bad = AuditFacts(feeds=[Feed("Z99", "P-1^^^&1.2.3&ISO")])
    recipe = transaction_recipe("ITI-8", Side.RESPONDER, occasion, initiator=INITIATOR,
                                responder=RESPONDER, human=None, facts=bad, fallback_id="m",
                                reporter=REPORTER, subject="mllp://gw:2575")
    (alert,) = rebuild(recipe)
    assert alert.event.event_id.code == "110113"


@pytest.mark.parametrize("payload", [b'{"v": 1, "t": "ITI-38"}', b"[1, 2]", b"{not json",
                                     b'{"v": 3}'])
def test_an_unreadable_recipe_is_an_audit_error(payload: bytes) -> None:
    with pytest.raises(AuditError):
        rebuild(payload)


def _query_recipe(query: bytes) -> bytes:
    occasion = Occasion(SOURCE, datetime(2026, 11, 26, tzinfo=UTC), EventOutcome.SUCCESS)
    facts = AuditFacts(query=query, query_id="urn:uuid:q-3", patient_ids=["P-1^^^&1.2.3&ISO"])
    return transaction_recipe("ITI-18", Side.RESPONDER, occasion, initiator=INITIATOR,
                              responder=RESPONDER, human=None, facts=facts, fallback_id="m",
                              reporter=REPORTER, subject=RESPONDER.user_id)


def _query_of(recipe: bytes) -> bytes:
    (message,) = rebuild(recipe)
    (query_object,) = [p for p in message.participant_objects if p.query is not None]
    return query_object.query


def test_a_utf8_query_is_kept_as_text_and_other_bytes_as_base64() -> None:
    text = '<AdhocQueryRequest id="é"/>'.encode()
    recipe = _query_recipe(text)
    assert json.loads(recipe)["f"][0] == text.decode()
    assert _query_of(recipe) == text
    latin1 = b"<AdhocQueryRequest id='\xe9'/>"  # not UTF-8: base64, marked as such
    recipe = _query_recipe(latin1)
    assert json.loads(recipe)["f"][0] == ["b64", base64.b64encode(latin1).decode()]
    assert _query_of(recipe) == latin1


def test_a_version_1_recipe_with_a_base64_query_still_rebuilds() -> None:
    query = b"<AdhocQueryRequest/>"
    recipe = json.loads(_query_recipe(query))
    recipe["v"], recipe["f"][0] = 1, base64.b64encode(query).decode()
    assert _query_of(json.dumps(recipe).encode()) == query


@pytest.mark.parametrize("query", [["hex", "00"], ["b64", "!!not base64!!"]])
def test_a_query_in_an_unknown_encoding_is_an_audit_error(query) -> None:
    recipe = json.loads(_query_recipe(b"<q/>"))
    recipe["f"][0] = query
    with pytest.raises(AuditError):
        rebuild(json.dumps(recipe).encode())
