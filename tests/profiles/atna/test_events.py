"""Every transaction, on both sides, records the event ITI TF-2 prescribes.

``EXPECTED`` is written out from shared/notes/ihe-facts.md section 10, not derived
from ``codes.TRANSACTIONS``, so a wrong row in the code fails here.
"""

from __future__ import annotations

import pytest

from profiles.atna.codec import audit_message_to_bytes, parse_audit_message
from profiles.atna.codes import TRANSACTIONS, Side
from profiles.atna.events import (
    DocumentRef,
    Endpoint,
    HumanRequestor,
    Occasion,
    patient_feed_events,
    query_event,
    retrieve_event,
    submission_event,
)
from profiles.atna.message import AuditError, AuditMessage, CodedValue, EventOutcome
from profiles.xml import parse_xml

INI, RES = Side.INITIATOR, Side.RESPONDER
# (transaction, side) -> (EventID, EventActionCode); feeds are checked per trigger below.
EXPECTED = {
    ("ITI-18", INI): ("110112", "E"),
    ("ITI-18", RES): ("110112", "E"),
    ("ITI-38", INI): ("110112", "E"),
    ("ITI-38", RES): ("110112", "E"),
    ("ITI-39", INI): ("110107", "C"),  # initiating gateway imports
    ("ITI-39", RES): ("110106", "R"),  # responding gateway exports
    ("ITI-41", INI): ("110106", "R"),  # document source exports
    ("ITI-41", RES): ("110107", "C"),  # repository / recipient imports
    ("ITI-42", INI): ("110106", "R"),
    ("ITI-42", RES): ("110107", "C"),
    ("ITI-43", INI): ("110107", "C"),  # consumer imports
    ("ITI-43", RES): ("110106", "R"),  # repository exports
    ("ITI-55", INI): ("110112", "E"),
    ("ITI-55", RES): ("110112", "E"),
    ("ITI-45", INI): ("110112", "E"),
    ("ITI-45", RES): ("110112", "E"),
    ("ITI-9", INI): ("110112", "E"),
    ("ITI-9", RES): ("110112", "E"),
    ("ITI-8", INI): ("110110", "C"),  # A01
    ("ITI-8", RES): ("110110", "C"),
    ("ITI-44", INI): ("110110", "C"),  # PRPA_IN201301UV02
    ("ITI-44", RES): ("110110", "C"),
}
NAMES = {
    "ITI-8": "Patient Identity Feed",
    "ITI-9": "PIX Query",
    "ITI-18": "Registry Stored Query",
    "ITI-38": "Cross Gateway Query",
    "ITI-39": "Cross Gateway Retrieve",
    "ITI-41": "Provide and Register Document Set-b",
    "ITI-42": "Register Document Set-b",
    "ITI-43": "Retrieve Document Set",
    "ITI-44": "Patient Identity Feed",
    "ITI-45": "PIX Query",
    "ITI-55": "Cross Gateway Patient Discovery",
}
RETRIEVES = {"ITI-39", "ITI-43"}
PATIENT = "JW-824-v3^^^&2.16.840.1.113883.3.72.5.9.1&ISO"
PRIOR = "OLD-1^^^&2.16.840.1.113883.3.72.5.9.1&ISO"
QUERY = b'<query:AdhocQueryRequest xmlns:query="urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"/>'
HCID = "urn:oid:1.3.6.1.4.1.21367.2011.2.6.181"
SS_UID = "1.3.6.1.4.1.21367.2005.3.99.1.1010"
DOCS = (
    DocumentRef("1.2.3.1", repository_id="1.2.3.100", home_community_id=HCID),
    DocumentRef("1.2.3.2", repository_id="1.2.3.100"),
)
QUERY_IDS = {
    "ITI-18": "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d",
    "ITI-38": "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d",
    "ITI-45": "2220c1c4-87ef-11dc-b865-3603d6866807",
    "ITI-55": "1523963781490@1.3.6.1.4.1.21367.2011.2.6.181",
    "ITI-9": "10501108",
}


def build(tx, side, occasion, initiator, responder, human=None) -> list[AuditMessage]:
    common = dict(initiator=initiator, responder=responder, human=human)
    if tx in QUERY_IDS:
        return [
            query_event(
                tx,
                side,
                occasion,
                query=QUERY,
                query_id=QUERY_IDS[tx],
                patient_ids=[PATIENT],
                home_community_id=HCID,
                **common,
            )
        ]
    if tx in ("ITI-41", "ITI-42"):
        return [
            submission_event(
                tx, side, occasion, submission_set_id=SS_UID, patient_id=PATIENT, **common
            )
        ]
    if tx in RETRIEVES:
        return [retrieve_event(tx, side, occasion, documents=DOCS, patient_ids=[PATIENT], **common)]
    trigger = "A01" if tx == "ITI-8" else "PRPA_IN201301UV02"
    return list(
        patient_feed_events(
            tx, side, occasion, trigger=trigger, patient_id=PATIENT, message_id="123456", **common
        )
    )


def test_the_table_covers_exactly_the_gateway_transactions():
    assert set(TRANSACTIONS) == {tx for tx, _ in EXPECTED}


def objects(msg, code):
    return [o for o in msg.participant_objects if o.id_type.code == code]


@pytest.mark.parametrize("with_human", [False, True], ids=["system", "human"])
@pytest.mark.parametrize(("tx", "side"), sorted(EXPECTED))
def test_event_codes_participants_and_objects(
    tx, side, with_human, occasion, initiator, responder, human, assert_valid
):
    messages = build(tx, side, occasion, initiator, responder, human if with_human else None)
    assert len(messages) == 1
    msg = messages[0]
    el = assert_valid(msg)
    assert parse_audit_message(el) == msg
    assert parse_audit_message(parse_xml(audit_message_to_bytes(msg))) == msg

    event_id, action = EXPECTED[(tx, side)]
    assert (msg.event.event_id.code, msg.event.event_id.system_name) == (event_id, "DCM")
    assert msg.event.action.value == action
    assert msg.event.event_types == (CodedValue(tx, "IHE Transactions", NAMES[tx]),)
    assert msg.event.date_time == occasion.when and msg.event.outcome is EventOutcome.SUCCESS

    # Source 110153 / Destination 110152: the data's origin is the responder for retrieves.
    [source] = [
        p
        for p in msg.active_participants
        if p.role_id_codes[:1] and p.role_id_codes[0].code == "110153"
    ]
    [destination] = [
        p
        for p in msg.active_participants
        if p.role_id_codes[:1] and p.role_id_codes[0].code == "110152"
    ]
    origin, target = (responder, initiator) if tx in RETRIEVES else (initiator, responder)
    assert source.user_id == origin.user_id and destination.user_id == target.user_id
    assert source.role_id_codes[0].system_name == "DCM"
    requesting = destination if tx in RETRIEVES else source
    answering = source if tx in RETRIEVES else destination
    assert requesting.network_access_point_id == "10.1.2.3"
    assert requesting.network_access_point_type.value == "2"  # IP address
    assert answering.network_access_point_type.value == "1"  # DNS name
    assert requesting.alternative_user_id == "4242"
    assert not answering.user_is_requestor
    if with_human:
        people = [p for p in msg.active_participants if p not in (source, destination)]
        assert len(people) == 1 and people[0].user_is_requestor
        assert people[0].user_id == "Dr. Jane Smith"
        assert people[0].user_name == "js<jsmith@https://idp.partner.example.net>"
        assert people[0].role_id_codes == human.roles
        assert not requesting.user_is_requestor
        assert msg.event.purposes_of_use == human.purposes_of_use
        [org] = objects(msg, "urn:oasis:names:tc:xspa:1.0:subject:organization-id")
        assert (org.object_id, org.name, org.type_code.value) == (
            "urn:oid:1.2.3.4.5",
            "Partner Health",
            "3",
        )
    else:
        assert len(msg.active_participants) == 2 and requesting.user_is_requestor
        assert msg.event.purposes_of_use == ()

    [patient] = objects(msg, "2")
    assert (patient.object_id, patient.type_code.value, patient.role.value) == (PATIENT, "1", "1")
    assert patient.id_type == CodedValue("2", "RFC-3881", "Patient Number")
    check_objects(tx, msg, patient)


def check_objects(tx, msg, patient):
    if tx in QUERY_IDS:
        [query] = objects(msg, tx)
        assert query.id_type == CodedValue(tx, "IHE Transactions", NAMES[tx])
        assert (query.type_code.value, query.role.value) == ("2", "24")
        assert (query.object_id, query.query) == (QUERY_IDS[tx], QUERY)
        details = {d.type: d.value for d in query.details}
        assert (
            details
            == {
                "ITI-18": {
                    "QueryEncoding": b"UTF-8",
                    "urn:ihe:iti:xca:2010:homeCommunityId": HCID.encode(),
                },
                "ITI-38": {
                    "QueryEncoding": b"UTF-8",
                    "urn:ihe:iti:xca:2010:homeCommunityId": HCID.encode(),
                },
                "ITI-55": {"ihe:homeCommunityID": HCID.encode()},
                "ITI-45": {},
                "ITI-9": {"MSH-10": b"10501108"},
            }[tx]
        )
    elif tx in ("ITI-41", "ITI-42"):
        [ss] = objects(msg, "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd")
        assert ss.id_type.system_name == "IHE XDS Metadata"
        assert (ss.object_id, ss.type_code.value, ss.role.value) == (SS_UID, "2", "20")
    elif tx in RETRIEVES:
        docs = objects(msg, "9")
        assert [d.object_id for d in docs] == ["1.2.3.1", "1.2.3.2"]
        assert all(d.id_type == CodedValue("9", "RFC-3881", "Report Number") for d in docs)
        assert all((d.type_code.value, d.role.value) == ("2", "3") for d in docs)
        assert docs[0].detail("Repository Unique Id") == b"1.2.3.100"
        assert docs[0].detail("ihe:homeCommunityID") == HCID.encode()
        assert docs[1].detail("ihe:homeCommunityID") is None
    else:
        detail = "MSH-10" if tx == "ITI-8" else "II"
        assert {d.type: d.value for d in patient.details} == {detail: b"123456"}


@pytest.mark.parametrize(
    ("tx", "trigger", "actions"),
    [
        ("ITI-8", "A01", ["C"]),
        ("ITI-8", "A04", ["C"]),
        ("ITI-8", "A05", ["C"]),
        ("ITI-8", "A08", ["U"]),
        ("ITI-8", "A40", ["D", "U"]),
        ("ITI-44", "PRPA_IN201301UV02", ["C"]),
        ("ITI-44", "PRPA_IN201302UV02", ["U"]),
        ("ITI-44", "PRPA_IN201304UV02", ["D", "U"]),
    ],
)
def test_patient_feed_actions_follow_the_trigger(
    tx, trigger, actions, occasion, initiator, responder, assert_valid
):
    messages = patient_feed_events(
        tx,
        Side.RESPONDER,
        occasion,
        initiator=initiator,
        responder=responder,
        trigger=trigger,
        patient_id=PATIENT,
        prior_patient_id=PRIOR,
        message_id="m1",
    )
    assert [m.event.action.value for m in messages] == actions
    for m in messages:
        assert_valid(m)
        assert m.event.event_id.code == "110110"
        expected = PRIOR if m.event.action.value == "D" else PATIENT
        assert [o.object_id for o in m.participant_objects] == [expected]


def test_a_merge_without_the_prior_id_is_refused(occasion, initiator, responder):
    with pytest.raises(AuditError, match="prior"):
        patient_feed_events(
            "ITI-8",
            Side.RESPONDER,
            occasion,
            initiator=initiator,
            responder=responder,
            trigger="A40",
            patient_id=PATIENT,
            message_id="m1",
        )


def test_unknown_triggers_transactions_and_kinds_are_refused(occasion, initiator, responder):
    ends = dict(initiator=initiator, responder=responder)
    with pytest.raises(AuditError, match="trigger"):
        patient_feed_events(
            "ITI-8", INI, occasion, trigger="A31", patient_id=PATIENT, message_id="1", **ends
        )
    with pytest.raises(AuditError, match="ITI-99"):
        query_event("ITI-99", INI, occasion, query=b"", query_id="q", **ends)
    with pytest.raises(AuditError, match="submission"):
        query_event("ITI-41", INI, occasion, query=b"", query_id="q", **ends)


def test_failures_and_descriptions_are_recorded(initiator, responder, occasion, assert_valid):
    failed = Occasion(
        occasion.audit_source, occasion.when, EventOutcome.SERIOUS_FAILURE, "XDSRegistryError"
    )
    msg = query_event(
        "ITI-38",
        RES,
        failed,
        initiator=initiator,
        responder=responder,
        query=QUERY,
        query_id=QUERY_IDS["ITI-38"],
    )
    el = assert_valid(msg)
    assert el.find("EventIdentification").get("EventOutcomeIndicator") == "8"
    assert el.findtext("EventIdentification/EventOutcomeDescription") == "XDSRegistryError"
    assert [o.id_type.code for o in msg.participant_objects] == ["ITI-38"]  # no patient given


def test_human_without_saml_names_has_no_xua_user_name():
    assert HumanRequestor("someone").xua_user_name is None
    assert HumanRequestor("x", name_id="u", issuer="i").xua_user_name == "<u@i>"


def test_ipv6_hosts_are_ip_addresses(occasion, responder, assert_valid):
    msg = query_event(
        "ITI-18",
        RES,
        occasion,
        initiator=Endpoint("urn:x", host="[2001:db8::1]"),
        responder=responder,
        query=QUERY,
        query_id=QUERY_IDS["ITI-18"],
    )
    assert msg.active_participants[0].network_access_point_type.value == "2"
    assert_valid(msg)


SAMPLES = {
    "atna-dicom-audit_iti8-pix-feed.xml": "ITI-8",
    "atna-dicom-audit_iti9-pix-query.xml": "ITI-9",
    "atna-dicom-audit_iti44-pixv3-feed.xml": "ITI-44",
    "atna-dicom-audit_iti45-pixv3-query.xml": "ITI-45",
    "atna-dicom-audit_iti55-xcpd-query.xml": "ITI-55",
}


def shape(msg: AuditMessage):
    """What must agree with IPF: codes, roles and object kinds, not the values."""
    return (
        msg.event.event_id,
        msg.event.action,
        msg.event.event_types,
        sorted(((p.role_id_codes, p.user_is_requestor) for p in msg.active_participants), key=repr),
        sorted(
            (
                (o.id_type, o.type_code, o.role, tuple(sorted(d.type for d in o.details)))
                for o in msg.participant_objects
            ),
            key=repr,
        ),
    )


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_our_records_have_the_shape_of_ipfs(name, ipf_samples, occasion, initiator, responder):
    ipf = parse_audit_message(parse_xml(ipf_samples[name]))
    tx = SAMPLES[name]
    patients = [o.object_id for o in ipf.participant_objects if o.id_type.code == "2"]
    ends = dict(initiator=initiator, responder=responder)
    if tx in ("ITI-8", "ITI-44"):
        trigger = "A01" if tx == "ITI-8" else "PRPA_IN201301UV02"
        [ours] = patient_feed_events(
            tx, RES, occasion, trigger=trigger, patient_id=patients[0], message_id="1", **ends
        )
    else:
        [query] = [o for o in ipf.participant_objects if o.id_type.code == tx]
        hcid = query.detail("ihe:homeCommunityID")
        ours = query_event(
            tx,
            RES,
            occasion,
            query=query.query,
            query_id=query.object_id,
            patient_ids=patients,
            home_community_id=hcid.decode() if hcid else None,
            **ends,
        )
    assert shape(ours) == shape(ipf)
