"""A transaction's audit record as its recipe: the builders' inputs, as compact JSON.

Building the DICOM message and serialising it costs more than storing it
(``bench/audit.py --breakdown``), and the request does not need the XML: it
needs the record to be durable. So the request path stores the *inputs* of
``transaction_records`` (transaction, side, occasion, endpoints, human
requestor, noted facts), and the indexer builds the messages later with the
same pure functions, byte for byte what the request would have built. If the
facts turn out too thin for the builder (``AuditError``), the recipe's alert
fallback gives the Security Alert the request path would have written.

A recipe is JSON, never pickle: whoever can write the database must not be able
to run code in the sender. It always starts with ``{``, audit XML with ``<``.
Version 2 keeps a noted query as text when it is UTF-8 (every XML and HL7 query
we note is): encoding it as base64 cost more than the rest of the recipe right
after a handler, and made it a third larger. Version 1 rows still rebuild.
"""

from __future__ import annotations

import base64
from datetime import datetime

import orjson

from profiles.atna.codes import EventType, Side
from profiles.atna.events import DocumentRef, Endpoint, HumanRequestor, Occasion
from profiles.atna.facts import (
    AuditFacts,
    Feed,
    OutboundCall,
    outbound_facts,
    transaction_records,
)
from profiles.atna.message import (
    AuditError,
    AuditMessage,
    AuditSourceIdentification,
    CodedValue,
    EventOutcome,
)
from profiles.atna.nodes import security_alert

VERSION = 2
_READABLE = (1, 2)


def outbound_recipe(
    call: OutboundCall,
    occasion: Occasion,
    *,
    initiator: Endpoint,
    human: HumanRequestor | None,
    fallback_id: str,
    reporter: Endpoint,
) -> bytes:
    """The recipe of ``outbound_record(call, ...)``: an initiating gateway notes one call per
    partner (500 in a wide fan-out), and building and serialising each record before the
    answer leaves would cost about six times as much as its recipe."""
    return transaction_recipe(
        call.transaction, Side.INITIATOR, occasion, initiator=initiator,
        responder=Endpoint(call.endpoint, host=call.host), human=human,
        facts=outbound_facts(call), fallback_id=fallback_id, reporter=reporter,
        subject=call.endpoint,
    )


def is_recipe(payload: bytes) -> bool:
    return payload[:1] == b"{"


def transaction_recipe(
    transaction: str,
    side: Side,
    occasion: Occasion,
    *,
    initiator: Endpoint,
    responder: Endpoint,
    human: HumanRequestor | None,
    facts: AuditFacts,
    fallback_id: str,
    reporter: Endpoint,
    subject: str,
) -> bytes:
    """The recipe of ``transaction_records(...)``; ``reporter`` and ``subject`` are for
    the Security Alert that stands in if the facts cannot be described."""
    src = occasion.audit_source
    recipe = {
        "v": VERSION,
        "t": transaction,
        "s": side.value,
        "o": [src.audit_source_id, src.enterprise_site_id, [_cv(c) for c in src.type_codes],
              occasion.when.isoformat(), int(occasion.outcome), occasion.outcome_description],
        "i": _end(initiator),
        "r": _end(responder),
        "h": None if human is None else [
            human.subject_id, human.name_id, human.issuer, human.sp_provided_id,
            human.organization, human.organization_id, [_cv(c) for c in human.roles],
            [_cv(c) for c in human.purposes_of_use]],
        "f": [_query(facts.query),
              facts.query_id, facts.patient_ids, facts.home_community_id,
              [[d.document_id, d.repository_id, d.home_community_id] for d in facts.documents],
              facts.submission_set_id,
              [[f.trigger, f.patient_id, list(f.prior_patient_ids)] for f in facts.feeds],
              facts.message_id],
        "b": fallback_id,
        "a": [_end(reporter), subject],
    }
    # orjson: compact UTF-8 JSON, the same bytes as json.dumps(separators=(",", ":"),
    # ensure_ascii=False) gave, at a tenth of its cost right after a handler
    return orjson.dumps(recipe)


def rebuild(payload: bytes) -> tuple[AuditMessage, ...]:
    """The messages a recipe describes (raises AuditError for a recipe it cannot read)."""
    try:
        r = orjson.loads(payload)
        version = r.get("v")
        if version not in _READABLE:
            raise AuditError(f"unknown audit recipe version {version!r}")
        source_id, site_id, types, when, outcome, description = r["o"]
        source = AuditSourceIdentification(source_id, site_id, tuple(_coded(c) for c in types))
        occasion = Occasion(source, datetime.fromisoformat(when), EventOutcome(outcome),
                            description)
        query, query_id, patients, hcid, docs, ss_id, feeds, message_id = r["f"]
        facts = AuditFacts(
            query=_query_bytes(query, version), query_id=query_id,
            patient_ids=list(patients), home_community_id=hcid,
            documents=[DocumentRef(*d) for d in docs], submission_set_id=ss_id,
            feeds=[Feed(t, p, tuple(prior)) for t, p, prior in feeds], message_id=message_id,
        )
        initiator = _endpoint(r["i"])
        reporter, subject = _endpoint(r["a"][0]), r["a"][1]
    except (ValueError, TypeError, KeyError, AttributeError) as exc:  # JSONDecodeError: ValueError
        raise AuditError(f"unreadable audit recipe: {type(exc).__name__}") from None
    try:
        return transaction_records(
            r["t"], Side(r["s"]), occasion, initiator=initiator, responder=_endpoint(r["r"]),
            human=_human(r["h"]), facts=facts, fallback_id=r["b"],
        )
    except AuditError:  # too little was noted: the alert the request path gave
        what = f"{r['t']} request"
        return (security_alert(EventType.AUTHORIZATION_DECISION, occasion, reporter=reporter,
                               performer=initiator, subject=subject,
                               description=f"{what} refused: {description}" if description
                               else f"{what} refused"),)


def _query(query: bytes | None) -> str | list[str] | None:
    """The query as text (version 2), or ``["b64", ...]`` for bytes that are not UTF-8."""
    if query is None:
        return None
    try:
        return query.decode("utf-8")
    except UnicodeDecodeError:
        return ["b64", base64.b64encode(query).decode("ascii")]


def _query_bytes(query: str | list | None, version: int) -> bytes | None:
    if query is None:
        return None
    if isinstance(query, list):
        marker, encoded = query
        if marker != "b64":
            raise ValueError("unknown query encoding")
        return base64.b64decode(encoded, validate=True)
    if version == 1:  # version 1 held every query as base64 text
        return base64.b64decode(query)
    return query.encode("utf-8")


def _cv(c: CodedValue) -> list[str]:
    return [c.code, c.system_name, c.original_text, c.display_name]


def _coded(values: list[str]) -> CodedValue:
    return CodedValue(*values)


def _end(e: Endpoint) -> list[str | None]:
    return [e.user_id, e.host, e.process_id, e.user_name]


def _endpoint(values: list) -> Endpoint:
    return Endpoint(*values)


def _human(values: list | None) -> HumanRequestor | None:
    if values is None:
        return None
    *names, roles, purposes = values
    return HumanRequestor(*names, roles=tuple(_coded(c) for c in roles),
                          purposes_of_use=tuple(_coded(c) for c in purposes))
