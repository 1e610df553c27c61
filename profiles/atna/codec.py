"""AuditMessage <-> lxml element, in the DICOM 2017c schema's element order.

``audit_message_to_xml`` writes exactly what ``dicom2017c.xsd`` accepts (the
tests validate every builder's output against it); ``parse_audit_message``
reads any schema-shaped message, such as IPF's, and refuses what the models
cannot represent faithfully. DICOM-only ``ParticipantObjectDescription``
elements are skipped when parsing: the repository keeps received bytes verbatim.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime

from lxml import etree

from profiles.atna.message import (
    ActiveParticipant,
    AuditError,
    AuditMessage,
    AuditSourceIdentification,
    CodedValue,
    DataLifeCycle,
    EventActionCode,
    EventIdentification,
    EventOutcome,
    NetworkAccessPointType,
    ParticipantObjectDetail,
    ParticipantObjectIdentification,
    ParticipantObjectRole,
    ParticipantObjectType,
    enum_value,
)

XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>'


# -- writing ------------------------------------------------------------------------------


def format_datetime(value: datetime) -> str:
    """xs:dateTime in UTC with the shortest exact fraction (none, ms or µs)."""
    utc = value.astimezone(UTC)
    micro = utc.microsecond
    if micro == 0:
        text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    elif micro % 1000 == 0:
        text = utc.strftime("%Y-%m-%dT%H:%M:%S") + f".{micro // 1000:03d}"
    else:
        text = utc.strftime("%Y-%m-%dT%H:%M:%S") + f".{micro:06d}"
    return text + "Z"


def _set(el: etree._Element, name: str, value: str | None) -> None:
    if value is not None:
        el.set(name, value)


def _coded(parent: etree._Element, tag: str, cv: CodedValue, *, strict: bool = True):
    """A CodedValueType element; ``strict`` writes the attributes the schema requires."""
    el = etree.SubElement(parent, tag)
    el.set("csd-code", cv.code)
    if strict or cv.system_name:
        el.set("codeSystemName", cv.system_name)
    if cv.display_name:
        el.set("displayName", cv.display_name)
    if strict or cv.original_text:
        el.set("originalText", cv.original_text)
    return el


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def audit_message_to_xml(message: AuditMessage) -> etree._Element:
    root = etree.Element("AuditMessage")
    ev = message.event
    ei = etree.SubElement(root, "EventIdentification")
    if ev.action is not None:
        ei.set("EventActionCode", ev.action.value)
    ei.set("EventDateTime", format_datetime(ev.date_time))
    ei.set("EventOutcomeIndicator", str(int(ev.outcome)))
    _coded(ei, "EventID", ev.event_id)
    for cv in ev.event_types:
        _coded(ei, "EventTypeCode", cv)
    if ev.outcome_description is not None:
        etree.SubElement(ei, "EventOutcomeDescription").text = ev.outcome_description
    for cv in ev.purposes_of_use:
        _coded(ei, "PurposeOfUse", cv)

    for p in message.active_participants:
        ap = etree.SubElement(root, "ActiveParticipant")
        ap.set("UserID", p.user_id)
        _set(ap, "AlternativeUserID", p.alternative_user_id)
        _set(ap, "UserName", p.user_name)
        ap.set("UserIsRequestor", "true" if p.user_is_requestor else "false")
        _set(ap, "NetworkAccessPointID", p.network_access_point_id)
        if p.network_access_point_type is not None:
            ap.set("NetworkAccessPointTypeCode", p.network_access_point_type.value)
        for cv in p.role_id_codes:
            _coded(ap, "RoleIDCode", cv)
        if p.media_type is not None:
            _coded(etree.SubElement(ap, "MediaIdentifier"), "MediaType", p.media_type)

    src = message.audit_source
    asi = etree.SubElement(root, "AuditSourceIdentification")
    _set(asi, "AuditEnterpriseSiteID", src.enterprise_site_id)
    asi.set("AuditSourceID", src.audit_source_id)
    for cv in src.type_codes:
        _coded(asi, "AuditSourceTypeCode", cv, strict=False)

    for o in message.participant_objects:
        po = etree.SubElement(root, "ParticipantObjectIdentification")
        _set(po, "ParticipantObjectID", o.object_id)
        for attr, value in (
            ("ParticipantObjectTypeCode", o.type_code),
            ("ParticipantObjectTypeCodeRole", o.role),
            ("ParticipantObjectDataLifeCycle", o.lifecycle),
        ):
            if value is not None:
                po.set(attr, value.value)
        _set(po, "ParticipantObjectSensitivity", o.sensitivity)
        _coded(po, "ParticipantObjectIDTypeCode", o.id_type)
        if o.name is not None:
            etree.SubElement(po, "ParticipantObjectName").text = o.name
        elif o.query is not None:
            etree.SubElement(po, "ParticipantObjectQuery").text = _b64(o.query)
        for d in o.details:
            etree.SubElement(po, "ParticipantObjectDetail", type=d.type, value=_b64(d.value))
    return root


def audit_message_to_bytes(message: AuditMessage) -> bytes:
    """The UTF-8 document with declaration: the payload of a syslog message."""
    body = etree.tostring(audit_message_to_xml(message), encoding="UTF-8", xml_declaration=False)
    return XML_DECLARATION + body


# -- reading ------------------------------------------------------------------------------


def parse_datetime(text: str) -> datetime:
    """xs:dateTime; a value without a zone is taken as UTC (the schema allows it)."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise AuditError(f"EventDateTime {text!r} is not an xs:dateTime") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _unb64(text: str | None, what: str) -> bytes:
    try:
        return base64.b64decode("".join((text or "").split()), validate=True)
    except (binascii.Error, ValueError):
        raise AuditError(f"{what} is not base64") from None


def _parse_coded(el: etree._Element, *, strict: bool = True) -> CodedValue:
    code = el.get("csd-code")
    if code is None:
        raise AuditError(f"{el.tag} has no csd-code")
    if strict and (el.get("codeSystemName") is None or el.get("originalText") is None):
        raise AuditError(f"{el.tag} {code!r} lacks codeSystemName or originalText")
    return CodedValue(
        code, el.get("codeSystemName", ""), el.get("originalText", ""), el.get("displayName", "")
    )


def _one(parent: etree._Element, tag: str) -> etree._Element:
    found = parent.findall(tag)
    if len(found) != 1:
        raise AuditError(f"{parent.tag} must contain exactly one {tag}")
    return found[0]


def _bool(text: str | None, what: str) -> bool:
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise AuditError(f"{what}: {text!r} is not an xs:boolean")


def _opt_enum(kind, raw: str | None, what: str):
    return None if raw is None else enum_value(kind, raw.strip(), what)


def _parse_event(ei: etree._Element) -> EventIdentification:
    outcome_raw = ei.get("EventOutcomeIndicator")
    if outcome_raw is None or not outcome_raw.strip().isdigit():
        raise AuditError("EventOutcomeIndicator missing or not a number")
    date_raw = ei.get("EventDateTime")
    if date_raw is None:
        raise AuditError("EventDateTime missing")
    desc = ei.find("EventOutcomeDescription")
    return EventIdentification(
        event_id=_parse_coded(_one(ei, "EventID")),
        date_time=parse_datetime(date_raw),
        outcome=enum_value(EventOutcome, int(outcome_raw), "EventOutcomeIndicator"),
        action=_opt_enum(EventActionCode, ei.get("EventActionCode"), "EventActionCode"),
        event_types=tuple(_parse_coded(e) for e in ei.findall("EventTypeCode")),
        outcome_description=None if desc is None else (desc.text or ""),
        purposes_of_use=tuple(_parse_coded(e) for e in ei.findall("PurposeOfUse")),
    )


def _parse_participant(ap: etree._Element) -> ActiveParticipant:
    user_id = ap.get("UserID")
    if user_id is None:
        raise AuditError("ActiveParticipant has no UserID")
    media = ap.find("MediaIdentifier/MediaType")
    return ActiveParticipant(
        user_id=user_id,
        user_is_requestor=_bool(ap.get("UserIsRequestor"), "UserIsRequestor"),
        alternative_user_id=ap.get("AlternativeUserID"),
        user_name=ap.get("UserName"),
        role_id_codes=tuple(_parse_coded(e) for e in ap.findall("RoleIDCode")),
        network_access_point_id=ap.get("NetworkAccessPointID"),
        network_access_point_type=_opt_enum(
            NetworkAccessPointType,
            ap.get("NetworkAccessPointTypeCode"),
            "NetworkAccessPointTypeCode",
        ),
        media_type=None if media is None else _parse_coded(media),
    )


def _parse_source(asi: etree._Element) -> AuditSourceIdentification:
    source_id = asi.get("AuditSourceID")
    if source_id is None:
        raise AuditError("AuditSourceIdentification has no AuditSourceID")
    return AuditSourceIdentification(
        audit_source_id=source_id,
        enterprise_site_id=asi.get("AuditEnterpriseSiteID"),
        type_codes=tuple(_parse_coded(e, strict=False) for e in asi.findall("AuditSourceTypeCode")),
    )


def _parse_object(po: etree._Element) -> ParticipantObjectIdentification:
    name = po.find("ParticipantObjectName")
    query = po.find("ParticipantObjectQuery")
    details = []
    for d in po.findall("ParticipantObjectDetail"):
        if d.get("type") is None:
            raise AuditError("ParticipantObjectDetail has no type")
        details.append(
            ParticipantObjectDetail(d.get("type"), _unb64(d.get("value"), "detail value"))
        )
    return ParticipantObjectIdentification(
        id_type=_parse_coded(_one(po, "ParticipantObjectIDTypeCode")),
        object_id=po.get("ParticipantObjectID"),
        type_code=_opt_enum(
            ParticipantObjectType, po.get("ParticipantObjectTypeCode"), "ParticipantObjectTypeCode"
        ),
        role=_opt_enum(
            ParticipantObjectRole,
            po.get("ParticipantObjectTypeCodeRole"),
            "ParticipantObjectTypeCodeRole",
        ),
        lifecycle=_opt_enum(
            DataLifeCycle,
            po.get("ParticipantObjectDataLifeCycle"),
            "ParticipantObjectDataLifeCycle",
        ),
        sensitivity=po.get("ParticipantObjectSensitivity"),
        name=None if name is None else (name.text or ""),
        query=None if query is None else _unb64(query.text, "ParticipantObjectQuery"),
        details=tuple(details),
    )


def parse_audit_message(root: etree._Element) -> AuditMessage:
    """Read an ``AuditMessage`` element (already parsed by the hardened parser)."""
    if root.tag != "AuditMessage":
        raise AuditError(f"root element is {root.tag!r}, not AuditMessage")
    participants = tuple(_parse_participant(ap) for ap in root.findall("ActiveParticipant"))
    return AuditMessage(
        event=_parse_event(_one(root, "EventIdentification")),
        active_participants=participants,
        audit_source=_parse_source(_one(root, "AuditSourceIdentification")),
        participant_objects=tuple(
            _parse_object(po) for po in root.findall("ParticipantObjectIdentification")
        ),
    )
