"""Test messages: real peer samples re-signed with the test PKI, and tools to forge them.

``resign`` keeps a sample's shape (prefixes, attribute encodings, where KeyInfo is and
what it holds, element order) and replaces only what must change for the sample to be
valid today: IDs, times, the holder-of-key key and both signatures.
"""

from __future__ import annotations

import base64
import copy
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree
from signxml import SignatureReference, XMLSigner
from signxml.algorithms import SignatureConstructionMethod

from profiles.errors import WSSE_NS
from profiles.xml import parse_xml, to_bytes
from profiles.xua.assertion import (
    CM_HOLDER_OF_KEY,
    DS_NS,
    EXC_C14N,
    SAML_NS,
    SAMLID_VALUE_TYPE,
    WSU_NS,
    xml_datetime,
)
from tests.conftest import CONFORMANCE
from tests.profiles.xua.pki import Identity

MESSAGES = CONFORMANCE / "messages"
NS = {"ds": DS_NS, "saml2": SAML_NS, "wsse": WSSE_NS, "wsu": WSU_NS}
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
CONNECT_WIRE = MESSAGES / "connect" / "iti39-nhin-request-saml-hok-wire.xml"
CONNECT_AUTHFRAMEWORK = MESSAGES / "connect" / "saml-assertion-authframework-signed.xml"
CONNECT_HOK_SV_BEARER = MESSAGES / "connect" / "saml-assertion-complete-hok-sv-bearer.xml"
METRIPORT_TS = MESSAGES / "metriport" / "xcpd-iti55-req-signed-saml-timestamp-and-assertion.xml"
METRIPORT_SHA1 = MESSAGES / "metriport" / "xcpd-iti55-req-signed-saml-rsasha1-mixed-prefixes.xml"
METRIPORT_ITI38 = MESSAGES / "metriport" / "xca-iti38-req-signed-saml-creationtime-range.xml"
IPF_HEADER = MESSAGES / "ipf" / "xua-wsse-Security-header_saml2-assertion.xml"
IPF_SWISS = MESSAGES / "ipf" / "xua-saml2-assertion_swiss-epr.xml"


def q(ns_prefix: str, local: str) -> str:
    return f"{{{NS[ns_prefix]}}}{local}"


class Sha1Signer(XMLSigner):
    """signxml refuses to *make* SHA-1 signatures; peers like CONNECT still do."""

    def check_deprecated_methods(self) -> None:
        return None


def signer(method: SignatureConstructionMethod, key, hash_name: str = "sha256") -> XMLSigner:
    family = "ecdsa" if isinstance(key, ec.EllipticCurvePrivateKey) else "rsa"
    return Sha1Signer(
        method=method,
        signature_algorithm=f"{family}-{hash_name}",
        digest_algorithm=hash_name,
        c14n_algorithm=EXC_C14N,
    )


def load(path: Path) -> etree._Element:
    """A sample as an envelope; a bare Assertion or Security header gets wrapped."""
    root = parse_xml(path.read_bytes())
    if root.tag == q("wsse", "Security"):
        return wrap(root)
    if root.tag == q("saml2", "Assertion"):
        security = etree.Element(q("wsse", "Security"), nsmap={"wsse": WSSE_NS})
        security.append(root)
        return wrap(security)
    return root


def wrap(security: etree._Element) -> etree._Element:
    env = etree.Element(f"{{{SOAP12}}}Envelope", nsmap={"S": SOAP12})
    etree.SubElement(env, f"{{{SOAP12}}}Header").append(security)
    body = etree.SubElement(env, f"{{{SOAP12}}}Body")
    etree.SubElement(body, "{urn:ihe:iti:xds-b:2007}RetrieveDocumentSetRequest")
    return env


def security_of(envelope: etree._Element) -> etree._Element:
    return envelope.find(f"{{{SOAP12}}}Header/{q('wsse', 'Security')}")


def assertion_of(envelope: etree._Element) -> etree._Element:
    return security_of(envelope).find(q("saml2", "Assertion"))


def reparse(envelope: etree._Element) -> etree._Element:
    """What the gateway sees: the envelope serialized and parsed by the hardened parser."""
    return parse_xml(to_bytes(envelope))


def _key_value(key) -> etree._Element:
    signer_ = signer(SignatureConstructionMethod.enveloped, key)
    holder = etree.Element(q("ds", "KeyInfo"), nsmap={"ds": DS_NS})
    signer_._serialize_key_value(key, holder)
    return holder[0]


def _x509_data(identity: Identity) -> etree._Element:
    data = etree.Element(q("ds", "X509Data"), nsmap={"ds": DS_NS})
    der = identity.cert.public_bytes(Encoding.DER)
    etree.SubElement(data, q("ds", "X509Certificate")).text = base64.b64encode(der).decode()
    return data


@dataclass
class Shape:
    """Knobs for ``resign``; the defaults give a message our verifier accepts."""

    signer: Identity
    hok: Identity
    now: datetime
    hash: str = "sha256"
    key_info: str = "sample"  # sample | keyvalue | x509 | none | attacker-x509 (set chain)
    chain: tuple[Identity, ...] = ()  # extra certificates for X509Data
    conditions: tuple[timedelta, timedelta] | None = (timedelta(minutes=-1), timedelta(minutes=10))
    issue_offset: timedelta = timedelta(0)
    timestamp: bool = True
    ts_signer: Identity | None = None  # default: the holder-of-key identity
    ts_created: timedelta = timedelta(0)
    ts_lifetime: timedelta = timedelta(minutes=5)
    sign_timestamp: bool = True


def resign(envelope: etree._Element, shape: Shape, *, edit=None) -> etree._Element:
    """Re-sign a sample in place (after ``edit(assertion)`` ran on the unsigned assertion)."""
    security = security_of(envelope)
    assertion = security.find(q("saml2", "Assertion"))
    old = assertion.find(q("ds", "Signature"))
    style = shape.key_info
    if old is not None:
        if style == "sample":
            info = old.find(q("ds", "KeyInfo"))
            style = (
                "none"
                if info is None
                else "x509"
                if info.find(q("ds", "X509Data")) is not None
                else "keyvalue"
            )
        assertion.remove(old)
    elif style == "sample":
        style = "keyvalue"
    now = shape.now
    assertion.set("ID", "_" + uuid.uuid4().hex)
    assertion.set("IssueInstant", xml_datetime(now + shape.issue_offset))
    _set_conditions(assertion, shape)
    set_holder_of_key(assertion, shape.hok)
    if edit is not None:
        edit(assertion)
    issuer = assertion.find(q("saml2", "Issuer"))
    issuer.addnext(etree.Element(q("ds", "Signature"), Id="placeholder", nsmap={"ds": DS_NS}))
    certs = [shape.signer.cert, *(c.cert for c in shape.chain)]
    signed = signer(SignatureConstructionMethod.enveloped, shape.signer.key, shape.hash).sign(
        assertion,
        key=shape.signer.key,
        cert=certs if style == "x509" else None,
        id_attribute="ID",
    )
    if style == "none":
        sig = signed.find(q("ds", "Signature"))
        sig.remove(sig.find(q("ds", "KeyInfo")))
    for sig in security.findall(q("ds", "Signature")):
        security.remove(sig)
    envelope = graft(assertion, signed)
    security = security_of(envelope)
    timestamp = security.find(q("wsu", "Timestamp"))
    if not shape.timestamp:
        if timestamp is not None:
            security.remove(timestamp)
        return envelope
    if timestamp is None:
        timestamp = etree.Element(q("wsu", "Timestamp"), nsmap={"wsu": WSU_NS})
        security.insert(0, timestamp)
    set_timestamp(timestamp, now + shape.ts_created, shape.ts_lifetime)
    if shape.sign_timestamp:
        ts_signer = shape.ts_signer or shape.hok
        signature = sign_timestamp(security, timestamp, ts_signer, signed.get("ID"), shape.hash)
        marker = etree.SubElement(security, "graft")
        envelope = graft(marker, signature)
    return envelope


def graft(old: etree._Element, new: etree._Element) -> etree._Element:
    """Put signed ``new`` where ``old`` is, through bytes; returns the new envelope.

    Moving an element between lxml documents drops namespace declarations the new
    ancestors already make for the same URI under another prefix and renames the prefix
    (a sample's xmlns:urn="urn:hl7-org:v3" turns hl7:Role into urn:Role), which breaks
    the signature. Splicing serialized bytes keeps the signed XML exactly as signed.
    """
    marker = f"graft-{uuid.uuid4().hex}"
    placeholder = etree.Element(marker)
    placeholder.tail = old.tail
    old.getparent().replace(old, placeholder)
    data = to_bytes(placeholder.getroottree().getroot())
    data = data.replace(f"<{marker}/>".encode(), etree.tostring(new))
    return parse_xml(data)


def set_timestamp(timestamp: etree._Element, created: datetime, lifetime: timedelta) -> None:
    if timestamp.get(q("wsu", "Id")) is None:
        timestamp.set(q("wsu", "Id"), "TS-" + uuid.uuid4().hex)
    for child in list(timestamp):
        timestamp.remove(child)
    etree.SubElement(timestamp, q("wsu", "Created")).text = xml_datetime(created)
    etree.SubElement(timestamp, q("wsu", "Expires")).text = xml_datetime(created + lifetime)


def sign_timestamp(
    security, timestamp, identity: Identity, assertion_id: str, hash_name="sha256", prefixes=None
):
    info = etree.Element(q("ds", "KeyInfo"), nsmap={"ds": DS_NS})
    ref = etree.SubElement(info, q("wsse", "SecurityTokenReference"), nsmap={"wsse": WSSE_NS})
    etree.SubElement(
        ref, q("wsse", "KeyIdentifier"), ValueType=SAMLID_VALUE_TYPE
    ).text = assertion_id
    return signer(SignatureConstructionMethod.detached, identity.key, hash_name).sign(
        security,
        key=identity.key,
        reference_uri=[
            SignatureReference(
                URI="#" + timestamp.get(q("wsu", "Id")),
                inclusive_ns_prefixes=prefixes and ["wsu", *prefixes],
            )
        ],
        id_attribute="Id",
        key_info=info,
        inclusive_ns_prefixes=prefixes,
    )


def restamp(
    envelope: etree._Element,
    identity: Identity,
    created: datetime,
    lifetime=timedelta(minutes=5),
    prefixes: list[str] | None = None,
) -> etree._Element:
    """The same assertion with a new Timestamp and message signature (a new message).

    ``prefixes`` gives the signature CONNECT's InclusiveNamespaces PrefixLists.
    """
    envelope = reparse(envelope)
    security = security_of(envelope)
    for sig in security.findall(q("ds", "Signature")):
        security.remove(sig)
    timestamp = security.find(q("wsu", "Timestamp"))
    set_timestamp(timestamp, created, lifetime)
    assertion_id = security.find(q("saml2", "Assertion")).get("ID")
    signature = sign_timestamp(security, timestamp, identity, assertion_id, prefixes=prefixes)
    envelope = graft(etree.SubElement(security, "graft"), signature)
    if prefixes:  # SignedInfo's PrefixList names prefixes only in scope in the envelope
        resign_signed_info(security_of(envelope).find(q("ds", "Signature")), identity.key)
    return envelope


def add_prefix_list(envelope: etree._Element, prefixes: list[str], key) -> etree._Element:
    """Give the assertion's exc-c14n transform an InclusiveNamespaces PrefixList (CONNECT
    sends PrefixList="xs"), with the digest and signature to match."""
    envelope = reparse(envelope)
    assertion = assertion_of(envelope)
    signature = assertion.find(q("ds", "Signature"))
    reference = signature.find("ds:SignedInfo/ds:Reference", NS)
    for transform in reference.iterfind("ds:Transforms/ds:Transform", NS):
        if transform.get("Algorithm") == EXC_C14N:
            listed = etree.SubElement(
                transform, f"{{{EXC_C14N}}}InclusiveNamespaces", nsmap={"ec": EXC_C14N}
            )
            listed.set("PrefixList", " ".join(prefixes))
    unsigned = parse_xml(etree.tostring(assertion))
    unsigned.remove(unsigned.find(q("ds", "Signature")))
    c14n = etree.tostring(
        unsigned, method="c14n", exclusive=True, with_comments=False, inclusive_ns_prefixes=prefixes
    )
    digest = hashes.Hash(hashes.SHA256())
    digest.update(c14n)
    reference.find(q("ds", "DigestValue")).text = base64.b64encode(digest.finalize()).decode()
    resign_signed_info(signature, key)
    return envelope


def _set_conditions(assertion: etree._Element, shape: Shape) -> None:
    cond = assertion.find(q("saml2", "Conditions"))
    if shape.conditions is None:
        if cond is not None:
            cond.attrib.pop("NotBefore", None)
            cond.attrib.pop("NotOnOrAfter", None)
        return
    if cond is None:
        cond = etree.Element(q("saml2", "Conditions"))
        assertion.find(q("saml2", "Subject")).addnext(cond)
    cond.set("NotBefore", xml_datetime(shape.now + shape.conditions[0]))
    cond.set("NotOnOrAfter", xml_datetime(shape.now + shape.conditions[1]))
    for data in assertion.iterfind("saml2:Subject/saml2:SubjectConfirmation/*", NS):
        if data.get("NotOnOrAfter"):
            data.set("NotOnOrAfter", xml_datetime(shape.now + shape.conditions[1]))


def set_holder_of_key(assertion: etree._Element, hok: Identity) -> None:
    for confirmation in assertion.findall("saml2:Subject/saml2:SubjectConfirmation", NS):
        if confirmation.get("Method") != CM_HOLDER_OF_KEY:
            continue
        info = confirmation.find("saml2:SubjectConfirmationData/ds:KeyInfo", NS)
        had_cert = info.find(q("ds", "X509Data")) is not None
        for child in list(info):
            info.remove(child)
        info.append(_key_value(hok.key))
        if had_cert:
            info.append(_x509_data(hok))


def resign_signed_info(signature: etree._Element, key) -> None:
    """Re-sign a SignedInfo someone edited (to forge References that still verify)."""
    signed_info = signature.find(q("ds", "SignedInfo"))
    listed = signed_info.find(f"ds:CanonicalizationMethod/{{{EXC_C14N}}}InclusiveNamespaces", NS)
    prefixes = listed.get("PrefixList").split() if listed is not None else None
    data = etree.tostring(
        signed_info,
        method="c14n",
        exclusive=True,
        with_comments=False,
        inclusive_ns_prefixes=prefixes,
    )
    method = signed_info.find(q("ds", "SignatureMethod")).get("Algorithm")
    algorithm = {"sha1": hashes.SHA1(), "sha256": hashes.SHA256()}[
        "sha1" if method.endswith("sha1") else "sha256"
    ]
    if isinstance(key, rsa.RSAPrivateKey):
        raw = key.sign(data, padding.PKCS1v15(), algorithm)
    else:
        raise NotImplementedError
    signature.find(q("ds", "SignatureValue")).text = base64.b64encode(raw).decode()


def clone(el: etree._Element) -> etree._Element:
    return copy.deepcopy(el)
