"""Group commit: requests that finish during another's commit share the next one, and
nobody returns before its own rows are committed."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from gateway.audit.group import GroupCommit
from gateway.audit.models import AuditInboxEntry
from gateway.audit.queue import AuditQueue
from tests.gateway.audit.helpers import query_message, wait_for


def test_callers_arriving_during_a_commit_share_the_next_one() -> None:
    release, batches = threading.Event(), []

    def commit(rows: list[bytes]) -> None:
        if not batches:
            release.wait(30)  # the first commit is slow (a disk flush)
        batches.append(sorted(rows))

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
    def commit(rows: list[bytes]) -> None:
        raise RuntimeError("disk full")

    group = GroupCommit(commit)
    with pytest.raises(RuntimeError, match="disk full"):
        group.write([b"a"])
    assert not group._busy  # the next caller can lead


def test_concurrent_stage_now_commits_every_record(db) -> None:
    queue = AuditQueue(db)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: queue.stage_now([query_message(i)]), range(40)))
    with db.session() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(AuditInboxEntry)) == 40
    assert queue._group.commits <= 40
