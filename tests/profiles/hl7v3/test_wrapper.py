"""Transmission wrapper, acknowledgement, MCCI_IN000002UV01 and the Hl7v3Error family."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from lxml import etree

from profiles.errors import ErrorDetail, GatewayError, Severity, XDSRegistryError
from profiles.hl7v3.ack import (
    ApplicationAcknowledgement,
    error_acknowledgement,
    mcci_acknowledgement_to_xml,
    parse_mcci_acknowledgement,
)
from profiles.hl7v3.control import (
    DetectedIssue,
    IssueError,
    RequestedAttribute,
    detected_issues_to_xml,
    parse_detected_issues,
)
from profiles.hl7v3.datatypes import II, TS
from profiles.hl7v3.errors import (
    ACK_DETAIL_CODE_SYSTEM,
    HL7_TABLE_0357,
    Hl7v3Error,
    Hl7v3SyntaxError,
    UnknownKeyIdentifier,
    code_system_for,
)
from profiles.hl7v3.wrapper import (
    AckType,
    DetailType,
    Device,
    TransmissionWrapper,
    parse_transmission,
)
from profiles.hl7v3.xmlutil import HL7, XSI

FEED = "messages/ipf/pixv3-iti44-PRPA_IN201301UV02-add_maximal.xml"
NOW = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
US = Device(II("1.2.840.114350.1.13.99999.4567"), "1.2.840.114350.1.13.99999.1234")


@pytest.fixture
def feed(hl7_message):
    return hl7_message(FEED, "PRPA_IN201301UV02")


def test_transmission_wrapper_of_a_request(feed):
    t = parse_transmission(feed, "PRPA_IN201301UV02")
    assert t.id == II("21acf7be-007c-41e6-b176-d0969794983b", "345")
    assert t.creation_time == TS("20091112115139")
    assert t.sender.id == II("1.2.840.114350.1.13.99998.8734")
    assert t.sender.home_community_id == "1.2.840.114350.1.13.99998"
    assert t.receiver.organization_id == "1.2.840.114350.1.13.99999.1234"
    assert (t.processing_code, t.processing_mode_code, t.accept_ack_code) == ("P", "T", "AL")


@pytest.mark.parametrize(("xpath", "attribute", "value", "code", "where"), [
    ("interactionId", "root", "2.16.840.1.113883.1.18", "SYN111", "/interactionId/@root"),
    ("interactionId", "extension", "PRPA_IN201305UV02", "NS200", "/interactionId/@extension"),
    ("processingModeCode", "code", "X", "SYN103", "/processingModeCode"),
    ("acceptAckCode", "code", "SOMETIMES", "SYN103", "/acceptAckCode"),
    ("id", "root", None, "SYN101", "/id/@root"),
])
def test_strict_wrapper_refuses_with_a_located_code(feed, xpath, attribute, value, code, where):
    el = feed.find(f"{{{HL7}}}{xpath}")
    if value is None:
        del el.attrib[attribute]
    else:
        el.set(attribute, value)
    with pytest.raises(Hl7v3Error) as err:
        parse_transmission(feed, "PRPA_IN201301UV02")
    assert err.value.code == code
    assert err.value.location == "/PRPA_IN201301UV02" + where


def test_missing_creation_time_is_a_required_element(feed):
    feed.remove(feed.find(f"{{{HL7}}}creationTime"))
    with pytest.raises(Hl7v3SyntaxError) as err:
        parse_transmission(feed, "PRPA_IN201301UV02")
    assert (err.value.code, err.value.location) == ("SYN105", "/PRPA_IN201301UV02/creationTime")
    # ...but an answer we read as initiator is taken leniently
    assert parse_transmission(feed, "PRPA_IN201301UV02", strict=False).creation_time.null_flavor


def test_mcci_accept_answers_the_request(feed, assert_valid):
    request = parse_transmission(feed, "PRPA_IN201301UV02")
    ack = ApplicationAcknowledgement.accept(request, sender=US, message_id=II("2.999.1", "1"),
                                            now=NOW)
    el = mcci_acknowledgement_to_xml(ack)
    assert_valid(el)
    assert parse_mcci_acknowledgement(el) == ack
    assert ack.accepted and ack.acknowledgement.target_message == request.id
    assert ack.transmission.receiver == request.sender
    assert el.find(f"{{{HL7}}}acceptAckCode").get("code") == "NE"
    assert el.find(f"{{{HL7}}}processingModeCode").get("code") == "T"
    assert el.find(f"{{{HL7}}}interactionId").attrib == {
        "root": "2.16.840.1.113883.1.6", "extension": "MCCI_IN000002UV01"}
    assert el.find(f"{{{HL7}}}creationTime").get("value") == "20240506070809"
    assert el.nsmap == {None: HL7, "xsi": XSI}  # HL7 as the default namespace, on the root


def test_mcci_sample_parses(hl7_message):
    ack = parse_mcci_acknowledgement(
        hl7_message("messages/ipf/pixv3-iti44-MCCI_IN000002UV01-ack.xml", "MCCI_IN000002UV01"))
    assert ack.acknowledgement.type_code is AckType.CA and ack.accepted
    assert ack.acknowledgement.target_message == II("22a0f9e0-4454-11dc-a6be-3603d6866807")
    assert ack.transmission.sender.telecom == "https://example.org/PatientFeed"


def test_error_acknowledgement_without_a_request_uses_what_the_parser_saw(feed, assert_valid):
    error = Hl7v3SyntaxError("patientPerson/name needs a value", code="SYN105",
                             location="/PRPA_IN201301UV02/controlActProcess/subject")
    error.transmission = parse_transmission(feed, "PRPA_IN201301UV02")
    el = error_acknowledgement(None, error, now=NOW)
    assert_valid(el)
    ack = parse_mcci_acknowledgement(el)
    assert ack.acknowledgement.type_code is AckType.AE
    assert ack.acknowledgement.target_message == error.transmission.id
    (detail,) = ack.acknowledgement.details
    assert detail.code.code == "SYN105" and detail.code.code_system == ACK_DETAIL_CODE_SYSTEM
    assert detail.location == "/PRPA_IN201301UV02/controlActProcess/subject"
    assert detail.type_code is DetailType.ERROR


def test_error_acknowledgement_for_an_unreadable_message_is_still_schema_valid(assert_valid):
    el = error_acknowledgement(None, Hl7v3SyntaxError("not HL7", location="/"))
    assert_valid(el)
    assert parse_mcci_acknowledgement(el).acknowledgement.target_message is None


def test_non_hl7_errors_become_interr_and_warnings_w(assert_valid):
    el = error_acknowledgement(None, XDSRegistryError("store unavailable"))
    assert_valid(el)
    (detail,) = parse_mcci_acknowledgement(el).acknowledgement.details
    assert detail.code.code == "INTERR" and detail.text == "store unavailable"
    warn = GatewayError(details=[ErrorDetail("XDSRegistryError", "w", Severity.WARNING)])
    answer = parse_mcci_acknowledgement(error_acknowledgement(None, warn))
    (detail,) = answer.acknowledgement.details
    assert detail.type_code is DetailType.WARNING


def test_error_family_codes_and_code_systems():
    assert issubclass(Hl7v3Error, GatewayError)
    assert UnknownKeyIdentifier().code == "204" and code_system_for("204") == HL7_TABLE_0357
    assert Hl7v3SyntaxError().code == "SYN" and code_system_for("SYN105") == ACK_DETAIL_CODE_SYSTEM
    merged = Hl7v3Error.collect([Hl7v3SyntaxError("a", code="SYN105", location="/x"),
                                 UnknownKeyIdentifier("b", location="/y")])
    assert [d.code for d in merged.details] == ["SYN105", "204"]


def test_detected_issues_round_trip_and_connect_placement():
    issues = (DetectedIssue.error(IssueError.RESPONDER_BUSY),
              DetectedIssue.requested(RequestedAttribute.ADMINISTRATIVE_GENDER),
              DetectedIssue.requested(RequestedAttribute.PATIENT_TELECOM))
    control = etree.Element(f"{{{HL7}}}controlActProcess")
    control.append(detected_issues_to_xml(issues))
    assert parse_detected_issues(control) == issues
    event = control.find(f"{{{HL7}}}reasonOf/{{{HL7}}}detectedIssueEvent")
    orders = event.findall(f"{{{HL7}}}triggerFor/{{{HL7}}}actOrderRequired")
    assert [o.get("moodCode") for o in orders] == ["RQO", "RQO"]
    assert orders[0].find(f"{{{HL7}}}code").get("codeSystem") == "1.3.6.1.4.1.19376.1.2.27.1"
    # CONNECT puts detectedIssueEvent straight into controlActProcess
    connect = etree.Element(f"{{{HL7}}}controlActProcess")
    connect.append(event)
    assert parse_detected_issues(connect) == issues


def test_transmission_wrapper_is_frozen():
    t = TransmissionWrapper(II("1"), TS("2024"), "X", US, US)
    with pytest.raises(AttributeError):
        t.id = II("2")  # type: ignore[misc]
