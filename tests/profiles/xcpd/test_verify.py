"""Verify mode and the merged answer, on dataclasses: a partner's match is trusted only
when our own algorithm agrees, and the local requester gets one schema-valid answer."""

from __future__ import annotations

from dataclasses import replace

from profiles.hl7v3.control import IssueError, QueryResponseCode, RequestedAttribute
from profiles.hl7v3.datatypes import AD, II, PN, TS, gender
from profiles.hl7v3.patient import Patient, Person
from profiles.hl7v3.wrapper import AckType, DetailType, Device
from profiles.pix.demographics import Demographics
from profiles.xcpd.matching import MatchConfig
from profiles.xcpd.models import (
    PatientDiscoveryQuery,
    PatientDiscoveryResponse,
    PatientMatch,
    QueryParameters,
)
from profiles.xcpd.ports import DiscoveryAnswer, DiscoveryFailure
from profiles.xcpd.response import (
    parse_patient_discovery_response,
    patient_discovery_response_to_xml,
)
from profiles.xcpd.verify import (
    CommunityOutcome,
    Discovered,
    Status,
    judge,
    merged_response,
    verify,
)

CONFIG = MatchConfig()
ALEX = Person(names=(PN.of("Alex", "Rivera"),), gender=gender("M"), birth_time=TS("19700412"),
              addresses=(AD.of("1 Main St", "Springfield", "IL", "62701"),))
OURS = Demographics.of_person(ALEX, [II("2.999.2.1", "V-1")])
TWIN = Demographics.of_person(replace(ALEX, addresses=()), [II("2.999.2.1", "V-2")])


def match(person: Person = ALEX, hcid: str = "2.999.1", ext: str = "D-1") -> PatientMatch:
    return PatientMatch(Patient((II(f"{hcid}.1", ext),), person), hcid, score=97)


def test_a_match_that_agrees_with_our_record_is_trusted():
    checked = verify(match(), [OURS], [], CONFIG)
    assert checked.trusted and checked.score.total >= CONFIG.threshold
    assert checked.score.percent == 100


def test_a_match_for_someone_else_is_dropped_whatever_the_partner_scored():
    other = replace(ALEX, names=(PN.of("Maria", "Lopez"),), birth_time=TS("19811103"),
                    gender=gender("F"))
    checked = verify(match(other), [OURS], [], CONFIG)
    assert not checked.trusted and checked.reason == "below the match threshold"
    assert checked.match.score == 97  # theirs, kept for the record; ours decided


def test_a_wrong_birth_date_with_the_same_name_is_not_enough():
    checked = verify(match(replace(ALEX, birth_time=TS("19710901"), addresses=())), [OURS], [],
                     CONFIG)
    assert not checked.trusted


def test_a_match_another_local_patient_fits_as_well_links_neither():
    checked = verify(match(replace(ALEX, addresses=())), [OURS], [TWIN], CONFIG)
    assert not checked.trusted and checked.reason == "another local patient fits as well"


def test_without_a_local_record_nothing_is_trusted():
    assert not verify(match(), [], [], CONFIG).trusted


def test_the_best_of_the_persons_records_counts():
    stale = Demographics.of_person(replace(ALEX, names=(PN.of("A", "Rivera-Old"),)))
    assert verify(match(), [stale, OURS], [], CONFIG).trusted


# -- judging one answer ----------------------------------------------------------------------


def request() -> PatientDiscoveryQuery:
    params = QueryParameters(names=ALEX.names, gender=ALEX.gender, birth_time=ALEX.birth_time,
                             ids=(II("2.999.2.1", "V-1"),))
    return PatientDiscoveryQuery.new(params, sender=Device(II("2.999.2"), "2.999.2"),
                                     receiver=Device(II("2.999.1"), "2.999.1"))


def test_judge_sorts_answers_into_statuses():
    q = request()
    no_rivals = lambda m: []  # noqa: E731
    ok = DiscoveryAnswer("urn:oid:2.999.1", PatientDiscoveryResponse.matched(q, [match()]), 0.2)
    assert judge(ok, [OURS], no_rivals, CONFIG).status is Status.MATCH
    bad = PatientDiscoveryResponse.matched(q, [match(replace(ALEX, names=(PN.of("Zed", "Q"),),
                                                             birth_time=TS("20010101")))])
    assert judge(DiscoveryAnswer("urn:oid:2.999.1", bad), [OURS], no_rivals,
                 CONFIG).status is Status.UNVERIFIED
    nf = PatientDiscoveryResponse.no_match(q)
    assert judge(DiscoveryAnswer("h", nf), [OURS], no_rivals, CONFIG).status is Status.NO_MATCH
    more = PatientDiscoveryResponse.more_attributes_requested(
        q, [RequestedAttribute.PATIENT_ADDRESS])
    outcome = judge(DiscoveryAnswer("h", more), [OURS], no_rivals, CONFIG)
    assert outcome.status is Status.MORE_ATTRIBUTES
    assert outcome.requested == ("PatientAddressRequested",)
    busy = PatientDiscoveryResponse.failure(q, issue=IssueError.RESPONDER_BUSY)
    outcome = judge(DiscoveryAnswer("h", busy), [OURS], no_rivals, CONFIG)
    assert outcome.status is Status.ERROR and "ResponderBusy" in outcome.error
    bare = replace(PatientDiscoveryResponse.matched(q, [match()]), query_response_code=None)
    assert judge(DiscoveryAnswer("h", bare), [OURS], no_rivals, CONFIG).status is Status.MATCH
    refused = replace(bare, acknowledgement=replace(bare.acknowledgement, type_code=AckType.AR))
    outcome = judge(DiscoveryAnswer("h", refused), [OURS], no_rivals, CONFIG)
    assert outcome.status is Status.ERROR and outcome.checked == ()
    assert outcome.error == "the community answered AR/-"
    down = judge(DiscoveryFailure("h", "connection failed", 1.5), [OURS], no_rivals, CONFIG)
    assert (down.status, down.error, down.elapsed) == (Status.ERROR, "connection failed", 1.5)


# -- the merged answer -----------------------------------------------------------------------


def outcome_for(hcid: str, *matches: PatientMatch) -> CommunityOutcome:
    return judge(DiscoveryAnswer(f"urn:oid:{hcid}",
                                 PatientDiscoveryResponse.matched(request(), matches)),
                 [OURS], lambda m: [], CONFIG)


def roundtrip(answer: PatientDiscoveryResponse, assert_valid) -> PatientDiscoveryResponse:
    el = patient_discovery_response_to_xml(answer)
    assert_valid(el)
    return parse_patient_discovery_response(el)


def test_matches_of_two_communities_and_a_failed_one_merge_into_one_aa(assert_valid):
    found = Discovered(II("2.999.2.1", "V-1"), (
        outcome_for("2.999.1", match()),
        outcome_for("2.999.3", match(hcid="2.999.3", ext="MRN-7")),
        CommunityOutcome("urn:oid:2.999.8", Status.ERROR, error="connection failed"),
    ))
    back = roundtrip(merged_response(request(), found), assert_valid)
    assert (back.acknowledgement.type_code, back.query_response_code) == (
        AckType.AA, QueryResponseCode.OK)
    assert [(m.home_community_id, m.patient.id.extension) for m in back.matches] == [
        ("2.999.1", "D-1"), ("2.999.3", "MRN-7")]
    assert all(m.score == 100 for m in back.matches)  # our verification score
    (detail,) = back.errors
    assert detail.type_code is DetailType.WARNING and detail.location == "2.999.8"
    assert detail.code.code == "INTERR" and "connection failed" in detail.text


def test_untrusted_matches_are_not_passed_on(assert_valid):
    stranger = replace(ALEX, names=(PN.of("Zed", "Quinn"),), birth_time=TS("20010101"))
    found = Discovered(None, (outcome_for("2.999.1", match(stranger)),))
    back = roundtrip(merged_response(request(), found), assert_valid)
    assert back.matches == () and back.query_response_code is QueryResponseCode.NF


def test_every_community_failed_is_ae_answer_not_available(assert_valid):
    found = Discovered(None, (
        CommunityOutcome("urn:oid:2.999.8", Status.ERROR, error="no answer within 1 s"),
        CommunityOutcome("urn:oid:2.999.9", Status.ERROR, error="SOAP fault"),
    ))
    back = roundtrip(merged_response(request(), found), assert_valid)
    assert (back.acknowledgement.type_code, back.query_response_code) == (
        AckType.AE, QueryResponseCode.AE)
    assert [i.code for i in back.detected_issues] == ["AnswerNotAvailable"]
    assert [d.location for d in back.errors] == ["2.999.8", "2.999.9"]
    assert all(d.type_code is DetailType.ERROR for d in back.errors)


def test_no_match_passes_on_the_attributes_partners_asked_for(assert_valid):
    more = CommunityOutcome("urn:oid:2.999.1", Status.MORE_ATTRIBUTES,
                            requested=("PatientAddressRequested",))
    found = Discovered(None, (more, CommunityOutcome("urn:oid:2.999.3", Status.NO_MATCH)))
    back = roundtrip(merged_response(request(), found), assert_valid)
    assert back.query_response_code is QueryResponseCode.NF
    assert back.requested_attributes == ("PatientAddressRequested",)


def test_nobody_to_ask_is_plain_nf(assert_valid):
    back = roundtrip(merged_response(request(), Discovered(None, ())), assert_valid)
    assert (back.acknowledgement.type_code, back.query_response_code) == (
        AckType.AA, QueryResponseCode.NF)
    assert back.errors == ()
