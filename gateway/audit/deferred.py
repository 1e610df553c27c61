"""A request's XUA replay tokens committed with its audit record (issue 7's bench:
a query paid one commit for its token and another for its record).

For a transaction that writes no data the gate leaves the tokens to the request
(``RequestAudit.defer_replay``). ``settle`` then
inserts them in the group commit that makes the request's records durable,
ahead of the records (``group.py``), and keeps the records out if a token was
taken: the answer is replaced by the gate's replay refusal. Whatever cannot be
committed is not acknowledged: the answer is replaced by a Receiver fault.
"""

from __future__ import annotations

import logging
from typing import Protocol

from gateway.audit.group import Guard
from gateway.audit.queue import AuditQueue
from gateway.audit.transport import error_kind
from profiles.errors import SoapFault, receiver_fault

log = logging.getLogger("gateway.audit")


class ReplayGuard(Guard, Protocol):
    """Tokens the gate left to the request (``gateway.security.replay.PendingTokens``)."""

    def refused(self) -> SoapFault: ...


def settle(
    queue: AuditQueue, tokens: ReplayGuard, messages: list, request_id: str
) -> SoapFault | None:
    """Commit ``tokens``, and ``messages`` only if the tokens were fresh; return the
    fault to answer instead (the gate's replay refusal, or a Receiver fault when the
    commit failed), None when the answer may leave."""
    try:
        fresh = queue.stage_now(messages, guard=tokens)  # one gateway, one database
    except Exception as exc:  # noqa: BLE001 - not durable: the answer must not leave
        log.error("could not store the replay tokens and %d audit record(s) for request %s: %s",
                  len(messages), request_id, error_kind(exc))
        return receiver_fault(f"Internal error; request id {request_id}")
    return None if fresh else tokens.refused()
