"""What happens besides the fault when XUA refuses a request: a log line and an audit record.

The peer gets only the WS-Security subcode and its fixed text (``profiles.xua.faults``).
The operator gets the internal reason: in one WARNING log line (request id, path, peer,
subcode, reason) and in an ATNA Security Alert (DICOM 110113, type Authentication
Decision 110143, outcome Minor failure: the attempt was contained). Internal reasons
name checks, formats, codes and certificate subjects, never patient data; they are
still cut to a bounded length and stripped of control characters, since parts of them
come from the peer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from profiles.atna.codes import EventType
from profiles.atna.events import Endpoint
from profiles.atna.message import EventOutcome
from profiles.atna.nodes import security_alert
from profiles.xua import SecurityRefused

log = logging.getLogger("gateway.security")

MAX_REASON = 300


@dataclass(frozen=True)
class Refusal:
    """One refused request, as the log and the audit trail describe it."""

    request_id: str
    path: str
    subcode: str  # the WS-Security fault subcode (e.g. "FailedCheck")
    reason: str  # the internal reason, cleaned and bounded
    peer_subject: str | None = None
    partner: str | None = None  # the registered partner the TLS client matched, if any

    @classmethod
    def of(
        cls,
        refused: SecurityRefused,
        *,
        request_id: str,
        path: str,
        peer_subject: str | None,
        partner: str | None,
    ) -> Refusal:
        return cls(
            request_id=request_id,
            path=path,
            subcode=refused.wsse_fault.value,
            reason=clean(refused.internal_reason),
            peer_subject=peer_subject,
            partner=partner,
        )


class RefusalRecorder(Protocol):
    """Records a refusal durably (the audit trail); must not raise."""

    def __call__(self, refusal: Refusal) -> None: ...


def clean(text: str, limit: int = MAX_REASON) -> str:
    text = "".join(c if c.isprintable() else " " for c in text or "")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def log_refusal(refusal: Refusal) -> None:
    log.warning(
        "XUA refused: %s (%s)%s",
        refusal.subcode,
        refusal.reason,
        f"; partner {refusal.partner}" if refusal.partner else "",
        extra={
            "request_id": refusal.request_id,
            "path": refusal.path,
            "peer": refusal.peer_subject,
        },
    )


class AuditRefusals:
    """The default recorder: one Security Alert per refusal through the audit queue."""

    def __init__(self, auditor) -> None:  # gateway.audit.Auditor
        self.auditor = auditor

    def __call__(self, refusal: Refusal) -> None:
        description = f"XUA {refusal.subcode}: {refusal.reason}"
        performer = Endpoint(
            refusal.peer_subject or "unknown TLS client", user_name=refusal.peer_subject
        )
        message = security_alert(
            EventType.AUTHENTICATION_DECISION,
            self.auditor.occasion(EventOutcome.MINOR_FAILURE, f"XUA {refusal.subcode}"),
            reporter=self.auditor.node,
            performer=performer,
            subject=refusal.path,
            description=description,
        )
        self.auditor.node_event(message)  # logs and returns False if the database fails


class NoRecord:
    """A recorder that records nothing (only the log line is written)."""

    def __call__(self, refusal: Refusal) -> None:
        return None
