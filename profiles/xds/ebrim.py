"""The ebRIM 3.0 messages of XDS.b <-> metadata models (ITI TF-3 4.2, TF-2b 3.41-3.43).

Pairs, as DESIGN.md asks: ``parse_submit_objects_request`` /
``submit_objects_request_to_xml`` (ITI-42), ``parse_provide_and_register`` /
``provide_and_register_to_xml`` (ITI-41, XDR), ``parse_registry_object_list`` /
``registry_object_list_to_xml`` (ITI-18/38 results), ``parse_adhoc_query_response``
/ ``adhoc_query_response_to_xml``, and ``parse_registry_response`` /
``registry_response_to_xml``.

Parsers never stop at the first problem. What cannot be modelled (an unknown
associationType, an ExtrinsicObject that is no DocumentEntry) is kept as an
``ExtraObject`` and reported; pass ``problems=[]`` to collect those reports
next to validation's, or leave it out to have them raised together as one
``GatewayError``. Top-level Classifications and ExternalIdentifiers of an
object in the same list are read as if they were nested in it, and are written
nested.
"""

from __future__ import annotations

import base64
import binascii
import copy
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from lxml import etree

from profiles.error_forms import registry_error_list, response_status
from profiles.errors import (
    ErrorDetail,
    GatewayError,
    Severity,
    XDSRegistryError,
    XDSRegistryMetadataError,
    XDSRepositoryMetadataError,
)
from profiles.xds import codes as c
from profiles.xds.codes import ResponseStatus
from profiles.xds.metadata import (
    Association,
    Classification,
    DocumentEntry,
    ExternalIdentifier,
    ExtraObject,
    Folder,
    ListMember,
    ObjectRef,
    Submission,
    SubmissionSet,
)
from profiles.xds.objects import (
    package_kind,
    read_association,
    read_document_entry,
    read_folder,
    read_submission_set,
    write_association,
    write_document_entry,
    write_folder,
    write_submission_set,
)
from profiles.xds.rim import (
    R,
    child_id,
    is_rim,
    read_classification,
    read_external_identifier,
    read_parts,
    sub,
    write_classification,
    write_external_identifier,
)
from profiles.xop import content_id_from_href

_SAFE = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
_NSMAP = {"rim": c.RIM, "lcm": c.LCM, "rs": c.RS, "query": c.QUERY, "xds": c.XDS}
_OBJECTS = ("ExtrinsicObject", "RegistryPackage", "Association")


class _Problems:
    """Collects what the codec could not model, as ``error`` instances."""

    def __init__(self, error: type[GatewayError], sink: list[GatewayError] | None) -> None:
        self.error, self.sink, self.found = error, sink, []

    def __call__(self, context: str, location: str) -> None:
        self.found.append(self.error(context, location=location))

    def finish(self) -> None:
        if self.sink is not None:
            self.sink.extend(self.found)
        elif self.found:
            raise GatewayError.collect(self.found)


def _extra(el: etree._Element) -> ExtraObject:
    """The element as canonical XML with our prefixes, so it compares equal after a round trip."""
    holder = etree.Element(R + "RegistryObjectList", nsmap=_NSMAP)
    holder.append(copy.deepcopy(el))
    xml = etree.tostring(holder[0], method="c14n", exclusive=True, with_comments=False)
    return ExtraObject(xml)


def _read_members(list_el: etree._Element, problem: _Problems) -> list[ListMember]:
    members = [ch for ch in list_el if isinstance(ch.tag, str)]
    ids = {ch.get("id") for ch in members if any(is_rim(ch, t) for t in _OBJECTS)} - {None, ""}
    folded: dict[str, list] = defaultdict(list)
    consumed: set[int] = set()
    for i, ch in enumerate(members):
        if is_rim(ch, "Classification") and ch.get("classifiedObject") in ids:
            folded[ch.get("classifiedObject")].append(read_classification(ch))
            consumed.add(i)
        elif is_rim(ch, "ExternalIdentifier") and ch.get("registryObject") in ids:
            folded[ch.get("registryObject")].append(read_external_identifier(ch))
            consumed.add(i)
    out: list[ListMember] = []
    for i, ch in enumerate(members):
        if i not in consumed:
            out.extend(_read_member(ch, folded.get(ch.get("id"), []), problem))
    return out


def _read_member(ch: etree._Element, folded: list, problem: _Problems) -> list[ListMember]:
    if not any(is_rim(ch, t) for t in _OBJECTS):
        if is_rim(ch, "ObjectRef") and len(ch) == 0 and set(ch.attrib) <= {"id", "home"}:
            return [ObjectRef(ch.get("id", ""), ch.get("home"))]
        if is_rim(ch, "Classification"):
            return [read_classification(ch)]
        if is_rim(ch, "ExternalIdentifier"):
            return [read_external_identifier(ch)]
        return [_extra(ch)]
    parts = read_parts(ch)
    parts.classifications += [x for x in folded if isinstance(x, Classification)]
    parts.external_ids += [x for x in folded if isinstance(x, ExternalIdentifier)]
    obj: ListMember | None
    if is_rim(ch, "ExtrinsicObject"):
        obj = read_document_entry(parts, problem)
    elif is_rim(ch, "Association"):
        obj = read_association(parts, problem)
    else:
        kind = package_kind(parts)
        if kind == c.SUBMISSION_SET_NODE:
            obj = read_submission_set(parts, problem)
        elif kind == c.FOLDER_NODE:
            obj = read_folder(parts, problem)
        else:
            problem("RegistryPackage is classified as neither SubmissionSet nor Folder", parts.id)
            obj = None
    return [obj] if obj is not None else [_extra(ch), *folded]


def parse_registry_object_list(
    el: etree._Element,
    *,
    problems: list[GatewayError] | None = None,
    error: type[GatewayError] = XDSRegistryMetadataError,
) -> tuple[ListMember, ...]:
    """The members of a ``rim:RegistryObjectList`` (or of the one inside ``el``), in order."""
    problem = _Problems(error, problems)
    list_el = el if is_rim(el, "RegistryObjectList") else el.find(R + "RegistryObjectList")
    members = _read_members(list_el, problem) if list_el is not None else []
    problem.finish()
    return tuple(members)


def _write_member(parent: etree._Element, obj: ListMember, home: str | None, i: int) -> None:
    if isinstance(obj, DocumentEntry):
        write_document_entry(parent, obj, home)
    elif isinstance(obj, SubmissionSet):
        write_submission_set(parent, obj, home)
    elif isinstance(obj, Folder):
        write_folder(parent, obj, home)
    elif isinstance(obj, Association):
        write_association(parent, obj, home)
    elif isinstance(obj, ObjectRef):
        sub(parent, "ObjectRef", id=obj.id, home=home if obj.home is None else obj.home)
    elif isinstance(obj, Classification):
        write_classification(parent, obj, child_id(obj.classified_object, f"classification{i}"))
    elif isinstance(obj, ExternalIdentifier):
        write_external_identifier(parent, obj, child_id(obj.registry_object, f"identifier{i}"))
    else:
        parent.append(etree.fromstring(obj.xml, _SAFE))


def registry_object_list_to_xml(
    objects: Iterable[ListMember], *, home: str | None = None
) -> etree._Element:
    """A ``rim:RegistryObjectList``; ``home`` goes on every object that has none (XCA)."""
    el = etree.Element(R + "RegistryObjectList", nsmap={"rim": c.RIM})
    for i, obj in enumerate(objects):
        _write_member(el, obj, home, i)
    return el


def _submission(members: Sequence[ListMember], problem: _Problems) -> Submission:
    sets = [m for m in members if isinstance(m, SubmissionSet)]
    for extra in sets[1:]:
        problem("a submission carries exactly one SubmissionSet", extra.entry_uuid)
    return Submission(
        submission_set=sets[0] if sets else None,
        document_entries=tuple(m for m in members if isinstance(m, DocumentEntry)),
        folders=tuple(m for m in members if isinstance(m, Folder)),
        associations=tuple(m for m in members if isinstance(m, Association)),
        extra_objects=tuple(
            m
            for m in members
            if isinstance(m, ObjectRef | Classification | ExternalIdentifier | ExtraObject)
        ),
    )


def _submission_objects(submission: Submission) -> list[ListMember]:
    return [*submission.registry_objects(), *submission.extra_objects]


def _require(el: etree._Element, ns: str, local: str) -> None:
    if el.tag != f"{{{ns}}}{local}":
        raise XDSRegistryError(f"expected {local}, got {etree.QName(el).localname}")


def parse_submit_objects_request(
    el: etree._Element,
    *,
    problems: list[GatewayError] | None = None,
    error: type[GatewayError] = XDSRegistryMetadataError,
) -> Submission:
    """``lcm:SubmitObjectsRequest`` -> Submission (ITI-42 request body)."""
    _require(el, c.LCM, "SubmitObjectsRequest")
    problem = _Problems(error, problems)
    list_el = el.find(R + "RegistryObjectList")
    members = _read_members(list_el, problem) if list_el is not None else []
    submission = _submission(members, problem)
    problem.finish()
    return submission


def submit_objects_request_to_xml(submission: Submission) -> etree._Element:
    el = etree.Element(f"{{{c.LCM}}}SubmitObjectsRequest", nsmap={"lcm": c.LCM, "rim": c.RIM})
    el.append(registry_object_list_to_xml(_submission_objects(submission)))
    return el


@dataclass(frozen=True)
class XopInclude:
    """A document sent as an MTOM attachment: ``xop:Include/@href``."""

    href: str

    @property
    def content_id(self) -> str:
        """The attachment's Content-ID: ``cid:`` dropped, %hh decoded (RFC 2392)."""
        return content_id_from_href(self.href)


DocumentContent = XopInclude | bytes


def parse_provide_and_register(
    el: etree._Element,
    *,
    problems: list[GatewayError] | None = None,
    error: type[GatewayError] = XDSRepositoryMetadataError,
) -> tuple[Submission, dict[str, DocumentContent]]:
    """``xds:ProvideAndRegisterDocumentSetRequest`` -> (Submission, documents by id).

    A document is its inline bytes or the ``XopInclude`` naming its attachment.
    """
    _require(el, c.XDS, "ProvideAndRegisterDocumentSetRequest")
    local: list[GatewayError] = []
    request = el.find(f"{{{c.LCM}}}SubmitObjectsRequest")
    if request is None:
        local.append(error("ProvideAndRegisterDocumentSetRequest has no SubmitObjectsRequest"))
        submission = Submission(submission_set=None)
    else:
        submission = parse_submit_objects_request(request, problems=local, error=error)
    documents: dict[str, DocumentContent] = {}
    for doc in el.iterfind(f"{{{c.XDS}}}Document"):
        doc_id = doc.get("id", "")
        if not doc_id or doc_id in documents:
            what = "has no id" if not doc_id else "id appears on more than one Document"
            local.append(error(f"Document {what}", location=doc_id))
            continue
        include = doc.find(f"{{{c.XOP}}}Include")
        if include is not None:
            documents[doc_id] = XopInclude(include.get("href", ""))
            continue
        try:
            documents[doc_id] = base64.b64decode("".join((doc.text or "").split()), validate=True)
        except (binascii.Error, ValueError):
            local.append(error("Document content is not base64", location=doc_id))
    if problems is not None:
        problems.extend(local)
    elif local:
        raise GatewayError.collect(local)
    return submission, documents


def provide_and_register_to_xml(
    submission: Submission, documents: Mapping[str, DocumentContent]
) -> etree._Element:
    el = etree.Element(
        f"{{{c.XDS}}}ProvideAndRegisterDocumentSetRequest",
        nsmap={"xds": c.XDS, "lcm": c.LCM, "rim": c.RIM},
    )
    el.append(submit_objects_request_to_xml(submission))
    for doc_id, content in documents.items():
        doc = etree.SubElement(el, f"{{{c.XDS}}}Document", id=doc_id)
        if isinstance(content, XopInclude):
            etree.SubElement(doc, f"{{{c.XOP}}}Include", nsmap={"xop": c.XOP}, href=content.href)
        else:
            doc.text = base64.b64encode(content).decode("ascii")
    return el


@dataclass(frozen=True)
class RegistryResponse:
    """The outcome of a request: a status and its RegistryErrors (ITI TF-3 4.2.4)."""

    status: ResponseStatus
    errors: tuple[ErrorDetail, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status is ResponseStatus.SUCCESS


def _read_errors(el: etree._Element) -> tuple[ErrorDetail, ...]:
    out = []
    for err in el.iterfind(f"{{{c.RS}}}RegistryErrorList/{{{c.RS}}}RegistryError"):
        severity = err.get("severity", Severity.ERROR.value)
        out.append(
            ErrorDetail(
                err.get("errorCode", ""),
                err.get("codeContext", ""),
                Severity(severity) if severity in Severity._value2member_map_ else Severity.ERROR,
                err.get("location", ""),
            )
        )
    return tuple(out)


def parse_registry_response(el: etree._Element) -> RegistryResponse:
    """``rs:RegistryResponse`` (or ``query:AdhocQueryResponse``) -> status and errors.

    A status that is not an ebRS ResponseStatusType is the peer's error:
    ``XDSRegistryError``.
    """
    status = el.get("status", "")
    if status not in ResponseStatus._value2member_map_:
        raise XDSRegistryError(f"response status {status!r} is not an ebRS ResponseStatusType")
    return RegistryResponse(ResponseStatus(status), _read_errors(el))


def registry_response_to_xml(
    errors: Sequence[ErrorDetail] = (), *, partial: bool = False
) -> etree._Element:
    """``rs:RegistryResponse``: Success when only warnings remain, else Failure/PartialSuccess."""
    el = etree.Element(f"{{{c.RS}}}RegistryResponse", nsmap={"rs": c.RS})
    el.set("status", response_status(list(errors), partial=partial))
    if errors:
        el.append(registry_error_list(list(errors)))
    return el


def parse_adhoc_query_response(
    el: etree._Element, *, problems: list[GatewayError] | None = None
) -> tuple[RegistryResponse, tuple[ListMember, ...]]:
    """``query:AdhocQueryResponse`` -> (status and errors, returned objects)."""
    _require(el, c.QUERY, "AdhocQueryResponse")
    return parse_registry_response(el), parse_registry_object_list(el, problems=problems)


def adhoc_query_response_to_xml(
    objects: Iterable[ListMember],
    errors: Sequence[ErrorDetail] = (),
    *,
    home: str | None = None,
    partial: bool = False,
) -> etree._Element:
    el = etree.Element(
        f"{{{c.QUERY}}}AdhocQueryResponse", nsmap={"query": c.QUERY, "rs": c.RS, "rim": c.RIM}
    )
    el.set("status", response_status(list(errors), partial=partial))
    if errors:
        el.append(registry_error_list(list(errors)))
    el.append(registry_object_list_to_xml(objects, home=home))
    return el
