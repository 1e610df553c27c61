"""ITI-9 PIX Query (HL7 v2.5 QBP^Q23 -> RSP^K23), PIX Manager side (ITI TF-2a 3.9).

QPD-3 names the patient (CX with an ISO OID assigning authority), QPD-4 the
domains wanted (all when empty). The answer, per TF-2a 3.9.4.2.2.6:

* ids found: AA, QAK OK, one PID whose PID-3 lists them (PID-5 the empty
  pseudo-name ``~^^^^^^S``);
* the patient known but no id in the wanted domains: AA, QAK NF;
* the patient's domain unknown: AE, QAK AE, ERR 204 at QPD^1^3^1^4;
* the patient unknown: AE, QAK AE, ERR 204 at QPD^1^3^1^1;
* a wanted domain unknown: AE, QAK AE, ERR 204 at QPD^1^4^<repetition>.

QPD is echoed as received. The queried id itself is not listed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import hl7

from profiles.atna.facts import noter
from profiles.hl7v3.datatypes import II, is_oid, strip_urn_oid
from profiles.pix.hl7v2 import V2Error, V2Message, add_error, add_segment, answer_to
from profiles.pix.ports import IndexBusy, PatientIndex


def _wanted(m: V2Message, known: set[str]) -> tuple[list[str], list[V2Error]]:
    wanted, errors = [], []
    for rep in range(1, m.repetitions("QPD", 4) + 1):
        oid = strip_urn_oid(m.get("QPD", 4, rep, 4, 2))
        if not m.get("QPD", 4, rep, 4, 1) and not oid:
            continue
        if oid and is_oid(oid) and oid in known:
            wanted.append(oid)
        else:
            errors.append(V2Error("204", "unknown domain requested", ("QPD", 1, 4, rep)))
    return wanted, errors


def _lookup(m: V2Message, index: PatientIndex) -> tuple[str, list[II], list[V2Error]]:
    """(QAK code, ids, errors) for the query."""
    known = index.domains()
    value = m.get("QPD", 3, 1, 1)
    oid = strip_urn_oid(m.get("QPD", 3, 1, 4, 2))
    if not value:
        return "AE", [], [V2Error("101", "QPD-3 needs a patient id", ("QPD", 1, 3, 1, 1))]
    if not oid or not is_oid(oid) or oid not in known:
        return "AE", [], [V2Error("204", "unknown patient identifier domain",
                                  ("QPD", 1, 3, 1, 4))]
    wanted, errors = _wanted(m, known)
    if errors:
        return "AE", [], errors
    pid = II(oid, value)
    if not index.known(pid):
        return "AE", [], [V2Error("204", "unknown patient id", ("QPD", 1, 3, 1, 1))]
    ids = index.cross_references(pid)
    if wanted:
        ids = [ii for ii in ids if ii.root in wanted]
    return ("OK" if ids else "NF"), ids, []


def handle_query(m: V2Message, index: PatientIndex, *, now: datetime | None = None,
                 audit: Any = None) -> hl7.Message:
    """The RSP^K23 for one QBP^Q23; ``audit`` (an AuditSink) is told the queried
    patient and those returned."""
    answer = answer_to(m, "RSP", "K23", "RSP_K23", now=now)
    try:
        if m.count("QPD") != 1:
            raise V2Error("100", "a PIX query has one QPD segment", ("QPD",))
        code, ids, errors = _lookup(m, index)
    except V2Error as error:
        code, ids, errors = "AE", [], [error]
    except IndexBusy:
        code, ids, errors = "AE", [], [V2Error("207", "the patient index cannot answer now", ())]
    value, oid = m.get("QPD", 3, 1, 1), strip_urn_oid(m.get("QPD", 3, 1, 4, 2))
    asked = [str(II(oid, value))] if value and oid else []
    noter(audit)(patient_ids=[*asked, *(str(ii) for ii in ids)])
    add_segment(answer, "MSA", {1: "AE" if errors else "AA", 2: m.control_id})
    for error in errors:
        add_error(answer, m, error)
    add_segment(answer, "QAK", {1: m.get("QPD", 2), 2: code})
    if m.count("QPD"):
        answer.append(m.msg.segment("QPD"))
    if ids:
        values: dict = {1: "1", (5, 2, 7): "S"}
        for rep, ii in enumerate(ids, start=1):
            values.update({(3, rep, 1): ii.extension or "", (3, rep, 4, 2): ii.root or "",
                           (3, rep, 4, 3): "ISO", (3, rep, 5): "PI"})
        add_segment(answer, "PID", values)
    return answer
