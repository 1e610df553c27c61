"""Merging what the communities answered into one response (ITI TF-2b 3.38.4.1.3, 3.39).

Status: Success when no Error-severity detail remains; PartialSuccess when some
community (or the local registry) gave an answer and some other failed; Failure
when none did. Each failed community contributes exactly one RegistryError,
``XDSUnavailableCommunity`` with its homeCommunityId as ``location``.
``XDSUnknownPatientId`` from a responding gateway is not passed on: a community
that does not know the patient simply has nothing (NIST IG test notes, ihe-facts §7).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from profiles.errors import ErrorDetail, Severity
from profiles.xca.ports import Failure, QueryAnswer, RetrieveAnswer
from profiles.xca.query import QueryResult
from profiles.xca.retrieve import STATUSES, RetrievedDocument, RetrieveResult
from profiles.xds.metadata import ListMember

NOT_PROPAGATED = frozenset({"XDSUnknownPatientId"})


@dataclass(frozen=True)
class Merged:
    objects: tuple  # ListMember (local) or query.Relayed (partners')
    errors: tuple[ErrorDetail, ...]
    partial: bool  # some answer came back: errors make it PartialSuccess, not Failure
    communities: tuple[str, ...] = ()  # the ones that answered


@dataclass(frozen=True)
class MergedRetrieve:
    documents: tuple[RetrievedDocument, ...]
    errors: tuple[ErrorDetail, ...]
    partial: bool


def failure_detail(failure: Failure) -> ErrorDetail:
    return ErrorDetail(failure.code, failure.reason, Severity.ERROR, failure.home_community_id)


def _answer_errors(errors: Sequence[ErrorDetail], home: str) -> list[ErrorDetail]:
    return [
        ErrorDetail(e.code, e.context, e.severity, e.location or home)
        for e in errors
        if e.code not in NOT_PROPAGATED
    ]


def merge_query(
    outcomes: Sequence[QueryAnswer | Failure],
    *,
    local: QueryResult | None = None,
    planning_errors: Sequence[ErrorDetail] = (),
) -> Merged:
    objects: list[ListMember] = list(local.objects) if local else []
    errors: list[ErrorDetail] = list(planning_errors)
    if local:
        errors += local.errors
    answered = ["local"] if local is not None else []
    failed: set[str] = set()
    for outcome in outcomes:
        if isinstance(outcome, Failure):
            if outcome.home_community_id not in failed:
                failed.add(outcome.home_community_id)
                errors.append(failure_detail(outcome))
            continue
        result = outcome.result
        objects.extend(result.objects)
        errors += _answer_errors(result.errors, outcome.home_community_id)
        if result.status == STATUSES["Failure"] and not result.errors:
            errors.append(ErrorDetail(
                "XDSRegistryError", "the community answered Failure without a reason",
                Severity.ERROR, outcome.home_community_id,
            ))
        answered.append(outcome.home_community_id)
    return Merged(tuple(objects), tuple(errors), bool(answered) or bool(objects),
                  tuple(answered))


def merge_retrieve(
    outcomes: Sequence[RetrieveAnswer | Failure],
    *,
    local: RetrieveResult | None = None,
    planning_errors: Sequence[ErrorDetail] = (),
) -> MergedRetrieve:
    documents: list[RetrievedDocument] = list(local.documents) if local else []
    errors: list[ErrorDetail] = list(planning_errors) + (list(local.errors) if local else [])
    answered = local is not None and bool(local.documents)
    failed: set[str] = set()
    for outcome in outcomes:
        if isinstance(outcome, Failure):
            if outcome.home_community_id not in failed:
                failed.add(outcome.home_community_id)
                errors.append(failure_detail(outcome))
            continue
        documents.extend(outcome.result.documents)
        errors += _answer_errors(outcome.result.errors, outcome.home_community_id)
        answered = answered or bool(outcome.result.documents)
    return MergedRetrieve(tuple(documents), tuple(errors), answered)
