"""Cross Gateway Query (ITI-38, ITI TF-2b 3.38): the request we send, the answer we read.

The request is the consumer's stored query, re-encoded (ITI TF-2a 3.18.4.1.2.3.5):
strings quoted, lists in parentheses, times and numbers bare, one Slot per group so
AND-ed Slots stay AND-ed. Every namespace is declared on the payload root, because
some responders lift the body out of its envelope and re-parse it alone.

The answer is read tolerantly: a status written without its URN, an unknown object
dropped with a Warning rather than failing the whole answer (a partner's one bad
ExtrinsicObject must not cost its other documents).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from lxml import etree

from profiles.errors import ErrorDetail, Severity, XDSRegistryError
from profiles.transaction import Reply, splice_point
from profiles.xca.relay import NO_HOME, RELAYED, NotRelayable, SplitAnswer, relayed
from profiles.xca.retrieve import STATUSES
from profiles.xds import codes as c
from profiles.xds.ebrim import adhoc_query_response_to_xml, parse_registry_object_list
from profiles.xds.metadata import ExtraObject, ListMember, ObjectRef
from profiles.xds.storedquery import SPECS, Kind, StoredQuery

R = f"{{{c.RIM}}}"
Q = f"{{{c.QUERY}}}"
ITI38_ACTION = "urn:ihe:iti:2007:CrossGatewayQuery"
ITI38_REPLY = "urn:ihe:iti:2007:CrossGatewayQueryResponse"
_QUOTED = (Kind.ONE, Kind.MANY, Kind.ALL)
_LISTS = (Kind.MANY, Kind.ALL, Kind.CODES, Kind.ALL_CODES)


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def encode_values(kind: Kind, values: tuple) -> str:
    """One Slot's values in stored-query syntax."""
    if kind in (Kind.TIME, Kind.NUMBER):
        return str(values[0])
    if kind in (Kind.CODES, Kind.ALL_CODES):
        items = [_quote(f"{code}^^{scheme}") for code, scheme in values]
    else:
        items = [_quote(str(v)) for v in values]
    if kind in _LISTS:
        return "(" + ",".join(items) + ")"
    return items[0]


def stored_query_bytes(query: StoredQuery) -> bytes:
    """``stored_query_to_xml`` serialised: the request as an audit record names it."""
    return etree.tostring(stored_query_to_xml(query))


def stored_query_to_xml(query: StoredQuery) -> etree._Element:
    """``query:AdhocQueryRequest`` for ``query``; namespaces declared on this element."""
    el = etree.Element(Q + "AdhocQueryRequest", nsmap={"query": c.QUERY, "rim": c.RIM})
    etree.SubElement(
        el, Q + "ResponseOption", returnType=query.return_type.value, returnComposedObjects="true"
    )
    adhoc = etree.SubElement(el, R + "AdhocQuery", id=query.id)
    if query.home:
        adhoc.set("home", query.home)
    kinds = SPECS[query.name].params
    for name, groups in query.params.items():
        kind = kinds.get(name, Kind.MANY)
        for group in groups:
            slot = etree.SubElement(adhoc, R + "Slot", name=name)
            values = etree.SubElement(slot, R + "ValueList")
            etree.SubElement(values, R + "Value").text = encode_values(kind, group)
    return el


@dataclass(frozen=True)
class QueryResult:
    """A partner's answer: its status, errors, and the objects we could read."""

    status: str
    errors: tuple[ErrorDetail, ...]
    objects: tuple[ListMember | Relayed, ...]


def read_query_response(
    el: etree._Element, *, home_community_id: str, relay: bool = True,
    split: SplitAnswer | None = None,
) -> QueryResult:
    """A partner's ``query:AdhocQueryResponse`` (``home_community_id``: who answered).

    Objects lacking ``home`` get the answering community's, so later retrieves and
    ID-based queries are routed back to it. ``relay`` (the initiating gateway's way)
    keeps each object as the partner wrote it, adding only ``home``, serialised at once
    (``Relayed``): an IG passes entries through (ITI TF-2b 3.38.4.1.3), and re-modelling
    each document costs about 1 ms of CPU, 5 s for a 500-community fan-out
    (``bench/fanout.py``). ``relay=False`` reads them into models.

    ``split``: the answer's objects already located in its bytes
    (``profiles.xca.relay.split_answer``); ``el`` is then the parsed rest of the answer,
    its ``RegistryObjectList`` empty, and the objects are relayed byte for byte.
    """
    if el.tag != Q + "AdhocQueryResponse":
        raise XDSRegistryError(f"expected AdhocQueryResponse, got {etree.QName(el).localname}")
    tail = (el.get("status") or "").strip().rsplit(":", 1)[-1]
    if tail not in STATUSES:
        raise XDSRegistryError(f"response status {el.get('status')!r} is not a ResponseStatusType")
    errors = []
    for err in el.iterfind(f"{{{c.RS}}}RegistryErrorList/{{{c.RS}}}RegistryError"):
        severity = (err.get("severity") or "").rsplit(":", 1)[-1]
        errors.append(ErrorDetail(
            (err.get("errorCode") or "XDSRegistryError").strip(),
            " ".join((err.get("codeContext") or "").split())[:500],
            Severity.WARNING if severity == "Warning" else Severity.ERROR,
            (err.get("location") or "").strip() or home_community_id,
        ))
    problems: list = []
    if split is not None:
        objects = _relay_split(el, split, home_community_id, problems)
    elif relay:
        objects = _relay(el, home_community_id, problems)
    else:
        members = parse_registry_object_list(el, problems=problems)
        objects = [_with_home(o, home_community_id) for o in members
                   if not isinstance(o, ExtraObject)]  # reported through ``problems``
    if problems:
        errors.append(ErrorDetail(
            "XDSRegistryMetadataError",
            f"{len(problems)} object(s) in the answer could not be read and were dropped",
            Severity.WARNING,
            home_community_id,
        ))
    return QueryResult(STATUSES[tail], tuple(errors), tuple(objects))


def _relay(el: etree._Element, home: str, problems: list) -> list[Relayed]:
    out: list[Relayed] = []
    list_el = el.find(R + "RegistryObjectList")
    for ch in list_el if list_el is not None else ():
        if not isinstance(ch.tag, str):
            continue
        qn = etree.QName(ch)
        if qn.namespace != c.RIM or qn.localname not in RELAYED or not ch.get("id"):
            problems.append(qn.localname)
            continue
        if not (ch.get("home") or "").strip() and qn.localname not in NO_HOME:
            ch.set("home", home)
        # Serialised in place: lxml declares on the fragment every namespace in scope
        # (the partner's envelope's too), so it stands alone wherever it is spliced.
        out.append(Relayed(ch.get("id"), ch.get("home"), etree.tostring(ch, with_tail=False)))
    return out


def _relay_split(el: etree._Element, split: SplitAnswer, home: str,
                 problems: list) -> list[Relayed]:
    list_el = el.find(R + "RegistryObjectList")
    if list_el is None or len(list_el):  # the list cut out was not this answer's own
        raise NotRelayable("the located RegistryObjectList is not the answer's")
    return [Relayed(*found) for found in relayed(split, list_el.nsmap, home, problems)]


@dataclass(frozen=True, eq=False)
class Relayed:
    """A partner's registry object as the partner wrote it, ``home`` set, as XML bytes.

    Serialised where the answer was read (a fan-out thread: lxml parses and writes with
    the GIL released, so partners' answers are handled on every core as they arrive),
    and spliced into the merged answer (``merged_response``), never a tree again.
    """

    id: str
    home: str | None  # None on a Classification or ExternalIdentifier
    xml: bytes  # self-contained: declares every namespace it uses


def merged_response(objects, errors, *, partial: bool) -> Reply:
    """``query:AdhocQueryResponse`` of models (the local registry's) with the relayed
    objects as fragments after them, in order."""
    el = adhoc_query_response_to_xml(
        [o for o in objects if not isinstance(o, Relayed)], errors, partial=partial)
    relayed = tuple(o.xml for o in objects if isinstance(o, Relayed))
    if not relayed:
        return Reply(el)
    el.find(R + "RegistryObjectList").append(splice_point())
    return Reply(el, fragments=relayed)


def _with_home(obj: ListMember, home: str) -> ListMember:
    if isinstance(obj, ObjectRef):
        return obj if obj.home else ObjectRef(obj.id, home)
    if hasattr(obj, "home_community_id") and not obj.home_community_id:
        return replace(obj, home_community_id=home)
    return obj
