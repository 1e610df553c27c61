"""Object identifiers as peers write them, made plain, in one place: every module that
compares homeCommunityIds, assigning authorities or assertion attributes normalises
through here, so two spellings of one OID never compare unequal; and the one check of
what an OID is, each caller saying which of peers' liberties it allows."""

from __future__ import annotations


def bare_oid(value: str | None) -> str:
    """``urn:oid:1.2`` (even doubled, padded or in ``[...]``, as real peers send it) ->
    ``1.2``; empty for None."""
    value = (value or "").strip()
    if value.startswith("[") and value.endswith("]"):
        value = value[1:-1].strip()
    while value.lower().startswith("urn:oid:"):
        value = value[8:].strip()
    return value


def as_hcid(value: str | None) -> str | None:
    """A homeCommunityId in our canonical ``urn:oid:`` form (None when absent)."""
    bare = bare_oid(value)
    return f"urn:oid:{bare}" if bare else None


def is_oid(
    value: str | None,
    *,
    allow_urn_prefix: bool = False,
    allow_any_first_arc: bool = False,
    allow_leading_zeros: bool = False,
    max_length: int | None = None,
) -> bool:
    """A dotted-decimal OID: two arcs or more of ASCII digits. Strict by default (ITU-T
    X.660: first arc 0, 1 or 2, no arc with a leading zero, no ``urn:oid:`` prefix);
    ``max_length`` counts the OID without its prefix."""
    if not value:
        return False
    if allow_urn_prefix:
        value = value.removeprefix("urn:oid:")
    if max_length is not None and len(value) > max_length:
        return False
    arcs = value.split(".")
    if len(arcs) < 2 or not all(arc.isascii() and arc.isdigit() for arc in arcs):
        return False
    if not allow_leading_zeros and any(len(arc) > 1 and arc[0] == "0" for arc in arcs):
        return False
    return allow_any_first_arc or arcs[0] in ("0", "1", "2")
