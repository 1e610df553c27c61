"""ITI-42 Register Document Set-b (ITI TF-2b 3.42): the registry's side.

parse: ``lcm:SubmitObjectsRequest`` -> Submission (codec problems kept, not raised).
handle: in one registry transaction, validate (ITI TF-3 4.2.3/4.2.4, actor
"registry", with the registry's state: known patients, registered uniqueIds and
association targets), then store: symbolic ids become ``urn:uuid:``s, every new
object is Approved, new Folders and Folders that gain members get lastUpdateTime,
RPLC and XFRM_RPLC deprecate the entry they replace and its addenda and
transforms (CP 117), and a replacement joins every Folder the replaced entry was
in (ITI TF-3 4.2.2.2.3). Any error stores nothing and
is answered in one RegistryResponse carrying every problem.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from lxml import etree

from profiles.atna.facts import note
from profiles.errors import GatewayError
from profiles.transaction import Context, ErrorForm, Transaction
from profiles.xds.codes import AssociationType, AvailabilityStatus
from profiles.xds.ebrim import parse_submit_objects_request, registry_response_to_xml
from profiles.xds.metadata import Association, Submission, assign_entry_uuids
from profiles.xds.ports import Registration, Registry, RegistryTransaction
from profiles.xds.validate import validate_submission
from profiles.xds.values import dtm_from_datetime, is_uuid_urn, new_uuid_urn

APPROVED = AvailabilityStatus.APPROVED


@dataclass(frozen=True)
class RegisterRequest:
    submission: Submission
    problems: tuple[GatewayError, ...] = ()  # what the codec could not model


@dataclass(frozen=True)
class RegisterResponse:
    """Success; failures travel as GatewayError to the dispatcher's error form."""

    registered: tuple[str, ...] = ()  # entryUUIDs stored


def parse(body: etree._Element, ctx: Context | None = None) -> RegisterRequest:
    problems: list[GatewayError] = []
    submission = parse_submit_objects_request(body, problems=problems)
    note_submission(ctx, submission)
    return RegisterRequest(submission, tuple(problems))


def note_submission(ctx: Context | None, submission: Submission) -> None:
    """The audit facts of a submission (ITI TF-2b 3.42.5.1): its SubmissionSet
    uniqueId and patient."""
    ss = submission.submission_set
    if ss is not None:
        note(ctx, submission_set_id=ss.unique_id, patient_ids=[ss.patient_id or ""])


def unique_ids(submission: Submission) -> list[str]:
    return [u for o in submission.registry_objects() if (u := getattr(o, "unique_id", None))]


def register(registry: Registry, request: RegisterRequest, time: str) -> RegisterResponse:
    """Validate and store ``request`` atomically; raise every problem as one GatewayError."""
    submission = request.submission
    with registry.transaction(lock=unique_ids(submission)) as tx:
        errors = [*request.problems]
        errors += validate_submission(submission, actor="registry", registry=tx)
        if errors:
            raise GatewayError.collect(errors)
        registration = plan(submission, tx, time)
        tx.save(registration)
    return RegisterResponse(tuple(o.entry_uuid for o in registration.submission.registry_objects()))


def plan(submission: Submission, tx: RegistryTransaction, time: str) -> Registration:
    """The registry's decisions for a valid submission (pure but for folder lookups)."""
    sub, _ = assign_entry_uuids(submission)

    def identity(obj):
        lid = obj.logical_id if is_uuid_urn(obj.logical_id) else obj.entry_uuid
        version = obj.version or "1"
        return replace(obj, availability_status=APPROVED, logical_id=lid, version=version)

    ss = identity(sub.submission_set) if sub.submission_set is not None else None
    folders = tuple(replace(identity(f), last_update_time=time) for f in sub.folders)
    local = {f.entry_uuid for f in folders} | ({ss.entry_uuid} if ss else set())
    touched: dict[str, None] = {}
    deprecate: dict[str, None] = {}
    extra: list[Association] = []
    for a in sub.associations:
        if a.type is AssociationType.HAS_MEMBER and a.source not in local:
            touched[a.source] = None  # a registered Folder gains a member
        if a.type.replaces:
            deprecate[a.target] = None
            deprecate.update(dict.fromkeys(tx.addenda_and_transforms(a.target)))
            for folder in tx.folders_containing(a.target):
                touched[folder] = None
                extra.append(Association(entry_uuid=new_uuid_urn(), type=AssociationType.HAS_MEMBER,
                                         source=folder, target=a.source,
                                         availability_status=APPROVED))
    associations = tuple(replace(a, availability_status=APPROVED) for a in sub.associations)
    return Registration(
        submission=replace(
            sub,
            submission_set=ss,
            document_entries=tuple(identity(d) for d in sub.document_entries),
            folders=folders,
            associations=associations + tuple(extra),
        ),
        deprecate=tuple(deprecate),
        touched_folders=tuple(touched),
        time=time,
    )


def handle(request: RegisterRequest, ctx: Context) -> RegisterResponse:
    return register(ctx.ports.registry, request, dtm_from_datetime(ctx.received_at))


def serialize(response: RegisterResponse) -> etree._Element:
    return registry_response_to_xml()


ITI_42 = Transaction(
    id="ITI-42",
    name="Register Document Set-b",
    action="urn:ihe:iti:2007:RegisterDocumentSet-b",
    reply_action="urn:ihe:iti:2007:RegisterDocumentSet-bResponse",
    error_form=ErrorForm.REGISTRY_RESPONSE,
    parse=parse,
    handle=handle,
    serialize=serialize,
)
