"""What the XUA end-to-end tests share: assertions shaped like CONNECT's and IPF's signed
by certificates of the served community, an ITI-38 request carrying them, sending it to
``/xca/query`` and reading the answer, the gateway's Security Alerts and refusal log
lines, and the ``members`` and ``audit_db`` fixtures (found by name through conftest.py).

The served community is ``ihe-gateway init``'s: its development CA is the trust store,
and its client certificate is the TLS client. Assertions are signed by that client
(holder-of-key = the TLS key) or by other certificates the tests issue from the
community's CA. "Accepted" means the request passed the gate: the query's answer, or
(ITI-38 not implemented) the Receiver fault saying so; a refusal is a Sender fault with
a wsse subcode, and nothing else is.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from lxml import etree

from certs import authority
from certs.store import load_certificate, load_private_key
from gateway.audit.models import AuditEntry
from gateway.audit.queue import AuditQueue
from gateway.config import load_config
from gateway.dispatch import ITI_38
from gateway.store.db import Database
from profiles.errors import WSA_NS, WSSE_NS
from profiles.xml import parse_xml
from profiles.xua.assertion import EMAIL
from tests.gateway.audit.helpers import wait_for
from tests.profiles.xua.edits import ipf_to_ehx
from tests.profiles.xua.messages import (
    CONNECT_WIRE,
    IPF_SWISS,
    Shape,
    load,
    resign,
    security_of,
)
from tests.profiles.xua.pki import Identity, make_leaf

S12 = "http://www.w3.org/2003/05/soap-envelope"
QUERY_NS = "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"
RIM_NS = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
MIN = timedelta(minutes=1)


@dataclass(frozen=True)
class Members:
    client: Identity  # the TLS client: signs and holds the key by default
    sts: Identity  # another certificate from the community CA (an IPF-style STS)
    expired: Identity  # from the community CA, expired yesterday
    attacker: Identity  # self-signed


def _identity(credential: authority.Credential) -> Identity:
    return Identity(credential.private_key, credential.certificate)


def community_members(gateway) -> Members:
    """The TLS client and certificates issued now from the community's CA."""
    ca = authority.Credential(
        load_certificate(gateway.cert("ca.pem")), load_private_key(gateway.cert("ca-key.pem"))
    )
    now = datetime.now(UTC)
    client = Identity(
        load_private_key(gateway.cert("client-key.pem")),
        load_certificate(gateway.cert("client.pem")),
    )
    expired = authority.issue(
        ca,
        "expired signer",
        not_before=now - timedelta(days=400),
        not_after=now - timedelta(days=1),
    )
    return Members(
        client=client,
        sts=_identity(authority.issue(ca, "XUA STS")),
        expired=_identity(expired),
        attacker=make_leaf("attacker", now, issuer=None),
    )


def audit_database(gateway, e2e_database_url: str | None) -> Database:
    """The served gateway's own database (where its audit records are)."""
    return Database(e2e_database_url or load_config(gateway.config).database_url)


@pytest.fixture(scope="module")
def members(gateway) -> Members:
    return community_members(gateway)


@pytest.fixture(scope="module")
def audit_db(gateway, e2e_database_url) -> Iterator[Database]:
    db = audit_database(gateway, e2e_database_url)
    yield db
    db.dispose()


# --- messages ---------------------------------------------------------------------------


def connect(members: Members, edit=None, **kw) -> etree._Element:
    """CONNECT's wire request re-signed now; signer = holder-of-key = the TLS client."""
    kw.setdefault("signer", members.client)
    kw.setdefault("hok", members.client)
    return resign(load(CONNECT_WIRE), Shape(now=datetime.now(UTC), **kw), edit=edit)


def ipf(members: Members) -> etree._Element:
    """IPF's Swiss EPR assertion given the eHx attributes, signed by an STS certificate
    (X509Data in KeyInfo), holder-of-key = the TLS client."""

    def edit(assertion):
        ipf_to_ehx(
            assertion,
            name_format=EMAIL,
            issuer="sts@community.example.org",
            subject="rosa.sestak@community.example.org",
            hok=members.client,
        )

    shape = Shape(signer=members.sts, hok=members.client, now=datetime.now(UTC), key_info="x509")
    return resign(load(IPF_SWISS), shape, edit=edit)


def xca_query(signed_envelope: etree._Element, url: str, message_id: str) -> bytes:
    """An ITI-38 FindDocuments request carrying the sample's Security header unchanged.

    The header moves as bytes, so its signatures stay exactly as made; WS-Addressing
    and the Body are not signed (eHx signs the Timestamp and the assertion only).
    """
    security = etree.tostring(security_of(signed_envelope))
    head = (
        f'<s:Envelope xmlns:s="{S12}" xmlns:a="{WSA_NS}"><s:Header>'
        '<a:Action s:mustUnderstand="true">urn:ihe:iti:2007:CrossGatewayQuery</a:Action>'
        f"<a:MessageID>{message_id}</a:MessageID>"
        "<a:ReplyTo><a:Address>http://www.w3.org/2005/08/addressing/anonymous</a:Address>"
        f'</a:ReplyTo><a:To s:mustUnderstand="true">{url}</a:To>'
    )
    body = (
        f'</s:Header><s:Body><query:AdhocQueryRequest xmlns:query="{QUERY_NS}" '
        f'xmlns:rim="{RIM_NS}"><query:ResponseOption returnType="LeafClass" '
        'returnComposedObjects="true"/>'
        '<rim:AdhocQuery id="urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d">'
        '<rim:Slot name="$XDSDocumentEntryPatientId"><rim:ValueList>'
        "<rim:Value>'500000000^^^&amp;1.1&amp;ISO'</rim:Value></rim:ValueList></rim:Slot>"
        '<rim:Slot name="$XDSDocumentEntryStatus"><rim:ValueList>'
        "<rim:Value>('urn:oasis:names:tc:ebxml-regrep:StatusType:Approved')</rim:Value>"
        "</rim:ValueList></rim:Slot></rim:AdhocQuery></query:AdhocQueryRequest>"
        "</s:Body></s:Envelope>"
    )
    return head.encode() + security + body.encode()


# --- sending and reading the answer ------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    code: str | None  # SOAP fault Code/Value local name
    subcode: tuple[str, str] | None  # (namespace, local name)
    reason: str | None
    body_root: str | None
    request_id: str


def send(gateway, session, data: etree._Element | bytes, *, raw: bytes | None = None) -> Answer:
    url = f"{gateway.base_url}/xca/query"
    request_id = uuid.uuid4().hex
    if raw is None:
        raw = xca_query(data, url, f"urn:uuid:{uuid.uuid4()}")
    resp = session.post(
        url,
        data=raw,
        headers={"Content-Type": "application/soap+xml; charset=UTF-8", "X-Request-Id": request_id},
        verify=str(gateway.cert("ca.pem")),
        timeout=30,
    )
    doc = parse_xml(resp.content)
    fault = doc.find(f"{{{S12}}}Body/{{{S12}}}Fault")
    body = doc.find(f"{{{S12}}}Body")
    first = body[0].tag if body is not None and len(body) else None

    def qname(el):
        if el is None:
            return None
        prefix, local = el.text.strip().split(":")
        return el.nsmap[prefix], local

    code = qname(fault.find(f"{{{S12}}}Code/{{{S12}}}Value")) if fault is not None else None
    sub = (
        fault.find(f"{{{S12}}}Code/{{{S12}}}Subcode/{{{S12}}}Value") if fault is not None else None
    )
    return Answer(
        status=resp.status_code,
        code=code[1] if code else None,
        subcode=qname(sub),
        reason=fault.findtext(f"{{{S12}}}Reason/{{{S12}}}Text") if fault is not None else None,
        body_root=first,
        request_id=request_id,
    )


def alert_ids(db: Database) -> set[str]:
    """Security Alert records, after indexing the inbox as ``audit search`` does."""
    AuditQueue(db).index_all()
    with db.session() as session:
        query = sa.select(AuditEntry.record_id).where(AuditEntry.event_id == "110113")
        return set(session.scalars(query))


def new_alert_ids(db: Database, before: set[str], count: int = 1) -> set[str]:
    """The alerts recorded since ``before``, once there are ``count`` of them. A refused
    request's alert is with the kernel before the answer leaves; another process sees it
    at once on SQLite (a search moves every spool) and within ``CONFIRM_S`` on
    PostgreSQL (the gateway's pipelined connection is corked until its next pass)."""
    found: set[str] = set()

    def arrived() -> bool:
        found.update(alert_ids(db) - before)
        return len(found) >= count

    wait_for(arrived, timeout=10, what=f"{count} new security alert(s)")
    return found


def alert_text(db: Database, record_id: str) -> str:
    with db.session() as session:
        entry = session.get(AuditEntry, record_id)
    doc = etree.fromstring(entry.xml)
    details = [d.get("value") for d in doc.iter("ParticipantObjectDetail")]
    return " ".join(base64.b64decode(v).decode() for v in details)


def refusal_log(gateway, request_id: str) -> dict:
    for line in gateway.server_log().splitlines():
        if request_id in line and "XUA refused" in line:
            return json.loads(line)
    raise AssertionError(f"no XUA refusal logged for {request_id}:\n{gateway.server_log()}")


def assert_refused(gateway, session, db, message, subcode: str, *, raw=None, why: str = "") -> str:
    """Send; check the Sender fault, its wsse subcode, the log line and the Security Alert.
    Returns the alert's description."""
    before = alert_ids(db)
    answer = send(gateway, session, message, raw=raw)
    assert (answer.status, answer.code) == (400, "Sender"), answer
    assert answer.subcode == (WSSE_NS, subcode), answer
    assert answer.reason and "CN=" not in answer.reason and "#" not in answer.reason
    line = refusal_log(gateway, answer.request_id)
    assert line["level"] == "WARNING" and line["path"] == "/xca/query"
    assert line["message"].startswith(f"XUA refused: {subcode} (")
    [new] = new_alert_ids(db, before)
    description = alert_text(db, new)
    assert description.startswith(f"XUA {subcode}: ") and why in description, description
    return description


def assert_accepted(gateway, session, message) -> None:
    """Past the gate: the query's own answer, or (ITI-38 not implemented) the Receiver
    fault saying so; never a wsse subcode."""
    answer = send(gateway, session, message)
    assert answer.subcode is None or answer.subcode[0] != WSSE_NS, answer
    if ITI_38.implemented:
        assert answer.status == 200 and answer.body_root == f"{{{QUERY_NS}}}AdhocQueryResponse"
    else:
        assert (answer.status, answer.code, answer.subcode) == (500, "Receiver", None), answer
        assert "ITI-38 Cross Gateway Query is not implemented" in answer.reason
    assert "XUA refused" not in "".join(
        line for line in gateway.server_log().splitlines() if answer.request_id in line
    )
