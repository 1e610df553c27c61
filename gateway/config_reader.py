"""Reading one TOML table of gateway.toml while collecting problems instead of raising.

``TableReader`` is what ``gateway.config`` (and ``gateway.settings`` for its tables)
read with: each wrong type, failed check, missing required key and unknown key
becomes one ``dotted.key: reason`` line in a shared list, so ``check-config`` can
print every problem at once. The ``must_*`` checks return a reason, or None.
"""

from __future__ import annotations

from typing import Any

from profiles.oid import is_oid


class TableReader:
    """Reads one TOML table, recording problems instead of raising."""

    def __init__(self, table: Any, where: str, problems: list[str]) -> None:
        self.where, self.problems = where, problems
        if not isinstance(table, dict):
            problems.append(f"{where}: must be a table")
            table = {}
        self.table: dict[str, Any] = table
        self.seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.where}.{name}" if self.where else name

    def get(self, name: str, kind: type | tuple[type, ...], default: Any = ..., *, check=None):
        self.seen.add(name)
        if name not in self.table:
            if default is ...:
                self.problems.append(f"{self.key(name)}: required")
                return None
            return default
        value = self.table[name]
        if isinstance(value, bool) and kind is not bool and bool not in _as_tuple(kind):
            self.problems.append(f"{self.key(name)}: expected {_kind_name(kind)}, got a boolean")
            return None if default is ... else default
        if not isinstance(value, kind):
            self.problems.append(
                f"{self.key(name)}: expected {_kind_name(kind)}, got {type(value).__name__}"
            )
            return None if default is ... else default
        if check is not None:
            reason = check(value)
            if reason:
                self.problems.append(f"{self.key(name)}: {reason}")
        return value

    def sub(self, name: str) -> TableReader:
        self.seen.add(name)
        return TableReader(self.table.get(name, {}), self.key(name), self.problems)

    def finish(self) -> None:
        for extra in sorted(set(self.table) - self.seen):
            self.problems.append(f"{self.key(extra)}: unknown key")


def _as_tuple(kind) -> tuple:
    return kind if isinstance(kind, tuple) else (kind,)


def _kind_name(kind) -> str:
    return " or ".join(k.__name__ for k in _as_tuple(kind))


def must_be_oid(value: str) -> str | None:
    """A strict (X.660) OID; written with or without its ``urn:oid:`` prefix."""
    if is_oid(value, allow_urn_prefix=True):
        return None
    return "not an OID (digits and dots, e.g. 2.16.840.1.1)"


def must_be_port(value: int) -> str | None:
    return None if 0 < value < 65536 else "must be between 1 and 65535"


def must_be_positive(value: float) -> str | None:
    return None if value > 0 else "must be greater than zero"


def must_not_be_negative(value: float) -> str | None:
    return None if value >= 0 else "must not be negative"


def must_be_strings(value: list) -> str | None:
    return None if all(isinstance(v, str) for v in value) else "must be a list of strings"
