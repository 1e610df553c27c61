"""Patient discovery as initiating gateway (ITI TF-2b 3.55, the Initiating Gateway actor).

    discover(DiscoveryRequest, gateway=..., index=..., home=...) -> Discovered

Who is asked: every partner with an ITI-55 endpoint, or only the communities
the request names. Each gets its own PRPA_IN201305UV02 (our community as sender,
the partner as receiver, the requester's demographics and our patient id), all
in parallel under one deadline (``DiscoveryGateway.discover``). Each answer is
verified (``profiles.xcpd.verify``, CONNECT's verify mode) against our own
record of the person: the local patient named by an id in one of our domains,
else the one our index matches to the demographics. Trusted matches are stored
as correlations (their id at the homeCommunityId of the partner we called, the one
XCA can query, even when its custodian names a community behind it -> ours), which the XCA
initiating gateway then uses to pick communities and translate ids. Untrusted
matches are dropped and logged with the community, score and reason only.

Every call leaves an initiator-side ITI-55 audit fact (``OutboundCall``) on
``audit`` (an AuditSink, or anything with ``note``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from profiles.atna.facts import OutboundCall, hl7v3_query, ii_ref, noter
from profiles.hl7v3.datatypes import II, strip_urn_oid
from profiles.hl7v3.wrapper import Device
from profiles.pix.demographics import Demographics
from profiles.pix.ports import IndexBusy, PatientIndex, PatientRecord, key_of
from profiles.xcpd.matching import (
    MatchConfig,
    Outcome,
    decide,
    demographics_of_query,
    demographics_of_record,
)
from profiles.xcpd.models import PatientDiscoveryQuery, PatientMatch, QueryParameters
from profiles.xcpd.ports import DiscoveryCall, DiscoveryFailure, DiscoveryGateway
from profiles.xcpd.query import patient_discovery_query_to_xml
from profiles.xcpd.verify import CommunityOutcome, Discovered, Status, judge, their_demographics

log = logging.getLogger("profiles.xcpd.discovery")
ITI55 = "ITI-55"


@dataclass(frozen=True)
class DiscoveryRequest:
    """What to look for and where: the demographics (and our ids) of the person."""

    parameters: QueryParameters
    assigning_authority: str | None = None  # the domain of our patient id in ``parameters``
    wanted: tuple[str, ...] | None = None  # only these communities; None: every partner
    principal: Any = None


def device(home_community_id: str) -> Device:
    """A community's gateway as HL7 v3 sender or receiver (root only, as ITI-55 wants)."""
    oid = strip_urn_oid(home_community_id) or home_community_id
    return Device(II(oid), organization_id=oid)


def parameters_of(record: PatientRecord) -> QueryParameters:
    """What we send partners about one of our patients: its demographics and its id in
    our domain (never the other ids its sources listed, such as an SSN)."""
    p = record.person
    return QueryParameters(names=p.names, gender=p.gender, birth_time=p.birth_time,
                           addresses=p.addresses, telecoms=p.telecoms, ids=(record.id,),
                           mothers_maiden_name=p.mothers_maiden_name)


def local_person(index: PatientIndex, parameters: QueryParameters, config: MatchConfig
                 ) -> tuple[PatientRecord, ...]:
    """Our records of the person asked about (the named or matched record first)."""
    domains = index.domains()
    for ii in parameters.ids:
        if ii.root in domains and ii.extension:
            record = index.get(ii)
            if record is not None:
                others = (index.get(x) for x in index.cross_references(record.id))
                return (record, *(r for r in others if r is not None))
    wanted = demographics_of_query(parameters)
    decision = decide(wanted, index.candidates(wanted, limit=config.candidate_limit), config)
    if decision.outcome is Outcome.MATCH and decision.match is not None:
        best = decision.match.best
        return (best, *(r for r in decision.match.records if r is not best))
    return ()


def _rivals(index: PatientIndex, person: Sequence[PatientRecord], config: MatchConfig
            ) -> Callable[[PatientMatch], list[Demographics]]:
    mine = {key_of(r.id) for r in person}
    groups = {r.group for r in person if r.group is not None}

    def rivals(match: PatientMatch) -> list[Demographics]:
        found = index.candidates(their_demographics(match), limit=config.candidate_limit)
        return [demographics_of_record(r) for r in found
                if key_of(r.id) not in mine and (r.group is None or r.group not in groups)]

    return rivals


def _outbound(call: DiscoveryCall, endpoint: str, home: str, outcome: CommunityOutcome,
              ours: II | None, *, answered: bool) -> OutboundCall:
    """The call's initiator-side audit fact: no usable answer is serious (8), an AE answer
    minor (4), as for ITI-38."""
    result = "success" if outcome.status is not Status.ERROR else (
        "error" if answered else "fault")
    returned = [str(c.match.patient.id) for c in outcome.checked]
    return OutboundCall(
        ITI55, endpoint, result,
        query=hl7v3_query(patient_discovery_query_to_xml(call.query)),
        query_id=ii_ref(call.query.message_id),
        home_community_id=strip_urn_oid(home),
        patient_ids=tuple(dict.fromkeys([*([str(ours)] if ours else []), *returned])),
        reason=outcome.error,
    )


def _store(index: PatientIndex, ours: II, outcome: CommunityOutcome,
           known: set[tuple[str, str, str]]) -> None:
    """Record the trusted matches ``known`` (hcid, root, extension) does not hold yet."""
    for checked in outcome.trusted:
        theirs = checked.match.patient.id
        key = (strip_urn_oid(outcome.home_community_id) or "", *key_of(theirs))
        if key in known:
            continue
        known.add(key)
        try:
            index.record_correlation(ours, theirs, outcome.home_community_id)
        except (IndexBusy, LookupError, ValueError):
            log.warning("correlation not recorded",
                        extra={"home_community_id": outcome.home_community_id})


def _log_untrusted(outcome: CommunityOutcome) -> None:
    for checked in outcome.checked:
        if not checked.trusted:  # the community, our score and why: nothing of the patient
            log.info("discovered match not trusted", extra={
                "home_community_id": outcome.home_community_id,
                "score": checked.score.percent, "reason": checked.reason})


def discover(request: DiscoveryRequest, *, gateway: DiscoveryGateway, index: PatientIndex,
             home: str, config: MatchConfig | None = None, audit: Any = None) -> Discovered:
    """Ask the partners, verify their answers, store the trusted ones (module docstring)."""
    config = config or MatchConfig()
    responders, unknown = gateway.responders(request.wanted)
    us = strip_urn_oid(home)
    responders = [r for r in responders if strip_urn_oid(r.home_community_id) != us]
    person = local_person(index, request.parameters, config)
    ours = person[0].id if person else None
    authority = request.assigning_authority or (ours.root if ours else None)
    calls = [
        DiscoveryCall(r.home_community_id, PatientDiscoveryQuery.new(
            request.parameters, sender=device(home), receiver=device(r.home_community_id),
            assigning_authority=authority), request.principal)
        for r in responders
    ]
    answers = gateway.discover(calls) if calls else []
    if person:
        mine = [demographics_of_record(r) for r in person]
        rivals = _rivals(index, person, config)
    else:  # nobody of ours: the requester's description is all there is to check against
        described = demographics_of_query(request.parameters)
        mine, rivals = ([described] if described.names else []), (lambda m: [])
    note = noter(audit)
    outcomes = [CommunityOutcome(f"urn:oid:{strip_urn_oid(h) or h}", Status.ERROR,
                                 error="not in the partner directory") for h in unknown]
    known = {(strip_urn_oid(c.home_community_id) or "", *key_of(c.theirs))
             for c in index.correlations(ours)} if ours is not None else set()
    for call, responder, answer in zip(calls, responders, answers, strict=True):
        outcome = judge(answer, mine, rivals, config)
        if ours is not None:
            _store(index, ours, outcome, known)
        _log_untrusted(outcome)
        endpoint = responder.endpoint(ITI55) or call.home_community_id
        note(outbound=_outbound(call, endpoint, home, outcome, ours,
                                answered=not isinstance(answer, DiscoveryFailure)))
        outcomes.append(outcome)
    return Discovered(ours, tuple(outcomes))

