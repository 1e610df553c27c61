"""Issue the WS-Security header our initiating gateway sends (IHE XUA ITI-40, eHx profile).

    build_security_header(principal, credentials=, policy=, clock=, cache=None)
        -> wsse:Security element: Timestamp, signed holder-of-key Assertion, and a
           message signature over the Timestamp made with the same (holder-of-key) key

The key is a loaded ``cryptography`` object, never a PEM: parsing a PEM per call costs
about 28 ms. The assertion is signed once per user context and may be reused from an
``AssertionCache`` while valid (a partner's policy decides); the Timestamp is signed per
request, so each message proves possession of the key afresh.
"""

from __future__ import annotations

import base64
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
)
from lxml import etree
from signxml import SignatureReference, XMLSigner
from signxml.algorithms import DigestAlgorithm, SignatureConstructionMethod, SignatureMethod

from profiles.errors import WSSE_NS
from profiles.ports import Clock
from profiles.xml import parse_xml, to_bytes
from profiles.xua.assertion import (
    AC_X509,
    CM_HOLDER_OF_KEY,
    DS_NS,
    EXC_C14N,
    SAML2_TOKEN_TYPE,
    SAML_NS,
    SAMLID_VALUE_TYPE,
    WSSE11_NS,
    WSU_NS,
    X509_SUBJECT,
    XSI_NS,
    Principal,
    xml_datetime,
)
from profiles.xua.attributes import attribute_statement, authz_statement, saml
from profiles.xua.keys import CURVE_URIS

SOAP11_NS = "http://schemas.xmlsoap.org/soap/envelope/"
_HASHES = {"sha1": "SHA1", "sha256": "SHA256", "sha384": "SHA384", "sha512": "SHA512"}


@dataclass(frozen=True)
class SigningCredentials:
    """The gateway's signing key and certificate (plus chain), loaded once at start-up."""

    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()

    @property
    def fingerprint(self) -> bytes:
        return self.certificate.fingerprint(hashes.SHA256())

    @classmethod
    def from_pem(
        cls, key_pem: bytes, cert_pem: bytes, *, password: bytes | None = None
    ) -> SigningCredentials:
        """Load once at start-up: the key (RSA or EC) and the certificate, then its chain."""
        key = load_pem_private_key(key_pem, password=password)
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise ValueError(f"unsupported signing key type {type(key).__name__}")
        certs = x509.load_pem_x509_certificates(cert_pem)
        return cls(key=key, certificate=certs[0], chain=tuple(certs[1:]))


@dataclass(frozen=True)
class IssuePolicy:
    """How to speak to one partner: algorithms and the quirks its stack needs."""

    hash: str = "sha256"  # sha256 | sha384 | sha512; "sha1" only for a partner that needs it
    purpose_element: str = "PurposeOfUse"  # "PurposeForUse" for 2010-era CONNECT partners
    oid_prefix: bool = True  # urn:oid: on homeCommunityId and organization-id
    lifetime: timedelta = timedelta(minutes=5)  # Conditions NotOnOrAfter - now
    timestamp_lifetime: timedelta = timedelta(minutes=5)
    audience: str | None = None  # AudienceRestriction, usually the partner's endpoint
    issuer: str | None = None  # X509SubjectName; default: the certificate's subject
    signer_key_info: str = "x509"  # "x509": X509Data chain; "keyvalue": CONNECT's KeyValue
    authn_context: str = AC_X509
    # Reuse a cached assertion for this partner. Only for partners that accept a reused
    # holder-of-key assertion (ours with XuaPolicy(allow_assertion_reuse=True)); a
    # verifier enforcing single-use assertion IDs refuses the second message otherwise.
    reuse_assertions: bool = False

    def __post_init__(self) -> None:
        if self.hash not in _HASHES:
            raise ValueError(f"unsupported hash {self.hash!r}")
        if self.purpose_element not in ("PurposeOfUse", "PurposeForUse"):
            raise ValueError(f"unsupported purpose element {self.purpose_element!r}")
        if self.signer_key_info not in ("x509", "keyvalue"):
            raise ValueError(f"unsupported signer_key_info {self.signer_key_info!r}")


@dataclass(frozen=True)
class IssuedAssertion:
    assertion_id: str
    xml: bytes  # the signed saml2:Assertion, serialized once
    not_on_or_after: datetime


class AssertionCache:
    """Signed assertions per (user context, partner policy, signing key), while valid.

    A plain in-memory LRU map, safe across threads. ``min_remaining`` keeps an assertion
    from being sent when it would expire in flight.
    """

    def __init__(self, max_entries: int = 1024, min_remaining: timedelta = timedelta(minutes=1)):
        self._entries: OrderedDict[object, IssuedAssertion] = OrderedDict()
        self._lock = threading.Lock()
        self.max_entries = max_entries
        self.min_remaining = min_remaining

    def get(self, key: object, now: datetime) -> IssuedAssertion | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            if found.not_on_or_after - now < self.min_remaining:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return found

    def put(self, key: object, issued: IssuedAssertion) -> None:
        with self._lock:
            self._entries[key] = issued
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class _Signer(XMLSigner):
    """signxml's signer; SHA-1 is refused by signxml, allowed here only when a policy asks."""

    def check_deprecated_methods(self) -> None:
        return None


def _algorithms(credentials: SigningCredentials, policy: IssuePolicy):
    name = _HASHES[policy.hash]
    family = "ECDSA" if isinstance(credentials.key, ec.EllipticCurvePrivateKey) else "RSA"
    return SignatureMethod[f"{family}_{name}"], DigestAlgorithm[name]


def _signer(method: SignatureConstructionMethod, credentials, policy) -> _Signer:
    sign_alg, digest_alg = _algorithms(credentials, policy)
    return _Signer(
        method=method,
        signature_algorithm=sign_alg,
        digest_algorithm=digest_alg,
        c14n_algorithm=EXC_C14N,
    )


def _id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex}"


def _utc(clock: Clock) -> datetime:
    now = clock.now()
    return now.astimezone(UTC) if now.tzinfo else now.replace(tzinfo=UTC)


def build_assertion(
    principal: Principal,
    *,
    credentials: SigningCredentials,
    policy: IssuePolicy,
    now: datetime,
    assertion_id: str | None = None,
) -> etree._Element:
    """The unsigned assertion, with a signature placeholder right after Issuer."""
    assertion_id = assertion_id or _id("_")
    stamp = xml_datetime(now)
    issuer_dn = policy.issuer or credentials.certificate.subject.rfc4514_string()
    assertion = etree.Element(
        saml("Assertion"),
        nsmap={"saml2": SAML_NS, "ds": DS_NS, "xsi": XSI_NS},
        ID=assertion_id,
        IssueInstant=stamp,
        Version="2.0",
    )

    def issuer() -> etree._Element:
        el = etree.Element(saml("Issuer"), Format=X509_SUBJECT)
        el.text = issuer_dn
        return el

    assertion.append(issuer())
    etree.SubElement(assertion, f"{{{DS_NS}}}Signature", Id="placeholder")
    subject = etree.SubElement(assertion, saml("Subject"))
    name_id = principal.name_id or credentials.certificate.subject.rfc4514_string()
    name_format = principal.name_id_format if principal.name_id else X509_SUBJECT
    etree.SubElement(subject, saml("NameID"), Format=name_format).text = name_id
    confirmation = etree.SubElement(subject, saml("SubjectConfirmation"), Method=CM_HOLDER_OF_KEY)
    data = etree.SubElement(confirmation, saml("SubjectConfirmationData"))
    data.set(f"{{{XSI_NS}}}type", "saml2:KeyInfoConfirmationDataType")
    data.append(_key_value_info(credentials.key))
    conditions = etree.SubElement(
        assertion,
        saml("Conditions"),
        NotBefore=stamp,
        NotOnOrAfter=xml_datetime(now + policy.lifetime),
    )
    if policy.audience:
        restriction = etree.SubElement(conditions, saml("AudienceRestriction"))
        etree.SubElement(restriction, saml("Audience")).text = policy.audience
    authn = etree.SubElement(assertion, saml("AuthnStatement"), AuthnInstant=stamp)
    context = etree.SubElement(authn, saml("AuthnContext"))
    etree.SubElement(context, saml("AuthnContextClassRef")).text = policy.authn_context
    if principal.authz is not None:
        assertion.append(
            authz_statement(principal.authz, issuer=issuer(), evidence_id=_id("_"), now=stamp)
        )
    assertion.append(
        attribute_statement(
            principal, purpose_element=policy.purpose_element, oid_prefix=policy.oid_prefix
        )
    )
    return assertion


def _key_value_info(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> etree._Element:
    """ds:KeyInfo/ds:KeyValue naming our public key (the holder-of-key key)."""

    def b64(n: int) -> str:
        return base64.b64encode(n.to_bytes((n.bit_length() + 7) // 8, "big")).decode()

    info = etree.Element(f"{{{DS_NS}}}KeyInfo", nsmap={"ds": DS_NS})
    value = etree.SubElement(info, f"{{{DS_NS}}}KeyValue")
    public = key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        numbers = public.public_numbers()
        rsa_el = etree.SubElement(value, f"{{{DS_NS}}}RSAKeyValue")
        etree.SubElement(rsa_el, f"{{{DS_NS}}}Modulus").text = b64(numbers.n)
        etree.SubElement(rsa_el, f"{{{DS_NS}}}Exponent").text = b64(numbers.e)
    else:
        dsig11 = "http://www.w3.org/2009/xmldsig11#"
        ec_el = etree.SubElement(value, f"{{{dsig11}}}ECKeyValue", nsmap={"dsig11": dsig11})
        etree.SubElement(
            ec_el, f"{{{dsig11}}}NamedCurve", URI=CURVE_URIS[type(public.curve).__name__]
        )
        point = public.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        etree.SubElement(ec_el, f"{{{dsig11}}}PublicKey").text = base64.b64encode(point).decode()
    return info


def issue_assertion(
    principal: Principal, *, credentials: SigningCredentials, policy: IssuePolicy, now: datetime
) -> IssuedAssertion:
    """Build and sign (enveloped, exclusive c14n, Reference '#'+ID) one assertion."""
    assertion = build_assertion(principal, credentials=credentials, policy=policy, now=now)
    certs = [credentials.certificate, *credentials.chain]
    signed = _signer(SignatureConstructionMethod.enveloped, credentials, policy).sign(
        assertion,
        key=credentials.key,
        cert=certs if policy.signer_key_info == "x509" else None,
        id_attribute="ID",
    )
    return IssuedAssertion(
        assertion_id=assertion.get("ID"),
        xml=to_bytes(signed, declaration=False),
        not_on_or_after=now + policy.lifetime,
    )


def build_security_header(
    principal: Principal,
    *,
    credentials: SigningCredentials,
    policy: IssuePolicy,
    clock: Clock,
    cache: AssertionCache | None = None,
    soap_ns: str | None = None,
) -> etree._Element:
    """The wsse:Security header for one outbound request.

    ``soap_ns`` (the envelope's namespace) adds ``mustUnderstand``. The message
    signature covers only the Timestamp, as eHx/CONNECT expect; the body is protected
    by mutual TLS, bound to the same key through holder-of-key.

    Insert the element into an envelope whose ancestors bind no SAML, XML-DSig, HL7 or
    XSI namespace URI to a *different* prefix: lxml drops such "redundant" declarations
    when an element moves between documents and renames the prefix, which changes the
    canonical form and breaks both signatures (seen with a sample's xmlns:urn for HL7).
    ``gateway.soap.envelope.build_envelope`` declares only the SOAP prefix, and is safe.
    """
    now = _utc(clock)
    if cache is not None and policy.reuse_assertions:
        key = (replace(principal, assertion=None), policy, credentials.fingerprint)
        issued = cache.get(key, now)
        if issued is None:
            issued = issue_assertion(principal, credentials=credentials, policy=policy, now=now)
            cache.put(key, issued)
    else:
        issued = issue_assertion(principal, credentials=credentials, policy=policy, now=now)

    security = etree.Element(f"{{{WSSE_NS}}}Security", nsmap={"wsse": WSSE_NS, "wsu": WSU_NS})
    if soap_ns:
        security.set(f"{{{soap_ns}}}mustUnderstand", "1" if soap_ns == SOAP11_NS else "true")
    ts_id = _id("TS-")
    timestamp = etree.SubElement(security, f"{{{WSU_NS}}}Timestamp", {f"{{{WSU_NS}}}Id": ts_id})
    etree.SubElement(timestamp, f"{{{WSU_NS}}}Created").text = xml_datetime(now)
    expires = xml_datetime(now + policy.timestamp_lifetime)
    etree.SubElement(timestamp, f"{{{WSU_NS}}}Expires").text = expires
    security.append(parse_xml(issued.xml))
    signature = _signer(SignatureConstructionMethod.detached, credentials, policy).sign(
        security,
        key=credentials.key,
        reference_uri=[SignatureReference(URI="#" + ts_id)],
        id_attribute="Id",
        key_info=_token_reference(issued.assertion_id),
    )
    security.append(signature)
    return security


def _token_reference(assertion_id: str) -> etree._Element:
    """KeyInfo naming the assertion (SAML token profile 1.1, SAMLID key identifier)."""
    info = etree.Element(f"{{{DS_NS}}}KeyInfo", nsmap={"ds": DS_NS})
    reference = etree.SubElement(
        info,
        f"{{{WSSE_NS}}}SecurityTokenReference",
        {f"{{{WSSE11_NS}}}TokenType": SAML2_TOKEN_TYPE},
        nsmap={"wsse": WSSE_NS, "wsse11": WSSE11_NS},
    )
    etree.SubElement(
        reference, f"{{{WSSE_NS}}}KeyIdentifier", ValueType=SAMLID_VALUE_TYPE
    ).text = assertion_id
    return info
