"""ITI-41 Provide and Register Document Set-b (ITI TF-2b 3.41): the Document
Repository's side, and the XDR Document Recipient's (ITI TF-2b 3.41 point to
point, ITI TF-3 4.2.3 "XDR" column, Metadata-Limited sources allowed).

parse: ``xds:ProvideAndRegisterDocumentSetRequest`` -> the Submission and each
Document's content, an MTOM attachment (``xop:Include``, already spooled and
hashed by the transport) or inline base64 bytes.
handle: validate for the receiving actor (every problem at once, including the
Document/DocumentEntry pairing: XDSMissingDocument, XDSMissingDocumentMetadata);
store each document's bytes (``DocumentRepository.store``), compare a submitted
hash and size with the measured ones (XDSRepositoryMetadataError), set hash, size
and repositoryUniqueId on each DocumentEntry, then register (the repository) or
deliver (the XDR recipient) all or nothing. Answer: ``rs:RegistryResponse``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from lxml import etree

from profiles.errors import GatewayError, XDSMissingDocument
from profiles.transaction import Attachment, Context, ErrorForm, Transaction
from profiles.xds.ebrim import XopInclude, parse_provide_and_register, registry_response_to_xml
from profiles.xds.iti42 import note_submission
from profiles.xds.metadata import DocumentEntry, Submission
from profiles.xds.repository_ports import DocumentRepository, StoredDocument
from profiles.xds.rules import Actor
from profiles.xds.validate import check_document, metadata_error, validate_submission
from profiles.xds.values import dtm_from_datetime

Content = bytes | Attachment


@dataclass(frozen=True)
class ProvideAndRegisterRequest:
    submission: Submission
    documents: dict[str, Content]  # by Document/@id (= ExtrinsicObject/@id)
    problems: tuple[GatewayError, ...] = ()  # what the codec could not model


@dataclass(frozen=True)
class ProvideAndRegisterResponse:
    """Success; failures travel as GatewayError to the dispatcher's error form."""

    documents: tuple[StoredDocument, ...] = ()


def parse_request(
    body: etree._Element, ctx: Context, *, actor: Actor = "repository"
) -> ProvideAndRegisterRequest:
    """The request with each ``xop:Include`` resolved to its attachment; an include
    naming no part of the message is an XDSMissingDocument."""
    problems: list[GatewayError] = []
    submission, found = parse_provide_and_register(
        body, problems=problems, error=metadata_error(actor)
    )
    documents: dict[str, Content] = {}
    for doc_id, content in found.items():
        if isinstance(content, XopInclude):
            attachment = ctx.attachments.get(content.content_id)
            if attachment is None:
                problems.append(
                    XDSMissingDocument(
                        f"Document {doc_id} refers to {content.href!r}, "
                        "which is not a part of the message",
                        location=doc_id,
                    )
                )
                continue
            documents[doc_id] = attachment
        else:
            documents[doc_id] = content
    note_submission(ctx, submission)
    return ProvideAndRegisterRequest(submission, documents, tuple(problems))


def provide_and_register(
    request: ProvideAndRegisterRequest,
    repository: DocumentRepository,
    *,
    actor: Actor,
    time: str,
    audit=None,
) -> ProvideAndRegisterResponse:
    """Validate, store, complete the metadata and register (or deliver); raise every
    problem as one GatewayError. Bytes stored before a later failure are orphans the
    blob sweep removes."""
    sub = request.submission
    errors = [*request.problems]
    errors += validate_submission(sub, actor=actor, documents=_paired_ids(request))
    if errors:
        raise GatewayError.collect(errors)
    repository_id = repository.repository_unique_id
    entries: list[DocumentEntry] = []
    stored: list[StoredDocument] = []
    for entry in sub.document_entries:
        content = request.documents.get(entry.entry_uuid)
        if content is None:  # an on-demand entry: no bytes travel with it
            entries.append(entry)
            continue
        blob = repository.store(content)
        errors += check_document(entry, sha1=blob.sha1, size=blob.size, actor=actor)
        entries.append(
            replace(entry, hash=blob.sha1, size=blob.size, repository_unique_id=repository_id)
        )
        stored.append(
            StoredDocument(
                unique_id=entry.unique_id or "",
                sha1=blob.sha1,
                size=blob.size,
                mime_type=entry.mime_type or "application/octet-stream",
                repository_unique_id=repository_id,
            )
        )
    if errors:
        raise GatewayError.collect(errors)
    complete = replace(sub, document_entries=tuple(entries))
    if actor == "xdr_recipient":
        repository.deliver(complete, stored, time=time, audit=audit)
    else:
        repository.register(complete, stored, time=time, audit=audit)
    return ProvideAndRegisterResponse(tuple(stored))


def _paired_ids(request: ProvideAndRegisterRequest) -> list[str]:
    """Document ids for the pairing rules; an include that named no part already
    counts as missing (reported once, by ``parse_request``)."""
    unresolved = {p.location for p in request.problems if isinstance(p, XDSMissingDocument)}
    return [*request.documents, *unresolved]


def parse(body: etree._Element, ctx: Context) -> ProvideAndRegisterRequest:
    return parse_request(body, ctx, actor="repository")


def parse_xdr(body: etree._Element, ctx: Context) -> ProvideAndRegisterRequest:
    return parse_request(body, ctx, actor="xdr_recipient")


def handle(request: ProvideAndRegisterRequest, ctx: Context) -> ProvideAndRegisterResponse:
    return provide_and_register(
        request,
        ctx.ports.repository,
        actor="repository",
        time=dtm_from_datetime(ctx.received_at),
        audit=ctx.audit,
    )


def handle_xdr(request: ProvideAndRegisterRequest, ctx: Context) -> ProvideAndRegisterResponse:
    return provide_and_register(
        request,
        ctx.ports.repository,
        actor="xdr_recipient",
        time=dtm_from_datetime(ctx.received_at),
        audit=ctx.audit,
    )


def serialize(response: ProvideAndRegisterResponse) -> etree._Element:
    return registry_response_to_xml()


_ACTION = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
_REPLY = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-bResponse"

ITI_41 = Transaction(
    id="ITI-41",
    name="Provide and Register Document Set-b",
    action=_ACTION,
    reply_action=_REPLY,
    error_form=ErrorForm.REGISTRY_RESPONSE,
    parse=parse,
    handle=handle,
    serialize=serialize,
)

# XDR (/xdr): the same transaction received point to point, with XDR's metadata rules.
ITI_41_XDR = Transaction(
    id="ITI-41",
    name="Provide and Register Document Set-b (XDR)",
    action=_ACTION,
    reply_action=_REPLY,
    error_form=ErrorForm.REGISTRY_RESPONSE,
    parse=parse_xdr,
    handle=handle_xdr,
    serialize=serialize,
)
