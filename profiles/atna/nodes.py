"""Node events: what a Secure Node records about itself (ATNA trigger events).

Application start and stop, security alerts (refused connections and requests,
certificate and trust-store changes, configuration changes), user
authentication, and use of the audit log itself. Layouts follow DICOM PS3.15
A.5.3; security alert outcomes are severities: MINOR or SERIOUS failure means
the threat was contained (a refused peer), MAJOR that it may not have been.
"""

from __future__ import annotations

from profiles.atna.codes import DetailType, EventId, EventType, ObjectIdType, Role
from profiles.atna.events import Endpoint, Occasion, network_access_point
from profiles.atna.message import (
    ActiveParticipant,
    AuditMessage,
    CodedValue,
    EventActionCode,
    EventIdentification,
    ParticipantObjectDetail,
    ParticipantObjectIdentification,
    ParticipantObjectRole,
    ParticipantObjectType,
)


def _participant(ep: Endpoint, roles: tuple[CodedValue, ...], requestor: bool):
    return ActiveParticipant(
        user_id=ep.user_id,
        user_is_requestor=requestor,
        alternative_user_id=ep.process_id,
        user_name=ep.user_name,
        role_id_codes=roles,
        network_access_point_id=ep.host,
        network_access_point_type=network_access_point(ep.host),
    )


def _event(event_id, action, event_type, occasion: Occasion) -> EventIdentification:
    return EventIdentification(
        event_id=event_id,
        date_time=occasion.when,
        outcome=occasion.outcome,
        action=action,
        event_types=(event_type,) if event_type is not None else (),
        outcome_description=occasion.outcome_description,
    )


def application_activity(
    started: bool,
    occasion: Occasion,
    *,
    application: Endpoint,
    launcher: str | None = None,
) -> AuditMessage:
    """Application Activity (110100), Application Start (110120) or Stop (110121).

    ``application`` is the gateway itself (user id = its name, process id, host);
    ``launcher`` the operating-system user that started or stopped it, if known.
    """
    people = ()
    if launcher:
        people = (
            ActiveParticipant(
                user_id=launcher, user_is_requestor=True, role_id_codes=(Role.APPLICATION_LAUNCHER,)
            ),
        )
    event_type = EventType.APPLICATION_START if started else EventType.APPLICATION_STOP
    return AuditMessage(
        event=_event(EventId.APPLICATION_ACTIVITY, EventActionCode.EXECUTE, event_type, occasion),
        active_participants=(_participant(application, (Role.APPLICATION,), False), *people),
        audit_source=occasion.audit_source,
    )


def security_alert(
    alert: CodedValue,
    occasion: Occasion,
    *,
    reporter: Endpoint,
    subject: str,
    subject_type: CodedValue = ObjectIdType.URI,
    description: str | None = None,
    performer: Endpoint | None = None,
    details: tuple[ParticipantObjectDetail, ...] = (),
) -> AuditMessage:
    """Security Alert (110113) of type ``alert`` (an ``EventType`` code).

    ``reporter`` is the gateway; ``performer`` the party that caused the alert
    (a refused peer, an administrator). ``subject`` names what the alert is about
    (a node, a URI, a file) with its id type; ``description`` is free text.
    """
    people = [_participant(reporter, (Role.APPLICATION,), performer is None)]
    if performer is not None:
        people.append(_participant(performer, (), True))
    alert_details = (
        (ParticipantObjectDetail(DetailType.ALERT_DESCRIPTION, description.encode("utf-8")),)
        if description
        else ()
    )
    subject_object = ParticipantObjectIdentification(
        id_type=subject_type,
        object_id=subject,
        type_code=ParticipantObjectType.SYSTEM_OBJECT,
        role=ParticipantObjectRole.SECURITY_RESOURCE,
        details=alert_details + details,
    )
    return AuditMessage(
        event=_event(EventId.SECURITY_ALERT, EventActionCode.EXECUTE, alert, occasion),
        active_participants=tuple(people),
        audit_source=occasion.audit_source,
        participant_objects=(subject_object,),
    )


def node_authentication_failure(
    occasion: Occasion,
    *,
    reporter: Endpoint,
    peer: Endpoint,
    reason: str,
    certificate_subject: str | None = None,
) -> AuditMessage:
    """A peer refused at TLS or in the application (no, untrusted or expired
    certificate; a certificate claiming another partner's homeCommunityId).

    Security Alert / Node Authentication (110126); the default outcome in
    ``occasion`` should be ``MINOR_FAILURE`` (refused, hence contained).
    """
    extra = (
        (ParticipantObjectDetail(DetailType.CERTIFICATE_SUBJECT, certificate_subject.encode()),)
        if certificate_subject
        else ()
    )
    return security_alert(
        EventType.NODE_AUTHENTICATION,
        occasion,
        reporter=reporter,
        performer=peer,
        subject=peer.host or peer.user_id,
        subject_type=ObjectIdType.NODE_ID,
        description=reason,
        details=extra,
    )


def security_configuration_change(
    occasion: Occasion,
    *,
    reporter: Endpoint,
    resource: str,
    description: str,
    performer: Endpoint | None = None,
) -> AuditMessage:
    """Certificate, key or trust-store change: Security Alert / Security Configuration (110129).

    ``resource`` names what changed (``file:///etc/gateway/trust.pem`` or a
    certificate fingerprint URN); ``description`` says how.
    """
    return security_alert(
        EventType.SECURITY_CONFIGURATION,
        occasion,
        reporter=reporter,
        performer=performer,
        subject=resource,
        description=description,
    )


def configuration_change(
    occasion: Occasion,
    *,
    reporter: Endpoint,
    resource: str,
    description: str,
    performer: Endpoint | None = None,
    kind: CodedValue = EventType.SOFTWARE_CONFIGURATION,
) -> AuditMessage:
    """Configuration change: Security Alert / Software (110131) or Network (110128)
    Configuration, as ``kind`` says."""
    return security_alert(
        kind,
        occasion,
        reporter=reporter,
        performer=performer,
        subject=resource,
        description=description,
    )


def user_authentication(
    login: bool,
    occasion: Occasion,
    *,
    user: Endpoint,
    authenticator: Endpoint | None = None,
) -> AuditMessage:
    """User Authentication (110114), Login (110122) or Logout (110123).

    ``user`` is the person (e.g. an administrator of the console, or the subject
    of a refused SAML assertion, with outcome SERIOUS_FAILURE); ``authenticator``
    the node that authenticated them.
    """
    people = [_participant(user, (), True)]
    if authenticator is not None:
        people.append(_participant(authenticator, (Role.APPLICATION,), False))
    event_type = EventType.LOGIN if login else EventType.LOGOUT
    return AuditMessage(
        event=_event(EventId.USER_AUTHENTICATION, EventActionCode.EXECUTE, event_type, occasion),
        active_participants=tuple(people),
        audit_source=occasion.audit_source,
    )


def audit_log_used(
    occasion: Occasion,
    *,
    accessor: Endpoint,
    audit_log_uri: str,
    application: Endpoint | None = None,
) -> AuditMessage:
    """Audit Log Used (110101), action R: someone searched or exported the audit trail.

    The audit record repository records this for ``ihe-gateway audit search`` and
    ``audit export``: the trail shows who looked at the trail.
    """
    people = [_participant(accessor, (), True)]
    if application is not None:
        people.append(_participant(application, (Role.APPLICATION,), False))
    return AuditMessage(
        event=_event(EventId.AUDIT_LOG_USED, EventActionCode.READ, None, occasion),
        active_participants=tuple(people),
        audit_source=occasion.audit_source,
        participant_objects=(
            ParticipantObjectIdentification(
                id_type=ObjectIdType.URI,
                object_id=audit_log_uri,
                type_code=ParticipantObjectType.SYSTEM_OBJECT,
                role=ParticipantObjectRole.SECURITY_RESOURCE,
                name="Security Audit Log",
            ),
        ),
    )
