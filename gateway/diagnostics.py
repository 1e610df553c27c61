"""DIAG-MTOM, the MTOM echo: an operator's tool for measuring the MTOM transport.

It is not an IHE transaction. It answers at ``/diagnostics/mtom-echo`` only when
``[diagnostics] enabled = true``, and exists so an operator (and
``bench/mtom.py``) can push large attachments through the real server - TLS,
gunicorn, the streaming MTOM reader and writer - and check that the bytes come
back unchanged, with the server's hash and size, while watching memory.

Request::

    <diag:EchoRequest xmlns:diag="urn:ihe-gateway:diagnostics">
      <diag:Part><xop:Include href="cid:..."/></diag:Part>   (or inline base64)
    </diag:EchoRequest>

Response: ``<diag:EchoResponse>`` with one ``<diag:Part sha1=".." size=".."
contentType="..">`` per request part, in order, each an ``xop:Include`` of the
same bytes sent back as an attachment streamed from the spooled file.

Like a profile module it imports no web framework; it only reads the spooled
attachments through ``Attachment.open``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import quote

from lxml import etree

from profiles.errors import SoapFault
from profiles.transaction import (
    Context,
    ErrorForm,
    OutgoingAttachment,
    Reply,
    Transaction,
)
from profiles.xop import XOP_NS, content_id_from_href

DIAG_NS = "urn:ihe-gateway:diagnostics"

CHUNK = 64 * 1024
MAX_PARTS = 100


@dataclass(frozen=True)
class EchoPart:
    """One part to echo: its bytes (lazily), as the server received and hashed them."""

    content_type: str
    size: int
    sha1: str
    chunks: Callable[[], Iterator[bytes]]


@dataclass(frozen=True)
class EchoRequest:
    parts: tuple[EchoPart, ...]


EchoResponse = EchoRequest  # the echo answers with exactly what it was given


def _sender(reason: str) -> SoapFault:
    return SoapFault("Sender", reason)


def _file_chunks(opener: Callable[[], Any]) -> Iterator[bytes]:
    with opener() as f:
        while chunk := f.read(CHUNK):
            yield chunk


def _memory_chunks(data: bytes) -> Iterator[bytes]:
    for i in range(0, len(data), CHUNK):
        yield data[i : i + CHUNK]


def parse(body: etree._Element, ctx: Context) -> EchoRequest:
    """Resolve each Part to a spooled attachment or its inline base64 bytes."""
    if body.tag != f"{{{DIAG_NS}}}EchoRequest":
        raise _sender("Expected a diag:EchoRequest")
    parts: list[EchoPart] = []
    for el in body.iterchildren(f"{{{DIAG_NS}}}Part"):
        if len(parts) == MAX_PARTS:
            raise _sender(f"At most {MAX_PARTS} parts can be echoed")
        parts.append(_part(el, ctx))
    return EchoRequest(tuple(parts))


def _part(el: etree._Element, ctx: Context) -> EchoPart:
    children = [c for c in el if isinstance(c.tag, str)]
    if not children:
        try:
            data = base64.b64decode("".join((el.text or "").split()), validate=True)
        except (binascii.Error, ValueError):
            raise _sender("A Part holds invalid base64") from None
        digest = hashlib.sha1(data, usedforsecurity=False).hexdigest()
        chunks = partial(_memory_chunks, data)
        return EchoPart("application/octet-stream", len(data), digest, chunks)
    if len(children) != 1 or children[0].tag != f"{{{XOP_NS}}}Include":
        raise _sender("A Part holds one xop:Include or base64 text")
    attachment = ctx.attachments.get(content_id_from_href(children[0].get("href", "")))
    if attachment is None:
        raise _sender("A Part refers to an attachment that is not in the message")
    return EchoPart(
        attachment.content_type,
        attachment.size,
        attachment.sha1,
        partial(_file_chunks, attachment.open),
    )


def handle(request: EchoRequest, ctx: Context) -> EchoResponse:
    return request


def serialize(response: EchoResponse) -> Reply:
    root = etree.Element(f"{{{DIAG_NS}}}EchoResponse", nsmap={"diag": DIAG_NS, "xop": XOP_NS})
    token = uuid.uuid4().hex
    attachments = []
    for i, part in enumerate(response.parts):
        cid = f"{i}.{token}@diagnostics.ihe-gateway"
        el = etree.SubElement(
            root,
            f"{{{DIAG_NS}}}Part",
            sha1=part.sha1,
            size=str(part.size),
            contentType=part.content_type,
        )
        etree.SubElement(el, f"{{{XOP_NS}}}Include", href="cid:" + quote(cid, safe="@.-_~"))
        attachments.append(OutgoingAttachment(cid, part.content_type, part.chunks, part.size))
    return Reply(root, tuple(attachments))


MTOM_ECHO = Transaction(
    id="DIAG-MTOM",
    name="MTOM echo",
    action="urn:ihe-gateway:diagnostics:MtomEcho",
    reply_action="urn:ihe-gateway:diagnostics:MtomEchoResponse",
    error_form=ErrorForm.SOAP_FAULT,
    parse=parse,
    handle=handle,
    serialize=serialize,
    mtom_response=True,
)
