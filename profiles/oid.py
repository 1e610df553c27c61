"""Object identifiers as peers write them, made plain, in one place: every module that
compares homeCommunityIds, assigning authorities or assertion attributes normalises
through here, so two spellings of one OID never compare unequal."""

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
