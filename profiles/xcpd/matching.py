"""Demographic matching for XCPD: a scored comparison and a decision that never guesses.

``score`` weighs each field the query and the record both carry, in the
manner of Fellegi and Sunter: agreement adds the field's weight, disagreement
subtracts its (larger or smaller) penalty, a missing field counts nothing.
Names are compared with Jaro-Winkler (rapidfuzz) after normalisation; equal
Soundex codes and nicknames (Bill for William) count as near agreement, and
given and family swapped are tried. Birth dates agree exactly, or partly when
one slip of the pen apart (day and month swapped, two digits transposed).
Gender, postal address, phone, mother's maiden name and identifiers (own,
other and correlated ids: a shared id is strong evidence, another id in the
same domain strong evidence against) complete the score. ``percent`` is the
score against the best the compared fields allow (queryMatchObservation).

``decide`` groups records by person (cross-reference group) and answers as
ITI TF-2b 3.55.4.2.3 allows, never by guessing:

* one person at or above ``threshold`` and no other within ``margin`` of it:
  a match (all the person's records: case 1, or case 2 for several);
* two people within ``margin`` of each other at the top: ambiguous, answered
  with the attributes that would separate them (case 3) or plain NF (case 4);
* nobody at the threshold but someone within ``margin`` below it: the
  attributes that might lift them (case 3), else NF;
* otherwise no match (case 4).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from rapidfuzz.distance import JaroWinkler

from profiles.hl7v3.control import RequestedAttribute
from profiles.hl7v3.datatypes import AD, PN
from profiles.pix.demographics import (
    Demographics,
    birth_date_variants,
    digits,
    full_forms,
    name_parts,
    normalise,
    phone_key,
    soundex,
)
from profiles.pix.ports import PatientRecord, key_of
from profiles.xcpd.models import QueryParameters


@dataclass(frozen=True)
class Weights:
    """(agreement, disagreement) weight per field; names are interpolated between them."""

    family: tuple[float, float] = (4.0, -3.0)
    given: tuple[float, float] = (3.0, -3.0)
    birth_date: tuple[float, float] = (5.0, -5.0)
    birth_date_slip: float = 2.0  # day/month swapped or two digits transposed
    birth_year: tuple[float, float] = (1.0, -3.0)  # when only a year is known on one side
    gender: tuple[float, float] = (0.5, -4.0)
    postal_code: tuple[float, float] = (1.0, -0.5)
    street: float = 1.5
    city: float = 0.5
    telecom: float = 2.0
    identifier: tuple[float, float] = (10.0, -7.0)
    mothers_maiden_name: tuple[float, float] = (1.0, -1.0)
    similar: float = 0.95  # name similarity from which names fully agree
    dissimilar: float = 0.75  # ... and up to which they fully disagree
    sounds_alike: float = 0.9  # similarity granted to names with equal Soundex
    nickname: float = 0.96  # similarity granted to a nickname of the same full name


@dataclass(frozen=True)
class MatchConfig:
    threshold: float = 10.0
    margin: float = 2.0
    candidate_limit: int = 50  # records found by key, best first (bench/matching.py)
    weights: Weights = field(default_factory=Weights)


@dataclass(frozen=True)
class Score:
    total: float
    best: float  # the total had every compared field agreed
    fields: tuple[tuple[str, float], ...] = ()

    @property
    def percent(self) -> int:
        if self.best <= 0:
            return 0
        return max(0, min(100, round(100 * self.total / self.best)))


def demographics_of_query(p: QueryParameters) -> Demographics:
    return Demographics(
        names=p.names, gender=p.gender.code if p.gender else None,
        birth_time=p.birth_time.value if p.birth_time else None, addresses=p.addresses,
        telecoms=tuple(t.value for t in p.telecoms if t.value), ids=p.ids,
        mothers_maiden_name=p.mothers_maiden_name, birth_place_name=p.birth_place_name,
    )


def demographics_of_record(record: PatientRecord) -> Demographics:
    return Demographics.of_person(record.person, (record.id, *record.correlated))


# -- field comparisons -----------------------------------------------------------------------


def _between(sim: float, agree: float, disagree: float, w: Weights) -> float:
    span = (sim - w.dissimilar) / (w.similar - w.dissimilar)
    return disagree + (agree - disagree) * max(0.0, min(1.0, span))


def _word_similarity(a: str, b: str, w: Weights) -> float:
    if not a or not b:
        return 0.0
    if a == b:
        return 1.0
    sim = JaroWinkler.similarity(a, b)
    if soundex(a) == soundex(b):
        sim = max(sim, w.sounds_alike)
    return sim


def _family_similarity(a: list[str], b: list[str], w: Weights) -> float:
    whole = _word_similarity(" ".join(a), " ".join(b), w)
    if set(a) <= set(b) or set(b) <= set(a):  # GARCIA vs GARCIA LOPEZ
        whole = max(whole, w.similar)
    return whole


def _given_similarity(a: list[str], b: list[str], w: Weights) -> float:
    first_a, first_b = a[0], b[0]
    sim = _word_similarity(first_a, first_b, w)
    if sim < 1.0 and full_forms(first_a) & full_forms(first_b):
        sim = max(sim, w.nickname)
    if len(first_a) == 1 or len(first_b) == 1:  # an initial
        sim = max(sim, 0.85 if first_a[0] == first_b[0] else 0.0)
    return sim


def _names(q: tuple[PN, ...], r: tuple[PN, ...], w: Weights) -> dict[str, float]:
    """Family and given weights of the best-agreeing pair of names (swapped parts cost 1)."""
    best: dict[str, float] | None = None
    for qn in q:
        qg, qf = name_parts(qn)
        for rn in r:
            rg, rf = name_parts(rn)
            for given, family, penalty in ((qg, qf, 0.0), (qf, qg, 1.0)):
                found: dict[str, float] = {}
                if family and rf:
                    found["family"] = _between(_family_similarity(family, rf, w), *w.family, w)
                if given and rg:
                    found["given"] = _between(_given_similarity(given, rg, w), *w.given, w)
                found = {k: v - penalty / len(found) for k, v in found.items()}
                if found and (best is None or sum(found.values()) > sum(best.values())):
                    best = found
    return best or {}


def _birth(q: Demographics, r: Demographics, w: Weights) -> tuple[float, float] | None:
    qd, rd = q.birth_date, r.birth_date
    if qd and rd:
        if qd == rd:
            return w.birth_date[0], w.birth_date[0]
        slip = rd in birth_date_variants(qd)
        return (w.birth_date_slip if slip else w.birth_date[1]), w.birth_date[0]
    qy, ry = digits(q.birth_time)[:4], digits(r.birth_time)[:4]
    if len(qy) == 4 and len(ry) == 4:
        return (w.birth_year[0] if qy == ry else w.birth_year[1]), w.birth_year[0]
    return None


def _gender(q: str | None, r: str | None, w: Weights) -> tuple[float, float] | None:
    if q not in ("M", "F") or r not in ("M", "F"):
        return None
    return (w.gender[0] if q == r else w.gender[1]), w.gender[0]


def _postal(ad: AD) -> str:
    return "".join(ch for ch in (ad.postal_code or "").upper() if ch.isalnum())[:5]


def _address(q: tuple[AD, ...], r: tuple[AD, ...], w: Weights) -> tuple[float, float] | None:
    """(score, best possible) of the best-agreeing pair of addresses."""
    found = None
    for qa in q:
        for ra in r:
            total = best = 0.0
            if _postal(qa) and _postal(ra):
                best += w.postal_code[0]
                total += w.postal_code[0] if _postal(qa) == _postal(ra) else w.postal_code[1]
            ql, rl = normalise(" ".join(qa.street_lines)), normalise(" ".join(ra.street_lines))
            if ql and rl:
                best += w.street
                total += w.street * max(0.0, (_word_similarity(ql, rl, w) - 0.8) / 0.2)
            if normalise(qa.city) and normalise(ra.city):
                best += w.city
                total += w.city if normalise(qa.city) == normalise(ra.city) else 0.0
            if best and (found is None or total > found[0]):
                found = (total, best)
    return found


def _telecom(q: tuple[str, ...], r: tuple[str, ...], w: Weights) -> tuple[float, float] | None:
    def keys(values: tuple[str, ...]) -> set[str]:
        return {phone_key(v) or v.strip().lower() for v in values if v.strip()}

    qk, rk = keys(q), keys(r)
    if not qk or not rk:
        return None
    return (w.telecom if qk & rk else 0.0), w.telecom


def _identifiers(q: Demographics, r: Demographics, w: Weights) -> tuple[float, float] | None:
    qk = {key_of(i) for i in q.ids if i.root and i.extension}
    rk = {key_of(i) for i in r.ids if i.root and i.extension}
    if qk & rk:
        return w.identifier[0], w.identifier[0]
    if {root for root, _ in qk} & {root for root, _ in rk}:
        return w.identifier[1], w.identifier[0]
    return None


def _mothers_maiden_name(q: Demographics, r: Demographics, w: Weights
                         ) -> tuple[float, float] | None:
    if q.mothers_maiden_name is None or r.mothers_maiden_name is None:
        return None
    _, qm = name_parts(q.mothers_maiden_name)
    _, rm = name_parts(r.mothers_maiden_name)
    if not qm or not rm:
        return None
    agree, disagree = w.mothers_maiden_name
    return _between(_family_similarity(qm, rm, w), agree, disagree, w), agree


def score(q: Demographics, r: Demographics, weights: Weights | None = None) -> Score:
    """How strongly record ``r`` is the person query ``q`` describes."""
    w = weights or Weights()
    fields = _names(q.names, r.names, w)
    best = sum(getattr(w, name)[0] for name in fields)
    for name, compared in (
        ("birth", _birth(q, r, w)),
        ("gender", _gender(q.gender, r.gender, w)),
        ("identifier", _identifiers(q, r, w)),
        ("address", _address(q.addresses, r.addresses, w)),
        ("telecom", _telecom(q.telecoms, r.telecoms, w)),
        ("mothers_maiden_name", _mothers_maiden_name(q, r, w)),
    ):
        if compared is not None:
            fields[name] = compared[0]
            best += compared[1]
    return Score(round(sum(fields.values()), 3), best, tuple(fields.items()))


# -- the decision ----------------------------------------------------------------------------


class Outcome(StrEnum):
    MATCH = "match"
    AMBIGUOUS = "ambiguous"  # close candidates: more attributes requested, or plain NF
    NO_MATCH = "no-match"


@dataclass(frozen=True)
class Scored:
    """A person (cross-reference group): its records and the best score among them."""

    records: tuple[PatientRecord, ...]
    best: PatientRecord
    score: Score


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    match: Scored | None = None
    requested: tuple[RequestedAttribute, ...] = ()
    ranked: tuple[Scored, ...] = ()


def rank(q: Demographics, candidates: Iterable[PatientRecord],
         weights: Weights | None = None) -> list[Scored]:
    """Candidates grouped by person, best first (ties broken by the record id)."""
    groups: dict[object, list[tuple[Score, PatientRecord]]] = {}
    for record in candidates:
        group = record.group if record.group is not None else key_of(record.id)
        groups.setdefault(group, []).append((score(q, demographics_of_record(record), weights),
                                             record))
    ranked = []
    for members in groups.values():
        top_score, top = max(members, key=lambda m: (m[0].total, key_of(m[1].id)))
        ranked.append(Scored(tuple(r for _, r in members), top, top_score))
    ranked.sort(key=lambda s: (-s.score.total, key_of(s.best.id)))
    return ranked


def _address_gain(d: Demographics, w: Weights) -> float:
    return max((w.postal_code[0] * bool(_postal(a)) + w.street * bool(a.street_lines)
                + w.city * bool(a.city) for a in d.addresses), default=0.0)


# attribute, its value in some demographics (None: absent), what agreeing on it could add
_REQUESTABLE = (
    (RequestedAttribute.ADMINISTRATIVE_GENDER,
     lambda d: d.gender if d.gender in ("M", "F") else None, lambda d, w: w.gender[0]),
    (RequestedAttribute.PATIENT_ADDRESS,
     lambda d: tuple(sorted(_postal(a) or normalise(a.city) for a in d.addresses)) or None,
     _address_gain),
    (RequestedAttribute.PATIENT_TELECOM,
     lambda d: tuple(sorted(filter(None, map(phone_key, d.telecoms)))) or None,
     lambda d, w: w.telecom),
    (RequestedAttribute.MOTHERS_MAIDEN_NAME,
     lambda d: normalise(" ".join(name_parts(d.mothers_maiden_name)[1]))
     if d.mothers_maiden_name else None, lambda d, w: w.mothers_maiden_name[0]),
)


def requestable(q: Demographics, contenders: list[Scored], c: MatchConfig, *, separate: bool
                ) -> tuple[RequestedAttribute, ...]:
    """Attributes the query lacks that could decide.

    Two people tied (``separate``): those whose values differ between them. A near
    miss: those the record holds, when agreeing on all of them could reach the
    threshold (a wrong sex is not outweighed by a city).
    """
    top = contenders[0]
    held = demographics_of_record(top.best)
    wanted, gain = [], 0.0
    for attribute, value_of, gain_of in _REQUESTABLE:
        if value_of(q) is not None:
            continue
        values = {value_of(demographics_of_record(s.best)) for s in contenders}
        if separate and len(values) > 1:
            wanted.append(attribute)
        elif not separate and value_of(held) is not None:
            wanted.append(attribute)
            gain += gain_of(held, c.weights)
    if not separate and top.score.total + gain < c.threshold:
        return ()
    return tuple(wanted)


def decide(q: Demographics, candidates: Iterable[PatientRecord],
           config: MatchConfig | None = None, *, minimum_degree: int | None = None
           ) -> Decision:
    """The answer to a discovery query over ``candidates`` (see the module docstring)."""
    c = config or MatchConfig()
    ranked = tuple(rank(q, candidates, c.weights))
    if not ranked:
        return Decision(Outcome.NO_MATCH)
    top = ranked[0]
    close = [s for s in ranked[1:] if s.score.total >= top.score.total - c.margin]
    if top.score.total >= c.threshold:
        if close:  # two people nearly as likely: never pick one
            wanted = requestable(q, [top, *close], c, separate=True)
            return Decision(Outcome.AMBIGUOUS, requested=wanted, ranked=ranked)
        if minimum_degree is not None and top.score.percent < minimum_degree:
            return Decision(Outcome.NO_MATCH, ranked=ranked)
        return Decision(Outcome.MATCH, top, ranked=ranked)
    if top.score.total >= c.threshold - c.margin:  # a near miss: more data might decide
        wanted = requestable(q, [top, *close], c, separate=False)
        return Decision(Outcome.AMBIGUOUS if wanted else Outcome.NO_MATCH, requested=wanted,
                        ranked=ranked)
    return Decision(Outcome.NO_MATCH, ranked=ranked)
