"""What a verifier accepts from one partner, and the replay port it records into.

Defaults are the strict eHealth Exchange reading; every loosening (SHA-1, the 2010
``PurposeForUse`` element, reused assertions) is a per-partner switch that the gateway
sets from the partner's quirks profile.

Replay keys are recorded in one of two ways. ``verify_security_header`` records them
itself (``record_replay_keys``: ``add_if_absent``, refused if one is taken), before
any handler runs. A caller that would rather record them in a commit it makes anyway
(the gateway, for a request that writes no data: ``gateway/audit/group.py``) calls
``check_security_header``, which leaves the cache alone and hands the keys back; it
then owes their atomic insert before the answer leaves, and answers a key found taken
with ``replayed(key)``, the very refusal the verifier gives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from profiles.xua.assertion import EMAIL, NHIN_PURPOSE, NHIN_PURPOSES, SNOMED_CT, X509_SUBJECT
from profiles.xua.faults import SecurityRefused, WsseFault, refuse


class ReplayCache(Protocol):
    """Remembers token keys until they expire; shared by every worker (a database table).

    ``add_if_absent`` must be atomic (INSERT ... ON CONFLICT DO NOTHING): two workers
    racing with the same key must see exactly one ``True``. Expired rows may be swept
    at any time after ``expires_at``.
    """

    def add_if_absent(self, key: str, expires_at: datetime) -> bool:
        """Remember ``key`` until ``expires_at``; return False if it was already there."""
        ...


@dataclass(frozen=True)
class ReplayKey:
    """One token a verified message consumes: an assertion ID or a message signature."""

    key: str
    expires_at: datetime  # when it may be forgotten


def replayed(key: str) -> SecurityRefused:
    """The refusal of a message whose ``key`` was consumed already."""
    return refuse(WsseFault.INVALID_SECURITY, f"replayed token ({key})")


def record_replay_keys(cache: ReplayCache, keys: Sequence[ReplayKey]) -> None:
    """Consume ``keys`` (atomically each); raise ``replayed`` at the first one taken."""
    for k in keys:
        if not cache.add_if_absent(k.key, k.expires_at):
            raise replayed(k.key)


@dataclass(frozen=True)
class XuaPolicy:
    """Verification settings for one partner (or the default for all)."""

    clock_skew: timedelta = timedelta(minutes=5)
    allow_sha1: bool = False  # RSA-SHA1 / SHA-1 digests, for CONNECT-era peers only
    accept_purpose_for_use: bool = False  # the 2010 hl7:PurposeForUse element
    # When non-empty, every AudienceRestriction must name one of these and one must exist.
    audiences: frozenset[str] = frozenset()
    issuer_formats: frozenset[str] = frozenset({X509_SUBJECT, EMAIL})
    name_id_formats: frozenset[str] = frozenset({X509_SUBJECT, EMAIL})
    role_code_system: str = SNOMED_CT
    role_codes: frozenset[str] | None = None  # None: any SNOMED CT concept id
    purpose_code_system: str = NHIN_PURPOSE
    purpose_codes: frozenset[str] = NHIN_PURPOSES
    require_timestamp: bool = True
    timestamp_max_age: timedelta = timedelta(minutes=5)  # Created may be this old (+ skew)
    # An assertion without Conditions/@NotOnOrAfter lives this long after IssueInstant.
    max_assertion_age: timedelta = timedelta(hours=1)
    allow_bearer: bool = False  # an extra bearer SubjectConfirmation; never on eHx traffic
    # False: an assertion ID is accepted once. True: a holder-of-key assertion may be
    # reused while valid, and only a repeated Timestamp signature counts as replay.
    allow_assertion_reuse: bool = False
    max_header_bytes: int = 64 * 1024  # wsse:Security serialized
    max_header_elements: int = 1000
    max_header_depth: int = 24
