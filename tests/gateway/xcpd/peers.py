"""In-process XCPD responding gateways for discovery tests (MockTransport handlers).

They reuse the XCA test peers' failure behaviours (down, timing out, faulting,
answering HTML) and add ITI-55 answers built from the request they receive, so
the answer echoes its ids: a match, no match, more attributes requested, or AE
ResponderBusy. Every request body is kept (the PRPA_IN201305UV02 element) for
shape and schema checks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from lxml import etree

from gateway.transport import HttpRequest, HttpResponse, response
from profiles.hl7v3.control import IssueError, RequestedAttribute
from profiles.hl7v3.datatypes import II
from profiles.hl7v3.patient import Patient, Person
from profiles.hl7v3.wrapper import Device
from profiles.xcpd.iti55 import ITI_55
from profiles.xcpd.models import PatientDiscoveryQuery, PatientDiscoveryResponse, PatientMatch
from profiles.xcpd.query import parse_patient_discovery_query
from profiles.xcpd.response import patient_discovery_response_to_xml
from tests.gateway.xca.peers import Peers, envelope

HL7 = "{urn:hl7-org:v3}"


def request_body(request: HttpRequest) -> etree._Element:
    raw = request.body if isinstance(request.body, bytes) else b"".join(request.body)
    env = etree.fromstring(raw)
    return next(env.iter(f"{HL7}PRPA_IN201305UV02"))


@dataclass
class XcpdPeers(Peers):
    bodies: list[etree._Element] = field(default_factory=list)

    def handler(self, request: HttpRequest) -> HttpResponse:
        with self.lock:
            self.bodies.append(request_body(request))
        return super().handler(request)

    def _answer(self, oid: str,
                build: Callable[[PatientDiscoveryQuery], PatientDiscoveryResponse]) -> None:
        def answer(request: HttpRequest) -> HttpResponse:
            query = parse_patient_discovery_query(request_body(request))  # strict, as /xcpd
            body = patient_discovery_response_to_xml(build(query))
            return response(200, "application/soap+xml", envelope(body, ITI_55.reply_action))

        self.behaviours[oid] = answer

    def knows(self, oid: str, person: Person, extension: str, *, score: int = 96,
              custodian: str | None = None) -> None:
        """Answers AA/OK: the person as ``extension`` in domain ``oid``.1."""
        patient = Patient((II(f"{oid}.1", extension),), person)
        holder = custodian or oid
        self._answer(oid, lambda q: PatientDiscoveryResponse.matched(
            q, [PatientMatch(patient, holder, score=score)], sender=Device(II(oid), oid)))

    def no_match(self, oid: str) -> None:
        self._answer(oid, lambda q: PatientDiscoveryResponse.no_match(q))

    def ambiguous(self, oid: str, *attributes: RequestedAttribute) -> None:
        self._answer(oid, lambda q: PatientDiscoveryResponse.more_attributes_requested(
            q, attributes))

    def busy(self, oid: str) -> None:
        self._answer(oid, lambda q: PatientDiscoveryResponse.failure(
            q, issue=IssueError.RESPONDER_BUSY))

    def wrong_message(self, oid: str) -> None:
        """A SOAP answer whose body is not PRPA_IN201306UV02 at all."""
        body = etree.fromstring(b'<MCCI_IN000002UV01 xmlns="urn:hl7-org:v3"/>')
        self.behaviours[oid] = lambda r: response(
            200, "application/soap+xml", envelope(body, ITI_55.reply_action))
