"""HL7 v3 failures, answered with an AE acknowledgement rather than a SOAP fault.

    GatewayError
     +-- Hl7v3Error                 acknowledgementDetail code + XPath-ish location
          +-- Hl7v3SyntaxError      SYN...  the message breaks the schema or an IHE rule
          +-- Hl7v3NotSupported     NS...   interaction or processing mode not supported
          +-- Hl7v3InternalError    INTERR  we failed, not the sender
          +-- UnknownKeyIdentifier  204     unknown patient id domain or data source
                                            (HL7 table 0357, ITI TF-2b 3.45.4.2.3)

``code`` is the acknowledgementDetail code; its code system follows from it
(numeric codes are HL7 table 0357, the rest v3 AcknowledgementDetailCode).
``context`` is our own fixed wording and never quotes the input, which may
carry PHI. A parser that got as far as the transmission wrapper (and the
query id) attaches them to the error so the AE answer can name the target
message and echo the query id.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from profiles.errors import ErrorDetail, GatewayError, Severity

ACK_DETAIL_CODE_SYSTEM = "2.16.840.1.113883.5.1100"  # v3 AcknowledgementDetailCode
HL7_TABLE_0357 = "2.16.840.1.113883.12.357"  # HL7 v2 message error condition codes


class AckDetailCode(StrEnum):
    """v3 AcknowledgementDetailCode values we send (HL7 vocabulary 2.16.840.1.113883.5.1100)."""

    INTERNAL_ERROR = "INTERR"
    SYNTAX_ERROR = "SYN"
    REQUIRED_ASSOCIATION_MISSING = "SYN100"
    REQUIRED_ATTRIBUTE_MISSING = "SYN101"
    DATA_TYPE_ERROR = "SYN102"
    VALUE_NOT_IN_CODE_SYSTEM = "SYN103"
    REQUIRED_ELEMENT_MISSING = "SYN105"
    TOO_MANY_REPETITIONS = "SYN108"
    TOO_MANY_ASSOCIATION_REPETITIONS = "SYN110"
    NOT_FIXED_VALUE = "SYN111"
    FORMAL_CONSTRAINT_VIOLATION = "SYN113"
    UNSUPPORTED_INTERACTION = "NS200"
    UNSUPPORTED_PROCESSING_MODE = "NS250"
    UNKNOWN_SENDER = "NS260"


class MessageErrorCode(StrEnum):
    """HL7 table 0357 codes, which IHE uses for PIX answers (2.16.840.1.113883.12.357)."""

    REQUIRED_FIELD_MISSING = "101"
    DATA_TYPE_ERROR = "102"
    TABLE_VALUE_NOT_FOUND = "103"
    UNKNOWN_KEY_IDENTIFIER = "204"
    DUPLICATE_KEY_IDENTIFIER = "205"
    APPLICATION_INTERNAL_ERROR = "207"


def code_system_for(code: str) -> str:
    """Table 0357 codes are numeric; every other detail code is v3 vocabulary."""
    return HL7_TABLE_0357 if code.isdigit() else ACK_DETAIL_CODE_SYSTEM


class Hl7v3Error(GatewayError):
    """An HL7 v3 refusal; ``code`` goes into acknowledgementDetail/code."""

    code: str = AckDetailCode.INTERNAL_ERROR

    def __init__(
        self,
        context: str = "",
        *,
        code: str | None = None,
        location: str = "",
        severity: Severity = Severity.ERROR,
        details: list[ErrorDetail] | None = None,
    ) -> None:
        if code is not None:
            self.code = str(code)
        super().__init__(context, location=location, severity=severity, details=details)
        self.transmission: Any = None  # TransmissionWrapper, when parsing got that far
        self.query_id: Any = None  # II of queryByParameter/queryId, when parsed


class Hl7v3SyntaxError(Hl7v3Error):
    """The message breaks the HL7 v3 schema or an IHE constraint on it."""

    code = AckDetailCode.SYNTAX_ERROR


class Hl7v3NotSupported(Hl7v3Error):
    """An interaction, version or processing mode this actor does not support."""

    code = AckDetailCode.UNSUPPORTED_INTERACTION


class Hl7v3InternalError(Hl7v3Error):
    """We could not process a valid message."""

    code = AckDetailCode.INTERNAL_ERROR


class UnknownKeyIdentifier(Hl7v3Error):
    """An identifier's assigning authority (domain) is not known here."""

    code = MessageErrorCode.UNKNOWN_KEY_IDENTIFIER


def syntax(code: AckDetailCode, context: str, location: str) -> Hl7v3SyntaxError:
    return Hl7v3SyntaxError(context, code=code, location=location)
