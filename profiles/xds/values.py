"""Value formats XDS metadata is written in: CX patient ids, OIDs, UUID URNs and
HL7 DTM timestamps (ITI TF-3 4.2.3.1).

The model keeps these as the strings that travelled, so nothing is lost and
validation can report every bad value at once; the helpers here say whether a
string is well-formed and turn it into something comparable.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from profiles import oid
from profiles.errors import XDSRegistryMetadataError

MAX_OID = 64
_UUID_URN = re.compile(
    r"urn:uuid:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_DTM = re.compile(r"\d{4}(\d{2}){0,5}")
_DTM_LOW = "00000101000000"
_DTM_HIGH = "99991231235959"


def is_oid(value: str | None) -> bool:
    """A dotted-decimal OID (two arcs or more, no leading zeros, any first arc), at most
    64 characters."""
    return oid.is_oid(value, allow_any_first_arc=True, max_length=MAX_OID)


def is_uuid_urn(value: str | None) -> bool:
    """``urn:uuid:`` followed by a well-formed UUID: an entryUUID, not a symbolic id."""
    return bool(value) and _UUID_URN.fullmatch(value) is not None


def new_uuid_urn() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def is_symbolic(value: str) -> bool:
    """Ids not starting with ``urn:uuid:`` only link objects inside one message."""
    return not value.startswith("urn:uuid:")


@dataclass(frozen=True)
class CX:
    """An XDS patient id: ``id^^^&OID&ISO`` (HL7 CX with only CX.1 and CX.4).

    ``parse`` is strict, as ITI TF-3 4.2.3.1.7 requires: no CX.2/CX.3, no
    namespace id in CX.4, a universal id that is an OID and its type ``ISO``.
    """

    id: str
    assigning_authority: str  # the OID in CX.4.2

    @classmethod
    def parse(cls, value: str) -> CX:
        def bad(why: str) -> XDSRegistryMetadataError:
            return XDSRegistryMetadataError(
                f"patient id {value!r} is not of the form id^^^&OID&ISO: {why}"
            )

        if value != value.strip():
            raise bad("leading or trailing blanks")
        parts = value.split("^")
        if len(parts) != 4:
            raise bad("it needs exactly four components")
        if not parts[0]:
            raise bad("CX.1 (the id) is empty")
        if parts[1] or parts[2]:
            raise bad("CX.2 and CX.3 must be empty")
        authority = parts[3].split("&")
        if len(authority) != 3:
            raise bad("CX.4 must be &OID&ISO")
        if authority[0]:
            raise bad("CX.4.1 (namespace id) must be empty")
        if authority[2] != "ISO":
            raise bad("CX.4.3 must be ISO")
        if not is_oid(authority[1]):
            raise bad("CX.4.2 must be an OID of at most 64 characters")
        return cls(parts[0], authority[1])

    def __str__(self) -> str:
        return f"{self.id}^^^&{self.assigning_authority}&ISO"


def is_dtm(value: str | None) -> bool:
    """HL7 DTM as XDS restricts it: ``YYYY[MM[DD[hh[mm[ss]]]]]``, UTC, a real date."""
    if not value or _DTM.fullmatch(value) is None:
        return False
    full = dtm_low(value)
    try:
        datetime.strptime(full, "%Y%m%d%H%M%S")
    except ValueError:
        return False
    return True


def dtm_low(value: str) -> str:
    """The earliest instant a DTM of any precision covers, as 14 sortable digits."""
    return value + _DTM_LOW[len(value) :]


def dtm_high(value: str) -> str:
    """The latest instant a DTM covers, as 14 digits that sort after every instant in it."""
    return value + _DTM_HIGH[len(value) :]


def dtm_from_datetime(moment: datetime) -> str:
    """A DTM (to the second, in UTC) for times the registry itself sets."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y%m%d%H%M%S")
