"""Retrieve Document Set requests and answers for the ITI-43 and ITI-39 tests: the
request both transactions parse, and the answer's infoset with XOP resolved (what the
schema checks and what the tests read)."""

from __future__ import annotations

import base64

from lxml import etree

from profiles.transaction import Reply
from profiles.xds import codes as c
from profiles.xop import XOP_INCLUDE, content_id_from_href

X = f"{{{c.XDS}}}"


def retrieve_request(*docs: tuple[str, str] | tuple[str, str, str]) -> etree._Element:
    """Each doc: (repository, document[, HomeCommunityId])."""
    root = etree.Element(X + "RetrieveDocumentSetRequest", nsmap={"xds": c.XDS})
    for doc in docs:
        el = etree.SubElement(root, X + "DocumentRequest")
        if len(doc) == 3:
            etree.SubElement(el, X + "HomeCommunityId").text = doc[2]
        etree.SubElement(el, X + "RepositoryUniqueId").text = doc[0]
        etree.SubElement(el, X + "DocumentUniqueId").text = doc[1]
    return root


def resolve_xop(reply: Reply) -> etree._Element:
    """The XOP-reconstituted infoset: each include replaced by its part's base64."""
    parts = {a.content_id: b"".join(a.chunks()) for a in reply.attachments}
    body = etree.fromstring(etree.tostring(reply.body))
    for inc in list(body.iter(XOP_INCLUDE)):
        parent = inc.getparent()
        parent.remove(inc)
        parent.text = base64.b64encode(parts[content_id_from_href(inc.get("href"))]).decode()
    return body
