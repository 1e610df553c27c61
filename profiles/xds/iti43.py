"""ITI-43 Retrieve Document Set (ITI TF-2b 3.43): the Document Repository's side.

parse: ``xds:RetrieveDocumentSetRequest`` -> the DocumentRequests, in order.
handle: look every requested uniqueId up in one go; a repositoryUniqueId that is
not ours is XDSUnknownRepositoryId, a homeCommunityId that is not ours
XDSUnknownCommunity, an unknown uniqueId XDSMissingDocument, each located at the
uniqueId. Some found and some not: PartialSuccess; none found: Failure.
serialize: ``xds:RetrieveDocumentSetResponse`` whose Documents are ``xop:Include``s
of MTOM parts streamed from the blob store (``OutgoingAttachment`` chunks), so a
retrieve never holds a document in memory.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from urllib.parse import quote

from lxml import etree

from profiles.atna.events import DocumentRef
from profiles.atna.facts import note
from profiles.error_forms import registry_error_list, response_status
from profiles.errors import (
    ErrorDetail,
    GatewayError,
    XDSMissingDocument,
    XDSRepositoryError,
    XDSUnknownCommunity,
    XDSUnknownRepositoryId,
)
from profiles.transaction import Context, ErrorForm, OutgoingAttachment, Reply, Transaction
from profiles.xds import codes as c
from profiles.xds.repository_ports import DocumentRepository, StoredDocument
from profiles.xop import XOP_NS

X = f"{{{c.XDS}}}"
MAX_DOCUMENTS = 1000  # DocumentRequests in one message


@dataclass(frozen=True)
class DocumentRequest:
    repository_unique_id: str
    document_unique_id: str
    home_community_id: str | None = None


@dataclass(frozen=True)
class RetrieveRequest:
    documents: tuple[DocumentRequest, ...]


@dataclass(frozen=True)
class RetrievedDocument:
    document: StoredDocument
    home_community_id: str
    chunks: Callable[[], Iterator[bytes]]


@dataclass(frozen=True)
class RetrieveResponse:
    documents: tuple[RetrievedDocument, ...] = ()
    errors: tuple[ErrorDetail, ...] = ()


def _text(el: etree._Element, name: str) -> str | None:
    value = el.findtext(X + name)
    return value.strip() if value is not None and value.strip() else None


def parse(body: etree._Element, ctx: Context | None = None) -> RetrieveRequest:
    if body.tag != X + "RetrieveDocumentSetRequest":
        raise XDSRepositoryError(
            f"expected RetrieveDocumentSetRequest, got {etree.QName(body).localname}"
        )
    requests: list[DocumentRequest] = []
    problems: list[GatewayError] = []
    for i, el in enumerate(body.iterchildren(X + "DocumentRequest")):
        if i == MAX_DOCUMENTS:
            raise XDSRepositoryError(f"at most {MAX_DOCUMENTS} documents per request")
        repository, document = _text(el, "RepositoryUniqueId"), _text(el, "DocumentUniqueId")
        if repository is None or document is None:
            missing = "RepositoryUniqueId" if repository is None else "DocumentUniqueId"
            problems.append(
                XDSRepositoryError(
                    f"DocumentRequest {i + 1} has no {missing}", location=document or ""
                )
            )
            continue
        requests.append(DocumentRequest(repository, document, _text(el, "HomeCommunityId")))
    if problems:
        raise GatewayError.collect(problems)
    if not requests:
        raise XDSRepositoryError("RetrieveDocumentSetRequest has no DocumentRequest")
    return RetrieveRequest(tuple(requests))


def retrieve(
    request: RetrieveRequest, repository: DocumentRepository, *, home_community_id: str
) -> RetrieveResponse:
    ours = repository.repository_unique_id
    wanted = [r.document_unique_id for r in request.documents if r.repository_unique_id == ours]
    held = repository.find(list(dict.fromkeys(wanted))) if wanted else {}
    found: list[RetrievedDocument] = []
    errors: list[ErrorDetail] = []
    for r in request.documents:
        error: GatewayError | None = None
        if r.home_community_id is not None and r.home_community_id != home_community_id:
            error = XDSUnknownCommunity(
                f"homeCommunityId {r.home_community_id} is not this community "
                f"({home_community_id})",
                location=r.document_unique_id,
            )
        elif r.repository_unique_id != ours:
            error = XDSUnknownRepositoryId(
                f"repositoryUniqueId {r.repository_unique_id} is not this repository ({ours})",
                location=r.document_unique_id,
            )
        elif r.document_unique_id not in held:
            error = XDSMissingDocument(
                f"document {r.document_unique_id} is not in repository {ours}",
                location=r.document_unique_id,
            )
        if error is not None:
            errors.extend(error.details)
            continue
        doc = held[r.document_unique_id]
        found.append(RetrievedDocument(doc, home_community_id, partial(repository.chunks, doc)))
    return RetrieveResponse(tuple(found), tuple(errors))


def handle(request: RetrieveRequest, ctx: Context) -> RetrieveResponse:
    found = retrieve(request, ctx.ports.repository, home_community_id=ctx.home_community_id)
    return noted(ctx, request, found)


def noted(ctx: Context | None, request: RetrieveRequest, response: RetrieveResponse
          ) -> RetrieveResponse:
    """Note the audit facts of a retrieve (ITI TF-2b 3.43.5.1.3) and return ``response``:
    the documents returned, or when none was, those asked for; any error makes the
    outcome a (minor) failure."""
    documents = [
        DocumentRef(d.document.unique_id, d.document.repository_unique_id, d.home_community_id)
        for d in response.documents
    ] or [
        DocumentRef(r.document_unique_id, r.repository_unique_id, r.home_community_id)
        for r in request.documents
    ]
    note(ctx, documents=documents, outcome="error" if response.errors else None)
    return response


def retrieve_response_to_xml(
    response: RetrieveResponse, content_ids: list[str] | None = None
) -> etree._Element:
    """The response; ``content_ids[i]`` is the MTOM part of document ``i``."""
    root = etree.Element(
        X + "RetrieveDocumentSetResponse", nsmap={"xds": c.XDS, "rs": c.RS, "xop": XOP_NS}
    )
    status = etree.SubElement(root, f"{{{c.RS}}}RegistryResponse")
    status.set("status", response_status(list(response.errors), partial=bool(response.documents)))
    if response.errors:
        status.append(registry_error_list(list(response.errors)))
    for i, item in enumerate(response.documents):
        doc = item.document
        el = etree.SubElement(root, X + "DocumentResponse")
        etree.SubElement(el, X + "HomeCommunityId").text = item.home_community_id
        etree.SubElement(el, X + "RepositoryUniqueId").text = doc.repository_unique_id
        etree.SubElement(el, X + "DocumentUniqueId").text = doc.unique_id
        etree.SubElement(el, X + "mimeType").text = doc.mime_type
        document = etree.SubElement(el, X + "Document")
        if content_ids is not None:
            etree.SubElement(document, f"{{{XOP_NS}}}Include", href=href(content_ids[i]))
    return root


def href(content_id: str) -> str:
    return "cid:" + quote(content_id, safe="@.-_~")


def _part_type(mime_type: str) -> str:
    """The MIME part's Content-Type: the document's mimeType when it can be a header."""
    safe = mime_type.isascii() and not any(ch in mime_type for ch in "\r\n")
    return mime_type if safe else "application/octet-stream"


def serialize(response: RetrieveResponse) -> Reply:
    token = uuid.uuid4().hex
    ids = [f"{i}.{token}@ihe-gateway" for i in range(len(response.documents))]
    attachments = tuple(
        OutgoingAttachment(
            cid, _part_type(item.document.mime_type), item.chunks, item.document.size
        )
        for cid, item in zip(ids, response.documents, strict=True)
    )
    return Reply(retrieve_response_to_xml(response, ids), attachments)


ITI_43 = Transaction(
    id="ITI-43",
    name="Retrieve Document Set",
    action="urn:ihe:iti:2007:RetrieveDocumentSet",
    reply_action="urn:ihe:iti:2007:RetrieveDocumentSetResponse",
    error_form=ErrorForm.RETRIEVE_RESPONSE,
    parse=parse,
    handle=handle,
    serialize=serialize,
    mtom_response=True,
)
