"""The PIX Manager over HL7 v2: one message in, one answer out (bytes, no framing).

ADT goes to ITI-8, QBP^Q23 to ITI-9; anything else is rejected (AR, 200
unsupported message type, or 201 unsupported event). A message too broken to
read is rejected with an ACK built from what could be read, since the sender
waits on the connection for an answer.
"""

from __future__ import annotations

from datetime import datetime

from profiles.pix.hl7v2 import FALLBACK, V2Error, acknowledgement, decode, encode
from profiles.pix.iti8 import handle_feed
from profiles.pix.iti9 import handle_query
from profiles.pix.ports import PatientIndex


def respond(raw: bytes, index: PatientIndex, *, now: datetime | None = None) -> bytes:
    try:
        message = decode(raw)
    except V2Error as error:
        return encode(acknowledgement(FALLBACK, error, now=now), "utf-8")
    if message.message_type == "ADT":
        answer = handle_feed(message, index, now=now)
    elif message.message_type == "QBP" and message.trigger == "Q23":
        answer = handle_query(message, index, now=now)
    else:
        unsupported = "201" if message.message_type == "QBP" else "200"
        answer = acknowledgement(message, V2Error(
            unsupported, "this PIX Manager takes ITI-8 ADT and ITI-9 QBP^Q23 messages",
            ("MSH", 1, 9), ack="AR"), now=now)
    return encode(answer, message.encoding)
