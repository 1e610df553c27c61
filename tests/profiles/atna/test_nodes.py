"""Node events carry the DICOM codes for what happened to the gateway itself."""

from __future__ import annotations

import pytest

from profiles.atna.codec import parse_audit_message
from profiles.atna.codes import EventType
from profiles.atna.events import Endpoint, Occasion
from profiles.atna.message import CodedValue, EventOutcome
from profiles.atna.nodes import (
    application_activity,
    audit_log_used,
    configuration_change,
    node_authentication_failure,
    security_configuration_change,
    user_authentication,
)
from profiles.xml import parse_xml

GATEWAY = Endpoint("ihe-gateway", host="gateway.example.org", process_id="311")
PEER = Endpoint("https://203.0.113.9:443", host="203.0.113.9")


def dcm(code: str, text: str) -> CodedValue:
    return CodedValue(code, "DCM", text)


def codes(msg):
    ev = msg.event
    return ev.event_id, ev.action.value, ev.event_types, ev.outcome


def roles(msg):
    return [
        (p.user_id, [r.code for r in p.role_id_codes], p.user_is_requestor)
        for p in msg.active_participants
    ]


@pytest.mark.parametrize(
    ("started", "code", "text"),
    [(True, "110120", "Application Start"), (False, "110121", "Application Stop")],
)
def test_application_start_and_stop(started, code, text, occasion, assert_valid, ipf_samples):
    msg = application_activity(started, occasion, application=GATEWAY, launcher="gatewayd")
    assert_valid(msg)
    assert codes(msg) == (
        dcm("110100", "Application Activity"),
        "E",
        (dcm(code, text),),
        EventOutcome.SUCCESS,
    )
    assert roles(msg) == [("ihe-gateway", ["110150"], False), ("gatewayd", ["110151"], True)]
    assert msg.active_participants[0].alternative_user_id == "311"
    assert msg.participant_objects == ()
    if started:  # the same codes and roles as IPF's own record of an application start
        ipf = parse_audit_message(parse_xml(ipf_samples["atna-dicom-audit_application-start.xml"]))
        assert codes(ipf) == codes(msg)
        assert [r[1:] for r in roles(ipf)] == [r[1:] for r in roles(msg)]


def test_node_authentication_failure_names_the_peer_and_why(occasion, assert_valid):
    refused = Occasion(occasion.audit_source, occasion.when, EventOutcome.MINOR_FAILURE)
    msg = node_authentication_failure(
        refused,
        reporter=GATEWAY,
        peer=PEER,
        reason="certificate not trusted",
        certificate_subject="CN=mallory,O=Elsewhere",
    )
    el = assert_valid(msg)
    assert codes(msg) == (
        dcm("110113", "Security Alert"),
        "E",
        (dcm("110126", "Node Authentication"),),
        EventOutcome.MINOR_FAILURE,
    )
    assert el.find("EventIdentification").get("EventOutcomeIndicator") == "4"
    assert roles(msg) == [("ihe-gateway", ["110150"], False), (PEER.user_id, [], True)]
    [subject] = msg.participant_objects
    assert subject.id_type == dcm("110182", "Node ID")
    assert (subject.object_id, subject.type_code.value, subject.role.value) == (
        "203.0.113.9",
        "2",
        "13",
    )
    assert subject.detail("Alert Description") == b"certificate not trusted"
    assert subject.detail("Certificate Subject") == b"CN=mallory,O=Elsewhere"


@pytest.mark.parametrize(
    ("build", "event_type"),
    [
        (security_configuration_change, ("110129", "Security Configuration")),
        (configuration_change, ("110131", "Software Configuration")),
    ],
)
def test_certificate_and_configuration_changes(build, event_type, occasion, assert_valid):
    admin = Endpoint("root", host="10.0.0.5")
    msg = build(
        occasion,
        reporter=GATEWAY,
        resource="file:///etc/ihe-gateway/trust.pem",
        description="partner CA added: sha256:ab12",
        performer=admin,
    )
    assert_valid(msg)
    assert codes(msg) == (
        dcm("110113", "Security Alert"),
        "E",
        (dcm(*event_type),),
        EventOutcome.SUCCESS,
    )
    assert roles(msg)[1] == ("root", [], True)
    [subject] = msg.participant_objects
    assert subject.id_type == CodedValue("12", "RFC-3881", "URI")
    assert subject.detail("Alert Description") == b"partner CA added: sha256:ab12"


def test_network_configuration_change_is_selectable(occasion, assert_valid):
    msg = configuration_change(
        occasion,
        reporter=GATEWAY,
        resource="gateway.toml",
        description="partner endpoint changed",
        kind=EventType.NETWORK_CONFIGURATION,
    )
    assert_valid(msg)
    assert msg.event.event_types == (dcm("110128", "Network Configuration"),)
    assert roles(msg) == [("ihe-gateway", ["110150"], True)]  # no performer: reporter requests


@pytest.mark.parametrize(
    ("login", "code", "text"), [(True, "110122", "Login"), (False, "110123", "Logout")]
)
def test_user_authentication(login, code, text, occasion, assert_valid):
    failed = Occasion(
        occasion.audit_source,
        occasion.when,
        EventOutcome.SERIOUS_FAILURE,
        "assertion signature invalid",
    )
    msg = user_authentication(
        login, failed, user=Endpoint("jsmith", host="10.1.2.3"), authenticator=GATEWAY
    )
    assert_valid(msg)
    assert codes(msg) == (
        dcm("110114", "User Authentication"),
        "E",
        (dcm(code, text),),
        EventOutcome.SERIOUS_FAILURE,
    )
    assert roles(msg) == [("jsmith", [], True), ("ihe-gateway", ["110150"], False)]


def test_audit_log_used(occasion, assert_valid):
    msg = audit_log_used(
        occasion,
        accessor=Endpoint("officer"),
        application=GATEWAY,
        audit_log_uri="https://gateway.example.org/audit",
    )
    el = assert_valid(msg)
    assert codes(msg) == (dcm("110101", "Audit Log Used"), "R", (), EventOutcome.SUCCESS)
    [log] = msg.participant_objects
    assert (log.object_id, log.name) == ("https://gateway.example.org/audit", "Security Audit Log")
    assert (log.type_code.value, log.role.value) == ("2", "13")
    assert el.find("ParticipantObjectIdentification/ParticipantObjectName").text == (
        "Security Audit Log"
    )
