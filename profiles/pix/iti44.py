"""ITI-44 Patient Identity Feed HL7 V3, PIX Manager side (ITI TF-2b 3.44).

Three interactions share one handler: PRPA_IN201301UV02 adds a patient,
PRPA_IN201302UV02 revises one, PRPA_IN201304UV02 merges the identifiers in
``replacementOf`` into the patient it carries. Each is answered with an
MCCI_IN000002UV01 acknowledgement: AA once the index has committed, AE with
located acknowledgementDetails for a message we refuse.

The record's identifier is the patient's first id (root and extension both
required); further ids become the record's other identifiers, which is how a
source says "this is also that patient" (they link cross-reference groups).
An add of a known id revises it, and a revision of an unknown id adds it: a
source re-sending its feed must not be refused. A merge stores the surviving
record from the message, retires the obsolete ones and moves their
correlations, cross-references and registry documents to it, in one transaction
with the request's audit records (``PatientFeed.merge``).
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial

from lxml import etree

from profiles.atna.facts import Feed, ii_ref, note
from profiles.errors import GatewayError
from profiles.hl7v3.ack import ApplicationAcknowledgement, mcci_acknowledgement_to_xml
from profiles.hl7v3.errors import (
    AckDetailCode,
    Hl7v3InternalError,
    Hl7v3NotSupported,
    UnknownKeyIdentifier,
    syntax,
)
from profiles.hl7v3.patient import OtherId
from profiles.pix.hl7v3 import (
    FeedKind,
    PatientIdentityFeed,
    feed_acknowledgement,
    feed_error_acknowledgement,
    parse_patient_identity_feed,
)
from profiles.pix.ports import IndexBusy, PatientIndex, PatientRecord, UnknownDomain, key_of
from profiles.transaction import Context, ErrorForm, Transaction

ACK_ACTION = "urn:hl7-org:v3:MCCI_IN000002UV01"
_PATIENT = "controlActProcess/subject/registrationEvent/subject1/patient"


def patient_location(kind: FeedKind, below: str = "") -> str:
    return f"/{kind.value}/{_PATIENT}" + (f"/{below}" if below else "")


def parse(expected: FeedKind, body: etree._Element, ctx: Context) -> PatientIdentityFeed:
    """Read the feed; the interaction must be the one the SOAP action announced."""
    try:
        feed = parse_patient_identity_feed(body)
    except GatewayError as error:  # audited as the announced feed, without its patient
        note(ctx, feed=Feed(expected.value),
             message_id=ii_ref(getattr(getattr(error, "transmission", None), "id", None)))
        raise
    note(ctx, message_id=ii_ref(feed.transmission.id), feed=Feed(
        feed.kind.value, str(feed.patient.id), tuple(str(i) for i in feed.replacement_of)))
    if feed.kind is not expected:
        error = Hl7v3NotSupported(f"the SOAP action announces {expected.value}",
                                  code=AckDetailCode.UNSUPPORTED_INTERACTION, location="/")
        error.transmission = feed.transmission
        raise error
    return feed


def feed_record(feed: PatientIdentityFeed) -> PatientRecord:
    """The index record a feed carries: first id, person, further ids as other ids."""
    pid = feed.patient.id
    if not pid.root or not pid.extension:
        name = "root" if not pid.root else "extension"
        raise syntax(AckDetailCode.REQUIRED_ATTRIBUTE_MISSING,
                     "the patient id needs a domain (root) and a value (extension)",
                     patient_location(feed.kind, f"id/@{name}"))
    seen = {key_of(pid)} | {key_of(o.id) for o in feed.patient.person.other_ids}
    extra = []
    for ii in feed.patient.ids[1:]:
        if ii.root and ii.extension and key_of(ii) not in seen:
            seen.add(key_of(ii))
            extra.append(OtherId(ii, ii.root))
    person = feed.patient.person
    return PatientRecord(pid, replace(person, other_ids=(*extra, *person.other_ids)))


def handle(feed: PatientIdentityFeed, ctx: Context) -> ApplicationAcknowledgement:
    index: PatientIndex = ctx.ports.patients
    record = feed_record(feed)
    try:
        if feed.kind is FeedKind.MERGE:
            index.merge(record, feed.replacement_of, source="ITI-44",
                        audit=getattr(ctx, "audit", None))
        elif feed.kind is FeedKind.REVISE:
            index.update(record)
        else:
            index.add(record)
    except IndexBusy:
        raise Hl7v3InternalError("the patient index cannot accept the feed now") from None
    except UnknownDomain:  # an index with a closed list of domains
        raise UnknownKeyIdentifier("unknown patient identifier domain",
                                   location=patient_location(feed.kind, "id")) from None
    return feed_acknowledgement(feed)


def error_reply(feed: PatientIdentityFeed | None, error: GatewayError) -> etree._Element:
    return feed_error_acknowledgement(feed, error)


def _transaction(kind: FeedKind, what: str) -> Transaction:
    return Transaction(
        id="ITI-44",
        name=f"Patient Identity Feed ({what})",
        action=f"urn:hl7-org:v3:{kind.value}",
        reply_action=ACK_ACTION,
        error_form=ErrorForm.HL7V3_ACK,
        parse=partial(parse, kind),
        handle=handle,
        serialize=mcci_acknowledgement_to_xml,
        error_reply=error_reply,
    )


ITI_44_ADD = _transaction(FeedKind.ADD, "add")
ITI_44_REVISE = _transaction(FeedKind.REVISE, "revise")
ITI_44_MERGE = _transaction(FeedKind.MERGE, "merge")
