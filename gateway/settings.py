"""The ``[mllp]`` and ``[matching]`` tables of gateway.toml (read by ``gateway.config``).

``[mllp]``: the PIX Manager's HL7 v2 listener that ``ihe-gateway serve`` runs beside
HTTPS. TLS is on by default with the HTTPS side's certificate, key and trust store
(mutual TLS, ITI-19); ``tls = false`` is for development only. ``read_timeout_seconds``
bounds how long one message may take to arrive once its frame has started (a slow
sender holds a connection, not the listener); ``idle_timeout_seconds`` how long a
connection may wait between messages.

``[matching]``: XCPD demographic matching (``profiles.xcpd.matching.MatchConfig``):
``threshold``, ``margin`` (how close two people may score before the answer is
"ambiguous"), ``candidate_limit`` and ``[matching.weights]``, each weight an
``[agreement, disagreement]`` pair or a number as ``Weights`` defines it. Values that
would make matching guess (a negative margin, an agreement below zero, similarity
bounds out of order) are refused with the key and the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from profiles.xcpd.matching import MatchConfig, Weights

DEFAULT_MLLP_PORT = 2575
_SIMILARITY = ("similar", "dissimilar", "sounds_alike", "nickname")


@dataclass(frozen=True)
class Mllp:
    enabled: bool = False
    host: str | None = None  # None: [server] host
    port: int = DEFAULT_MLLP_PORT
    tls: bool = True
    read_timeout_seconds: float = 30.0
    idle_timeout_seconds: float = 300.0
    max_message_bytes: int = 1024 * 1024


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def mllp_from(reader: Any, *, have_tls: bool, server_host: str, server_port: int) -> Mllp:
    """``[mllp]`` from a ``config_reader.TableReader``; problems go to the reader's list."""

    def positive(v: float) -> str | None:
        return None if v > 0 else "must be greater than zero"

    d = Mllp()
    mllp = Mllp(
        enabled=reader.get("enabled", bool, d.enabled),
        host=reader.get("host", str, None),
        port=reader.get("port", int, d.port,
                        check=lambda v: None if 0 < v < 65536 else "must be between 1 and 65535"),
        tls=reader.get("tls", bool, d.tls),
        read_timeout_seconds=float(reader.get("read_timeout_seconds", (int, float),
                                              d.read_timeout_seconds, check=positive)),
        idle_timeout_seconds=float(reader.get("idle_timeout_seconds", (int, float),
                                              d.idle_timeout_seconds, check=positive)),
        max_message_bytes=reader.get("max_message_bytes", int, d.max_message_bytes,
                                     check=positive),
    )
    reader.finish()
    if mllp.enabled and mllp.tls and not have_tls:
        reader.problems.append(
            f"{reader.key('tls')}: TLS needs the [tls] section (certificate, key, trust "
            "store); add it, or set tls = false for development only")
    if mllp.enabled and mllp.port == server_port and (mllp.host or server_host) == server_host:
        reader.problems.append(f"{reader.key('port')}: {mllp.port} is the HTTPS port too")
    return mllp


def _weight(reader: Any, name: str, default: Any) -> Any:
    key = reader.key(name)
    value = reader.table.get(name, default)
    reader.seen.add(name)
    if isinstance(default, tuple):
        if not (isinstance(value, list | tuple) and len(value) == 2
                and all(map(_number, value))):
            reader.problems.append(f"{key}: expected [agreement, disagreement], two numbers")
            return default
        agree, disagree = float(value[0]), float(value[1])
        if agree < 0 or disagree > 0:
            reader.problems.append(f"{key}: agreement must be >= 0 and disagreement <= 0")
        return (agree, disagree)
    if not _number(value):
        reader.problems.append(f"{key}: expected a number, got {type(value).__name__}")
        return default
    if name in _SIMILARITY and not 0 <= value <= 1:
        reader.problems.append(f"{key}: a similarity, between 0 and 1")
    elif value < 0:
        reader.problems.append(f"{key}: must not be negative")
    return float(value)


def matching_from(reader: Any) -> MatchConfig:
    """``[matching]`` from a ``config_reader.TableReader``; problems go to the reader's list."""
    d = MatchConfig()
    threshold = reader.get("threshold", (int, float), d.threshold,
                           check=lambda v: None if v > 0 else "must be greater than zero")
    margin = reader.get("margin", (int, float), d.margin,
                        check=lambda v: None if v >= 0 else "must not be negative")
    limit = reader.get("candidate_limit", int, d.candidate_limit,
                       check=lambda v: None if v > 0 else "must be greater than zero")
    w = reader.sub("weights")
    base = Weights()
    weights = Weights(**{f.name: _weight(w, f.name, getattr(base, f.name))
                         for f in fields(Weights)})
    w.finish()
    if weights.dissimilar >= weights.similar:
        reader.problems.append(f"{w.key('dissimilar')}: must be below weights.similar")
    reader.finish()
    return MatchConfig(threshold=float(threshold), margin=float(margin), candidate_limit=limit,
                       weights=weights)


__all__ = ["DEFAULT_MLLP_PORT", "Mllp", "matching_from", "mllp_from"]
