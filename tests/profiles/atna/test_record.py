"""Records carry the XML bytes and the fields a security officer searches by,
the same whether built here or received from the wire."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from profiles.atna.codes import Side
from profiles.atna.events import DocumentRef, Endpoint, query_event, retrieve_event
from profiles.atna.message import AuditError
from profiles.atna.nodes import application_activity
from profiles.atna.record import audit_record, received_record, record_from_xml
from profiles.atna.syslog import FrameDecoder, audit_syslog, frame

PATIENT = "P-1^^^&1.2.840.99&ISO"
QUERY = b"<AdhocQueryRequest/>"


def test_a_query_record_indexes_who_whom_when_and_from_where(occasion, initiator, responder, human):
    msg = query_event(
        "ITI-38",
        Side.RESPONDER,
        occasion,
        initiator=initiator,
        responder=responder,
        human=human,
        query=QUERY,
        query_id="urn:uuid:q",
        patient_ids=[PATIENT, PATIENT],
    )
    rec = audit_record(msg)
    assert rec.record_id == hashlib.sha256(rec.xml).hexdigest()
    assert (rec.event_time, rec.event_id, rec.event_type, rec.action, rec.outcome) == (
        occasion.when,
        "110112",
        "ITI-38",
        "E",
        0,
    )
    assert rec.users == ("Dr. Jane Smith",)
    assert (rec.source_user, rec.source_address) == (initiator.user_id, "10.1.2.3")
    assert rec.destination_user == responder.user_id
    assert rec.patient_ids == (PATIENT,)
    assert rec.audit_source_id == "gateway.example.org"
    assert not rec.failed


def test_without_a_human_the_requesting_system_is_the_user(occasion, initiator, responder):
    rec = audit_record(
        retrieve_event(
            "ITI-43",
            Side.RESPONDER,
            occasion,
            initiator=initiator,
            responder=responder,
            documents=[DocumentRef("1.2.3")],
        )
    )
    assert rec.users == (initiator.user_id,)
    assert (rec.source_user, rec.destination_user) == (responder.user_id, initiator.user_id)
    assert rec.patient_ids == ()


def test_node_events_index_the_launcher(occasion):
    rec = audit_record(
        application_activity(True, occasion, application=Endpoint("ihe-gateway"), launcher="ops")
    )
    assert (rec.event_id, rec.event_type, rec.users, rec.source_user) == (
        "110100",
        "110120",
        ("ops",),
        None,
    )


def test_received_ipf_samples_are_kept_verbatim_and_indexed(ipf_samples, audit_schema):
    for name, data in ipf_samples.items():
        rec = record_from_xml(data, schema=audit_schema)
        assert rec.xml is data and rec.record_id == hashlib.sha256(data).hexdigest(), name
    pix = record_from_xml(ipf_samples["atna-dicom-audit_iti9-pix-query.xml"])
    assert pix.event_type == "ITI-9"
    assert pix.users == ("MESA_DEPARTMENT|MESA_PIX_CLIENT",)
    assert pix.patient_ids == (
        "27^^^MPI&2.16.840.1.113883.3.37.4.1.1.2.1.1&ISO^PI",
        "78106^^^PKLN&2.16.840.1.113883.3.37.4.1.1.2.511.1&ISO",
    )
    assert pix.event_time == datetime(2020, 3, 19, 12, 34, 6, 367000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"not xml", "refused"),
        (b'<!DOCTYPE a [<!ENTITY x "y">]><AuditMessage/>', "refused"),
        (b"<AuditMessage><EventIdentification/></AuditMessage>", "not valid"),
    ],
)
def test_bad_payloads_are_refused(data, why, audit_schema):
    with pytest.raises(AuditError, match=why):
        record_from_xml(data, schema=audit_schema)


def test_what_the_sender_frames_the_repository_receives_identically(
    occasion, initiator, responder, human
):
    """Queue -> syslog -> RFC 5425 frames in small chunks -> repository record."""
    records = [
        audit_record(
            query_event(
                "ITI-18",
                Side.RESPONDER,
                occasion,
                initiator=initiator,
                responder=responder,
                human=human if i % 2 else None,
                query=QUERY * i,
                query_id=f"q{i}",
                patient_ids=[PATIENT],
            )
        )
        for i in range(1, 6)
    ]
    wire = b"".join(
        frame(
            audit_syslog(
                r.xml, timestamp=r.event_time, hostname="gw", app_name="ihe-gateway", procid="7"
            )
        )
        for r in records
    )
    decoder, received = FrameDecoder(), []
    for i in range(0, len(wire), 333):
        received += [received_record(m) for m in decoder.feed(wire[i : i + 333])]
    decoder.close()
    assert [rec for _, rec in received] == records
    assert {sys.hostname for sys, _ in received} == {"gw"}


def test_a_received_record_names_the_human_even_if_the_system_also_claims_requestor(
    occasion, initiator, responder, human
):
    """Other senders (IPF among them) may mark the source system as requestor too."""
    msg = query_event(
        "ITI-18",
        Side.RESPONDER,
        occasion,
        initiator=initiator,
        responder=responder,
        human=human,
        query=QUERY,
        query_id="q",
    )
    source = replace(msg.active_participants[0], user_is_requestor=True)
    both = replace(msg, active_participants=(source, *msg.active_participants[1:]))
    assert audit_record(both).users == ("Dr. Jane Smith",)
