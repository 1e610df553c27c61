"""One exception family for every failure a transaction can report.

    GatewayError                    an IHE-coded failure (RegistryError / HL7 issue)
     +-- RegistryError subclasses   one per IHE error code (XDSRegistryError, ...)
     +-- SoapFault                  transport or security failure -> SOAP 1.2 fault

``gateway/dispatch.py`` is the one seam that turns these into the transaction's
error form; the text of an unexpected exception never reaches a peer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Error"
    WARNING = "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Warning"


@dataclass(frozen=True)
class ErrorDetail:
    """One RegistryError: code, human text, severity and where it happened."""

    code: str
    context: str
    severity: Severity = Severity.ERROR
    location: str = ""


class GatewayError(Exception):
    """A failure with an IHE error code; may carry several details (report all)."""

    code: str = "XDSRegistryError"

    def __init__(
        self,
        context: str = "",
        *,
        location: str = "",
        severity: Severity = Severity.ERROR,
        details: list[ErrorDetail] | None = None,
    ) -> None:
        super().__init__(context or self.code)
        self.context = context or self.code
        self.location = location
        self.severity = severity
        self.details: list[ErrorDetail] = details or [
            ErrorDetail(self.code, self.context, severity, location)
        ]

    @classmethod
    def collect(cls, errors: list[GatewayError]) -> GatewayError:
        """Merge several errors into one carrying every detail, first code leading."""
        merged = cls(errors[0].context, location=errors[0].location)
        merged.code = errors[0].code
        merged.details = [d for e in errors for d in e.details]
        return merged


def _error(name: str, doc: str) -> type[GatewayError]:
    return type(name, (GatewayError,), {"code": name, "__doc__": doc})


# IHE ITI TF-3 Table 4.2.4.1-2 and ITI TF-2b (XCA) error codes.
XDSRegistryError = _error("XDSRegistryError", "Internal registry error.")
XDSRepositoryError = _error("XDSRepositoryError", "Internal repository error.")
XDSRegistryMetadataError = _error("XDSRegistryMetadataError", "Metadata fails a registry rule.")
XDSRepositoryMetadataError = _error(
    "XDSRepositoryMetadataError", "Metadata fails a repository rule."
)
XDSMissingDocument = _error("XDSMissingDocument", "Metadata names a document that is absent.")
XDSMissingDocumentMetadata = _error("XDSMissingDocumentMetadata", "A document has no metadata.")
XDSUnknownPatientId = _error("XDSUnknownPatientId", "Patient id not known to the registry.")
XDSPatientIdDoesNotMatch = _error("XDSPatientIdDoesNotMatch", "Patient ids in a submission differ.")
XDSDuplicateUniqueIdInRegistry = _error("XDSDuplicateUniqueIdInRegistry", "uniqueId already used.")
XDSNonIdenticalHash = _error("XDSNonIdenticalHash", "Submitted hash differs from the document.")
XDSNonIdenticalSize = _error("XDSNonIdenticalSize", "Submitted size differs from the document.")
XDSUnknownStoredQuery = _error("XDSUnknownStoredQuery", "Stored query id not supported.")
XDSStoredQueryMissingParam = _error("XDSStoredQueryMissingParam", "Required parameter absent.")
XDSStoredQueryParamNumber = _error("XDSStoredQueryParamNumber", "Too many values for a parameter.")
XDSTooManyResults = _error("XDSTooManyResults", "The query matched more than the limit.")
XDSResultNotSinglePatient = _error("XDSResultNotSinglePatient", "LeafClass result spans patients.")
XDSUnknownRepositoryId = _error("XDSUnknownRepositoryId", "repositoryUniqueId is not ours.")
XDSUnknownCommunity = _error("XDSUnknownCommunity", "homeCommunityId is not known.")
XDSMissingHomeCommunityId = _error("XDSMissingHomeCommunityId", "homeCommunityId is required.")
XDSUnavailableCommunity = _error("XDSUnavailableCommunity", "A community did not answer.")
XDSRegistryDuplicateUniqueIdInMessage = _error(
    "XDSRegistryDuplicateUniqueIdInMessage", "A uniqueId appears twice in one submission."
)
XDSRepositoryDuplicateUniqueIdInMessage = _error(
    "XDSRepositoryDuplicateUniqueIdInMessage", "A uniqueId appears twice in one submission."
)
XDSRegistryDeprecatedDocumentError = _error(
    "XDSRegistryDeprecatedDocumentError", "An association targets a deprecated DocumentEntry."
)
UnresolvedReferenceException = _error("UnresolvedReferenceException", "A reference is unresolved.")


@dataclass
class SoapFault(Exception):
    """A failure answered as a SOAP fault rather than in the transaction's own form.

    ``code`` is ``Sender`` or ``Receiver``; ``subcodes`` are qualified names as
    ``(namespace, local)`` pairs, outermost first (e.g. wsa:ActionNotSupported).
    ``reason`` is safe to show the peer: never an exception's text.
    """

    code: str
    reason: str
    subcodes: list[tuple[str, str]] = field(default_factory=list)
    detail: dict[str, str] = field(default_factory=dict)  # WS-A detail: ProblemAction, ...
    not_understood: list = field(default_factory=list)  # QNames, for MustUnderstand

    def __post_init__(self) -> None:
        super().__init__(self.reason)


WSA_NS = "http://www.w3.org/2005/08/addressing"
WSSE_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"


def sender_fault(reason: str, *subcode: tuple[str, str]) -> SoapFault:
    return SoapFault("Sender", reason, list(subcode))


def receiver_fault(reason: str, *subcode: tuple[str, str]) -> SoapFault:
    return SoapFault("Receiver", reason, list(subcode))
