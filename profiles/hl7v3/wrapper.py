"""The MCCI transmission wrapper and the acknowledgement every response carries.

A request is parsed ``strict``: interactionId must be ours (root
2.16.840.1.113883.1.6, extension the message type, else NS200) and the coded
header fields must come from their HL7 vocabularies. Responses we receive as
an initiator are parsed leniently, because deployed gateways answer with
``PRPA_IN201306UV`` or a 13-digit creationTime and still mean it.

Responses we build answer the request they name: sender and receiver
swapped, ``processingModeCode`` T, ``acceptAckCode`` NE (never acknowledge an
acknowledgement), targetMessage the request's id.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from lxml import etree

from profiles.errors import GatewayError, Severity
from profiles.hl7v3.codec import (
    code_to_xml,
    ii_to_xml,
    parse_code,
    parse_ii,
    parse_ts,
    tel_to_xml,
    ts_to_xml,
)
from profiles.hl7v3.datatypes import II, TEL, TS, Code, strip_urn_oid
from profiles.hl7v3.errors import (
    AckDetailCode,
    Hl7v3Error,
    Hl7v3NotSupported,
    code_system_for,
    syntax,
)
from profiles.hl7v3.xmlutil import (
    XSI,
    attr,
    child,
    children,
    hl7,
    location,
    optional,
    path,
    required,
    required_attr,
    sub,
    text,
)

INTERACTION_ID_ROOT = "2.16.840.1.113883.1.6"
PROCESSING_CODES = ("P", "D", "T")  # production, debugging, training
PROCESSING_MODES = ("A", "I", "R", "T")  # archive, initial load, restore, current processing
ACCEPT_ACK_CODES = ("AL", "ER", "NE")


class AckType(StrEnum):
    """acknowledgement/typeCode: application (A*) and commit (C*) accept, error, reject."""

    AA = "AA"
    AE = "AE"
    AR = "AR"
    CA = "CA"
    CE = "CE"
    CR = "CR"


class DetailType(StrEnum):
    ERROR = "E"
    WARNING = "W"
    INFO = "I"


@dataclass(frozen=True)
class Device:
    """A sender or receiver: device id, optional endpoint and represented organization.

    For XCPD the organization id root is the community's homeCommunityId.
    """

    id: II
    organization_id: str | None = None
    telecom: str | None = None
    organization_name: str | None = None

    @property
    def home_community_id(self) -> str | None:
        return strip_urn_oid(self.organization_id)


UNKNOWN_DEVICE = Device(II(null_flavor="UNK"))


@dataclass(frozen=True)
class TransmissionWrapper:
    """MCCI_MT000100/300UV01: who sends what to whom, and how it wants answers."""

    id: II
    creation_time: TS
    interaction_id: str
    sender: Device
    receiver: Device
    processing_code: str = "P"
    processing_mode_code: str = "T"
    accept_ack_code: str = "AL"
    respond_to: str | None = None  # deferred answers go to this URL


@dataclass(frozen=True)
class AcknowledgementDetail:
    code: Code | None = None
    text: str | None = None
    location: str | None = None
    type_code: DetailType = DetailType.ERROR


@dataclass(frozen=True)
class Acknowledgement:
    type_code: AckType
    target_message: II | None = None
    details: tuple[AcknowledgementDetail, ...] = ()


def new_message_id() -> II:
    return II(root=str(uuid.uuid4()))


def now_ts(now: datetime | None = None) -> TS:
    return TS.of(now or datetime.now(UTC))


def reply_to(request: TransmissionWrapper | None, interaction_id: str, *,
             sender: Device | None = None, message_id: II | None = None,
             now: datetime | None = None) -> TransmissionWrapper:
    """The wrapper of our answer to ``request`` (or to a message we could not read)."""
    return TransmissionWrapper(
        id=message_id or new_message_id(),
        creation_time=now_ts(now),
        interaction_id=interaction_id,
        sender=sender or (request.receiver if request else UNKNOWN_DEVICE),
        receiver=request.sender if request else UNKNOWN_DEVICE,
        processing_code=request.processing_code if request else "P",
        processing_mode_code="T",
        accept_ack_code="NE",
    )


def new_transmission(interaction_id: str, *, sender: Device, receiver: Device,
                     respond_to: str | None = None, processing_code: str = "P",
                     message_id: II | None = None, now: datetime | None = None
                     ) -> TransmissionWrapper:
    """The wrapper of a request we send: current processing (T), application ack wanted (AL)."""
    return TransmissionWrapper(
        id=message_id or new_message_id(), creation_time=now_ts(now),
        interaction_id=interaction_id, sender=sender, receiver=receiver,
        processing_code=processing_code, processing_mode_code="T", accept_ack_code="AL",
        respond_to=respond_to,
    )


def details_of(error: GatewayError) -> tuple[AcknowledgementDetail, ...]:
    """acknowledgementDetail for each of the error's details; non-HL7 errors become INTERR."""
    out = []
    for d in error.details:
        code = d.code if isinstance(error, Hl7v3Error) else AckDetailCode.INTERNAL_ERROR
        kind = DetailType.WARNING if d.severity is Severity.WARNING else DetailType.ERROR
        out.append(AcknowledgementDetail(
            Code(str(code), code_system_for(str(code))), d.context or None, d.location or None, kind
        ))
    return tuple(out)


# -- parsing ---------------------------------------------------------------------------------


def _coded(el: etree._Element, name: str, allowed: tuple[str, ...], strict: bool) -> str | None:
    """A header code; strict: present and from its HL7 vocabulary (SYN105, SYN103)."""
    if not strict:
        return attr(child(el, name), "code")
    found = required(el, name)
    value = attr(found, "code")
    if value not in allowed:
        raise syntax(AckDetailCode.VALUE_NOT_IN_CODE_SYSTEM, f"{name} is not a known code",
                     location(found))
    return value


def parse_device(el: etree._Element | None) -> Device:
    device = child(el, "device")
    if device is None:
        return UNKNOWN_DEVICE
    ids = children(device, "id")
    org = path(device, "asAgent", "representedOrganization")
    return Device(
        id=parse_ii(ids[0]) if ids else II(null_flavor="UNK"),
        organization_id=attr(child(org, "id"), "root"),
        telecom=attr(child(device, "telecom"), "value"),
        organization_name=text(child(org, "name")),
    )


def parse_transmission(el: etree._Element, interaction: str, *, strict: bool = True
                       ) -> TransmissionWrapper:
    """The wrapper of message ``el``; ``strict`` for requests we are asked to answer."""
    if strict:
        interaction_el = required(el, "interactionId")
        if attr(interaction_el, "root") != INTERACTION_ID_ROOT:
            raise syntax(AckDetailCode.NOT_FIXED_VALUE,
                         f"interactionId/@root must be {INTERACTION_ID_ROOT}",
                         location(interaction_el, "@root"))
        if attr(interaction_el, "extension") != interaction:
            raise Hl7v3NotSupported(f"interactionId must be {interaction}",
                                    code=AckDetailCode.UNSUPPORTED_INTERACTION,
                                    location=location(interaction_el, "@extension"))
        id_el = required(el, "id")
        required_attr(id_el, "root")
        time_el = required(el, "creationTime")
        required(el, "sender")
        receivers = children(el, "receiver")
        if not receivers:
            required(el, "receiver")
    else:
        id_el, time_el = child(el, "id"), child(el, "creationTime")
        receivers = children(el, "receiver")
    respond_to = optional(el, "respondTo") if strict else child(el, "respondTo")
    return TransmissionWrapper(
        id=parse_ii(id_el) if id_el is not None else II(null_flavor="UNK"),
        creation_time=parse_ts(time_el) if time_el is not None else TS(null_flavor="UNK"),
        interaction_id=attr(child(el, "interactionId"), "extension") or interaction,
        sender=parse_device(child(el, "sender")),
        receiver=parse_device(receivers[0] if receivers else None),
        processing_code=_coded(el, "processingCode", PROCESSING_CODES, strict) or "P",
        processing_mode_code=_coded(el, "processingModeCode", PROCESSING_MODES, strict) or "T",
        accept_ack_code=_coded(el, "acceptAckCode", ACCEPT_ACK_CODES, strict) or "NE",
        respond_to=attr(child(respond_to, "telecom"), "value"),
    )


def parse_acknowledgement(el: etree._Element) -> Acknowledgement:
    """The acknowledgement of message ``el``: required, the first one read if repeated."""
    acks = children(el, "acknowledgement")
    if not acks:
        required(el, "acknowledgement")  # raises SYN105
    ack = acks[0]
    type_el = required(ack, "typeCode")
    try:
        type_code = AckType(attr(type_el, "code") or "")
    except ValueError:
        raise syntax(AckDetailCode.VALUE_NOT_IN_CODE_SYSTEM, "unknown acknowledgement typeCode",
                     location(type_el)) from None
    target = child(child(ack, "targetMessage"), "id")
    target_id = parse_ii(target) if target is not None else None
    if target_id is not None and not (target_id.root or target_id.extension):
        target_id = None  # <id nullFlavor="UNK"/>, or xsi:nil: no target named
    details = []
    for d in children(ack, "acknowledgementDetail"):
        code_el, loc_el = child(d, "code"), child(d, "location")
        try:
            kind = DetailType(attr(d, "typeCode") or "E")
        except ValueError:
            kind = DetailType.ERROR
        details.append(AcknowledgementDetail(
            parse_code(code_el) if code_el is not None else None,
            text(child(d, "text")), text(loc_el), kind,
        ))
    return Acknowledgement(type_code, target_id, tuple(details))


# -- building --------------------------------------------------------------------------------


def _device_to_xml(tag: str, type_code: str, device: Device) -> etree._Element:
    outer = hl7(tag, {"typeCode": type_code})
    dev = sub(outer, "device", {"classCode": "DEV", "determinerCode": "INSTANCE"})
    dev.append(ii_to_xml("id", device.id))
    if device.telecom:
        dev.append(tel_to_xml("telecom", TEL(device.telecom)))
    if device.organization_id:
        agent = sub(dev, "asAgent", {"classCode": "AGNT"})
        org = sub(agent, "representedOrganization",
                  {"classCode": "ORG", "determinerCode": "INSTANCE"})
        sub(org, "id", {"root": device.organization_id})
        if device.organization_name:
            sub(org, "name", None, device.organization_name)
    return outer


def transmission_to_xml(root: etree._Element, t: TransmissionWrapper) -> None:
    """Append the wrapper elements, in schema order, to message element ``root``."""
    root.append(ii_to_xml("id", t.id))
    root.append(ts_to_xml("creationTime", t.creation_time))
    sub(root, "interactionId", {"root": INTERACTION_ID_ROOT, "extension": t.interaction_id})
    sub(root, "processingCode", {"code": t.processing_code})
    sub(root, "processingModeCode", {"code": t.processing_mode_code})
    sub(root, "acceptAckCode", {"code": t.accept_ack_code})
    root.append(_device_to_xml("receiver", "RCV", t.receiver))
    if t.respond_to:
        respond = sub(root, "respondTo", {"typeCode": "RSP"})
        respond.append(tel_to_xml("telecom", TEL(t.respond_to)))
        # entityRsp is required but says nothing here: nil, as IHE's deferred examples do.
        entity = sub(respond, "entityRsp", {"classCode": "ENT", "determinerCode": "INSTANCE"})
        entity.set(f"{{{XSI}}}nil", "true")
    root.append(_device_to_xml("sender", "SND", t.sender))


def acknowledgement_to_xml(ack: Acknowledgement) -> etree._Element:
    el = hl7("acknowledgement")
    sub(el, "typeCode", {"code": ack.type_code.value})
    target = sub(el, "targetMessage")
    target.append(ii_to_xml("id", ack.target_message or II(null_flavor="UNK")))
    for d in ack.details:
        detail = sub(el, "acknowledgementDetail", {"typeCode": d.type_code.value})
        if d.code:
            detail.append(code_to_xml("code", d.code))
        if d.text:
            sub(detail, "text", None, d.text)
        if d.location:
            sub(detail, "location", None, d.location)
    return el

