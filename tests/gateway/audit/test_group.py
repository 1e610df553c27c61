"""Group commit: requests that finish during another's commit share the next one, and
nobody returns before its own rows are committed; a ticket's guard (deferred XUA replay
tokens) writes first, and a token found taken keeps that ticket's rows out."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from gateway.audit.group import GroupCommit, Ticket
from gateway.audit.models import AuditInboxEntry
from gateway.audit.queue import AuditQueue
from gateway.security.replay import PendingTokens, ReplayToken, SqlReplayCache
from profiles.xua import ReplayKey, replayed
from tests.gateway.audit.helpers import break_the_inbox, query_message, wait_for


def test_callers_arriving_during_a_commit_share_the_next_one() -> None:
    release, batches = threading.Event(), []

    def commit(tickets: list[Ticket]) -> None:
        if not batches:
            release.wait(30)  # the first commit is slow (a disk flush)
        batches.append(sorted(row for t in tickets for row in t.rows))

    group = GroupCommit(commit)
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(group.write, [b"a"])
        wait_for(lambda: group._busy, timeout=10, what="the first commit running")
        later = [pool.submit(group.write, [row]) for row in (b"b", b"c", b"d")]
        wait_for(lambda: len(group._waiting) == 3, timeout=10, what="three callers waiting")
        assert not any(f.done() for f in [first, *later])  # nobody is acknowledged early
        release.set()
        for f in [first, *later]:
            f.result(timeout=30)
    assert batches == [[b"a"], [b"b", b"c", b"d"]] and group.commits == 2


def test_a_failed_commit_fails_every_caller_of_its_batch() -> None:
    def commit(tickets: list[Ticket]) -> None:
        raise RuntimeError("disk full")

    group = GroupCommit(commit)
    with pytest.raises(RuntimeError, match="disk full"):
        group.write([b"a"])
    assert not group._busy  # the next caller can lead


def test_concurrent_stage_now_commits_every_record(db) -> None:
    queue = AuditQueue(db)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: queue.stage_now([query_message(i)]), range(40)))
    assert db.confirm_handed()  # PostgreSQL: handed over, now confirmed
    with db.session() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(AuditInboxEntry)) == 40
    assert queue._group.commits == 0  # records alone: relaxed, each on its own


# --- guards: a request's deferred XUA replay tokens in the shared commit --------------------

def tokens(db, *keys: str, refusals: list | None = None) -> PendingTokens:
    # Expiring from now, not from import: the cache runs on the real clock, and a whole
    # suite can take longer than these five minutes to reach this module.
    expires = datetime.now(UTC) + timedelta(minutes=5)
    return PendingTokens(
        SqlReplayCache(db), tuple(ReplayKey(k, expires) for k in keys),
        lambda key: (refusals if refusals is not None else []).append(key) or replayed(key),
    )


def inbox(db) -> list[bytes]:
    assert db.confirm_handed()  # a read's record, handed over on PostgreSQL
    with db.session() as s:
        return sorted(s.scalars(sa.select(AuditInboxEntry.xml)))


def remembered(db) -> set[str]:
    with db.session() as s:
        return set(s.scalars(sa.select(ReplayToken.token)))


class Held:
    """A guard that holds its batch's commit open until released (ordered first)."""

    order = ""

    def __init__(self) -> None:
        self.running, self.release = threading.Event(), threading.Event()

    def __call__(self, connection) -> bool:
        self.running.set()
        return self.release.wait(30)


def test_a_guard_writes_first_and_its_rows_follow(db) -> None:
    queue = AuditQueue(db)
    assert queue.stage_now([b"<a/>"], guard=tokens(db, "xua:assertion:1"))
    assert inbox(db) == [b"<a/>"] and remembered(db) == {"xua:assertion:1"}
    refusals: list = []
    replay = tokens(db, "xua:assertion:1", refusals=refusals)
    assert not queue.stage_now([b"<b/>"], guard=replay)  # taken: its record stays out
    assert inbox(db) == [b"<a/>"]
    assert replay.taken == "xua:assertion:1"
    fault = replay.refused()
    assert refusals == ["xua:assertion:1"] and "replayed" in fault.internal_reason


def test_the_same_token_twice_in_one_batch_lets_exactly_one_through(db) -> None:
    queue = AuditQueue(db)
    held = Held()
    with ThreadPoolExecutor(4) as pool:
        lead = pool.submit(queue.stage_now, [b"<lead/>"], held)
        assert held.running.wait(30)
        racing = [pool.submit(queue.stage_now, [row], tokens(db, "xua:message:same"))
                  for row in (b"<one/>", b"<two/>")]
        other = pool.submit(queue.stage_now, [b"<other/>"], tokens(db, "xua:message:other"))
        wait_for(lambda: len(queue._group._waiting) == 3, timeout=10, what="one batch waiting")
        held.release.set()
        assert lead.result(30) and other.result(30)
        results = [f.result(30) for f in racing]
    assert sorted(results) == [False, True]  # one answered, the other refused
    assert queue._group.commits == 2  # the three shared one commit
    won = [b"<one/>", b"<two/>"][results.index(True)]
    assert inbox(db) == sorted([b"<lead/>", b"<other/>", won])
    assert remembered(db) == {"xua:message:same", "xua:message:other"}


def test_a_failed_commit_with_a_guard_stores_neither(db, monkeypatch) -> None:
    queue = AuditQueue(db)
    break_the_inbox(monkeypatch)
    with pytest.raises(sa.exc.DBAPIError):
        queue.stage_now([b"<a/>"], guard=tokens(db, "xua:assertion:9"))
    assert inbox(db) == [] and remembered(db) == set()  # nothing acknowledged, nothing kept


def test_records_alone_commit_relaxed_and_replay_tokens_never(db, monkeypatch) -> None:
    """A read's record may skip the disk flush and the wait for the database (SQLite:
    spool.py; PostgreSQL: pgpipeline.py); a replay token may not: after a
    power cut a lost token would let the replay through."""
    relaxed: list[int] = []
    real = db.hand_over_inbox_rows
    monkeypatch.setattr(db, "hand_over_inbox_rows",
                        lambda rows: (relaxed.append(1), real(rows))[1])
    queue = AuditQueue(db)
    assert queue.stage_now([b"<read/>", b"<alert/>"])
    assert queue.stage_now([b"<query/>"], guard=tokens(db, "xua:assertion:relaxed"))
    assert relaxed == [1]  # the first only
    assert inbox(db) == [b"<alert/>", b"<query/>", b"<read/>"]
