"""Demographics reduced to what matching compares, and the blocking keys that find candidates.

The index stores, per record, a handful of short keys (``patient_keys``) and
finds candidates for a query by looking its keys up in that one indexed
column, so a query never scans the population. Keys are built here, once, for
both sides, so the stored and the asked forms cannot drift apart:

* ``dob:YYYYMMDD``: the birth date. A query also asks for the dates one
  slip of the pen away (day and month swapped, two adjacent digits swapped);
* ``n:FFFF|GGGG``: Soundex of the family name and of the first given name
  (nicknames mapped to their full form), so typos that keep the sound, and
  Bill for William, still meet. A query also tries given and family swapped;
* ``tel:NNNNNNNNNN``: the last ten digits of a phone number;
* ``id:ROOT^EXT``: the record's own and other identifiers.

A person whose name and birth date are both wrong is not found: the score
would reject them anyway.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from profiles.hl7v3.datatypes import AD, II, PN
from profiles.hl7v3.patient import Person

# Common English nicknames -> the full form, one family per line (first word is the full form).
_NICKNAMES = """
ABIGAIL ABBY ABBIE|ALEXANDER ALEX ALEC SANDY|ALEXANDRA ALEX SASHA SANDRA|ALFRED ALF FRED
ANDREW ANDY DREW|ANTHONY TONY|BARBARA BARB BARBIE|BENJAMIN BEN BENNY|CATHERINE CATHY KATE
CHARLES CHARLIE CHUCK CHAS|CHRISTINE CHRIS CHRISSY|CHRISTOPHER CHRIS KIT|DANIEL DAN DANNY
DAVID DAVE DAVY|DEBORAH DEB DEBBIE DEBBY|DONALD DON DONNIE|DOROTHY DOT DOTTIE DOLLY
EDWARD ED EDDIE TED TEDDY NED|ELIZABETH LIZ LIZZIE BETH BETTY ELIZA LIZA BETSY|EUGENE GENE
FREDERICK FRED FREDDIE FRITZ|GERALD JERRY GERRY|GREGORY GREG|HAROLD HAL HARRY|HENRY HANK HARRY
JAMES JIM JIMMY JAMIE JIMMIE|JENNIFER JEN JENNY|JOHN JACK JOHNNY JON|JONATHAN JON JONNY
JOSEPH JOE JOEY|JOSEPHINE JO JOSIE|KATHERINE KATE KATHY KATIE KAY KITTY|KENNETH KEN KENNY
LAWRENCE LARRY|LEONARD LEN LENNY LEO|MARGARET MAGGIE PEGGY MEG MARGE MADGE GRETA|MATTHEW MATT
MICHAEL MIKE MICKEY MICK|NICHOLAS NICK NICKY|PATRICIA PAT PATTY TRISH TRICIA|PATRICK PAT PADDY
PETER PETE|PHILIP PHIL|REBECCA BECKY BECCA|RICHARD RICK RICKY DICK RICH|ROBERT BOB BOBBY ROB ROBBIE
RONALD RON RONNIE|SAMUEL SAM SAMMY|STEPHEN STEVE STEVIE|STEVEN STEVE|SUSAN SUE SUSIE SUZY
THEODORE TED TEDDY THEO|THOMAS TOM TOMMY|TIMOTHY TIM TIMMY|VICTORIA VICKY VICKIE TORI
VIRGINIA GINNY GINGER|WILLIAM BILL BILLY WILL WILLY LIAM
"""


def _nicknames(table: str) -> dict[str, frozenset[str]]:
    """Each name -> the full forms it may stand for (a full form stands for itself)."""
    found: dict[str, set[str]] = {}
    for family in table.replace("\n", "|").split("|"):
        names = family.split()
        if names:
            for name in names:
                found.setdefault(name, set()).add(names[0])
    return {k: frozenset(v) for k, v in found.items()}


NICKNAMES = _nicknames(_NICKNAMES)


def full_forms(given: str) -> frozenset[str]:
    """The full names a (normalised) given name may stand for, itself included."""
    return NICKNAMES.get(given, frozenset()) | {given}


def normalise(text: str | None) -> str:
    """Upper-case ASCII letters and single spaces: accents dropped, O'Brien -> OBRIEN."""
    if not text:
        return ""
    plain = unicodedata.normalize("NFKD", text)
    out = []
    for ch in plain:
        if unicodedata.combining(ch) or ch in "'`\u2019":
            continue
        out.append(ch.upper() if ch.isalpha() and ch.isascii() else " ")
    return " ".join("".join(out).split())


_SOUNDEX = {**dict.fromkeys("BFPV", "1"), **dict.fromkeys("CGJKQSXZ", "2"),
            **dict.fromkeys("DT", "3"), "L": "4", "M": "5", "N": "5", "R": "6"}


def soundex(word: str) -> str:
    """American Soundex of a normalised word (letter + 3 digits), '' for none."""
    letters = word.replace(" ", "")
    if not letters:
        return ""
    code, last = letters[0], _SOUNDEX.get(letters[0], "")
    for ch in letters[1:]:
        digit = _SOUNDEX.get(ch, "")
        if digit and digit != last:
            code += digit
        if ch not in "HW":  # H and W do not separate equal codes; vowels do
            last = digit
    return (code + "000")[:4]


def digits(value: str | None) -> str:
    return "".join(ch for ch in value or "" if ch.isdigit())


def phone_key(value: str | None) -> str | None:
    """The last ten digits of a tel: URL or number (seven or more digits), else None."""
    if not value or value.lower().startswith(("mailto:", "http:", "https:")):
        return None
    found = digits(value)
    return found[-10:] if len(found) >= 7 else None


@dataclass(frozen=True)
class Demographics:
    """What is compared when matching: names, sex, birth date, addresses, phones, ids."""

    names: tuple[PN, ...] = ()
    gender: str | None = None  # administrativeGender code: M, F, UN
    birth_time: str | None = None  # HL7 TS as sent (YYYYMMDD...)
    addresses: tuple[AD, ...] = ()
    telecoms: tuple[str, ...] = ()
    ids: tuple[II, ...] = ()
    mothers_maiden_name: PN | None = None
    birth_place_name: str | None = None

    @classmethod
    def of_person(cls, person: Person, ids: Iterable[II] = ()) -> Demographics:
        return cls(
            names=person.names,
            gender=person.gender.code if person.gender else None,
            birth_time=person.birth_time.value if person.birth_time else None,
            addresses=person.addresses,
            telecoms=tuple(t.value for t in person.telecoms if t.value),
            ids=(*ids, *(o.id for o in person.other_ids)),
            mothers_maiden_name=person.mothers_maiden_name,
            birth_place_name=person.birth_place_name,
        )

    @property
    def birth_date(self) -> str | None:
        """The first eight digits of the birth time, when there are eight."""
        value = digits((self.birth_time or "")[:8])
        return value if len(value) == 8 else None


def name_parts(name: PN) -> tuple[list[str], list[str]]:
    """(given words, family words), normalised; an unstructured name is split on spaces
    with its last word taken as the family name."""
    given = [w for g in name.given for w in normalise(g).split()]
    family = [w for f in name.family for w in normalise(f).split()]
    if not given and not family and name.text:
        words = normalise(name.text).split()
        if len(words) > 1:
            given, family = words[:-1], words[-1:]
    return given, family


def birth_date_variants(date: str) -> set[str]:
    """The date, day and month swapped, and every pair of adjacent digits swapped."""
    variants = {date, date[:4] + date[6:8] + date[4:6]}
    for i in range(7):
        variants.add(date[:i] + date[i + 1] + date[i] + date[i + 2:])
    return variants


def _name_keys(d: Demographics, *, query: bool) -> Iterator[str]:
    for name in d.names:
        given, family = name_parts(name)
        if not given or not family:
            continue
        fam = soundex("".join(family))
        pairs = [(fam, soundex(full)) for full in full_forms(given[0])]
        if query:  # given and family swapped by the sender
            pairs += [(soundex(given[0]), soundex(full)) for full in full_forms(family[0])]
        yield from (f"n:{f}|{g}" for f, g in pairs)


def id_key(ii: II) -> str | None:
    if not ii.root or not ii.extension:
        return None
    return f"id:{ii.root}^{ii.extension}"


def blocking_keys(d: Demographics, *, query: bool = False) -> set[str]:
    """The record's keys (``query=False``) or the keys a query looks up (with variants)."""
    keys = set(_name_keys(d, query=query))
    date = d.birth_date
    if date:
        keys |= {f"dob:{v}" for v in (birth_date_variants(date) if query else {date})}
    keys |= {f"tel:{p}" for p in map(phone_key, d.telecoms) if p}
    keys |= {k for k in map(id_key, d.ids) if k}
    return keys
