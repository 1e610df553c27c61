"""A ``Person`` as the JSON kept in ``patients.demographics``, and back, losslessly.

The index answers with the demographics its source fed (name parts in order,
qualifiers, uses, birth place...), so they are kept whole rather than spread
over columns; searching uses ``patient_keys``, not this document.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from profiles.hl7v3.datatypes import AD, II, PN, TEL, TS, AddressPart, Code, NamePart
from profiles.hl7v3.patient import OtherId, Person

VERSION = 1


def person_to_json(person: Person) -> dict[str, Any]:
    data = asdict(person)
    data["v"] = VERSION
    return data


def _pn(d: dict[str, Any] | None) -> PN | None:
    if d is None:
        return None
    return PN(tuple(NamePart(**p) for p in d["parts"]), tuple(d["use"]), d["text"],
              d["null_flavor"])


def _ad(d: dict[str, Any] | None) -> AD | None:
    if d is None:
        return None
    return AD(tuple(AddressPart(**p) for p in d["parts"]), tuple(d["use"]), d["text"],
              d["null_flavor"])


def _code(d: dict[str, Any] | None) -> Code | None:
    return None if d is None else Code(**d)


def _ts(d: dict[str, Any] | None) -> TS | None:
    return None if d is None else TS(**d)


def person_from_json(data: dict[str, Any]) -> Person:
    return Person(
        names=tuple(n for n in map(_pn, data.get("names", ())) if n is not None),
        gender=_code(data.get("gender")),
        birth_time=_ts(data.get("birth_time")),
        addresses=tuple(a for a in map(_ad, data.get("addresses", ())) if a is not None),
        telecoms=tuple(TEL(t["value"], tuple(t["use"]), t["null_flavor"])
                       for t in data.get("telecoms", ())),
        other_ids=tuple(OtherId(II(**o["id"]), o["scoping_organization"], o["class_code"])
                        for o in data.get("other_ids", ())),
        deceased=data.get("deceased"),
        deceased_time=_ts(data.get("deceased_time")),
        multiple_birth=data.get("multiple_birth"),
        multiple_birth_order=data.get("multiple_birth_order"),
        marital_status=_code(data.get("marital_status")),
        mothers_maiden_name=_pn(data.get("mothers_maiden_name")),
        birth_place=_ad(data.get("birth_place")),
        birth_place_name=data.get("birth_place_name"),
    )
