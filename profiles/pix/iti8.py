"""ITI-8 Patient Identity Feed (HL7 v2.3.1 ADT), PIX Manager side (ITI TF-2a 3.8).

A01, A04 and A05 add a patient, A08 revises one (both store the record, as
ITI-44 does), A40 merges: for each PID/MRG pair the ids in MRG-1 are retired
into the patient of PID-3, every pair of a message in one transaction that also
moves their documents and correlations and holds the feed's audit records. The
answer is an ACK: AA once stored; AE with ERR for a message we cannot use (no
PID: 100; no id with an ISO OID, or a domain the index does not take: 204; a bad
date: 102; the index unavailable: 207); AR for a trigger event that is not
ITI-8's (201).

The record's id is the first usable PID-3 id; the others, and PID-19 (SSN),
become its other ids, which cross-reference the records they name.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import hl7

from profiles.atna.facts import Feed, noter
from profiles.pix.hl7v2 import V2Error, V2Message, acknowledgement, cx_list, pid_person
from profiles.pix.ports import IndexBusy, PatientIndex, PatientRecord, UnknownDomain

ADD_TRIGGERS = ("A01", "A04", "A05")
UPDATE_TRIGGERS = ("A08",)
MERGE_TRIGGERS = ("A40",)
TRIGGERS = ADD_TRIGGERS + UPDATE_TRIGGERS + MERGE_TRIGGERS


def _record(m: V2Message, n: int) -> PatientRecord:
    ids, person = pid_person(m, n)
    return PatientRecord(ids[0], person)


def _store(m: V2Message, index: PatientIndex, noted: Callable[[Feed], None],
           audit: Any = None) -> None:
    if m.count("PID") == 0:
        raise V2Error("100", "an ITI-8 feed needs a PID segment", ("PID",))
    if m.trigger in MERGE_TRIGGERS:
        if m.count("MRG") != m.count("PID"):
            raise V2Error("100", "each PID of a merge needs its MRG segment", ("MRG",))
        merges = []
        for n in range(1, m.count("PID") + 1):
            obsolete, _ = cx_list(m, "MRG", 1, n)
            if not obsolete:
                raise V2Error("204", "MRG-1 holds no identifier with an ISO OID",
                              ("MRG", n, 1))
            merges.append((_record(m, n), obsolete))
        for survivor, obsolete in merges:
            noted(Feed(m.trigger, str(survivor.id), tuple(str(o) for o in obsolete)))
        # All pairs in one transaction, with the feed's audit records (all or none).
        index.merge_all(merges, source="ITI-8", audit=audit)
        return
    record = _record(m, 1)
    noted(Feed(m.trigger, str(record.id)))
    if m.trigger in UPDATE_TRIGGERS:
        index.update(record)
    else:
        index.add(record)


def handle_feed(m: V2Message, index: PatientIndex, *, now: datetime | None = None,
                audit: Any = None) -> hl7.Message:
    """The ACK for one ITI-8 message (never raises a V2Error). ``audit`` (an AuditSink)
    is told each feed event: trigger, patient, merged ids."""
    if m.trigger not in TRIGGERS:
        error = V2Error("201", f"ADT^{m.trigger} is not an ITI-8 trigger event",
                        ("MSH", 1, 9, 1, 2), ack="AR")
        return acknowledgement(m, error, now=now)
    fed: list[Feed] = []

    def noted(feed: Feed) -> None:
        fed.append(feed)
        noter(audit)(feed=feed)

    try:
        _store(m, index, noted, audit)
    except V2Error as error:
        if not fed:  # refused before its patient could be read
            noted(Feed(m.trigger))
        return acknowledgement(m, error, now=now)
    except UnknownDomain:
        return acknowledgement(m, V2Error("204", "unknown patient identifier domain",
                                          ("PID", 1, 3)), now=now)
    except IndexBusy:
        return acknowledgement(m, V2Error("207", "the patient index cannot accept the feed now",
                                          ()), now=now)
    return acknowledgement(m, now=now)
