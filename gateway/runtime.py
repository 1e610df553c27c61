"""What a running gateway holds: its configuration, database and stores.

Nothing a request needs lives only here in one worker's memory; this is a
handle on shared state (the database, the blob folder), so several processes
behave as one gateway.
"""

from __future__ import annotations

import atexit
from dataclasses import dataclass
from typing import Any

from gateway.audit.hook import Auditor
from gateway.audit.sender import AuditSender
from gateway.audit.transport import client_context
from gateway.config import Config
from gateway.ports import build_ports
from gateway.security import build_security
from gateway.soap.service import Limits
from gateway.store.blobs import FileBlobStore
from gateway.store.db import Database
from gateway.store.migrate import ensure_current


@dataclass
class Runtime:
    config: Config
    database: Database
    blobs: FileBlobStore
    limits: Limits
    ports: Any = None
    security: Any = None  # the XUA gate run before handlers (gateway/soap/service.SecurityGate)
    audit: Auditor | None = None
    audit_sender: AuditSender | None = None

    @classmethod
    def start(cls, config: Config, *, ports: Any = None) -> Runtime:
        config.data_dir.mkdir(parents=True, exist_ok=True)
        spool = config.data_dir / "spool"
        spool.mkdir(exist_ok=True)
        # Migrations take a lock, so workers starting together migrate once.
        ensure_current(config.database_url)
        database = Database(config.database_url, pool_size=config.server.threads)
        database.confirm_handed(timeout=0)  # a crashed worker's spooled audit rows, now
        blobs = FileBlobStore(config.data_dir / "blobs")
        auditor = Auditor.from_config(config, database)
        sender = None
        if config.audit:
            # One sender thread per worker; rows are claimed with SKIP LOCKED, so
            # several workers and machines deliver each record once.
            factory = (lambda: client_context(config.tls)) if config.tls else None
            sender = AuditSender(database, config.audit, factory)
            sender.start()
            atexit.register(sender.stop)
        return cls(
            config=config,
            database=database,
            blobs=blobs,
            limits=Limits(
                max_message_bytes=config.limits.max_message_bytes,
                max_attachment_bytes=config.limits.max_attachment_bytes,
                spool_dir=str(spool),
            ),
            ports=ports if ports is not None else build_ports(config, database, blobs),
            security=build_security(config, database),
            audit=auditor,
            audit_sender=sender,
        )
