"""Syslog for ITI-20: RFC 5424 messages, RFC 5425 TLS framing, RFC 5426 datagrams.

Sans-IO like h11: bytes in, bytes or messages out; the sender and the audit
record repository in ``gateway/`` own the sockets.

* A message is ``<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD BOM XML``.
  PRI is facility 10 (security/authorization) and severity 5 (notice), i.e.
  ``<85>`` (DICOM PS3.15 A.6/A.7); MSGID is ``IHE+RFC-3881`` (IHE ITI-20, as IPF sends it).
* Over TLS each message is framed by octet counting, ``LEN SP MSG``
  (RFC 5425 4.3). ``FrameDecoder`` takes a stream in arbitrary chunks. A bad
  frame is final: octet counting cannot resynchronise, so the receiver must
  close the connection; it also refuses RFC 6587 LF-terminated framing, which
  RFC 5425 does not allow.
* Over UDP each datagram holds exactly one message (RFC 5426 3.1). RFC 5424 6.1
  lets a transport truncate an oversized message, but a truncated XML audit
  record is no record at all (DICOM A.7 warns of exactly this), so
  ``datagram`` refuses a message over the limit instead, raising
  ``DatagramTooLarge``; the sender then keeps it for a TLS destination and logs
  the refusal. The limit defaults to the largest IPv4 UDP payload, 65,507
  octets; set it lower (e.g. ``UDP_SHOULD_ACCEPT``) for repositories that only
  take what RFC 5426 3.2 obliges them to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from profiles.atna.codec import format_datetime
from profiles.atna.message import AuditError

FACILITY_SECURITY = 10
SEVERITY_WARNING = 4
SEVERITY_NOTICE = 5
MSGID_IHE = "IHE+RFC-3881"
BOM = b"\xef\xbb\xbf"

MAX_FRAME = 1024 * 1024  # receiver cap per message; RFC 5425 asks for >= 2048, SHOULD 8192
UDP_MAX_IPV4 = 65_507  # 65,535 - 20 (IP header) - 8 (UDP header)
UDP_MAX_IPV6 = 65_527  # 65,535 - 8, without jumbograms
UDP_MUST_ACCEPT_IPV4 = 480  # RFC 5426 3.2: every IPv4 receiver takes this much
UDP_MUST_ACCEPT_IPV6 = 1180
UDP_SHOULD_ACCEPT = 2048

_LIMITS = {"HOSTNAME": 255, "APP-NAME": 48, "PROCID": 128, "MSGID": 32}


class SyslogError(AuditError):
    """A syslog message that does not follow RFC 5424."""


class FrameError(SyslogError):
    """A broken RFC 5425 frame; the stream cannot continue."""


class DatagramTooLarge(SyslogError):
    """A message too large for one UDP datagram; it is refused, never truncated."""


@dataclass(frozen=True)
class SyslogMessage:
    """The fields of one RFC 5424 message. ``None`` is the NILVALUE ``-``.

    ``payload`` is MSG without the BOM (for ITI-20, the audit XML);
    ``structured_data`` the raw STRUCTURED-DATA text when present.
    """

    payload: bytes
    hostname: str | None = None
    app_name: str | None = None
    procid: str | None = None
    msgid: str | None = MSGID_IHE
    timestamp: datetime | None = None
    facility: int = FACILITY_SECURITY
    severity: int = SEVERITY_NOTICE
    structured_data: str | None = None
    bom: bool = True
    version: int = 1

    @property
    def pri(self) -> int:
        return self.facility * 8 + self.severity


def _field(name: str, value: str | None) -> str:
    if value is None or value == "-":
        return "-"
    if not value or len(value) > _LIMITS[name] or not all(33 <= ord(c) <= 126 for c in value):
        raise SyslogError(f"{name} must be 1..{_LIMITS[name]} printable US-ASCII characters")
    return value


def encode(message: SyslogMessage) -> bytes:
    """Serialise one message (no framing)."""
    if not (0 <= message.facility <= 23 and 0 <= message.severity <= 7):
        raise SyslogError("facility must be 0..23 and severity 0..7")
    if message.timestamp is not None and message.timestamp.tzinfo is None:
        raise SyslogError("TIMESTAMP must be timezone-aware")
    stamp = "-" if message.timestamp is None else format_datetime(message.timestamp)
    header = " ".join(
        (
            f"<{message.pri}>{message.version}",
            stamp,
            _field("HOSTNAME", message.hostname),
            _field("APP-NAME", message.app_name),
            _field("PROCID", message.procid),
            _field("MSGID", message.msgid),
        )
    ).encode("ascii")
    sd = (message.structured_data or "-").encode("utf-8")
    if not message.payload and not message.bom:
        return header + b" " + sd
    return header + b" " + sd + b" " + (BOM if message.bom else b"") + message.payload


def audit_syslog(
    xml: bytes,
    *,
    timestamp: datetime,
    hostname: str | None,
    app_name: str | None,
    procid: str | None,
    severity: int = SEVERITY_NOTICE,
) -> bytes:
    """The ITI-20 message for one audit record: ``<85>1 ... IHE+RFC-3881 - BOM<?xml...``."""
    return encode(
        SyslogMessage(
            payload=xml,
            hostname=hostname,
            app_name=app_name,
            procid=procid,
            timestamp=timestamp,
            severity=severity,
        )
    )


_HEADER = re.compile(rb"<(\d{1,3})>([1-9][0-9]{0,2}) (\S+) (\S+) (\S+) (\S+) (\S+) ")
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})")


def _parse_timestamp(raw: str) -> datetime | None:
    if raw == "-":
        return None
    if not _TIMESTAMP.fullmatch(raw):
        raise SyslogError(f"TIMESTAMP {raw!r} is not RFC 3339 as RFC 5424 restricts it")
    try:
        return datetime.fromisoformat(raw)
    except ValueError:
        raise SyslogError(f"TIMESTAMP {raw!r} is not a valid date and time") from None


def _split_structured_data(rest: bytes) -> tuple[str | None, bytes]:
    """Split STRUCTURED-DATA from what follows; quoted values may hold ``]`` and spaces."""
    if rest.startswith(b"-"):
        end = 1
        sd = None
    else:
        end = 0
        while end < len(rest) and rest[end : end + 1] == b"[":
            j, quoted = end + 1, False
            while j < len(rest):
                c = rest[j : j + 1]
                if quoted and c == b"\\":
                    j += 2
                    continue
                if c == b'"':
                    quoted = not quoted
                elif c == b"]" and not quoted:
                    break
                j += 1
            else:
                raise SyslogError("unterminated SD-ELEMENT")
            if j == end + 1:
                raise SyslogError("empty SD-ELEMENT")
            end = j + 1
        if end == 0:
            raise SyslogError("STRUCTURED-DATA must be '-' or SD-ELEMENTs")
        try:
            sd = rest[:end].decode("utf-8")
        except UnicodeDecodeError:
            raise SyslogError("STRUCTURED-DATA is not UTF-8") from None
    if end == len(rest):
        return sd, b""
    if rest[end : end + 1] != b" ":
        raise SyslogError("STRUCTURED-DATA must be followed by a space or end the message")
    return sd, rest[end + 1 :]


def parse(data: bytes) -> SyslogMessage:
    """Read one RFC 5424 message (a de-framed TLS frame or a UDP datagram).

    Any PRI is accepted (DICOM A.6 asks repositories to cope with all values).
    """
    m = _HEADER.match(data)
    if m is None:
        raise SyslogError("not an RFC 5424 message (bad PRI, VERSION or header fields)")
    prival = int(m.group(1))
    if prival > 191:
        raise SyslogError(f"PRI {prival} is out of range")
    if m.group(2) != b"1":
        raise SyslogError(f"syslog VERSION {m.group(2).decode()} is not supported")
    fields = []
    for name, raw in zip(("HOSTNAME", "APP-NAME", "PROCID", "MSGID"), m.groups()[3:], strict=True):
        text = raw.decode("ascii", errors="replace")
        fields.append(None if text == "-" else _field(name, text))
    timestamp = _parse_timestamp(m.group(3).decode("ascii", errors="replace"))
    sd, msg = _split_structured_data(data[m.end() :])
    bom = msg.startswith(BOM)
    return SyslogMessage(
        payload=msg[len(BOM) :] if bom else msg,
        hostname=fields[0],
        app_name=fields[1],
        procid=fields[2],
        msgid=fields[3],
        timestamp=timestamp,
        facility=prival // 8,
        severity=prival % 8,
        structured_data=sd,
        bom=bom,
    )


# -- RFC 5425: octet-counted frames over TLS -------------------------------------------


def frame(message: bytes) -> bytes:
    """``MSG-LEN SP SYSLOG-MSG`` (RFC 5425 4.3)."""
    if not message:
        raise FrameError("an empty syslog message cannot be framed")
    return b"%d " % len(message) + message


class FrameDecoder:
    """Incremental RFC 5425 decoder for one TLS stream.

    ``feed`` takes whatever the socket returned and gives back the complete
    messages in it, keeping a partial one for the next call. ``close`` at end of
    stream raises if a frame was cut off. Any error is final.
    """

    def __init__(self, *, max_frame: int = MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._digits = len(str(max_frame))
        self._buf = bytearray()
        self._need: int | None = None
        self._failed: str | None = None

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete frame (for flow control and logs)."""
        return len(self._buf)

    def _fail(self, reason: str) -> FrameError:
        self._failed = reason
        self._buf.clear()
        self._need = None
        return FrameError(reason)

    def _check_length_field(self, head: bytes, *, complete: bool) -> int | None:
        """Check MSG-LEN (``NONZERO-DIGIT *DIGIT``), early on a partial one too."""
        if head[:1] == b"<":
            raise self._fail("non-transparent framing is not RFC 5425; octet counting required")
        if head[:1] == b"0":
            raise self._fail("MSG-LEN has a leading zero")
        if head and not head.isdigit():
            raise self._fail("MSG-LEN is not a decimal number")
        if len(head) > self._digits or (complete and int(head) > self.max_frame):
            raise self._fail(f"frame exceeds the {self.max_frame}-octet limit")
        return int(head) if complete else None

    def feed(self, data: bytes) -> list[bytes]:
        """Complete messages in ``data`` and what came before it.

        Frames that precede a broken one in the same chunk are returned (the sender
        counts them as delivered); the error is raised by the next call.
        """
        if self._failed is not None:
            raise FrameError(self._failed)
        out: list[bytes] = []
        try:
            self._decode(data, out)
        except FrameError:
            if not out:
                raise
        return out

    def _decode(self, data: bytes, out: list[bytes]) -> None:
        buf = self._buf
        buf += data
        pos = 0
        while pos < len(buf):
            if self._need is None:
                space = buf.find(b" ", pos, pos + self._digits + 1)
                if space < 0:
                    head = bytes(buf[pos : pos + self._digits + 1])
                    self._check_length_field(head, complete=False)
                    break
                if space == pos:
                    raise self._fail("MSG-LEN is missing")
                self._need = self._check_length_field(bytes(buf[pos:space]), complete=True)
                pos = space + 1
            if len(buf) - pos < self._need:
                break
            out.append(bytes(buf[pos : pos + self._need]))
            pos += self._need
            self._need = None
        del buf[:pos]

    def close(self) -> None:
        """End of stream: raise if it stopped inside a frame."""
        if self._failed is not None:
            raise FrameError(self._failed)
        if self._buf or self._need is not None:
            raise self._fail("stream ended inside a frame")


# -- RFC 5426: one message per UDP datagram --------------------------------------------


def datagram(message: bytes, *, max_size: int = UDP_MAX_IPV4) -> bytes:
    """The datagram payload for one message, or ``DatagramTooLarge`` (never truncated)."""
    if len(message) > max_size:
        raise DatagramTooLarge(
            f"syslog message of {len(message)} octets exceeds the {max_size}-octet datagram limit"
        )
    return message
