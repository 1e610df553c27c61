"""HL7 v3 data types as frozen dataclasses: II, CD/CE/CS, PN, AD, TEL and TS.

Values are kept as the strings that travelled (a postal code ``05080`` keeps
its zero); helpers derive what matching needs (given names, the birth date).
Names and addresses keep their parts in document order with their kinds, so
a name built from a model and parsed back is equal to it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone

from profiles import oid
from profiles.oid import bare_oid

# The HL7 ts pattern from datatypes-base.xsd, which schema validation enforces.
TS_RE = re.compile(r"^([0-9]{1,8}|([0-9]{9,14}|[0-9]{14}\.[0-9]+)([+\-][0-9]{1,4})?)$")


def is_oid(value: str | None) -> bool:
    """A strict (X.660) bare OID, as HL7 v3 roots and assigning authorities carry."""
    return oid.is_oid(value)


def strip_urn_oid(value: str | None) -> str | None:
    """``urn:oid:1.2.3`` -> ``1.2.3`` (None when nothing is left): HL7 v3 roots carry bare OIDs."""
    return bare_oid(value) or None


@dataclass(frozen=True)
class II:
    """Instance identifier: ``root`` (OID or UUID) plus optional ``extension``."""

    root: str | None = None
    extension: str | None = None
    assigning_authority_name: str | None = None
    null_flavor: str | None = None

    def __str__(self) -> str:
        if self.null_flavor and not self.root:
            return f"<{self.null_flavor}>"
        if self.extension:
            return f"{self.extension}^^^&{self.root or ''}&ISO"
        return self.root or ""


@dataclass(frozen=True)
class Code:
    """A coded value (CD, CE, CS, CV): code plus the system it comes from."""

    code: str | None = None
    code_system: str | None = None
    code_system_name: str | None = None
    display_name: str | None = None
    null_flavor: str | None = None


GENDER_CODE_SYSTEM = "2.16.840.1.113883.5.1"  # AdministrativeGender


def gender(code: str) -> Code:
    """An administrativeGenderCode (M, F, UN)."""
    return Code(code, GENDER_CODE_SYSTEM)


NAME_PARTS = ("given", "family", "prefix", "suffix", "delimiter")


@dataclass(frozen=True)
class NamePart:
    kind: str  # given | family | prefix | suffix | delimiter
    value: str
    qualifier: str | None = None  # e.g. BR (birth name), AC (academic title)


@dataclass(frozen=True)
class PN:
    """A person name; ``text`` holds an unstructured name such as ``<name>Unknown</name>``."""

    parts: tuple[NamePart, ...] = ()
    use: tuple[str, ...] = ()
    text: str | None = None
    null_flavor: str | None = None

    @classmethod
    def of(cls, given: str | tuple[str, ...] = (), family: str | tuple[str, ...] = (), *,
           prefix: str | tuple[str, ...] = (), suffix: str | tuple[str, ...] = (),
           use: tuple[str, ...] = ()) -> PN:
        """Prefix, given, family, suffix in that order: the common case built from data."""
        parts: list[NamePart] = []
        for kind, values in (("prefix", prefix), ("given", given), ("family", family),
                             ("suffix", suffix)):
            parts += [NamePart(kind, v) for v in ((values,) if isinstance(values, str) else values)]
        return cls(tuple(parts), use)

    def _values(self, kind: str) -> tuple[str, ...]:
        return tuple(p.value for p in self.parts if p.kind == kind)

    @property
    def given(self) -> tuple[str, ...]:
        return self._values("given")

    @property
    def family(self) -> tuple[str, ...]:
        return self._values("family")

    @property
    def prefix(self) -> tuple[str, ...]:
        return self._values("prefix")

    @property
    def suffix(self) -> tuple[str, ...]:
        return self._values("suffix")

    @property
    def is_empty(self) -> bool:
        return not self.parts and not self.text and not self.null_flavor


@dataclass(frozen=True)
class AddressPart:
    kind: str  # the AD part element: streetAddressLine, city, state, postalCode, country, ...
    value: str


@dataclass(frozen=True)
class AD:
    """A postal address as typed parts in document order."""

    parts: tuple[AddressPart, ...] = ()
    use: tuple[str, ...] = ()
    text: str | None = None
    null_flavor: str | None = None

    @classmethod
    def of(cls, street: str | tuple[str, ...] = (), city: str | None = None,
           state: str | None = None, postal_code: str | None = None,
           country: str | None = None, *, use: tuple[str, ...] = ()) -> AD:
        lines = (street,) if isinstance(street, str) else street
        parts = [AddressPart("streetAddressLine", s) for s in lines]
        for kind, value in (("city", city), ("state", state), ("postalCode", postal_code),
                            ("country", country)):
            if value is not None:
                parts.append(AddressPart(kind, value))
        return cls(tuple(parts), use)

    def _first(self, kind: str) -> str | None:
        return next((p.value for p in self.parts if p.kind == kind), None)

    @property
    def street_lines(self) -> tuple[str, ...]:
        return tuple(p.value for p in self.parts if p.kind == "streetAddressLine")

    @property
    def city(self) -> str | None:
        return self._first("city")

    @property
    def state(self) -> str | None:
        return self._first("state")

    @property
    def postal_code(self) -> str | None:
        return self._first("postalCode")

    @property
    def country(self) -> str | None:
        return self._first("country")

    @property
    def is_empty(self) -> bool:
        return not self.parts and not self.text and not self.null_flavor


@dataclass(frozen=True)
class TEL:
    """A telecom address as a URL (``tel:``, ``mailto:``, ``http:``...) with its uses."""

    value: str | None = None
    use: tuple[str, ...] = ()
    null_flavor: str | None = None

    @property
    def scheme(self) -> str | None:
        if not self.value or ":" not in self.value:
            return None
        return self.value.split(":", 1)[0].lower()


_ISO_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$"
)


@dataclass(frozen=True)
class TS:
    """A point in time at its own precision, kept as the HL7 string (YYYYMMDD[HHMM[SS]]...).

    ISO-8601 input (some peers send it) is rewritten to HL7 form by ``parse``.
    """

    value: str | None = None
    null_flavor: str | None = None

    @classmethod
    def parse(cls, raw: str) -> TS:
        """HL7 DTM as is; ISO-8601 converted to it; anything else kept verbatim."""
        raw = raw.strip()
        m = _ISO_RE.match(raw)
        if not m:
            return cls(raw)
        y, mo, d, hh, mi, ss, frac, zone = m.groups()
        value = y + mo + d + (hh or "") + (mi or "") + (ss or "")
        if ss and frac:
            value += frac
        if hh and zone:
            value += "+0000" if zone == "Z" else zone.replace(":", "")
        return cls(value)

    @classmethod
    def of(cls, moment: date | datetime) -> TS:
        """A date becomes YYYYMMDD; a datetime YYYYMMDDHHMMSS in UTC (naive taken as UTC)."""
        if isinstance(moment, datetime):
            aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
            return cls(aware.astimezone(UTC).strftime("%Y%m%d%H%M%S"))
        return cls(moment.strftime("%Y%m%d"))

    @property
    def is_valid(self) -> bool:
        return self.value is not None and TS_RE.match(self.value) is not None

    def to_date(self) -> date | None:
        """The calendar date when at least YYYYMMDD is present and real, else None."""
        if not self.value or len(self.value) < 8 or not self.value[:8].isdigit():
            return None
        try:
            return date(int(self.value[:4]), int(self.value[4:6]), int(self.value[6:8]))
        except ValueError:
            return None

    def to_datetime(self) -> datetime | None:
        """The instant (UTC when no zone is given) at the precision sent, else None."""
        if not self.is_valid or self.to_date() is None:
            return None
        v = self.value or ""
        zone = re.search(r"[+-]\d{4}$", v)
        digits = v[: zone.start()] if zone else v
        main = digits.split(".")[0].ljust(14, "0")
        try:
            moment = datetime.strptime(main, "%Y%m%d%H%M%S")
        except ValueError:
            return None
        tz = UTC
        if zone:
            sign = 1 if zone.group()[0] == "+" else -1
            hours, minutes = int(zone.group()[1:3]), int(zone.group()[3:5])
            tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
        return moment.replace(tzinfo=tz)
