"""MCCI_IN000002UV01, the application acknowledgement (ITI-44 answers with it).

Its wrapper answers the acknowledged message (sender and receiver swapped,
acceptAckCode NE: an acknowledgement is never acknowledged) and it has no
controlActProcess. AA accepts; AE carries one acknowledgementDetail per error.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from lxml import etree

from profiles.errors import GatewayError
from profiles.hl7v3.datatypes import II
from profiles.hl7v3.wrapper import (
    Acknowledgement,
    AckType,
    Device,
    TransmissionWrapper,
    acknowledgement_to_xml,
    details_of,
    parse_acknowledgement,
    parse_transmission,
    reply_to,
    transmission_to_xml,
)
from profiles.hl7v3.xmlutil import check_root, message_root

MCCI_IN000002UV01 = "MCCI_IN000002UV01"


@dataclass(frozen=True)
class ApplicationAcknowledgement:
    transmission: TransmissionWrapper
    acknowledgement: Acknowledgement

    @property
    def accepted(self) -> bool:
        return self.acknowledgement.type_code in (AckType.AA, AckType.CA)

    @classmethod
    def accept(cls, request: TransmissionWrapper, *, sender: Device | None = None,
               message_id: II | None = None, now: datetime | None = None
               ) -> ApplicationAcknowledgement:
        return cls(reply_to(request, MCCI_IN000002UV01, sender=sender, message_id=message_id,
                            now=now),
                   Acknowledgement(AckType.AA, request.id))

    @classmethod
    def refuse(cls, request: TransmissionWrapper | None, error: GatewayError, *,
               sender: Device | None = None, message_id: II | None = None,
               now: datetime | None = None) -> ApplicationAcknowledgement:
        """AE naming the target message when known (from the error if parsing failed)."""
        request = request or getattr(error, "transmission", None)
        return cls(reply_to(request, MCCI_IN000002UV01, sender=sender, message_id=message_id,
                            now=now),
                   Acknowledgement(AckType.AE, request.id if request else None,
                                   details_of(error)))


def mcci_acknowledgement_to_xml(ack: ApplicationAcknowledgement) -> etree._Element:
    root = message_root(MCCI_IN000002UV01)
    transmission_to_xml(root, ack.transmission)
    root.append(acknowledgement_to_xml(ack.acknowledgement))
    return root


def parse_mcci_acknowledgement(el: etree._Element) -> ApplicationAcknowledgement:
    """Read an acknowledgement we received (lenient wrapper, acknowledgement required)."""
    check_root(el, MCCI_IN000002UV01)
    ack = parse_acknowledgement(el)
    return ApplicationAcknowledgement(parse_transmission(el, MCCI_IN000002UV01, strict=False), ack)


def error_acknowledgement(request: object, error: GatewayError, *, sender: Device | None = None,
                          message_id: II | None = None, now: datetime | None = None
                          ) -> etree._Element:
    """MCCI AE for ``request`` (any model with a ``transmission``, or None) and ``error``."""
    transmission = getattr(request, "transmission", request)
    if not isinstance(transmission, TransmissionWrapper):
        transmission = None
    return mcci_acknowledgement_to_xml(ApplicationAcknowledgement.refuse(
        transmission, error, sender=sender, message_id=message_id, now=now))
