"""RetrieveDocumentSet request and response (ITI-43 and ITI-39, ITI TF-2b 3.43/3.39).

The same two messages serve ITI-43 (consumer -> repository, or consumer -> our
initiating gateway) and ITI-39 (gateway -> gateway). Parsing a partner's answer is
tolerant of what real responders send (``../shared/notes/peer-metriport.md`` §6, §8):
``urn:oid:`` doubled or missing, ``[...]``-bracketed ids, an absent or "undefined"
mimeType, inline base64 where XOP was expected, a status written without its URN.
A DocumentResponse that cannot be used is dropped and reported as a Warning, so one
bad entry never costs the others.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from lxml import etree

from profiles.error_forms import registry_error_list, response_status
from profiles.errors import ErrorDetail, Severity, XDSRepositoryError
from profiles.oid import as_hcid, bare_oid
from profiles.transaction import Attachment, OutgoingAttachment, Reply
from profiles.xds import iti43
from profiles.xds.iti43 import DocumentRequest
from profiles.xop import XOP_INCLUDE, XOP_NS, content_id_from_href

XDS = "urn:ihe:iti:xds-b:2007"
RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
X = f"{{{XDS}}}"
STATUSES = {
    "Success": "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success",
    "Failure": "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure",
    "PartialSuccess": "urn:ihe:iti:2007:ResponseStatusType:PartialSuccess",
}


@dataclass(frozen=True)
class RetrievedDocument:
    repository_unique_id: str
    document_unique_id: str
    content: Attachment  # spooled MTOM part, or inline bytes wrapped as one
    mime_type: str = "application/octet-stream"
    home_community_id: str | None = None
    new_repository_unique_id: str | None = None  # on-demand documents
    new_document_unique_id: str | None = None


@dataclass(frozen=True)
class RetrieveResult:
    documents: tuple[RetrievedDocument, ...] = ()
    errors: tuple[ErrorDetail, ...] = ()
    status: str = STATUSES["Success"]


def inline(data: bytes, content_type: str = "application/octet-stream") -> Attachment:
    """Bytes as an Attachment (what an inline ``Document`` becomes)."""
    return Attachment(
        content_id="",
        content_type=content_type,
        size=len(data),
        sha1=hashlib.sha1(data, usedforsecurity=False).hexdigest(),
        open=lambda: io.BytesIO(data),
    )


def parse_retrieve_request(el: etree._Element) -> tuple[DocumentRequest, ...]:
    """``xds:RetrieveDocumentSetRequest`` read as ITI-43 reads it (``iti43.parse``), with
    the ids as peers mangle them made plain: the repository id bare, the homeCommunityId
    in our ``urn:oid:`` form (XCA routes and compares by it)."""
    return tuple(
        DocumentRequest(bare_oid(r.repository_unique_id), r.document_unique_id,
                        as_hcid(r.home_community_id))
        for r in iti43.parse(el).documents
    )


def retrieve_request_to_xml(
    requests: Sequence[DocumentRequest], *, urn_oid: bool = True, repository_urn_oid: bool = False
) -> etree._Element:
    """The request; ``urn_oid``/``repository_urn_oid`` choose how ids are written (quirks)."""
    el = etree.Element(X + "RetrieveDocumentSetRequest", nsmap={"xds": XDS})
    for r in requests:
        dr = etree.SubElement(el, X + "DocumentRequest")
        if r.home_community_id:
            bare = bare_oid(r.home_community_id)
            etree.SubElement(dr, X + "HomeCommunityId").text = (
                f"urn:oid:{bare}" if urn_oid else bare
            )
        repo = r.repository_unique_id
        etree.SubElement(dr, X + "RepositoryUniqueId").text = (
            f"urn:oid:{repo}" if repository_urn_oid else repo
        )
        etree.SubElement(dr, X + "DocumentUniqueId").text = r.document_unique_id
    return el


def _status(value: str | None) -> str:
    tail = (value or "").strip().rsplit(":", 1)[-1]
    if tail not in STATUSES:
        raise XDSRepositoryError(f"response status {value!r} is not a ResponseStatusType")
    return STATUSES[tail]


def _errors(holder: etree._Element | None) -> list[ErrorDetail]:
    if holder is None:
        return []
    out = []
    for err in holder.iterfind(f"{{{RS}}}RegistryErrorList/{{{RS}}}RegistryError"):
        severity = (err.get("severity") or "").rsplit(":", 1)[-1]
        out.append(ErrorDetail(
            (err.get("errorCode") or "XDSRepositoryError").strip(),
            " ".join((err.get("codeContext") or "").split())[:500],
            Severity.WARNING if severity == "Warning" else Severity.ERROR,
            (err.get("location") or "").strip(),
        ))
    return out


def parse_retrieve_response(
    el: etree._Element, attachments: Mapping[str, Attachment], *, home_community_id: str | None
) -> RetrieveResult:
    """A partner's ``xds:RetrieveDocumentSetResponse``; ``home_community_id`` is who we asked."""
    if etree.QName(el).localname != "RetrieveDocumentSetResponse":
        raise XDSRepositoryError(f"expected RetrieveDocumentSetResponse, got {el.tag}")
    rr = el.find(f"{{{RS}}}RegistryResponse")
    if rr is None:
        raise XDSRepositoryError("RetrieveDocumentSetResponse has no RegistryResponse")
    status = _status(rr.get("status"))
    errors = _errors(rr)
    documents = []
    for i, dr in enumerate(el.iterfind(X + "DocumentResponse")):
        try:
            documents.append(_document(dr, attachments, home_community_id))
        except ValueError as exc:
            errors.append(ErrorDetail(
                "XDSRepositoryError", f"DocumentResponse {i + 1} dropped: {exc}",
                Severity.WARNING, home_community_id or "",
            ))
    return RetrieveResult(tuple(documents), tuple(errors), status)


def _document(dr: etree._Element, attachments, asked: str | None) -> RetrievedDocument:
    repo = bare_oid(dr.findtext(X + "RepositoryUniqueId"))
    doc = bare_oid(dr.findtext(X + "DocumentUniqueId"))
    if not doc:
        raise ValueError("no DocumentUniqueId")
    mime = (dr.findtext(X + "mimeType") or "").strip()
    if not mime or mime == "undefined" or "/" not in mime:
        mime = "application/octet-stream"
    document = dr.find(X + "Document")
    if document is None:
        raise ValueError("no Document")
    include = document.find(XOP_INCLUDE)
    if include is not None:
        cid = content_id_from_href(include.get("href", ""))
        content = attachments.get(cid)
        if content is None:
            raise ValueError(f"XOP reference {cid!r} names no MIME part")
    else:
        text = "".join(document.itertext()).strip()
        try:
            data = base64.b64decode(text, validate=False) if text else b""
        except (binascii.Error, ValueError):
            raise ValueError("inline Document is not base64") from None
        content = inline(data, mime)
    return RetrievedDocument(
        repository_unique_id=repo or bare_oid(asked),
        document_unique_id=doc,
        content=content,
        mime_type=mime,
        home_community_id=as_hcid(dr.findtext(X + "HomeCommunityId")) or asked,
        new_repository_unique_id=bare_oid(dr.findtext(X + "NewRepositoryUniqueId")) or None,
        new_document_unique_id=bare_oid(dr.findtext(X + "NewDocumentUniqueId")) or None,
    )


def _chunks(att: Attachment, size: int = 64 * 1024):
    def gen():
        with att.open() as f:
            while chunk := f.read(size):
                yield chunk

    return gen


def retrieve_response_to_reply(
    documents: Sequence[RetrievedDocument], errors: Sequence[ErrorDetail] = (), *,
    partial: bool = False,
) -> Reply:
    """``xds:RetrieveDocumentSetResponse`` with every document as an MTOM part."""
    el = etree.Element(X + "RetrieveDocumentSetResponse", nsmap={"xds": XDS, "rs": RS})
    rr = etree.SubElement(el, f"{{{RS}}}RegistryResponse")
    rr.set("status", response_status(list(errors), partial=partial or bool(documents)))
    if errors:
        rr.append(registry_error_list(list(errors)))
    outgoing = []
    for i, d in enumerate(documents):
        dr = etree.SubElement(el, X + "DocumentResponse")
        if d.home_community_id:
            etree.SubElement(dr, X + "HomeCommunityId").text = d.home_community_id
        etree.SubElement(dr, X + "RepositoryUniqueId").text = d.repository_unique_id
        etree.SubElement(dr, X + "DocumentUniqueId").text = d.document_unique_id
        if d.new_repository_unique_id:
            etree.SubElement(dr, X + "NewRepositoryUniqueId").text = d.new_repository_unique_id
        if d.new_document_unique_id:
            etree.SubElement(dr, X + "NewDocumentUniqueId").text = d.new_document_unique_id
        etree.SubElement(dr, X + "mimeType").text = d.mime_type
        cid = f"doc{i}.{d.content.sha1[:16]}@ihe-gateway"
        doc_el = etree.SubElement(dr, X + "Document")
        etree.SubElement(doc_el, XOP_INCLUDE, nsmap={"xop": XOP_NS}, href=f"cid:{cid}")
        outgoing.append(OutgoingAttachment(cid, d.mime_type, _chunks(d.content), d.content.size))
    return Reply(el, tuple(outgoing))
