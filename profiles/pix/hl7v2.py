"""HL7 v2.x for the PIX Manager (ITI-8 feeds, ITI-9 queries): bytes, charsets, PID, answers.

python-hl7 does the parsing (separators from MSH-1/2, escape sequences undone
by ``extract_field``) and the building (``assign_field``, values escaped with
the request's own separators). What is ours:

* the character set: MSH-18 names it (``8859/1``, ``UNICODE UTF-8``...);
  without it UTF-8 is tried and ISO-8859-1 taken when the bytes are not UTF-8.
  Answers go back in the request's character set;
* segment terminators: CR per the standard; CRLF and LF are accepted;
* PID read into the same ``Person`` model ITI-44 feeds carry, so both feeds
  store the same thing; a CX id counts only with an ISO OID assigning authority;
* acknowledgements (ACK, MSA, ERR) in the form of the request's version:
  ERR-1 (segment^sequence^field^code) before v2.5, ERR-2/3/4 from v2.5 on.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import hl7

from profiles.hl7v3.datatypes import (
    AD,
    II,
    PN,
    TEL,
    TS,
    AddressPart,
    Code,
    NamePart,
    gender,
    is_oid,
    strip_urn_oid,
)
from profiles.hl7v3.patient import OtherId, Person

CHARSETS = {"ASCII": "ascii", "8859/1": "latin-1", "8859/15": "iso-8859-15",
            "UNICODE UTF-8": "utf-8", "UNICODE": "utf-8"}
SSN_OID = "2.16.840.1.113883.4.1"
MARITAL_STATUS = "2.16.840.1.113883.5.2"
ERROR_CODES = "HL70357"
_SEX = {"M": "M", "F": "F"}  # anything else (U, O, A, N) is UN
_NAME_USE = {"L": ("L",), "A": ("P",), "D": ("P",), "M": ("L",)}
_PHONE_USE = {"PRN": "HP", "ORN": "HP", "VHN": "HV", "WPN": "WP", "ASN": "AS", "EMR": "EC"}


class V2Error(Exception):
    """A refusal: ``code`` from HL7 table 0357, ``location`` (segment, sequence, field,
    repetition, component) of the offending value, ``ack`` AE (error) or AR (reject)."""

    def __init__(self, code: str, text: str, location: tuple = (), *, ack: str = "AE"):
        super().__init__(text)
        self.code, self.text, self.location, self.ack = code, text, location, ack


def _charset_of(first_segment: str) -> str:
    fields = first_segment.split(first_segment[3]) if len(first_segment) > 3 else []
    return fields[17].split("^")[0].strip() if len(fields) > 17 else ""


@dataclass(frozen=True)
class V2Message:
    """A parsed message and the codec its answer must use."""

    msg: hl7.Message
    encoding: str

    def get(self, segment: str, field: int, rep: int = 1, comp: int = 1, sub: int = 1,
            n: int = 1) -> str:
        """The unescaped value at that path, '' where the message has nothing."""
        try:
            return (self.msg.extract_field(segment, n, field, rep, comp, sub) or "").strip()
        except (IndexError, KeyError):
            return ""

    def repetitions(self, segment: str, field: int, n: int = 1) -> int:
        try:
            value = self.msg.segments(segment)(n)(field)
        except (IndexError, KeyError):
            return 0
        if value and isinstance(value[0], hl7.Repetition):
            return len(value)
        return 1 if str(value) else 0

    def count(self, segment: str) -> int:
        try:
            return len(self.msg.segments(segment))
        except KeyError:
            return 0

    @property
    def control_id(self) -> str:
        return self.get("MSH", 10)

    @property
    def message_type(self) -> str:
        return self.get("MSH", 9, 1, 1)

    @property
    def trigger(self) -> str:
        return self.get("MSH", 9, 1, 2)

    @property
    def version(self) -> str:
        return self.get("MSH", 12, 1, 1)

    @property
    def charset(self) -> str:
        return self.get("MSH", 18)


def decode(raw: bytes) -> V2Message:
    """Bytes (one message, MLLP framing removed) to a message; V2Error AR when unreadable."""
    head = raw.lstrip()[:512].decode("latin-1").replace("\n", "\r").split("\r", 1)[0]
    if not head.startswith("MSH") or len(head) < 8:
        raise V2Error("100", "the message does not start with an MSH segment", ("MSH",),
                      ack="AR")
    declared = _charset_of(head)
    if declared and declared not in CHARSETS:
        raise V2Error("103", "unsupported character set in MSH-18", ("MSH", 1, 18), ack="AR")
    encoding = CHARSETS.get(declared, "utf-8")
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError:
        if declared:
            raise V2Error("102", "the bytes are not in the MSH-18 character set",
                          ("MSH", 1, 18), ack="AR") from None
        encoding, text = "latin-1", raw.decode("latin-1")
    text = text.strip().replace("\r\n", "\r").replace("\n", "\r")
    try:
        return V2Message(hl7.parse(text), encoding)
    except Exception:  # python-hl7 raises several kinds for broken separators
        raise V2Error("100", "the message cannot be parsed", ("MSH",), ack="AR") from None


def encode(message: hl7.Message, encoding: str) -> bytes:
    return str(message).encode(encoding, errors="replace")


# -- reading PID -----------------------------------------------------------------------------


def cx(m: V2Message, segment: str, field: int, rep: int = 1, n: int = 1) -> II | None:
    """A CX identifier with an ISO OID assigning authority; None for none, ``""`` or no OID."""
    value = m.get(segment, field, rep, 1, 1, n)
    oid = strip_urn_oid(m.get(segment, field, rep, 4, 2, n))
    kind = m.get(segment, field, rep, 4, 3, n)
    if not value or value == '""' or not is_oid(oid) or kind not in ("", "ISO"):
        return None
    return II(oid, value, m.get(segment, field, rep, 4, 1, n) or None)


def cx_list(m: V2Message, segment: str, field: int, n: int = 1) -> tuple[list[II], bool]:
    """Every usable CX of a repeating field, and whether any value went unused."""
    found, skipped = [], False
    for rep in range(1, m.repetitions(segment, field, n) + 1):
        ii = cx(m, segment, field, rep, n)
        if ii is None:
            skipped = skipped or m.get(segment, field, rep, 1, 1, n) not in ("", '""')
        else:
            found.append(ii)
    return found, skipped


def _names(m: V2Message, field: int, n: int) -> tuple[PN, ...]:
    names = []
    for rep in range(1, m.repetitions("PID", field, n) + 1):
        def part(comp: int, rep: int = rep) -> str:
            return m.get("PID", field, rep, comp, 1, n)

        kind = part(7)
        if kind == "S":  # a coded pseudo-name says "no name"
            continue
        parts = [NamePart("prefix", part(5))] if part(5) else []
        parts += [NamePart("given", v) for v in (part(2), part(3)) if v]
        if part(1):
            parts.append(NamePart("family", part(1), "BR" if kind == "B" else None))
        if part(4):
            parts.append(NamePart("suffix", part(4)))
        if parts:
            names.append(PN(tuple(parts), _NAME_USE.get(kind, ())))
    return tuple(names)


def _addresses(m: V2Message, n: int) -> tuple[AD, ...]:
    found = []
    for rep in range(1, m.repetitions("PID", 11, n) + 1):
        value = [m.get("PID", 11, rep, c, 1, n) for c in range(1, 8)]
        kinds = ("streetAddressLine", "streetAddressLine", "city", "state", "postalCode",
                 "country")
        parts = tuple(AddressPart(k, v) for k, v in zip(kinds, value[:6], strict=True) if v)
        if parts:
            found.append(AD(parts, {"H": ("H",), "B": ("WP",), "O": ("WP",)}.get(value[6], ())))
    return tuple(found)


def _telecoms(m: V2Message, n: int) -> tuple[TEL, ...]:
    found = []
    for field, default in ((13, "HP"), (14, "WP")):
        for rep in range(1, m.repetitions("PID", field, n) + 1):
            def comp(c: int, field: int = field, rep: int = rep) -> str:
                return m.get("PID", field, rep, c, 1, n)

            use = _PHONE_USE.get(comp(2), default)
            email = comp(4) or (comp(1) if comp(3) in ("Internet", "X.400") else "")
            if email:  # v2.3.1 senders put the address in XTN-1 with equipment "Internet"
                found.append(TEL(f"mailto:{email}", () if comp(2) == "NET" else (use,)))
                continue
            number = comp(1) or (comp(6) + comp(7))
            if number:
                scheme = "fax" if comp(3) == "FX" else "tel"
                found.append(TEL(f"{scheme}:{number}", ("MC",) if comp(3) == "CP" else (use,)))
    return tuple(found)


def _time(m: V2Message, field: int, n: int) -> TS | None:
    value = m.get("PID", field, 1, 1, 1, n)
    if not value:
        return None
    ts = TS.parse(value)
    if not ts.is_valid:
        raise V2Error("102", "not a valid HL7 date/time", ("PID", n, field))
    return ts


def _flag(m: V2Message, field: int, n: int) -> bool | None:
    value = m.get("PID", field, 1, 1, 1, n).upper()
    return {"Y": True, "N": False}.get(value)


def pid_person(m: V2Message, n: int = 1) -> tuple[list[II], Person]:
    """The n-th PID: its usable identifiers (PID-3) and the person; V2Error 204 when no
    identifier has an ISO OID assigning authority."""
    ids, skipped = cx_list(m, "PID", 3, n)
    if not ids:
        code = "204" if skipped else "101"
        raise V2Error(code, "PID-3 holds no identifier with an ISO OID assigning authority",
                      ("PID", n, 3))
    ssn = m.get("PID", 19, 1, 1, 1, n)
    others = [OtherId(ii, ii.root) for ii in ids[1:]]
    if ssn and ssn != '""':
        others.append(OtherId(II(SSN_OID, ssn), SSN_OID))
    mother = _names(m, 6, n)
    marital = m.get("PID", 16, 1, 1, 1, n)
    sex = m.get("PID", 8, 1, 1, 1, n).upper()
    order = m.get("PID", 25, 1, 1, 1, n)
    return ids, Person(
        names=_names(m, 5, n),
        gender=gender(_SEX.get(sex, "UN")) if sex else None,
        birth_time=_time(m, 7, n),
        addresses=_addresses(m, n),
        telecoms=_telecoms(m, n),
        other_ids=tuple(others),
        deceased=_flag(m, 30, n),
        deceased_time=_time(m, 29, n),
        multiple_birth=_flag(m, 24, n),
        multiple_birth_order=int(order) if order.isdigit() else None,
        marital_status=Code(marital, MARITAL_STATUS) if marital else None,
        mothers_maiden_name=mother[0] if mother else None,
        birth_place_name=m.get("PID", 23, 1, 1, 1, n) or None,
    )


# -- answers ---------------------------------------------------------------------------------


def escape(message: hl7.Message, value: str) -> str:
    """Delimiters and the escape character escaped (\\F\\, \\S\\...); other characters stay as they
    are, since the answer is encoded in the request's character set (python-hl7's own
    ``escape`` turns them into hex)."""
    esc = message.esc
    names = {message.separators[1]: "F", message.separators[2]: "R",
             message.separators[3]: "S", message.separators[4]: "T", esc: "E"}
    return "".join(f"{esc}{names[c]}{esc}" if c in names else " " if c in "\r\n" else c
                   for c in value)


def message_control_id() -> str:
    return uuid.uuid4().hex[:20]  # MSH-10 is at most 20 characters


def answer_to(req: V2Message, message_type: str, trigger: str, structure: str, *,
              now: datetime | None = None) -> hl7.Message:
    """A new message answering ``req``: MSH with sender and receiver swapped, same version,
    processing id and character set."""
    src = req.msg
    msh = src.create_segment([src.create_field(["MSH"])])
    msh.assign_field(str(src.segment("MSH")(1)), 1)
    msh.assign_field(str(src.segment("MSH")(2)), 2)
    for target, source in ((3, 5), (4, 6), (5, 3), (6, 4)):
        for comp in (1, 2, 3):
            value = req.get("MSH", source, 1, comp)
            if value:
                msh.assign_field(escape(src, value), target, 1, comp)
    msh.assign_field((now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S"), 7)
    for comp, value in enumerate((message_type, trigger, structure), start=1):
        msh.assign_field(value, 9, 1, comp)
    msh.assign_field(message_control_id(), 10)
    msh.assign_field(escape(src, req.get("MSH", 11) or "P"), 11)
    msh.assign_field(escape(src, req.version or "2.5"), 12)
    if req.charset:
        msh.assign_field(escape(src, req.charset), 18)
    return src.create_message([msh])


def add_segment(message: hl7.Message, name: str, values: dict) -> hl7.Segment:
    """Append segment ``name``; ``values`` maps a path (field[, rep, comp, sub]) to a raw
    (unescaped) value."""
    seg = message.create_segment([message.create_field([name])])
    for path, value in sorted(values.items(), key=lambda kv: _as_path(kv[0])):
        if value:
            seg.assign_field(escape(message, value), *_as_path(path))
    message.append(seg)
    return seg


def _as_path(path: int | tuple[int, ...]) -> tuple[int, ...]:
    return (path,) if isinstance(path, int) else path


def _old_version(version: str) -> bool:
    digits = [int(p) for p in version.split(".")[:2] if p.isdigit()]
    return tuple(digits) < (2, 5)


def add_error(message: hl7.Message, req: V2Message, error: V2Error) -> None:
    """ERR for ``error``: ERR-1 before v2.5; ERR-2 location, ERR-3 code, ERR-4 severity after."""
    location = list(error.location)
    if _old_version(req.version):
        values: dict = {(1, 1, i + 1): str(v) for i, v in enumerate(location[:3])}
        values.update({(1, 1, 4, 1): error.code, (1, 1, 4, 2): error.text,
                       (1, 1, 4, 3): ERROR_CODES})
    else:
        values = {(2, 1, i + 1): str(v) for i, v in enumerate(location[:6])}
        values.update({(3, 1, 1): error.code, (3, 1, 2): error.text, (3, 1, 3): ERROR_CODES,
                       4: "E"})
    add_segment(message, "ERR", values)


def acknowledgement(req: V2Message, error: V2Error | None = None, *,
                    now: datetime | None = None) -> hl7.Message:
    """ACK^<trigger>^ACK: AA, or the error's AE/AR with its ERR."""
    ack = answer_to(req, "ACK", req.trigger, "ACK", now=now)
    code = "AA" if error is None else error.ack
    add_segment(ack, "MSA", {1: code, 2: req.control_id,
                             3: error.text if error and _old_version(req.version) else ""})
    if error is not None:
        add_error(ack, req, error)
    return ack


FALLBACK = V2Message(hl7.parse("MSH|^~\\&|||||||ACK|0|P|2.5"), "utf-8")
