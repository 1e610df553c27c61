"""The PIX Manager over HL7 v2: one message in, one answer out (bytes, no framing).

ADT goes to ITI-8, QBP^Q23 to ITI-9; anything else is rejected (AR, 200
unsupported message type, or 201 unsupported event). A message too broken to
read is rejected with an ACK built from what could be read, since the sender
waits on the connection for an answer; so is one the index failed on (AE 207).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import hl7

from profiles.atna.facts import noter
from profiles.pix.hl7v2 import FALLBACK, V2Error, V2Message, acknowledgement, decode, encode
from profiles.pix.iti8 import handle_feed
from profiles.pix.iti9 import handle_query
from profiles.pix.ports import PatientIndex

log = logging.getLogger("gateway.pix")


def respond(raw: bytes, index: PatientIndex, *, now: datetime | None = None,
            audit: Any = None) -> bytes:
    """The answer to one message. ``audit`` (an AuditSink) is told the transaction, the
    two applications (``FACILITY|APPLICATION``), MSH-10, the query as received, and
    the outcome read from the answer's MSA-1 (AA, AE, else a refusal)."""
    noted = noter(audit)
    try:
        message = decode(raw)
    except V2Error as error:
        noted(outcome="fault")
        return encode(acknowledgement(FALLBACK, error, now=now), "utf-8")
    noted(initiator=_application(message, 4, 3), responder=_application(message, 6, 5),
          message_id=message.control_id or None)
    if message.message_type == "ADT":
        noted(transaction="ITI-8")
        answer = _guarded(message, lambda: handle_feed(message, index, now=now, audit=audit), now)
    elif message.message_type == "QBP" and message.trigger == "Q23":
        noted(transaction="ITI-9", query=raw, query_id=message.control_id or None)
        answer = _guarded(message, lambda: handle_query(message, index, now=now, audit=audit),
                          now)
    else:
        unsupported = "201" if message.message_type == "QBP" else "200"
        answer = acknowledgement(message, V2Error(
            unsupported, "this PIX Manager takes ITI-8 ADT and ITI-9 QBP^Q23 messages",
            ("MSH", 1, 9), ack="AR"), now=now)
    noted(outcome=OUTCOME_OF_ACK.get(_ack_code(answer), "fault"))
    return encode(answer, message.encoding)


def _guarded(message: V2Message, work: Callable[[], hl7.Message],
             now: datetime | None) -> hl7.Message:
    """``work()``, or AE 207 (application internal error) when it failed unexpectedly:
    the sender waits on the connection for an ACK, and nothing was stored (a feed is
    one transaction). Only the error's type is logged: its text may carry PHI."""
    try:
        return work()
    except Exception as exc:  # noqa: BLE001 - any failure still gets its ACK
        log.error("PIX Manager failed on %s^%s: %s", message.message_type, message.trigger,
                  type(exc).__name__)
        return acknowledgement(message, V2Error(
            "207", "the PIX Manager could not process the message; nothing was stored"),
            now=now)


OUTCOME_OF_ACK = {"AA": "success", "CA": "success", "AE": "error", "CE": "error"}


def _application(m: V2Message, facility: int, application: int) -> str | None:
    """``FACILITY|APPLICATION`` (MSH-4|MSH-3, or 6|5), as IPF writes the UserID."""
    names = (m.get("MSH", facility), m.get("MSH", application))
    return "|".join(names) if any(names) else None


def _ack_code(answer: hl7.Message) -> str:
    try:
        return str(answer.segment("MSA")[1])
    except (KeyError, IndexError):
        return ""
