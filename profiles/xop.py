"""XOP references (W3C XOP 1.0, RFC 2392): how an ``xop:Include`` names its MIME part."""

from __future__ import annotations

from urllib.parse import unquote

XOP_NS = "http://www.w3.org/2004/08/xop/include"
XOP_INCLUDE = f"{{{XOP_NS}}}Include"


def content_id_from_href(href: str) -> str:
    """The attachment key an ``xop:Include/@href`` names: ``cid:`` dropped, %hh decoded."""
    href = href.strip()
    if href[:4].lower() == "cid:":
        href = href[4:]
    return unquote(href)
