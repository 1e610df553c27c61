"""MTOM/XOP (multipart/related) out: a lazy body that yields the root part and then each
attachment's chunks, so a large document is never held in memory, with its length
known up front when every attachment's size is (a Content-Length instead of chunking).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from urllib.parse import quote

from profiles.transaction import OutgoingAttachment


class MultipartBody:
    """The lazy body ``write_multipart`` returns; ``length`` is known when every size is."""

    def __init__(self, boundary: str, root: bytes, attachments: Sequence[OutgoingAttachment]):
        self._boundary = boundary.encode("ascii")
        self._root = root
        self._attachments = tuple(attachments)
        self._heads = [self._head(a) for a in self._attachments]
        sizes = [a.size for a in self._attachments if a.size is not None]
        self.length: int | None = None
        if len(sizes) == len(self._attachments):
            framing = sum(map(len, self._heads)) + len(self._tail())
            self.length = len(root) + framing + sum(sizes)

    def _head(self, att: OutgoingAttachment) -> bytes:
        cid = att.content_id.strip().removeprefix("<").removesuffix(">")
        if not cid or any(c in cid for c in "<>\r\n") or any(c in att.content_type for c in "\r\n"):
            raise ValueError("attachment Content-ID or type cannot go into a MIME header")
        return (
            b"\r\n--" + self._boundary + b"\r\n"
            b"Content-Type: " + att.content_type.encode("ascii") + b"\r\n"
            b"Content-Transfer-Encoding: binary\r\n"
            b"Content-ID: <" + cid.encode("ascii") + b">\r\n\r\n"
        )

    def _tail(self) -> bytes:
        return b"\r\n--" + self._boundary + b"--\r\n"

    def __iter__(self) -> Iterator[bytes]:
        yield self._root
        for att, head in zip(self._attachments, self._heads, strict=True):
            yield head
            sent = 0
            for chunk in att.chunks():
                if chunk:
                    sent += len(chunk)
                    yield bytes(chunk)
            if att.size is not None and sent != att.size:
                # The Content-Length already promised att.size: stop rather than lie.
                raise RuntimeError(f"attachment {att.content_id} sent {sent} of {att.size} bytes")
        yield self._tail()


def write_multipart(
    xml: bytes,
    attachments: Sequence[OutgoingAttachment],
    *,
    soap_media_type: str,
    action: str | None,
) -> tuple[str, MultipartBody]:
    """The Content-Type header value and a lazy body for an MTOM message."""
    token = uuid.uuid4().hex
    boundary = f"MIMEBoundary_{token}"
    root_id = f"root.{token}@ihe-gateway"
    root = (
        f"--{boundary}\r\n"
        f'Content-Type: application/xop+xml; charset=UTF-8; type="{soap_media_type}"\r\n'
        "Content-Transfer-Encoding: binary\r\n"
        f"Content-ID: <{root_id}>\r\n\r\n"
    ).encode("ascii") + xml
    content_type = (
        f'multipart/related; boundary="{boundary}"; type="application/xop+xml"; '
        f'start="<{root_id}>"; start-info="{soap_media_type}"'
    )
    if action:
        if any(c in action for c in '"\\\r\n'):
            raise ValueError("the action cannot go into a MIME parameter")
        content_type += f'; action="{action}"'
    return content_type, MultipartBody(boundary, root, attachments)


def href_for(content_id: str) -> str:
    """The ``xop:Include/@href`` for a Content-ID (RFC 2392 percent-encoding)."""
    return "cid:" + quote(content_id, safe="@!$&'()*+,;=:._~-/")
