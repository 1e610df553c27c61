"""XUA replay over real HTTPS, where a query's replay token is consumed in the commit of
its audit record (not at the gate): a replay sent after the original is refused at the
gate; two identical queries sent at once get exactly one answer and one replay refusal
(Sender fault, wsse:InvalidSecurity, log line, one Security Alert, no second success
record), whichever of the gate or the commit caught it.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from gateway import demo
from gateway.audit.models import AuditEntry
from gateway.audit.queue import AuditQueue
from profiles.errors import WSSE_NS
from profiles.xml import parse_xml
from tests.e2e.xua_support import (
    QUERY_NS,
    alert_ids,
    alert_text,
    assert_accepted,
    assert_refused,
    connect,
    new_alert_ids,
    refusal_log,
    send,
    xca_query,
)

pytestmark = pytest.mark.e2e


def records(db) -> int:
    AuditQueue(db).index_all()
    with db.session() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(AuditEntry))


def test_a_query_replayed_after_its_answer_is_refused_at_the_gate(
    gateway, session, audit_db, members
):
    raw = xca_query(connect(members), f"{gateway.base_url}/xca/query", "urn:uuid:r1")
    assert_accepted(gateway, session, parse_xml(raw))
    before = records(audit_db)
    assert_refused(gateway, session, audit_db, None, "InvalidSecurity", raw=raw, why="replayed")
    assert records(audit_db) == before + 1  # the alert, and no record of a query


@pytest.mark.parametrize("round", range(4))
def test_two_identical_queries_at_once_get_one_answer(gateway, audit_db, members, round):
    raw = xca_query(connect(members), f"{gateway.base_url}/xca/query", f"urn:uuid:race{round}")
    sessions = [demo.mtls_session(gateway) for _ in range(2)]
    start = threading.Barrier(2)

    def racer(s):
        start.wait(30)
        return send(gateway, s, None, raw=raw)

    alerts, before = alert_ids(audit_db), records(audit_db)
    try:
        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(racer, sessions))
    finally:
        for s in sessions:
            s.close()
    answered = [a for a in answers if a.status == 200]
    refused = [a for a in answers if a.status != 200]
    assert len(answered) == 1 and len(refused) == 1, answers
    assert answered[0].body_root == f"{{{QUERY_NS}}}AdhocQueryResponse"
    [no] = refused
    assert (no.status, no.code, no.subcode) == (400, "Sender", (WSSE_NS, "InvalidSecurity"))
    line = refusal_log(gateway, no.request_id)
    assert line["message"].startswith("XUA refused: InvalidSecurity (replayed token")
    [alert] = new_alert_ids(audit_db, alerts)
    assert alert_text(audit_db, alert).startswith("XUA InvalidSecurity: replayed token")
    assert records(audit_db) == before + 2  # one query record, one alert
