"""ITI-55 at the initiating gateway (``/ig/xcpd``): a local system's PRPA_IN201305UV02 in,
ITI-55 out to partner communities, one merged PRPA_IN201306UV02 back (ITI TF-2b 3.55;
the Initiating Gateway actor, ITI TF-1 27.2).

The request is read as a responding gateway reads one, except that a local sender
need not name a homeCommunityId. Its ``receiver`` devices choose the communities:
those whose representedOrganization id is another community's homeCommunityId are
asked, and only they; a message addressed to us (or to nobody) goes to every
partner with an ITI-55 endpoint. ``profiles.xcpd.discovery`` does the asking and
verifying (``ctx.ports.xcpd``, ``ctx.ports.patients``), ``profiles.xcpd.verify``
the merging. A deferred request is refused as ``/xcpd`` refuses one (NS250,
AnswerNotAvailable); an index that cannot answer gives AE with ResponderBusy.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from profiles.atna.facts import hl7v3_query, ii_ref, note
from profiles.hl7v3.control import IssueError
from profiles.hl7v3.datatypes import strip_urn_oid
from profiles.hl7v3.errors import AckDetailCode, Hl7v3NotSupported
from profiles.hl7v3.wrapper import parse_device
from profiles.hl7v3.xmlutil import children
from profiles.pix.ports import IndexBusy
from profiles.transaction import Context, ErrorForm, Transaction
from profiles.xcpd.discovery import DiscoveryRequest, device, discover
from profiles.xcpd.iti55 import ITI_55
from profiles.xcpd.matching import MatchConfig
from profiles.xcpd.models import PatientDiscoveryQuery, PatientDiscoveryResponse, ResponsePriority
from profiles.xcpd.query import parse_patient_discovery_query
from profiles.xcpd.response import error_acknowledgement, patient_discovery_response_to_xml
from profiles.xcpd.verify import merged_response


@dataclass(frozen=True)
class InitiatingQuery:
    query: PatientDiscoveryQuery
    receivers: tuple[str, ...]  # homeCommunityIds the message is addressed to (bare OIDs)


def parse(body: etree._Element, ctx: Context) -> InitiatingQuery:
    note(ctx, query=hl7v3_query(body))  # as received, even if it is refused
    query = parse_patient_discovery_query(body, require_sender_community=False)
    receivers = tuple(dict.fromkeys(
        hcid for r in children(body, "receiver")
        if (hcid := parse_device(r).home_community_id)))
    note(ctx, query_id=ii_ref(query.transmission.id),
         home_community_id=query.sender_home_community_id
         or strip_urn_oid(ctx.home_community_id),
         patient_ids=[str(i) for i in query.parameters.ids if i.root and i.extension])
    return InitiatingQuery(query, receivers)


def _config(ctx: Context) -> MatchConfig:
    found = getattr(ctx.ports, "matching", None)
    return found if isinstance(found, MatchConfig) else MatchConfig()


def handle(request: InitiatingQuery, ctx: Context) -> PatientDiscoveryResponse:
    query = request.query
    us = device(ctx.home_community_id)
    if query.response_priority is ResponsePriority.DEFERRED:
        error = Hl7v3NotSupported("deferred responses are not supported; ask immediately",
                                  code=AckDetailCode.UNSUPPORTED_PROCESSING_MODE)
        note(ctx, outcome="error")
        return PatientDiscoveryResponse.failure(query, error, sender=us,
                                                issue=IssueError.ANSWER_NOT_AVAILABLE)
    home = strip_urn_oid(ctx.home_community_id)
    wanted = tuple(f"urn:oid:{h}" for h in request.receivers if h != home) or None
    try:
        found = discover(
            DiscoveryRequest(query.parameters, query.assigning_authority, wanted, ctx.principal),
            gateway=ctx.ports.xcpd, index=ctx.ports.patients, home=ctx.home_community_id,
            config=_config(ctx), audit=ctx.audit)
    except IndexBusy:
        note(ctx, outcome="error")
        return PatientDiscoveryResponse.failure(query, issue=IssueError.RESPONDER_BUSY,
                                                sender=us)
    answer = merged_response(query, found, sender=us)
    note(ctx, patient_ids=[str(found.patient)] if found.patient else [])
    note(ctx, patient_ids=[str(c.match.patient.id) for _, c in found.trusted])
    if found.communities and len(found.failed) == len(found.communities):
        note(ctx, outcome="error")
    return answer


def error_reply(request: InitiatingQuery | None, error) -> etree._Element:
    return error_acknowledgement(request.query if request else None, error)


IG_ITI_55 = Transaction(
    id="ITI-55",
    name="Cross Gateway Patient Discovery (initiating gateway: ITI-55 to partner communities)",
    action=ITI_55.action,
    reply_action=ITI_55.reply_action,
    error_form=ErrorForm.HL7V3_ACK,
    parse=parse,
    handle=handle,
    serialize=patient_discovery_response_to_xml,
    error_reply=error_reply,
)
