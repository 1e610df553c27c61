"""The SOAP pipeline for one request: bytes in, bytes out.

read (plain or MTOM) -> envelope -> WS-Addressing -> route by action ->
transaction parse/handle/serialize -> reply envelope (plain or MTOM).
Every failure is turned into its answer here, in one place: a GatewayError
becomes the transaction's error form, a SoapFault a fault, anything else a
Receiver fault that names the request id and nothing more.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from lxml import etree

from gateway.dispatch import Route
from gateway.soap import mtom
from gateway.soap.addressing import Addressing, addressing_fault, read_addressing, reply_headers
from gateway.soap.envelope import Envelope, SoapVersion, build_envelope, parse_envelope
from gateway.soap.faults import fault_envelope, http_status
from profiles.error_forms import error_response
from profiles.errors import GatewayError, SoapFault, receiver_fault, sender_fault
from profiles.transaction import (
    Context,
    ErrorForm,
    OutgoingAttachment,
    Reply,
    Transaction,
    spliced,
)

if TYPE_CHECKING:
    from gateway.audit.hook import RequestAudit

log = logging.getLogger("gateway.soap")


@dataclass(frozen=True)
class SoapRequest:
    path: str
    content_type: str
    stream: BinaryIO
    content_length: int | None
    soap_action: str | None  # SOAP 1.1 SOAPAction header, quotes removed
    request_id: str
    peer_subject: str | None = None
    peer_certificate: bytes | None = None  # DER of the verified TLS client certificate


@dataclass
class SoapResponse:
    status: int
    content_type: str
    body: Iterable[bytes]
    action: str | None = None
    transaction: str | None = None
    outcome: str = "success"  # success | error | fault
    cleanup: list = field(default_factory=list)
    # What the audit record needs to know about the exchange.
    addressing: Addressing | None = None
    principal: Any = None
    fault_reason: str | None = None  # internal reason, for the audit trail only
    audited: bool = False  # the refusal was already recorded where it happened (XUA gate)


@dataclass(frozen=True)
class Limits:
    max_message_bytes: int
    max_attachment_bytes: int
    spool_dir: str | None = None


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _version_for(media_type: str) -> SoapVersion:
    if media_type == "application/soap+xml":
        return SoapVersion.SOAP12
    if media_type == "text/xml":
        return SoapVersion.SOAP11
    raise SoapFault("Sender", "Unsupported content type for a SOAP request")


def _read_plain(req: SoapRequest, limits: Limits) -> bytes:
    if req.content_length is not None and req.content_length > limits.max_message_bytes:
        raise sender_fault("Message exceeds the size limit")
    data = req.stream.read(limits.max_message_bytes + 1)
    if len(data) > limits.max_message_bytes:
        raise sender_fault("Message exceeds the size limit")
    return data


class SecurityGate(Protocol):
    """Checks a request's WS-Security header before any handler runs (XUA).

    Returns the verified principal (or None where the route needs none);
    raises SoapFault to refuse. Given the routed ``transaction`` and the request's
    ``audit``, it may leave a read-only transaction's replay tokens to the audit's
    commit (``RequestAudit.answered`` then returns the refusal of a late replay).
    """

    def __call__(
        self, route: Route, envelope: Envelope, req: SoapRequest, *, transaction: Any = None,
        audit: Any = None,
    ) -> Any: ...


def handle_soap(
    route: Route,
    req: SoapRequest,
    *,
    home_community_id: str,
    limits: Limits,
    ports=None,
    security: SecurityGate | None = None,
    audit: RequestAudit | None = None,
) -> SoapResponse:
    """Answer one SOAP request on ``route``; never raises.

    ``audit`` (the request's ``RequestAudit``) travels in the context so handlers and ports can
    note their facts; its record joins the data commit of a request that writes,
    and is written (``answered``) before this returns, so before the answer is sent.
    """
    version = SoapVersion.SOAP12
    addressing: Addressing | None = None
    txn: Transaction | None = None
    principal = None
    cleanup: list = []
    try:
        media = _media_type(req.content_type)
        attachments = {}
        if mtom.is_multipart(media):
            message = mtom.read_multipart(
                req.stream,
                req.content_type,
                max_root_bytes=limits.max_message_bytes,
                max_attachment_bytes=limits.max_attachment_bytes,
                spool_dir=limits.spool_dir,
            )
            cleanup.append(message.close)
            root, attachments = message.root, message.attachments
            version = _version_for(message.root_media_type)
        else:
            version = _version_for(media)
            root = _read_plain(req, limits)
        envelope = parse_envelope(root, max_bytes=limits.max_message_bytes)
        version = envelope.version
        fallback = req.soap_action if version is SoapVersion.SOAP11 else None
        addressing = read_addressing(envelope.headers, fallback_action=fallback)
        txn = route.for_action(addressing.action)
        if txn is None:
            raise addressing_fault(
                "ActionNotSupported",
                f"The action is not supported at {route.path}",
                ProblemAction=addressing.action,
            )
        principal = (security(route, envelope, req, transaction=txn, audit=audit)
                     if security is not None else None)
        if audit is not None:  # a bound data commit builds the record from this and notes
            audit.known(transaction=txn.id, reply_to=addressing.reply_to,
                        message_id=addressing.message_id, principal=principal,
                        action=addressing.action)
        ctx = Context(
            request_id=req.request_id,
            action=addressing.action,
            message_id=addressing.message_id,
            peer_subject=req.peer_subject,
            home_community_id=home_community_id,
            received_at=datetime.now(UTC),
            attachments=attachments,
            ports=ports,
            principal=principal,
            audit=audit,
        )
        with audit.serving() if audit is not None else nullcontext():  # data carries it
            response = _run(txn, envelope, ctx)
    except SoapFault as fault:
        response = _fault_response(fault, version, addressing)
    except Exception:
        log.exception("unexpected error", extra={"request_id": req.request_id})
        fault = receiver_fault(f"Internal error; request id {req.request_id}")
        response = _fault_response(fault, version, addressing)
        response.fault_reason = "unexpected error"
    response.cleanup = cleanup
    response.addressing = addressing
    response.principal = principal
    if txn is not None:
        response.transaction = txn.id
    if audit is not None:  # the record is committed before the answer leaves
        refusal = audit.answered(response)
        if refusal is not None:  # a replay found at that commit: the gate's refusal instead
            response = _instead(response, _fault_response(refusal, version, addressing))
    return response


def _instead(answer: SoapResponse, refusal: SoapResponse) -> SoapResponse:
    """``refusal`` sent in place of ``answer``, which is dropped unsent (its files freed)."""
    close = getattr(answer.body, "close", None)
    if close is not None:
        close()
    refusal.cleanup, refusal.transaction = answer.cleanup, answer.transaction
    refusal.addressing, refusal.audited = answer.addressing, True
    return refusal


def _run(txn: Transaction, envelope: Envelope, ctx: Context) -> SoapResponse:
    if not txn.implemented:
        raise receiver_fault(f"{txn.id} {txn.name} is not implemented by this gateway yet")
    if envelope.body is None:
        raise sender_fault("The SOAP Body is empty")
    assert txn.parse and txn.handle and txn.serialize
    outcome = "success"
    request = None
    try:
        request = txn.parse(envelope.body, ctx)
        result = txn.serialize(txn.handle(request, ctx))
    except GatewayError as error:
        result = _error_answer(txn, request, error)
        outcome = "error"
    reply = result if isinstance(result, Reply) else Reply(result)
    headers = reply_headers(txn.reply_action, ctx.message_id)
    env = build_envelope(envelope.version, reply.body, headers)
    content_type, body = _serialise(
        env, envelope.version, reply.attachments, txn.mtom_response, txn.reply_action,
        reply.fragments,
    )
    return SoapResponse(200, content_type, body, txn.reply_action, txn.id, outcome)


def _error_answer(txn: Transaction, request, error: GatewayError) -> etree._Element:
    """The transaction's own error form; a SOAP fault when it has none."""
    if txn.error_reply is not None:
        return txn.error_reply(request, error)
    if txn.error_form in (ErrorForm.SOAP_FAULT, ErrorForm.HL7V3_ACK):
        raise sender_fault(error.context)
    return error_response(txn.error_form, error)


def _serialise(
    env: etree._Element,
    version: SoapVersion,
    attachments: tuple[OutgoingAttachment, ...],
    as_mtom: bool,
    action: str,
    fragments: tuple[bytes, ...] = (),
) -> tuple[str, Iterable[bytes]]:
    xml = etree.tostring(env, xml_declaration=True, encoding="UTF-8")
    if as_mtom or attachments:
        if fragments:
            xml = b"".join(spliced(xml, fragments))
        return mtom.write_multipart(
            xml, attachments, soap_media_type=version.content_type, action=action
        )
    ct = version.content_type + "; charset=UTF-8"
    if version is SoapVersion.SOAP12:
        ct += f'; action="{action}"'
    return ct, _Blocks(spliced(xml, fragments)) if fragments else [xml]


class _Blocks:
    """A body of many pre-serialised parts, written in blocks of at least 64 KiB (not
    one write per part, not one joined copy); ``length`` gives the Content-Length."""

    def __init__(self, parts: list[bytes]) -> None:
        self.parts = parts
        self.length = sum(map(len, parts))

    def __iter__(self) -> Iterator[bytes]:
        block: list[bytes] = []
        size = 0
        for part in self.parts:
            block.append(part)
            size += len(part)
            if size >= 65536:
                yield b"".join(block)
                block, size = [], 0
        if block:
            yield b"".join(block)


def _fault_response(
    fault: SoapFault, version: SoapVersion, addressing: Addressing | None
) -> SoapResponse:
    env = fault_envelope(fault, version, relates_to=addressing.message_id if addressing else None)
    xml = etree.tostring(env, xml_declaration=True, encoding="UTF-8")
    return SoapResponse(
        http_status(fault, version),
        version.content_type + "; charset=UTF-8",
        [xml],
        action=addressing.action if addressing else None,
        outcome="fault",
        fault_reason=getattr(fault, "internal_reason", None) or fault.reason,
        audited=getattr(fault, "audited", False),
    )


def iter_and_cleanup(response: SoapResponse) -> Iterator[bytes]:
    """Yield the body, then release spooled files whatever happens."""
    try:
        yield from response.body
    finally:
        for fn in response.cleanup:
            fn()
