"""Judging partners' ITI-55 answers as initiator, and merging them into one answer.

Verify mode (CONNECT's ``patientDiscoveryResponseMode=verify``, its default): a
match a partner returns is not taken on its word. Its demographics are scored
with our own algorithm (``profiles.xcpd.matching.score``) against what *we* hold
for the person asked about, and the match is trusted only when

* the score reaches the threshold, and
* no other person in our index fits those demographics as well (within the
  margin): a match that could be either of two of our patients links neither.

Without a local record (a query by demographics only that our index cannot
resolve) the match is scored against the query's demographics; it may be
reported but there is nobody to correlate it with.

``merged_response`` builds the one PRPA_IN201306UV02 the local requester gets:

* one subject per trusted match, custodian = the community holding the patient
  (as the partner named it, else the partner we called), the score ours;
* each community that gave no usable answer: an acknowledgementDetail with code
  INTERR, its homeCommunityId as location and our reason as text (typeCode W when
  others answered, so the answer stays AA, as XCA's PartialSuccess keeps results);
* every community failed: AE/AE with AnswerNotAvailable (TF-2b Table
  3.55.4.2.2.7-1: no answer now, ask again later) and the same details;
* no trusted match: AA/NF, with the attributes partners asked for (case 3).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from profiles.hl7v3.control import (
    MORE_ATTRIBUTES_CODE_SYSTEM,
    DetectedIssue,
    IssueError,
    QueryResponseCode,
)
from profiles.hl7v3.datatypes import II, Code, strip_urn_oid
from profiles.hl7v3.errors import ACK_DETAIL_CODE_SYSTEM, AckDetailCode
from profiles.hl7v3.wrapper import AcknowledgementDetail, AckType, DetailType, Device
from profiles.pix.demographics import Demographics
from profiles.xcpd.matching import MatchConfig, Score, score
from profiles.xcpd.models import PatientDiscoveryQuery, PatientDiscoveryResponse, PatientMatch
from profiles.xcpd.ports import DiscoveryAnswer, DiscoveryFailure


class Status(StrEnum):
    """What one community's answer came to, after verification."""

    MATCH = "match"  # at least one trusted match
    UNVERIFIED = "unverified"  # matches returned, none passed verification
    NO_MATCH = "no-match"
    MORE_ATTRIBUTES = "more-attributes"  # AA/NF asking for more demographics
    ERROR = "error"  # no usable answer (transport, fault, AE, unreadable)


@dataclass(frozen=True)
class Checked:
    """One returned match and our verdict on it; ``reason`` is free of PHI."""

    match: PatientMatch
    score: Score
    trusted: bool
    reason: str = ""


@dataclass(frozen=True)
class CommunityOutcome:
    home_community_id: str  # the partner we called (urn:oid:)
    status: Status
    checked: tuple[Checked, ...] = ()
    requested: tuple[str, ...] = ()
    error: str | None = None
    elapsed: float = 0.0

    @property
    def trusted(self) -> tuple[Checked, ...]:
        return tuple(c for c in self.checked if c.trusted)


@dataclass(frozen=True)
class Discovered:
    """The whole discovery: our patient (when known) and each community's outcome."""

    patient: II | None
    communities: tuple[CommunityOutcome, ...]

    @property
    def trusted(self) -> list[tuple[CommunityOutcome, Checked]]:
        return [(c, m) for c in self.communities for m in c.trusted]

    @property
    def failed(self) -> list[CommunityOutcome]:
        return [c for c in self.communities if c.status is Status.ERROR]


def their_demographics(match: PatientMatch) -> Demographics:
    return Demographics.of_person(match.patient.person, match.patient.ids)


def verify(match: PatientMatch, person: Sequence[Demographics],
           rivals: Sequence[Demographics] | Callable[[], Sequence[Demographics]],
           config: MatchConfig) -> Checked:
    """Trust ``match`` when it scores at the threshold against one of the person's records
    (``person``) and no record of another of our people (``rivals``, or a callable finding
    them, asked only for a match that reached the threshold) comes within the margin of
    that score."""
    theirs = their_demographics(match)
    if not person:
        return Checked(match, Score(0.0, 0.0), False, "nobody to verify against")
    best = max((score(theirs, ours, config.weights) for ours in person),
               key=lambda s: s.total)
    if best.total < config.threshold:
        return Checked(match, best, False, "below the match threshold")
    for rival in rivals() if callable(rivals) else rivals:
        if score(theirs, rival, config.weights).total >= best.total - config.margin:
            return Checked(match, best, False, "another local patient fits as well")
    return Checked(match, best, True)


def _answer_error(response: PatientDiscoveryResponse) -> str | None:
    """Why an answer is not a usable result (coded values only, never the partner's text)."""
    ack = response.acknowledgement.type_code
    code = response.query_response_code
    # An AA without queryAck (some deployed responders) still says what it found.
    if ack in (AckType.AA, AckType.CA) and code in (QueryResponseCode.OK, QueryResponseCode.NF,
                                                      None):
        return None
    issues = [i.code for i in response.detected_issues if not i.is_attribute_request]
    details = [d.code.code for d in response.errors if d.code and d.code.code]
    said = ", ".join(dict.fromkeys([*issues, *details]))
    return f"the community answered {ack.value}/{code.value if code else '-'}" + (
        f" ({said})"[:120] if said else "")


def judge(answer: DiscoveryAnswer | DiscoveryFailure, person: Sequence[Demographics],
          rivals_of: Callable[[PatientMatch], Sequence[Demographics]],
          config: MatchConfig) -> CommunityOutcome:
    """One community's outcome; ``rivals_of(match)`` lists the demographics of our other
    people that could be the returned patient."""
    hcid = answer.home_community_id
    if isinstance(answer, DiscoveryFailure):
        return CommunityOutcome(hcid, Status.ERROR, error=answer.reason, elapsed=answer.elapsed)
    response = answer.response
    error = _answer_error(response)
    if error is not None:
        return CommunityOutcome(hcid, Status.ERROR, error=error, elapsed=answer.elapsed)
    checked = tuple(verify(m, person, lambda m=m: rivals_of(m), config)
                    for m in response.matches)
    if any(c.trusted for c in checked):
        status = Status.MATCH
    elif checked:
        status = Status.UNVERIFIED
    elif response.requested_attributes:
        status = Status.MORE_ATTRIBUTES
    else:
        status = Status.NO_MATCH
    return CommunityOutcome(hcid, status, checked, response.requested_attributes,
                            elapsed=answer.elapsed)


def _detail(outcome: CommunityOutcome, kind: DetailType) -> AcknowledgementDetail:
    hcid = strip_urn_oid(outcome.home_community_id) or outcome.home_community_id
    return AcknowledgementDetail(
        Code(AckDetailCode.INTERNAL_ERROR.value, ACK_DETAIL_CODE_SYSTEM),
        f"community {hcid} unavailable: {outcome.error}"[:300], hcid, kind)


def merged_response(request: PatientDiscoveryQuery, found: Discovered, *,
                    sender: Device | None = None) -> PatientDiscoveryResponse:
    """The one PRPA_IN201306UV02 for the local requester (see the module docstring)."""
    failed = found.failed
    if found.communities and len(failed) == len(found.communities):
        answer = PatientDiscoveryResponse.failure(
            request, issue=IssueError.ANSWER_NOT_AVAILABLE, sender=sender)
        details = tuple(_detail(o, DetailType.ERROR) for o in failed)
        return replace(answer, acknowledgement=replace(answer.acknowledgement, details=details))
    matches = [
        replace(c.match, score=c.score.percent,
                home_community_id=strip_urn_oid(c.match.home_community_id)
                or strip_urn_oid(o.home_community_id) or "")
        for o, c in found.trusted
    ]
    answer = PatientDiscoveryResponse.matched(request, matches, sender=sender)
    details = tuple(_detail(o, DetailType.WARNING) for o in failed)
    issues: tuple[DetectedIssue, ...] = ()
    if not matches:
        wanted = dict.fromkeys(a for o in found.communities for a in o.requested)
        issues = tuple(DetectedIssue(a, MORE_ATTRIBUTES_CODE_SYSTEM) for a in wanted)
    return replace(answer, detected_issues=issues,
                   acknowledgement=replace(answer.acknowledgement, details=details))

