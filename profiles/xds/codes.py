"""The fixed vocabulary of XDS metadata (ITI TF-3 4.2.3, 4.2.5; ebRIM 3.0).

UUIDs name what a Classification or ExternalIdentifier means; slot names name
what a Slot means. The closed sets (object types, statuses, association types)
are Enums whose bad value raises ``XDSRegistryMetadataError``, so an unknown
value can never travel further as if it were understood.
"""

from __future__ import annotations

from enum import StrEnum

from profiles.errors import XDSRegistryMetadataError

RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
LCM = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
QUERY = "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"
XDS = "urn:ihe:iti:xds-b:2007"
XOP = "http://www.w3.org/2004/08/xop/include"
XML_NS = "http://www.w3.org/XML/1998/namespace"

# ebRIM object types written on the registry objects we emit.
OBJECT_TYPE_PREFIX = "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:"
OT_REGISTRY_PACKAGE = OBJECT_TYPE_PREFIX + "RegistryPackage"
OT_ASSOCIATION = OBJECT_TYPE_PREFIX + "Association"
OT_CLASSIFICATION = OBJECT_TYPE_PREFIX + "Classification"
OT_EXTERNAL_IDENTIFIER = OBJECT_TYPE_PREFIX + "ExternalIdentifier"

# Classification nodes: what a RegistryPackage is, and the limitedMetadata flags.
SUBMISSION_SET_NODE = "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"
FOLDER_NODE = "urn:uuid:d9d542f3-6cc4-48b6-8870-ea235fbc94c2"
SS_LIMITED_METADATA = "urn:uuid:5003a9db-8d8d-49e6-bf0c-990e34ac7707"
DE_LIMITED_METADATA = "urn:uuid:ab9b591b-83ab-4d03-8f5d-f93b1fb92e85"
FOLDER_LIMITED_METADATA = "urn:uuid:2c144a76-29a9-4b7c-af54-b25409fe7d03"

# Classification schemes.
DE_AUTHOR = "urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d"
DE_CLASS_CODE = "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a"
DE_CONFIDENTIALITY_CODE = "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f"
DE_EVENT_CODE = "urn:uuid:2c6b8cb7-8b2a-4051-b291-b1ae6a575ef4"
DE_FORMAT_CODE = "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d"
DE_HEALTHCARE_FACILITY_TYPE_CODE = "urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1"
DE_PRACTICE_SETTING_CODE = "urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead"
DE_TYPE_CODE = "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983"
SS_AUTHOR = "urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d"
SS_CONTENT_TYPE_CODE = "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500"
FOLDER_CODE_LIST = "urn:uuid:1ba97051-7806-41a8-a48b-8fce7af683c5"
ASSOCIATION_DOCUMENTATION = "urn:uuid:abd807a3-4432-4053-87b4-fd82c643d1f3"

# ExternalIdentifier schemes, with the Name ebRIM conventionally gives each.
DE_PATIENT_ID = "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427"
DE_UNIQUE_ID = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"
SS_PATIENT_ID = "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446"
SS_SOURCE_ID = "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832"
SS_UNIQUE_ID = "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8"
FOLDER_PATIENT_ID = "urn:uuid:f64ffdf0-4b97-4e06-b79f-a52b38ec2f8a"
FOLDER_UNIQUE_ID = "urn:uuid:75df8f67-9973-4fbe-a900-df66cefecc5a"

EXTERNAL_IDENTIFIER_NAMES = {
    DE_PATIENT_ID: "XDSDocumentEntry.patientId",
    DE_UNIQUE_ID: "XDSDocumentEntry.uniqueId",
    SS_PATIENT_ID: "XDSSubmissionSet.patientId",
    SS_SOURCE_ID: "XDSSubmissionSet.sourceId",
    SS_UNIQUE_ID: "XDSSubmissionSet.uniqueId",
    FOLDER_PATIENT_ID: "XDSFolder.patientId",
    FOLDER_UNIQUE_ID: "XDSFolder.uniqueId",
}

# Slot names.
CODING_SCHEME = "codingScheme"
AUTHOR_PERSON = "authorPerson"
AUTHOR_INSTITUTION = "authorInstitution"
AUTHOR_ROLE = "authorRole"
AUTHOR_SPECIALTY = "authorSpecialty"
AUTHOR_TELECOM = "authorTelecommunication"
CREATION_TIME = "creationTime"
SERVICE_START_TIME = "serviceStartTime"
SERVICE_STOP_TIME = "serviceStopTime"
HASH = "hash"
SIZE = "size"
LANGUAGE_CODE = "languageCode"
LEGAL_AUTHENTICATOR = "legalAuthenticator"
SOURCE_PATIENT_ID = "sourcePatientId"
SOURCE_PATIENT_INFO = "sourcePatientInfo"
REPOSITORY_UNIQUE_ID = "repositoryUniqueId"
URI = "URI"
REFERENCE_ID_LIST = "urn:ihe:iti:xds:2013:referenceIdList"
DOCUMENT_AVAILABILITY = "documentAvailability"
SUBMISSION_TIME = "submissionTime"
INTENDED_RECIPIENT = "intendedRecipient"
LAST_UPDATE_TIME = "lastUpdateTime"
SUBMISSION_SET_STATUS = "SubmissionSetStatus"
ORIGINAL_STATUS = "OriginalStatus"
NEW_STATUS = "NewStatus"
PREVIOUS_VERSION = "PreviousVersion"


class _Vocabulary(StrEnum):
    """A closed set: an unknown value is a metadata error, not a ValueError."""

    @classmethod
    def _missing_(cls, value: object) -> _Vocabulary:
        what = (cls.__doc__ or cls.__name__).split(":")[0]
        raise XDSRegistryMetadataError(f"{value!r} is not a valid {what}")


class DocumentEntryType(_Vocabulary):
    """DocumentEntry objectType: stable or on-demand (ITI TF-3 4.2.5.2)."""

    STABLE = "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"
    ON_DEMAND = "urn:uuid:34268e47-fdf5-41a6-ba33-82133c465248"


class AvailabilityStatus(_Vocabulary):
    """availabilityStatus: the lifecycle of a registry object."""

    APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
    DEPRECATED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated"
    SUBMITTED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Submitted"


class AssociationType(_Vocabulary):
    """associationType: how two registry objects relate (ITI TF-3 4.2.2)."""

    HAS_MEMBER = "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"
    RPLC = "urn:ihe:iti:2007:AssociationType:RPLC"
    XFRM = "urn:ihe:iti:2007:AssociationType:XFRM"
    APND = "urn:ihe:iti:2007:AssociationType:APND"
    XFRM_RPLC = "urn:ihe:iti:2007:AssociationType:XFRM_RPLC"
    SIGNS = "urn:ihe:iti:2007:AssociationType:signs"
    IS_SNAPSHOT_OF = "urn:ihe:iti:2010:AssociationType:IsSnapshotOf"
    UPDATE_AVAILABILITY_STATUS = "urn:ihe:iti:2010:AssociationType:UpdateAvailabilityStatus"
    SUBMIT_ASSOCIATION = "urn:ihe:iti:2010:AssociationType:SubmitAssociation"

    @property
    def is_document_relationship(self) -> bool:
        """RPLC, XFRM, APND, XFRM_RPLC, signs: DocumentEntry to DocumentEntry."""
        return self in _RELATIONSHIPS

    @property
    def replaces(self) -> bool:
        """RPLC and XFRM_RPLC deprecate their target."""
        return self in (AssociationType.RPLC, AssociationType.XFRM_RPLC)


_RELATIONSHIPS = frozenset(
    {
        AssociationType.RPLC,
        AssociationType.XFRM,
        AssociationType.APND,
        AssociationType.XFRM_RPLC,
        AssociationType.SIGNS,
    }
)


class SubmissionSetStatus(_Vocabulary):
    """SubmissionSetStatus: whether a HasMember target is new or already registered."""

    ORIGINAL = "Original"
    REFERENCE = "Reference"


class DocumentAvailability(_Vocabulary):
    """documentAvailability: whether a repository can currently return the document."""

    ONLINE = "urn:ihe:iti:2010:DocumentAvailability:Online"
    OFFLINE = "urn:ihe:iti:2010:DocumentAvailability:Offline"


class ResponseStatus(_Vocabulary):
    """RegistryResponse status: the outcome of a request."""

    SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
    FAILURE = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"
    PARTIAL_SUCCESS = "urn:ihe:iti:2007:ResponseStatusType:PartialSuccess"
