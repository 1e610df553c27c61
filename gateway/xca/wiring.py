"""Plugging the initiating gateway into a running gateway (``ports.xca``).

    build_fanout(config, ports, *, transport=None, principal=None) -> FanOut

The outbound client holds our TLS certificate as client certificate. With TLS
configured, every request carries a signed XUA assertion shaped per partner by its
quirks (SHA-1 or SHA-256, PurposeOfUse or PurposeForUse, ``urn:oid:`` prefixing),
with the partner's endpoint as Audience. It speaks for the consumer's verified
principal when the ITI-18/43 request carried one, else for ``principal`` (default:
the gateway itself, ``system_principal``), as Metriport's gateway does.
"""

from __future__ import annotations

import io
from functools import partial
from typing import Any

from gateway.client import OutboundClient, SecurityHeader
from gateway.partners.directory import PartnerDirectory
from gateway.partners.model import Partner
from gateway.transport import Transport, default_transport
from gateway.xca.initiating import DEFAULT_DEADLINE_S, FanOut
from profiles.transaction import Attachment
from profiles.xua import (
    AssertionCache,
    Code,
    Principal,
    SigningCredentials,
    build_security_header,
)

SOAP12 = "http://www.w3.org/2003/05/soap-envelope"


# SNOMED CT 224608005 "Administrative healthcare staff"; nhin-purpose TREATMENT.
SYSTEM_ROLE = Code("224608005", "2.16.840.1.113883.6.96", "Administrative healthcare staff")
TREATMENT = Code("TREATMENT", "2.16.840.1.113883.3.18.7.1", "Treatment")


def system_principal(config: Any) -> Principal:
    """The gateway speaking for its community when no user's assertion came in."""
    home = config.community.home_community_id
    name = config.community.name or home
    return Principal(subject_id=f"{name} initiating gateway", organization=name,
                     organization_id=home, home_community_id=home, role=SYSTEM_ROLE,
                     purpose_of_use=TREATMENT)


def xua_security(
    credentials: SigningCredentials, principal: Principal, clock: Any,
    cache: AssertionCache | None = None,
) -> SecurityHeader:
    """A wsse:Security builder: one signed assertion per request, per partner's quirks;
    ``principal`` unless the call names its own."""

    def header(partner: Partner, url: str, speaker: Principal | None = None):
        return build_security_header(
            speaker or principal,
            credentials=credentials,
            policy=partner.issue_policy(audience=url),
            clock=clock,
            cache=cache,
            soap_ns=SOAP12,
        )

    return header


def build_fanout(
    config: Any, ports: Any, *, transport: Transport | None = None,
    principal: Principal | None = None,
) -> FanOut:
    security = None
    if getattr(config, "tls", None) is not None:
        credentials = SigningCredentials.from_pem(
            config.tls.private_key.read_bytes(), config.tls.certificate.read_bytes())
        security = xua_security(credentials, principal or system_principal(config),
                                ports.clock, AssertionCache())
    spool = config.data_dir / "spool"
    client = OutboundClient(
        transport or default_transport(config),
        security=security,
        max_message_bytes=config.limits.max_message_bytes,
        max_attachment_bytes=config.limits.max_attachment_bytes,
        spool_dir=str(spool) if spool.is_dir() else None,
    )
    directory = PartnerDirectory(list(config.partners), getattr(ports, "database", None))
    roles = getattr(config, "roles", frozenset())
    return FanOut(
        client,
        directory,
        deadline_seconds=getattr(config.limits, "request_timeout_seconds", DEFAULT_DEADLINE_S)
        * 0.8,
        correlations=getattr(ports, "patients", None),
        registry=getattr(ports, "registry", None) if "registry" in roles else None,
        repository=LocalRepository(ports.repository, config.community.oid)
        if "repository" in roles and getattr(ports, "repository", None) is not None else None,
    )


class _ChunkReader(io.RawIOBase):
    """A file-like view of a chunk iterator (what Attachment.open must return)."""

    def __init__(self, chunks) -> None:
        self._it = iter(chunks)
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self._buf:
            try:
                self._buf = next(self._it)
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n], self._buf = self._buf[:n], self._buf[n:]
        return n


class LocalRepository:
    """The local repository (profiles.xds.iti43) as the initiating gateway reads it."""

    def __init__(self, repository: Any, home_community_id: str) -> None:
        self.repository = repository
        self.home = f"urn:oid:{home_community_id.removeprefix('urn:oid:')}"

    def retrieve(self, documents):
        from profiles.xca.retrieve import RetrievedDocument, RetrieveResult
        from profiles.xds import iti43

        request = iti43.RetrieveRequest(tuple(
            iti43.DocumentRequest(d.repository_unique_id, d.document_unique_id, self.home)
            for d in documents))
        found = iti43.retrieve(request, self.repository, home_community_id=self.home)
        docs = tuple(
            RetrievedDocument(
                repository_unique_id=r.document.repository_unique_id,
                document_unique_id=r.document.unique_id,
                content=Attachment(
                    content_id="", content_type=r.document.mime_type, size=r.document.size,
                    sha1=r.document.sha1,
                    open=partial(lambda c: io.BufferedReader(_ChunkReader(c())), r.chunks)),
                mime_type=r.document.mime_type,
                home_community_id=self.home,
            )
            for r in found.documents
        )
        return RetrieveResult(docs, tuple(found.errors))
