"""The value syntax of Stored Query parameters (ITI TF-2a 3.18.4.1.2.3.5), both ways.

A string is single-quoted (a quote inside doubled), a list is ``('a','b')``, a code is
``'code^^codingScheme'``. Reading is strict: a value not written this way raises
XDSRegistryError naming the parameter, so nothing a peer writes is guessed at.
"""

from __future__ import annotations

from collections.abc import Iterable

from profiles.errors import XDSRegistryError

CodeValue = tuple[str, str]  # (code, codingScheme)


def encode(value: Iterable | str) -> str:
    """A Python value as a Slot value: a str as given, an iterable as a quoted list."""
    if isinstance(value, str):
        return value
    items = ["'" + (f"{v[0]}^^{v[1]}" if isinstance(v, tuple) else v).replace("'", "''") + "'"
             for v in value]
    return "(" + ",".join(items) + ")"


def unquote(param: str, text: str) -> str:
    """The one quoted string ``text`` holds, nothing after it."""
    value, rest = quoted(param, text)
    if rest.strip():
        raise XDSRegistryError(f"{param} value {text!r} has text after its closing quote",
                               location=param)
    return value


def quoted(param: str, text: str) -> tuple[str, str]:
    """The quoted string at the start of ``text`` and what follows it."""
    if not text.startswith("'"):
        raise XDSRegistryError(f"{param} value {text!r} is not a quoted string 'value'",
                               location=param)
    out, i = [], 1
    while i < len(text):
        ch = text[i]
        if ch == "'":
            if text[i + 1 : i + 2] == "'":
                out.append("'")
                i += 2
                continue
            return "".join(out), text[i + 1 :]
        out.append(ch)
        i += 1
    raise XDSRegistryError(f"{param} value {text!r} has no closing quote", location=param)


def quoted_list(param: str, inner: str) -> list[str]:
    """The items of a list written ``'a','b'`` (its parentheses already removed)."""
    values, rest = [], inner.strip()
    while rest:
        value, rest = quoted(param, rest)
        values.append(value)
        rest = rest.strip()
        if rest:
            if not rest.startswith(","):
                raise XDSRegistryError(f"{param}: list items must be separated by commas",
                                       location=param)
            rest = rest[1:].strip()
            if not rest:
                raise XDSRegistryError(f"{param}: the list ends with a comma", location=param)
    return values


def code_value(param: str, value: str) -> CodeValue:
    """``code^^codingScheme`` split in two."""
    code, sep, scheme = value.partition("^^")
    if not sep or not code or not scheme or "^" in scheme:
        raise XDSRegistryError(f"{param} value {value!r} is not code^^codingScheme",
                               location=param)
    return code, scheme
