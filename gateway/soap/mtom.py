"""MTOM/XOP (multipart/related) in and out, streaming both ways; writing lives in
``mtom_write`` and is re-exported here (``mtom.write_multipart``, ``mtom.href_for``).

Reading keeps the root part (the SOAP envelope) in memory under a cap and
spools every other part to a temporary file, hashing it (SHA-1, as XDS wants)
and counting its size as the bytes arrive, so memory does not grow with the
size of a document.

The parser is our own rather than python-multipart's: real peers send MIME
with LF-only or mixed line endings (WCF/Epic, Redox, CXF; see
``../shared/conformance/messages/metriport``), which python-multipart refuses.
A delimiter is therefore ``LF "--" boundary``, with an optional CR before the
LF belonging to the delimiter, and a part's headers may end with LF or CRLF.
"""

from __future__ import annotations

import contextlib
import email.message
import email.utils
import functools
import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from functools import partial
from typing import BinaryIO
from urllib.parse import unquote

from gateway.soap.mtom_write import MultipartBody as MultipartBody
from gateway.soap.mtom_write import href_for as href_for
from gateway.soap.mtom_write import write_multipart as write_multipart
from profiles.errors import SoapFault
from profiles.transaction import Attachment

CHUNK = 64 * 1024
MAX_HEADER_BYTES = 16 * 1024  # one part's header block
MAX_PARTS = 1000
MAX_EPILOGUE_BYTES = 1024 * 1024  # read and dropped after the close delimiter
SOAP_TYPES = ("application/soap+xml", "text/xml")
_IDENTITY_ENCODINGS = {"", "binary", "8bit", "7bit"}


def is_multipart(media_type: str) -> bool:
    """True for ``multipart/related`` (``media_type`` lower-cased, without parameters)."""
    return media_type == "multipart/related"


def _content_id_key(header: str) -> str:
    """A Content-ID header value as a key: angle brackets dropped, %hh decoded (RFC 2392).

    Decoding both the header and the href makes ``cid:a%40b`` find ``<a@b>`` and a
    peer that percent-encodes its Content-ID header still match its own href.
    """
    value = header.strip()
    if value.startswith("<") and value.endswith(">"):
        value = value[1:-1].strip()
    return unquote(value)


def _fault(reason: str) -> SoapFault:
    return SoapFault("Sender", reason)


def parse_content_type(value: str) -> tuple[str, dict[str, str]]:
    """Media type (lower-cased) and parameters (names lower-cased, values unquoted)."""
    media, params = _parsed_content_type(value)
    return media, dict(params)


@functools.lru_cache(maxsize=256)
def _parsed_content_type(value: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """Cached: the email parser costs ~50 us, and a fan-out's 500 answers (or a busy
    endpoint's requests) repeat a handful of Content-Type values."""
    msg = email.message.Message()
    msg["content-type"] = value
    params = msg.get_params(header="content-type") or []
    if not params or not value.strip():
        return "", ()
    media = value.split(";", 1)[0].strip().lower()
    out: dict[str, str] = {}
    for name, val in params[1:]:
        out[name.strip().lower()] = email.utils.collapse_rfc2231_value(val).strip()
    return media, tuple(out.items())


@dataclass
class MultipartMessage:
    """A received MTOM package: the root part in memory, attachments spooled to files."""

    root: bytes
    root_media_type: str
    attachments: dict[str, Attachment] = field(default_factory=dict)
    _paths: list[str] = field(default_factory=list, repr=False)

    def close(self) -> None:
        """Delete the spooled files; safe to call more than once."""
        while self._paths:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._paths.pop())

    def __enter__(self) -> MultipartMessage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Spool:
    """One attachment part on its way to disk."""

    def __init__(self, spool_dir: str | None, limit: int, paths: list[str]) -> None:
        fd, self.path = tempfile.mkstemp(prefix="mtom-", suffix=".part", dir=spool_dir)
        paths.append(self.path)
        self.file = os.fdopen(fd, "wb")
        self.hash = hashlib.sha1(usedforsecurity=False)
        self.size = 0
        self.limit = limit

    def write(self, data: bytes | memoryview) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise _fault("Attachment exceeds the size limit")
        self.hash.update(data)
        self.file.write(data)


class _Memory:
    """The root part, capped."""

    def __init__(self, limit: int) -> None:
        self.data = bytearray()
        self.limit = limit

    def write(self, data: bytes | memoryview) -> None:
        if len(self.data) + len(data) > self.limit:
            raise _fault("Message exceeds the size limit")
        self.data += data


class _Discard:
    def write(self, data: bytes | memoryview) -> None:
        pass


_CLOSE, _NOT_DELIMITER, _MORE = -1, -2, -3


class _Reader:
    """A buffered view of the body that finds delimiters; holds at most a chunk or so."""

    def __init__(self, stream: BinaryIO, boundary: bytes) -> None:
        self.stream = stream
        self.delim = b"\n--" + boundary
        # A leading LF lets a delimiter on the very first line be found like any other.
        self.buf = bytearray(b"\n")
        self.eof = False

    def fill(self) -> bool:
        if self.eof:
            return False
        try:
            data = self.stream.read(CHUNK)
        except Exception:  # a client that went away, a truncated chunked body...
            raise _fault("The request body could not be read") from None
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _after_delimiter(self, i: int) -> int:
        """Where the line of a delimiter found at ``i`` ends, or _CLOSE/_NOT_DELIMITER/_MORE."""
        j = i + len(self.delim)
        buf = self.buf
        if len(buf) < j + 2:
            return _MORE
        if buf[j : j + 2] == b"--":
            return _CLOSE
        k = j
        while k < len(buf) and buf[k] in b" \t":
            k += 1
        if k == len(buf):
            return _NOT_DELIMITER if k - j > 256 else _MORE
        if buf[k] == 0x0A:
            return k + 1
        if buf[k] == 0x0D:
            if k + 1 == len(buf):
                return _NOT_DELIMITER if self.eof else _MORE
            return k + 2 if buf[k + 1] == 0x0A else _NOT_DELIMITER
        return _NOT_DELIMITER

    def copy_until_delimiter(self, sink) -> bool:
        """Feed the bytes before the next delimiter to ``sink``; True if it closes the body."""
        hold = len(self.delim) + 1  # a possible CR, then the delimiter
        start = 0
        while True:
            i = self.buf.find(self.delim, start)
            if i >= 0:
                end = self._after_delimiter(i)
                if end == _MORE:
                    if not self.fill():
                        raise _fault("The MTOM body is truncated")
                    continue
                if end == _NOT_DELIMITER:
                    start = i + 1
                    continue
                cut = i - 1 if i > 0 and self.buf[i - 1] == 0x0D else i
                sink.write(memoryview(self.buf)[:cut])
                if end == _CLOSE:
                    del self.buf[:]
                    return True
                del self.buf[:end]
                return False
            if len(self.buf) > hold:
                keep = len(self.buf) - hold
                sink.write(memoryview(self.buf)[:keep])
                del self.buf[:keep]
            start = 0
            if not self.fill():
                raise _fault("The MTOM body is truncated")

    def headers(self) -> dict[str, str]:
        """One part's header block; names lower-cased, folded lines joined."""
        lines: list[str] = []
        while True:
            nl = self.buf.find(b"\n")
            if nl < 0:
                if len(self.buf) > MAX_HEADER_BYTES:
                    raise _fault("MTOM part headers are too long")
                if not self.fill():
                    raise _fault("The MTOM body is truncated")
                continue
            line = bytes(self.buf[:nl]).rstrip(b"\r")
            del self.buf[: nl + 1]
            if not line:
                break
            if sum(map(len, lines)) + len(line) > MAX_HEADER_BYTES:
                raise _fault("MTOM part headers are too long")
            text = line.decode("latin-1")
            if text[:1] in (" ", "\t") and lines:
                lines[-1] += " " + text.strip()
            else:
                lines.append(text)
        out: dict[str, str] = {}
        for text in lines:
            name, sep, value = text.partition(":")
            if not sep:
                raise _fault("Malformed MTOM part header")
            out.setdefault(name.strip().lower(), value.strip())
        return out

    def drain(self) -> None:
        dropped = 0
        while dropped < MAX_EPILOGUE_BYTES and self.fill():
            dropped += len(self.buf)
            del self.buf[:]


def read_multipart(
    stream: BinaryIO,
    content_type: str,
    *,
    max_root_bytes: int,
    max_attachment_bytes: int,
    spool_dir: str | None,
) -> MultipartMessage:
    """Read an MTOM request body; raise a Sender SoapFault for anything malformed.

    The root part is the one the ``start`` parameter names, else the first part.
    """
    _media, params = parse_content_type(content_type)
    boundary = params.get("boundary", "")
    if not boundary or len(boundary) > 200 or any(c in boundary for c in "\r\n"):
        raise _fault("The multipart Content-Type has no usable boundary")
    message = MultipartMessage(b"", "")
    reader = _Reader(stream, boundary.encode("latin-1"))
    try:
        _read_parts(reader, message, params, max_root_bytes, max_attachment_bytes, spool_dir)
    except BaseException:
        message.close()
        raise
    return message


def _read_parts(
    reader: _Reader,
    message: MultipartMessage,
    params: dict[str, str],
    max_root: int,
    max_attachment: int,
    spool_dir: str | None,
) -> None:
    start = _content_id_key(params["start"]) if params.get("start") else None
    if reader.copy_until_delimiter(_Discard()):  # the preamble
        raise _fault("The MTOM body has no parts")
    root: _Memory | None = None
    root_cid: str | None = None
    for count in range(MAX_PARTS + 1):
        if count == MAX_PARTS:
            raise _fault("The MTOM body has too many parts")
        headers = reader.headers()
        cid = _content_id_key(headers.get("content-id", ""))
        encoding = headers.get("content-transfer-encoding", "").strip().lower()
        if encoding not in _IDENTITY_ENCODINGS:
            raise _fault("Unsupported Content-Transfer-Encoding in an MTOM part")
        is_root = root is None and (cid == start if start is not None else count == 0)
        spool: _Spool | None = None
        if is_root:
            sink = root = _Memory(max_root)
            root_cid = cid
            message.root_media_type = _root_media_type(headers.get("content-type", ""), params)
        elif cid:
            if cid in message.attachments or cid in (start, root_cid):
                raise _fault("Duplicate Content-ID in the MTOM body")
            sink = spool = _Spool(spool_dir, max_attachment, message._paths)
        else:
            sink = _Discard()  # no Content-ID: nothing can refer to it
        try:
            closed = reader.copy_until_delimiter(sink)
        finally:
            if spool is not None:
                spool.file.close()
        if spool is not None:
            media, _ = parse_content_type(headers.get("content-type", ""))
            message.attachments[cid] = Attachment(
                content_id=cid,
                content_type=media or "application/octet-stream",
                size=spool.size,
                sha1=spool.hash.hexdigest(),
                open=partial(open, spool.path, "rb"),
                path=spool.path,
            )
        if closed:
            break
    if root is None:
        raise _fault("The MTOM body has no root part")
    message.root = bytes(root.data)
    reader.drain()


def _root_media_type(part_content_type: str, params: dict[str, str]) -> str:
    media, part_params = parse_content_type(part_content_type)
    if media == "application/xop+xml":
        media = part_params.get("type", "").lower() or params.get("start-info", "").lower()
        media = media or "application/soap+xml"
    elif not media:
        media = params.get("start-info", "").lower() or "application/soap+xml"
    media = media.split(";", 1)[0].strip()
    if media not in SOAP_TYPES:
        raise _fault("The MTOM root part is not a SOAP envelope")
    return media
