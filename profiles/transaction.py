"""The descriptor every transaction module ends with, and the context it runs in.

A transaction is written as ``parse(body) -> Request``, ``handle(request, ctx)
-> Response`` and ``serialize(response) -> element``; the descriptor names them
with the actions and error form (audit codes per transaction id are in
``profiles.atna.codes``), and ``gateway/dispatch.py`` lists
descriptors in one table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from lxml import etree


class ErrorForm(StrEnum):
    """How a GatewayError is answered for this transaction."""

    REGISTRY_RESPONSE = "rs:RegistryResponse"
    ADHOC_QUERY_RESPONSE = "query:AdhocQueryResponse"
    RETRIEVE_RESPONSE = "xds:RetrieveDocumentSetResponse"
    HL7V3_ACK = "hl7v3:acknowledgement"
    SOAP_FAULT = "soap:Fault"


@dataclass(frozen=True)
class Attachment:
    """A binary MIME part of an MTOM message, already spooled and hashed."""

    content_id: str
    content_type: str
    size: int
    sha1: str
    open: Callable[[], Any]  # returns a binary file object positioned at 0
    # The spooled file, for a store that moves it into place instead of copying
    # (FileBlobStore.adopt); None when the bytes are not in a file of their own.
    path: str | None = None


@dataclass(frozen=True)
class OutgoingAttachment:
    """A binary part to send as MTOM; ``chunks`` yields its bytes lazily."""

    content_id: str
    content_type: str
    chunks: Callable[[], Iterator[bytes]]
    size: int | None = None


SPLICE_MARK = b"<!--ihe-gateway:splice-->"


def splice_point() -> etree._Element:
    """The comment a ``Reply.body`` holds where its ``fragments`` go."""
    return etree.Comment(SPLICE_MARK[4:-3].decode())


def spliced(xml: bytes, fragments: tuple[bytes, ...]) -> list[bytes]:
    """``xml`` (serialised with its one splice point) with ``fragments`` in its place."""
    head, mark, tail = xml.partition(SPLICE_MARK)
    if not mark:
        raise ValueError("the reply has fragments but no splice point")
    return [head, *fragments, tail]


@dataclass(frozen=True)
class Reply:
    """What ``serialize`` returns when the answer carries attachments or fragments.

    ``fragments``: self-contained XML (each declares the namespaces it uses), already
    serialised, written in order where ``body`` holds ``splice_point()``. An initiating
    gateway relays thousands of partners' objects this way: serialised in the threads
    that read them, never rebuilt as one tree, streamed without one joined copy.
    """

    body: etree._Element
    attachments: tuple[OutgoingAttachment, ...] = ()
    fragments: tuple[bytes, ...] = ()

    def body_bytes(self) -> bytes:
        """The body with its fragments in place, joined (for tests and small answers)."""
        xml = etree.tostring(self.body)
        return b"".join(spliced(xml, self.fragments)) if self.fragments else xml


@dataclass(frozen=True)
class Context:
    """What a handler may know about the request besides its body."""

    request_id: str
    action: str
    message_id: str | None
    peer_subject: str | None
    home_community_id: str
    received_at: datetime
    attachments: dict[str, Attachment] = field(default_factory=dict)
    ports: Any = None  # the gateway's port bundle (registry, repository, patients...)
    principal: Any = None  # the verified XUA Principal, when the request carried one
    audit: Any = None  # the request's AuditSink: handlers record their events here


@dataclass(frozen=True)
class Transaction:
    """One IHE transaction as the dispatcher sees it."""

    id: str  # "ITI-18"
    name: str  # "Registry Stored Query"
    action: str
    reply_action: str
    error_form: ErrorForm
    parse: Callable[[etree._Element, Context], Any] | None = None
    handle: Callable[[Any, Context], Any] | None = None
    serialize: Callable[[Any], etree._Element | Reply] | None = None
    mtom_response: bool = False
    # Builds the error answer for forms that need the request (HL7 v3 acknowledgements):
    # called with the parsed request, or None when parsing itself failed.
    error_reply: Callable[[Any, Any], etree._Element] | None = None

    @property
    def implemented(self) -> bool:
        return self.parse is not None and self.handle is not None and self.serialize is not None
