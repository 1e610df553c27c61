"""The codec reads IPF's real audit messages and writes them back unchanged."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone

import pytest
from lxml import etree

from profiles.atna.codec import (
    audit_message_to_bytes,
    audit_message_to_xml,
    format_datetime,
    parse_audit_message,
)
from profiles.atna.message import (
    AuditError,
    CodedValue,
    EventActionCode,
    EventIdentification,
    EventOutcome,
    NetworkAccessPointType,
    ParticipantObjectIdentification,
    ParticipantObjectRole,
)
from profiles.xml import parse_xml


def canonical(el: etree._Element) -> bytes:
    """C14N after dropping indentation: attribute order and layout do not count."""
    parser = etree.XMLParser(remove_blank_text=True)
    return etree.tostring(etree.fromstring(etree.tostring(el), parser), method="c14n")


def test_every_ipf_sample_is_schema_valid_parses_and_round_trips(ipf_samples, audit_schema):
    for name, data in ipf_samples.items():
        original = parse_xml(data)
        assert audit_schema.validate(original), (name, audit_schema.error_log)
        message = parse_audit_message(original)
        again = audit_message_to_xml(message)
        assert canonical(again) == canonical(original), name
        assert parse_audit_message(again) == message, name
        assert audit_schema.validate(again), name


def test_ipf_pix_query_sample_reads_into_the_model(ipf_samples):
    msg = parse_audit_message(parse_xml(ipf_samples["atna-dicom-audit_iti45-pixv3-query.xml"]))
    ev = msg.event
    assert ev.event_id == CodedValue("110112", "DCM", "Query")
    assert ev.action is EventActionCode.EXECUTE
    assert ev.outcome is EventOutcome.SUCCESS
    assert ev.date_time == datetime(2020, 3, 19, 13, 44, 48, 924000, tzinfo=UTC)
    assert ev.event_types == (CodedValue("ITI-45", "IHE Transactions", "PIX Query"),)
    assert ev.outcome_description == ""  # present but empty, kept as such
    source, destination = msg.active_participants
    assert source.user_is_requestor and not destination.user_is_requestor
    assert destination.network_access_point_type is NetworkAccessPointType.MACHINE_NAME
    patient, query = msg.participant_objects
    assert patient.object_id == "JW-824-v3^^^&2.16.840.1.113883.3.72.5.9.1&ISO"
    assert query.role is ParticipantObjectRole.QUERY
    assert query.query.startswith(b"<queryByParameter>")


def test_detail_values_are_decoded_bytes(ipf_samples):
    xcpd = parse_audit_message(parse_xml(ipf_samples["atna-dicom-audit_iti55-xcpd-query.xml"]))
    assert xcpd.participant_objects[1].detail("ihe:homeCommunityID") == (
        b"1.3.6.1.4.1.21367.2011.2.6.181"
    )
    feed = parse_audit_message(parse_xml(ipf_samples["atna-dicom-audit_iti8-pix-feed.xml"]))
    assert feed.participant_objects[0].detail("MSH-10") == b"123456"
    assert feed.event.outcome_description is None  # absent stays absent


def test_bytes_carry_a_utf8_declaration_and_non_ascii_survives(ipf_samples):
    msg = parse_audit_message(parse_xml(ipf_samples["atna-dicom-audit_iti8-pix-feed.xml"]))
    patient = msg.participant_objects[0]
    renamed = type(msg)(
        msg.event,
        msg.active_participants,
        msg.audit_source,
        (ParticipantObjectIdentification(patient.id_type, object_id="Müller-1^^^&1.2&ISO"),),
    )
    data = audit_message_to_bytes(renamed)
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?><AuditMessage>')
    assert "Müller".encode() in data
    assert parse_audit_message(parse_xml(data)) == renamed


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), "2024-01-02T03:04:05Z"),
        (datetime(2024, 1, 2, 3, 4, 5, 250000, tzinfo=UTC), "2024-01-02T03:04:05.250Z"),
        (datetime(2024, 1, 2, 3, 4, 5, 1, tzinfo=UTC), "2024-01-02T03:04:05.000001Z"),
        (
            datetime(2024, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2))),
            "2024-01-02T03:04:05Z",
        ),
    ],
)
def test_event_time_is_written_in_utc_with_the_shortest_exact_fraction(value, text):
    assert format_datetime(value) == text


def test_a_naive_event_time_is_refused():
    with pytest.raises(AuditError):
        EventIdentification(
            CodedValue("110112", "DCM", "Query"), datetime(2024, 1, 1), EventOutcome.SUCCESS
        )


def _sample_with(ipf_samples, old: str, new: str) -> bytes:
    data = ipf_samples["atna-dicom-audit_iti9-pix-query.xml"].decode()
    assert old in data
    return data.replace(old, new, 1).encode()


@pytest.mark.parametrize(
    ("old", "new", "why"),
    [
        ('EventOutcomeIndicator="0"', 'EventOutcomeIndicator="3"', "EventOutcomeIndicator"),
        ('EventOutcomeIndicator="0"', 'EventOutcomeIndicator="x"', "EventOutcomeIndicator"),
        ('EventActionCode="E"', 'EventActionCode="X"', "EventActionCode"),
        ('EventDateTime="2020-03-19T12:34:06.367Z"', 'EventDateTime="yesterday"', "dateTime"),
        ('UserIsRequestor="true"', 'UserIsRequestor="yes"', "boolean"),
        ('NetworkAccessPointTypeCode="2"', 'NetworkAccessPointTypeCode="9"', "NetworkAccess"),
        ('ParticipantObjectTypeCodeRole="24"', 'ParticipantObjectTypeCodeRole="99"', "Role"),
        ('AuditSourceID="MPI"', 'AuditSourceIDX="MPI"', "AuditSourceID"),
        ('csd-code="110112"', 'code="110112"', "csd-code"),
        ('codeSystemName="DCM" originalText="Query"', 'codeSystemName="DCM"', "originalText"),
        ("<ParticipantObjectQuery>TVNI", "<ParticipantObjectQuery>%%%TVNI", "base64"),
        ('value="MTA1MDExMDg="', 'value="@@"', "base64"),
    ],
)
def test_messages_the_model_cannot_hold_are_refused(ipf_samples, old, new, why):
    with pytest.raises(AuditError, match=why):
        parse_audit_message(parse_xml(_sample_with(ipf_samples, old, new)))


def test_another_root_element_is_refused(ipf_samples):
    data = ipf_samples["atna-dicom-audit_iti9-pix-query.xml"].replace(b"AuditMessage>", b"Audit>")
    with pytest.raises(AuditError, match="root"):
        parse_audit_message(parse_xml(data))


def test_a_message_without_active_participants_is_refused(ipf_samples):
    root = parse_xml(ipf_samples["atna-dicom-audit_iti9-pix-query.xml"])
    for ap in root.findall("ActiveParticipant"):
        root.remove(ap)
    with pytest.raises(AuditError, match="ActiveParticipant"):
        parse_audit_message(root)


def test_name_and_query_are_exclusive():
    with pytest.raises(AuditError, match="exclusive"):
        ParticipantObjectIdentification(
            CodedValue("ITI-18", "IHE Transactions", "Registry Stored Query"), name="n", query=b"q"
        )


def test_query_base64_may_be_wrapped_across_lines(ipf_samples):
    data = ipf_samples["atna-dicom-audit_iti9-pix-query.xml"].decode()
    start = data.index("<ParticipantObjectQuery>") + len("<ParticipantObjectQuery>")
    end = data.index("</ParticipantObjectQuery>")
    b64 = data[start:end]
    wrapped = "\n".join(b64[i : i + 76] for i in range(0, len(b64), 76))
    msg = parse_audit_message(parse_xml((data[:start] + wrapped + data[end:]).encode()))
    assert msg.participant_objects[0].query == base64.b64decode(b64)


def test_required_code_attributes_are_written_even_when_empty(ipf_samples, audit_schema):
    msg = parse_audit_message(parse_xml(ipf_samples["atna-dicom-audit_iti9-pix-query.xml"]))
    source = msg.active_participants[0]
    bare = type(source)(source.user_id, True, role_id_codes=(CodedValue("x", "", ""),))
    plain_type = CodedValue("4", "", "")  # AuditSourceTypeCode: a bare digit is allowed
    changed = type(msg)(
        msg.event,
        (bare,),
        type(msg.audit_source)("gw", type_codes=(plain_type,)),
    )
    el = audit_message_to_xml(changed)
    assert audit_schema.validate(el), audit_schema.error_log
    assert dict(el.find("ActiveParticipant/RoleIDCode").attrib) == {
        "csd-code": "x",
        "codeSystemName": "",
        "originalText": "",
    }
    assert dict(el.find("AuditSourceIdentification/AuditSourceTypeCode").attrib) == {
        "csd-code": "4"
    }
    assert parse_audit_message(el) == changed
