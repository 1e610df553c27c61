"""ATNA I/O (ITI-20): the durable audit queue, its sender, the repository, the CLI.

    models.py      audit_inbox (a request's rows), audit_records (+ terms for search),
                   audit_deliveries (the outbox)
    queue.py       AuditQueue: stage in the caller's session (the inbox), stage_now,
                   index_pending, enqueue (indexed at once), backlog
    group.py       GroupCommit: concurrent requests without data share one commit
    deferred.py    a query's XUA replay tokens committed with its record
    hook.py        Auditor / RequestAudit: how the SOAP pipeline audits every request
    parties.py     the audit source (us) and the human requestor (the XUA principal)
    sender.py      AuditSender: background delivery with claims, retry and back-off
    transport.py   RFC 5425 TLS and RFC 5426 UDP transports, TLS contexts
    repository.py  AuditRepository: syslog server over TLS and UDP, validating, storing
    search.py      search and export of the trail (AuditQuery)
    cli.py         ``ihe-gateway audit-repository`` and ``ihe-gateway audit search|export``

The messages themselves (DICOM audit XML, syslog framing) are built without I/O
in ``profiles/atna``; this package only stores and moves them.
"""

from gateway.audit.hook import Auditor, RequestAudit, RequestFacts
from gateway.audit.queue import AuditQueue
from gateway.audit.sender import AuditSender, SenderSettings

__all__ = [
    "AuditQueue",
    "AuditSender",
    "Auditor",
    "RequestAudit",
    "RequestFacts",
    "SenderSettings",
]
