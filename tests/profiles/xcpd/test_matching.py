"""The matcher, pure: field scores, blocking keys, and decisions that never guess."""

from __future__ import annotations

import pytest

from profiles.hl7v3.control import RequestedAttribute
from profiles.hl7v3.datatypes import AD, II, PN, TEL, TS, gender
from profiles.hl7v3.patient import OtherId, Person
from profiles.pix.demographics import (
    Demographics,
    birth_date_variants,
    blocking_keys,
    normalise,
    soundex,
)
from profiles.pix.ports import PatientRecord, parse_cx
from profiles.xcpd.matching import MatchConfig, Outcome, Weights, decide, score
from tests.profiles.pix.fake_index import FakePatientIndex

CHIP = Demographics(names=(PN.of("Chip", "Moore"),), gender="M", birth_time="19849711")


def q(given="Chip", family="Moore", sex="M", birth="19849711", **more) -> Demographics:
    return Demographics(names=(PN.of(given, family),), gender=sex, birth_time=birth, **more)


def person(given, family, sex=None, birth=None, **more) -> Person:
    return Person(names=(PN.of(given, family),), gender=gender(sex) if sex else None,
                  birth_time=TS(birth) if birth else None, **more)


# -- normalisation and keys ------------------------------------------------------------------


def test_normalise_and_soundex():
    assert normalise("  O'Brien-Smith  Jürgen ") == "OBRIEN SMITH JURGEN"
    assert soundex("ROBERT") == soundex("RUPERT") == "R163"
    assert soundex("ASHCRAFT") == "A261" and soundex("TYMCZAK") == "T522"
    assert soundex("") == ""


def test_birth_date_variants_cover_the_usual_slips():
    variants = birth_date_variants("19630805")
    assert {"19630805", "19630508", "19630850", "19360805"} <= variants
    assert len(variants) <= 9


def test_parse_cx():
    assert parse_cx("123^^^&1.2.3&ISO") == II("1.2.3", "123")
    assert parse_cx("123^^^DOM&urn:oid:1.2.3&ISO") == II("1.2.3", "123", "DOM")
    for bad in ("123", "123^^^&notanoid&ISO", "123^^^&1.2.3&DNS"):
        with pytest.raises(ValueError):
            parse_cx(bad)


@pytest.mark.parametrize(("query", "why"), [
    (q("Bill", "Smith", birth="19000101"), "nickname, wrong date"),
    (q("William", "Smyth", birth="19000101"), "same sound"),
    (q("Smith", "William", birth="19000101"), "given and family swapped"),
    (q("Xavier", "Jones", birth="19630508"), "day and month swapped"),
    (q("Xavier", "Jones", birth="19360805"), "digits transposed"),
    (Demographics(telecoms=("tel:+1-555-010-9999",)), "phone"),
])
def test_query_keys_meet_the_records_keys(query, why):
    stored = blocking_keys(Demographics(names=(PN.of("William", "Smith"),),
                                        birth_time="19630805", telecoms=("tel:5550109999",)))
    assert blocking_keys(query, query=True) & stored, why


def test_keys_of_unrelated_people_do_not_meet():
    a = blocking_keys(q("Ann", "Lee", birth="19700101"))
    assert not a & blocking_keys(q("Bob", "Martinez", birth="19881231"), query=True)


# -- scores ------------------------------------------------------------------------------------


def test_exact_agreement_is_a_perfect_score():
    s = score(CHIP, CHIP)
    assert s.total == s.best == 12.5 and s.percent == 100


@pytest.mark.parametrize(("query", "at_least"), [
    (q("Chipp", "Mooer"), 12.0),  # typos
    (q("Moore", "Chip"), 11.0),  # swapped, costs a point
    (q(birth="19841197"), 9.0),  # transposed digits: partial
])
def test_near_agreements_score_high(query, at_least):
    assert score(query, CHIP).total >= at_least


def test_nicknames_agree_almost_fully():
    assert score(q("Bill", "Smith"), q("William", "Smith")).total > 11.5
    assert score(q("Bob", "Smith"), q("William", "Smith")).total < 8


def test_disagreements_subtract():
    assert score(q(sex="F"), CHIP).total == 8.0
    assert score(q(birth="19500101"), CHIP).total == 2.5
    assert score(q("Dale"), CHIP).total < 8


def test_missing_fields_count_nothing():
    bare = Demographics(names=(PN.of("Chip", "Moore"),))
    assert score(bare, CHIP).total == 7.0 and score(bare, CHIP).percent == 100


def test_identifiers_decide_strongly_both_ways():
    mine = Demographics(ids=(II("2.16.840.1.113883.4.1", "123"),))
    assert score(mine, mine).total == 10.0
    other = Demographics(ids=(II("2.16.840.1.113883.4.1", "999"),))
    assert score(other, mine).total == -7.0


def test_address_and_phone_add_evidence():
    home = AD.of("12 Elm Street", "Springfield", "IL", "62701")
    with_home = q(addresses=(home,), telecoms=("tel:217-555-0100",))
    moved = q(addresses=(AD.of("9 Oak Ave", "Chicago", "IL", "60601"),))
    assert score(with_home, with_home).total == 12.5 + 3.0 + 2.0
    assert score(moved, with_home).total == 12.5 - 0.5


def test_weights_are_configurable():
    heavy = Weights(gender=(0.5, -20.0))
    assert score(q(sex="F"), CHIP, heavy).total == -8.0


# -- decisions ---------------------------------------------------------------------------------


def index_with(*records: PatientRecord) -> FakePatientIndex:
    fake = FakePatientIndex()
    for r in records:
        fake.add(r)
    return fake


CHIP_RECORD = PatientRecord(II("1.2.3.4.5.1000", "100"), person("Chip", "Moore", "M", "19849711"))


def test_a_clear_match():
    fake = index_with(CHIP_RECORD, PatientRecord(II("1.2.3.4.5.1000", "101"),
                                                 person("Chad", "Moore", "M", "19849711")))
    d = decide(CHIP, fake.candidates(CHIP))
    assert d.outcome is Outcome.MATCH and d.match.best.id == CHIP_RECORD.id
    assert d.match.score.percent == 100


def test_nist_gender_mismatch_is_no_match():
    fake = index_with(CHIP_RECORD)
    d = decide(q(sex="F"), fake.candidates(q(sex="F")))
    assert d.outcome is Outcome.NO_MATCH and d.match is None


def test_one_person_in_two_domains_is_one_match_with_both_records():
    other = PatientRecord(II("2.2.2", "X9"), person("Chip", "Moore", "M", "19849711",
                                                    other_ids=(OtherId(CHIP_RECORD.id),)))
    d = decide(CHIP, index_with(CHIP_RECORD, other).candidates(CHIP))
    assert d.outcome is Outcome.MATCH and len(d.match.records) == 2


def test_two_people_alike_are_never_guessed_between():
    """Same name and birth date, different homes: ask for the address."""
    a = PatientRecord(II("1.2.3", "A"), person("Chip", "Moore", "M", "19849711", addresses=(
        AD.of("1 Main St", "Montreal", postal_code="H2X"),)))
    b = PatientRecord(II("1.2.3", "B"), person("Chip", "Moore", "M", "19849711", addresses=(
        AD.of("5 Rue Sud", "Quebec", postal_code="G1A"),)))
    fake = index_with(a, b)
    d = decide(CHIP, fake.candidates(CHIP))
    assert d.outcome is Outcome.AMBIGUOUS and d.match is None
    assert d.requested == (RequestedAttribute.PATIENT_ADDRESS,)
    # with the address the tie is broken
    sent = q(addresses=(AD.of("1 Main Street", "Montreal", postal_code="H2X"),))
    d = decide(sent, fake.candidates(sent))
    assert d.outcome is Outcome.MATCH and d.match.best.id == a.id


def test_identical_twins_of_record_get_a_plain_no_match():
    a = PatientRecord(II("1.2.3", "A"), person("Chip", "Moore", "M", "19849711"))
    b = PatientRecord(II("1.2.3", "B"), person("Chip", "Moore", "M", "19849711"))
    d = decide(CHIP, index_with(a, b).candidates(CHIP))
    assert d.outcome is Outcome.AMBIGUOUS and d.requested == ()


def test_a_near_miss_asks_for_what_the_record_holds():
    record = PatientRecord(II("1.2.3", "A"), person(
        "Chip", "Moore", "M", "19849711", telecoms=(TEL("tel:5145550000"),),
        addresses=(AD.of("1 Main St", "Montreal"),)))
    near = Demographics(names=(PN.of("Chip", "Moore"),), birth_time="19841197")
    d = decide(near, index_with(record).candidates(near))
    assert d.outcome is Outcome.AMBIGUOUS
    assert set(d.requested) == {RequestedAttribute.ADMINISTRATIVE_GENDER,
                                RequestedAttribute.PATIENT_ADDRESS,
                                RequestedAttribute.PATIENT_TELECOM}


def test_threshold_and_minimum_degree_are_honoured():
    fake = index_with(CHIP_RECORD)
    typo = q(birth="19841197")  # 9.5: a match at threshold 9, not at the default 10
    assert decide(typo, fake.candidates(typo), MatchConfig(threshold=9.0)).outcome is (
        Outcome.MATCH)
    assert decide(typo, fake.candidates(typo)).outcome is not Outcome.MATCH
    d = decide(typo, fake.candidates(typo), MatchConfig(threshold=9.0), minimum_degree=100)
    assert d.outcome is Outcome.NO_MATCH


def test_no_candidates_is_no_match():
    assert decide(CHIP, []).outcome is Outcome.NO_MATCH
