"""ITI-42 Register Document Set-b to a remote XDS registry (``[repository] registry_url``).

    HttpRegistryClient(url, *, certificate=None, private_key=None, trust_store=None,
                       timeout=30.0).register(submission) -> None

Implements ``profiles.xds.repository_ports.RegistryClient``: a SOAP 1.2
SubmitObjectsRequest over mutual TLS (our certificate as client certificate, the
server verified against our trust store only), the RegistryResponse parsed; a
Failure is raised as the registry's own errors, anything unusable as
XDSRegistryError, so the repository takes its documents back out.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import requests
from lxml import etree

from gateway.soap.envelope import SoapVersion, build_envelope
from profiles.errors import WSA_NS, GatewayError, XDSRegistryError
from profiles.xds.ebrim import parse_registry_response, submit_objects_request_to_xml
from profiles.xds.metadata import Submission
from profiles.xml import parse_xml

ACTION = "urn:ihe:iti:2007:RegisterDocumentSet-b"
RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
MAX_ANSWER = 10 << 20


class HttpRegistryClient:
    def __init__(self, url: str, *, certificate: Path | None = None,
                 private_key: Path | None = None, trust_store: Path | None = None,
                 timeout: float = 30.0) -> None:
        self.url, self.timeout = url, timeout
        self.session = requests.Session()
        self.session.trust_env = False  # REQUESTS_CA_BUNDLE must not replace our trust store
        if certificate and private_key:
            self.session.cert = (str(certificate), str(private_key))
        self.verify: str | bool = str(trust_store) if trust_store else True

    @classmethod
    def from_config(cls, config) -> HttpRegistryClient:
        tls = config.tls
        return cls(config.repository.registry_url,
                   certificate=tls.certificate if tls else None,
                   private_key=tls.private_key if tls else None,
                   trust_store=tls.trust_store if tls else None,
                   timeout=config.limits.outbound_timeout_seconds)

    def register(self, submission: Submission) -> None:
        body = submit_objects_request_to_xml(submission)
        headers = []
        for name, text in (("Action", ACTION), ("MessageID", f"urn:uuid:{uuid.uuid4()}"),
                           ("To", self.url)):
            el = etree.Element(f"{{{WSA_NS}}}{name}", nsmap={"wsa": WSA_NS})
            el.text = text
            if name != "MessageID":
                el.set(f"{{{SoapVersion.SOAP12.value}}}mustUnderstand", "true")
            headers.append(el)
        envelope = build_envelope(SoapVersion.SOAP12, body, headers)
        data = etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")
        http_headers = {"Content-Type": f'application/soap+xml; charset=UTF-8; action="{ACTION}"'}
        try:
            resp = self.session.post(self.url, data=data, headers=http_headers,
                                     timeout=self.timeout, verify=self.verify)
        except requests.RequestException as exc:
            raise XDSRegistryError(f"registry {self.url} unreachable: "
                                   f"{type(exc).__name__}") from exc
        if len(resp.content) > MAX_ANSWER:
            raise XDSRegistryError(f"registry {self.url}: answer too large")
        try:
            root = parse_xml(resp.content)
        except Exception as exc:
            raise XDSRegistryError(f"registry {self.url} answered HTTP {resp.status_code}, "
                                   "not SOAP") from exc
        found = root.find(f".//{{{RS}}}RegistryResponse")
        if found is None:
            raise XDSRegistryError(f"registry {self.url} answered HTTP {resp.status_code} "
                                   "without a RegistryResponse")
        result = parse_registry_response(found)
        errors = [e for e in result.errors if e.severity.value.endswith("Error")]
        if not result.ok and errors:
            refused = GatewayError(errors[0].context, location=errors[0].location)
            refused.code, refused.details = errors[0].code, errors
            raise refused
        if not result.ok:
            raise XDSRegistryError(f"registry {self.url} answered {result.status.value}")
