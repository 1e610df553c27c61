"""The testkit's evaluations of an answer: ExpectedStatus and error codes, ExpectedContents
(object counts and the toolkit's named patterns) and XPath Assertions."""

from __future__ import annotations

import base64
import re

from lxml import etree

RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
XDSB = "urn:ihe:iti:xds-b:2007"
XOP = "http://www.w3.org/2004/08/xop/include"
SS_NODE = "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"
FOLDER_NODE = "urn:uuid:d9d542f3-6cc4-48b6-8870-ea235fbc94c2"
APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
DEPRECATED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated"


class Failed(AssertionError):
    """A step's evaluation failed (the message says what the toolkit would report)."""


def _status_of(answer: etree._Element) -> str:
    el = answer if answer.get("status") else next(
        (e for e in answer.iter(f"{{{RS}}}RegistryResponse")), None)
    return (el.get("status", "") if el is not None else "").rsplit(":", 1)[-1]


def errors(answer: etree._Element) -> list[tuple[str, str]]:
    return [(e.get("errorCode", ""), e.get("codeContext", ""))
            for e in answer.iter(f"{{{RS}}}RegistryError")]


def check_status(answer: etree._Element, expected: str, step: etree._Element) -> None:
    if etree.QName(answer).localname == "Fault":
        raise Failed(f"SOAP Fault: {etree.tostring(answer)[:400]!r}")
    got = _status_of(answer)
    found = errors(answer)
    if got != expected:
        raise Failed(f"status {got}, expected {expected}; errors {found}")
    for tag in ("ExpectedErrorCode", "ExpectedErrorMessage"):
        for want in step.iter(tag):
            text = (want.text or "").strip()
            # ErrorCode names the errorCode; ErrorMessage may also appear in codeContext
            if not any(text == code or tag == "ExpectedErrorMessage" and text in context
                       for code, context in found):
                raise Failed(f"{tag} {text} not among {found}")


def _objects(answer: etree._Element) -> dict[str, list[etree._Element]]:
    out: dict[str, list[etree._Element]] = {"ObjectRefs": [], "Documents": [],
                                            "SubmissionSets": [], "Folders": [],
                                            "Associations": []}
    lst = next(answer.iter(f"{{{RIM}}}RegistryObjectList"), None)
    if lst is None:
        return out
    nodes: dict[str, str] = {}  # registry package id -> SS or Folder node
    for cl in lst.iter(f"{{{RIM}}}Classification"):
        if cl.get("classificationNode") in (SS_NODE, FOLDER_NODE):
            nodes[cl.get("classifiedObject", "")] = cl.get("classificationNode", "")
    for el in lst:
        name = etree.QName(el).localname
        if name == "ObjectRef":
            out["ObjectRefs"].append(el)
        elif name == "ExtrinsicObject":
            out["Documents"].append(el)
        elif name == "Association":
            out["Associations"].append(el)
        elif name == "RegistryPackage":
            kind = nodes.get(el.get("id", ""))
            out["SubmissionSets" if kind == SS_NODE else "Folders"].append(el)
    return out


_PATTERNS = {  # the toolkit's named shapes: (submission sets, documents, folders)
    "SSwithOneDoc": (1, 1, 0),
    "SSwithTwoDoc": (1, 2, 0),
    "SSwithOneFol": (1, 0, 1),
    "SSwithOneDocOneFol": (1, 1, 1),
    "SSwithTwoDocOneFol": (1, 2, 1),
    "SSwithTwoDocOneFolOneDocInFol": (1, 2, 1),
}


def check_contents(expected: etree._Element | None, answer: etree._Element) -> None:
    if expected is None:
        return
    objs = _objects(answer)
    for want in expected:
        if not isinstance(want.tag, str):
            continue
        name = want.tag
        if name in objs or name == "DocumentEntries" and want.get("count"):
            key = "Documents" if name == "DocumentEntries" else name
            if want.get("count") is not None and len(objs[key]) != int(want.get("count")):
                raise Failed(f"{name}: {len(objs[key])}, expected {want.get('count')}")
        elif name in _PATTERNS:
            got = (len(objs["SubmissionSets"]), len(objs["Documents"]), len(objs["Folders"]))
            if got != _PATTERNS[name]:
                raise Failed(f"{name}: (SS, docs, folders) = {got}")
        elif name == "None":
            if any(objs.values()):
                raise Failed("expected no objects")
        elif name in ("DocApp", "DocDep", "SSApproved"):
            els = objs["SubmissionSets"] if name == "SSApproved" else objs["Documents"]
            status = DEPRECATED if name == "DocDep" else APPROVED
            if not els or any(e.get("status") != status for e in els):
                raise Failed(f"{name}: statuses {[e.get('status') for e in els]}")
        elif name in ("OneDocApp", "OneDocDep"):
            status = DEPRECATED if name == "OneDocDep" else APPROVED
            if sum(e.get("status") == status for e in objs["Documents"]) != 1:
                raise Failed(f"{name}: statuses {[e.get('status') for e in objs['Documents']]}")
        elif name == "HasXFRM_RPLC":
            if not any(e.get("associationType", "").endswith("XFRM_RPLC")
                       for e in objs["Associations"]):
                raise Failed("no XFRM_RPLC association")
        else:
            raise Failed(f"ExpectedContents <{name}> not evaluated by this runner")


_LOG = re.compile(  # a step's place in the toolkit's log, where our answer is the document
    r"//(TestStep\[[^\]]*\]/)?\w*Transaction(\[[^\]]*\])?/Result/|//TestStep\[[^\]]*\]"
)


def run_assertions(tx: etree._Element, output: etree._Element | None,
                   subs: dict[str, str] | None = None) -> None:
    for a in tx.iter("Assert"):
        if output is None:
            raise Failed("assertion without an earlier output")
        expr = (a.text or "").strip()
        for key, value in (subs or {}).items():
            expr = expr.replace(key, value)
        expr = _LOG.sub("//", expr)  # the toolkit's log layout -> the answer itself
        if not output.xpath(expr):
            raise Failed(f"assertion {a.get('id')} false: {expr}")


def retrieved_documents(answer: etree._Element,
                        attachments: dict[str, bytes]) -> dict[str, tuple[bytes, str]]:
    """uniqueId -> (bytes, mimeType) of a RetrieveDocumentSetResponse."""
    out = {}
    for doc in answer.iter(f"{{{XDSB}}}DocumentResponse"):
        uid = doc.findtext(f"{{{XDSB}}}DocumentUniqueId", "").strip()
        mime = doc.findtext(f"{{{XDSB}}}mimeType", "").strip()
        content = doc.find(f"{{{XDSB}}}Document")
        include = content.find(f"{{{XOP}}}Include") if content is not None else None
        if include is not None:
            cid = include.get("href", "")[4:]
            from urllib.parse import unquote

            data = attachments.get(unquote(cid), b"")
        else:
            data = base64.b64decode(content.text or "") if content is not None else b""
        out[uid] = (data, mime)
    return out
