"""Requests for the gate tests: the XUA test messages (re-signed peer samples) as the
gate receives them, a parsed envelope plus what the transport knows."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.serialization import Encoding

from gateway.dispatch import ROUTES, Route
from gateway.soap.envelope import Envelope, parse_envelope
from profiles.xml import to_bytes
from tests.profiles.xua.fixed_time import NOW
from tests.profiles.xua.messages import CONNECT_WIRE, Shape, load, resign, security_of
from tests.profiles.xua.pki import Identity, Pki

MAX = 1 << 20


def route(path: str) -> Route:
    return next(r for r in ROUTES if r.path == path)


@dataclass(frozen=True)
class Req:
    """The SoapRequest fields the gate reads (``peer_certificate`` is the proposed one)."""

    request_id: str = "req-1"
    peer_subject: str | None = None
    peer_certificate: bytes | None = None


def req_from(identity: Identity | None, request_id: str = "req-1") -> Req:
    if identity is None:
        return Req(request_id)
    der = identity.cert.public_bytes(Encoding.DER)
    return Req(request_id, identity.dn, der)


def signed(pki: Pki, edit=None, **kw) -> bytes:
    """CONNECT's wire request, re-signed: by default signer = holder-of-key = partner."""
    kw.setdefault("signer", pki.partner)
    kw.setdefault("hok", pki.partner)
    return to_bytes(resign(load(CONNECT_WIRE), Shape(now=NOW, **kw), edit=edit))


def without_security(pki: Pki) -> bytes:
    env = resign(load(CONNECT_WIRE), Shape(now=NOW, signer=pki.partner, hok=pki.partner))
    security = security_of(env)
    security.getparent().remove(security)
    return to_bytes(env)


def envelope(data: bytes) -> Envelope:
    return parse_envelope(data, max_bytes=MAX)
