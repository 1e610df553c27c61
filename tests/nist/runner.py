"""A small NIST XDS Toolkit test-plan runner against the in-process gateway.

Reads ``tests/<id>/[<section>/]testplan.xml``, and for each TestStep builds the request from its
MetadataFile the way the toolkit does (ebRIM 2.1 translated to 3.0; unless ``NoPatientId`` the
patient ids are rewritten to the test's patient; unless ``NoAssignUids`` fresh uniqueIds;
``AssignUuids`` turns symbolic ids into ``urn:uuid:``s; ``UseId``/``UseReport`` values replace
``$placeholders$``), sends it as SOAP 1.2 (MTOM for ITI-41) through the Flask test client, and
checks ExpectedStatus, ExpectedErrorCode/Message, ExpectedContents and Assertions.
Cases that cannot apply are named, with the reason, in ``SKIP``.
"""

from __future__ import annotations

import io
import itertools
import math
import os
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.sax.saxutils import escape

from lxml import etree

from gateway.soap import mtom
from profiles.transaction import OutgoingAttachment
from tests.nist import ebrim21
from tests.nist.checks import Failed, check_contents, check_status, run_assertions

S12 = "http://www.w3.org/2003/05/soap-envelope"
WSA = "http://www.w3.org/2005/08/addressing"
RIM = ebrim21.RIM
XDSB = "urn:ihe:iti:xds-b:2007"
XOP = "http://www.w3.org/2004/08/xop/include"
ACTIONS = {
    "RegisterTransaction": ("/xds/registry", "urn:ihe:iti:2007:RegisterDocumentSet-b"),
    "StoredQueryTransaction": ("/xds/registry", "urn:ihe:iti:2007:RegistryStoredQuery"),
    "ProvideAndRegisterTransaction": (
        "/xds/repository", "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"),
    "RetrieveTransaction": ("/xds/repository", "urn:ihe:iti:2007:RetrieveDocumentSet"),
}
PATIENT_SCHEMES = {  # XDSDocumentEntry / XDSSubmissionSet / XDSFolder .patientId
    "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427",
    "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446",
    "urn:uuid:f64ffdf0-4b97-4e06-b79f-a52b38ec2f8a",
}
UID_SCHEMES = {  # .uniqueId of the same three
    "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab",
    "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8",
    "urn:uuid:75df8f67-9973-4fbe-a900-df66cefecc5a",
}
PATIENT_ROOT = "1.3.6.1.4.1.21367.13.20.1000"
UID_ROOT = "1.3.6.1.4.1.21367.2026.11"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=False)


@dataclass
class Record:
    """What a step leaves for later ones (the toolkit's log of that step)."""

    reports: dict[str, str] = field(default_factory=dict)
    uids: dict[str, str] = field(default_factory=dict)  # symbolic id -> uniqueId
    uuids: dict[str, str] = field(default_factory=dict)  # symbolic id -> entryUUID
    patient: str | None = None
    output: etree._Element | None = None


@dataclass(frozen=True)
class Outcome:
    case: str  # test/section/step
    status: str  # "pass", "fail" or "skip"
    detail: str = ""


def builtins() -> dict[str, str]:
    """The toolkit's own placeholders (times in UTC)."""
    now = datetime.now(UTC)
    # $now$ is an exclusive upper bound (…TimeTo) at one-second resolution; the toolkit sends
    # it long after the data was registered, here it may be the same second: one second later.
    later = now + timedelta(seconds=1)
    return {"$now$": later.strftime("%Y%m%d%H%M%S"), "$DATE$": now.strftime("%Y%m%d"),
            "$lastyear$": now.replace(year=now.year - 1).strftime("%Y%m%d%H%M%S")}


def next_second() -> None:
    """Sleep until the wall clock's second changes (timestamps are DTM to the second)."""
    now = time.time()
    time.sleep(math.ceil(now) - now + 0.01)


def dedupe_slots(body: etree._Element) -> None:
    """Drop a Slot that repeats an earlier one of its object word for word.

    Testkit data defect: 12346/single_doc.xml gives languageCode twice; ebRIM 3.0 wants
    slot names unique in an object and our registry (rightly) refuses the repeat.
    """
    for obj in body.iter():
        seen: set[bytes] = set()
        for slot in obj.findall(f"{{{RIM}}}Slot"):
            key = etree.tostring(slot)
            if key in seen:
                obj.remove(slot)
            seen.add(key)


# Sections with a testplan that index.idx leaves out but that test what the readme says.
EXTRA_SECTIONS = {"15816": ["Retrieve"]}  # ITI-43 Success / Failure / PartialSuccess


def sections(test_dir: Path) -> list[str]:
    if (test_dir / "testplan.xml").is_file():
        return [""]
    index = test_dir / "index.idx"
    names = index.read_text().split() if index.is_file() else []
    names += EXTRA_SECTIONS.get(test_dir.name, [])
    return [n for n in dict.fromkeys(names) if (test_dir / n / "testplan.xml").is_file()]


class Runner:
    """Runs test plans in order against one gateway; earlier tests' records stay available."""

    def __init__(self, tests_dir: Path, client, add_patient: Callable[[str], None],
                 skip: dict[str, str], configured: dict[str, str] | None = None) -> None:
        self.tests, self.client, self.add_patient, self.skip = tests_dir, client, add_patient, skip
        self.configured = configured or {}  # what the toolkit takes from the SUT's config
        self.records: dict[tuple[str, str, str], Record] = {}
        self.patients: dict[str, str] = {}  # test id -> its patient
        self.default_patient: str | None = None
        self._n = itertools.count(1)
        self.sent: dict[str, bytes] = {}  # document uniqueId -> bytes provided (ITI-41)

    # ---- bookkeeping -------------------------------------------------------------------
    def new_patient(self) -> str:
        pid = f"NIST{next(self._n):05d}^^^&{PATIENT_ROOT}&ISO"
        self.add_patient(pid)
        return pid

    def _skip_reason(self, test: str, section: str, step: str) -> str | None:
        for key in (f"{test}/{section}/{step}", f"{test}/{section}", test):
            if key in self.skip:
                return self.skip[key]
        return None

    def record(self, test: str, section: str, step: str) -> Record:
        found = self.records.get((test, section, step))
        if found is None:  # older layouts name a section the copy has flattened or renamed
            found = next((r for (t, _, s), r in self.records.items()
                          if t == test and s in (step, f"submit_{step}")), None)
        if found is None:
            raise Failed(f"no record of {test}/{section}/{step} (did it run and pass?)")
        return found

    def _where(self, here: tuple[str, str], testdir: str | None) -> tuple[str, str]:
        if not testdir:
            return here
        base = "/".join(x for x in here if x) if here[1] else f"{here[0]}/x"
        target = Path(os.path.normpath(f"{base}/{testdir}"))
        parts = target.parts
        return (parts[0], parts[1] if len(parts) > 1 else "")

    def substitutions(self, tx: etree._Element, here: tuple[str, str]) -> dict[str, str]:
        subs: dict[str, str] = {}
        for use in tx.iter("UseId"):
            test, section = self._where(here, use.get("testdir"))
            rec = self.record(test, section, use.get("step", ""))
            kind, sym = use.get("section"), use.get("id", "")
            value = {"AssignedUids": rec.uids.get(sym), "AssignedUuids": rec.uuids.get(sym),
                     "AssignedPatientId": rec.patient}.get(kind or "")
            if value is None:
                raise Failed(f"UseId {kind} {sym} not found in {test}/{section}")
            subs[use.get("symbol", "")] = value
        for use in tx.iter("UseReport"):
            test = use.get("test") or here[0]
            section = use.get("section", "")
            rec = self.record(test, here[1] if section == "THIS" else section,
                              use.get("step", ""))
            name = use.get("reportName", "")
            if name not in rec.reports:
                raise Failed(f"report {name} not found in {test}/{use.get('section')}")
            subs[use.get("useAs", "")] = rec.reports[name]
        return subs

    # ---- running -----------------------------------------------------------------------
    def run_test(self, test: str) -> list[Outcome]:
        out: list[Outcome] = []
        for section in sections(self.tests / test):
            plan = etree.parse(str(self.tests / test / section / "testplan.xml"), _PARSER)
            last: etree._Element | None = None
            for step in plan.getroot().iter("TestStep"):
                case = "/".join(x for x in (test, section, step.get("id", "")) if x)
                reason = self._skip_reason(test, section, step.get("id", ""))
                if reason:
                    out.append(Outcome(case, "skip", reason))
                    continue
                try:
                    last = self.run_step(test, section, step, last)
                    out.append(Outcome(case, "pass"))
                except Failed as e:
                    out.append(Outcome(case, "fail", str(e)))
                except Exception as e:  # a runner or gateway crash is a failed case too
                    out.append(Outcome(case, "fail", f"{type(e).__name__}: {e}"))
        return out

    def run_step(self, test: str, section: str, step: etree._Element,
                 last: etree._Element | None) -> etree._Element | None:
        rec = Record()
        self.records[(test, section, step.get("id", ""))] = rec
        if step.find("NewPatientId") is not None:
            self.patients[test] = rec.patient = self.new_patient()
        tx = next((c for c in step if isinstance(c.tag, str) and c.tag.endswith("Transaction")),
                  None)
        if tx is None:  # a bookkeeping step (NewPatientId, reset_patient_id)
            return last
        expected = (step.findtext("ExpectedStatus") or "Success").strip()
        if tx.tag == "PatientIdentityFeedTransaction":
            pid = self.new_patient()
            self.patients[test] = pid
            self.default_patient = self.default_patient or pid  # the group's feed (15817/15818)
            rec.patient, rec.reports["$patientid$"] = pid, pid
            return last
        if tx.tag == "NullTransaction":
            run_assertions(tx, last, builtins() | self.substitutions(tx, (test, section)))
            return last
        if tx.find("WaitBefore") is not None:
            next_second()  # lastUpdateTime has one-second resolution; 4 s in the toolkit
        if tx.tag == "HttpTransaction":
            return self.replay(tx, step, rec, test, section)
        if tx.tag not in ACTIONS:
            raise Failed(f"{tx.tag} is not run by this runner")
        here = (test, section)
        folder = self.tests / test / section if section else self.tests / test
        subs = builtins() | self.configured | self.substitutions(tx, here)
        text = (folder / tx.findtext("MetadataFile", "").strip()).read_text()
        for key, value in subs.items():
            text = text.replace(key, escape(value))
        body = etree.fromstring(text.encode(), _PARSER)
        parts: dict[str, bytes] = {}
        if tx.tag in ("RegisterTransaction", "ProvideAndRegisterTransaction"):
            body = self.prepare_submission(test, tx, body, rec)
            if tx.tag == "ProvideAndRegisterTransaction":
                body, parts = self.with_documents(tx, body, folder, rec)
        self.reports(tx, "InputMetadata", body, rec)
        path, action = ACTIONS[tx.tag]
        answer, attachments = self.post(path, action, body, parts)
        rec.output = answer
        check_status(answer, expected, step)
        self.reports(tx, "Result", answer, rec)
        if tx.tag == "StoredQueryTransaction":
            check_contents(tx.find("ExpectedContents"), answer)
        if tx.tag == "RetrieveTransaction":
            self.check_documents(tx, answer, attachments, subs, expected)
        run_assertions(tx, answer, subs)
        return answer

    def prepare_submission(self, test: str, tx: etree._Element, body: etree._Element,
                           rec: Record) -> etree._Element:
        if etree.QName(body).localname == "ProvideAndRegisterDocumentSetRequest":
            body = body.find(f"{{{ebrim21.LCM}}}SubmitObjectsRequest")
        if ebrim21.is_v21(body):
            body = ebrim21.to_v3(body)
        dedupe_slots(body)
        if tx.find("NoPatientId") is None:
            pid = self.patients.get(test) or self.default_patient
            if pid is None:
                pid = self.patients[test] = self.new_patient()
            if tx.getparent().find("AltPatientId") is not None:  # one the registry never heard of
                pid = f"UNKNOWN{next(self._n)}^^^&{PATIENT_ROOT}&ISO"
            for ei in body.iter(f"{{{RIM}}}ExternalIdentifier"):
                if ei.get("identificationScheme") in PATIENT_SCHEMES:
                    ei.set("value", pid)
        for ei in body.iter(f"{{{RIM}}}ExternalIdentifier"):
            if ei.get("identificationScheme") in UID_SCHEMES:
                owner = ei.get("registryObject") or ei.getparent().get("id", "")
                keep = [n.get("id") for n in tx.iter("NoAssignUids")]
                if not keep or (None not in keep and owner not in keep):
                    ei.set("value", f"{UID_ROOT}.{uuid.uuid4().int >> 64}")
                rec.uids[owner] = ei.get("value", "")
            elif ei.get("identificationScheme") in PATIENT_SCHEMES:
                rec.patient = ei.get("value")
        if tx.find("AssignUuids") is not None:
            symbolic = {e.get("id") for e in body.iter() if e.get("id")
                        and not e.get("id", "").startswith("urn:")}
            mapping = {s: f"urn:uuid:{uuid.uuid4()}" for s in symbolic}
            for el in body.iter():
                for attr in ("id", "registryObject", "classifiedObject", "sourceObject",
                             "targetObject"):
                    if el.get(attr) in mapping:
                        el.set(attr, mapping[el.get(attr)])
            rec.uuids.update(mapping)
            rec.uids = {mapping.get(k, k): v for k, v in rec.uids.items()} | rec.uids
        for sym, uid in list(rec.uids.items()):
            rec.reports[f"{sym}_uid"] = uid
        for sym, entry in rec.uuids.items():
            rec.reports[f"{sym}_uuid"] = entry
        return body

    def with_documents(self, tx: etree._Element, sor: etree._Element, folder: Path,
                       rec: Record) -> tuple[etree._Element, dict[str, bytes]]:
        request = etree.Element(f"{{{XDSB}}}ProvideAndRegisterDocumentSetRequest",
                                nsmap={"xdsb": XDSB})
        request.append(sor)
        parts: dict[str, bytes] = {}
        for i, doc in enumerate(tx.iter("Document"), 1):
            sym = doc.get("id", "")
            data = (folder / (doc.text or "").strip()).read_bytes()
            cid = f"doc{i}@nist.example"
            el = etree.SubElement(request, f"{{{XDSB}}}Document",
                                  id=rec.uuids.get(sym, sym))
            etree.SubElement(el, f"{{{XOP}}}Include", href=f"cid:{cid}")
            parts[cid] = data
            self.sent[rec.uids.get(rec.uuids.get(sym, sym), rec.uids.get(sym, ""))] = data
        return request, parts

    def replay(self, tx: etree._Element, step: etree._Element, rec: Record, test: str,
               section: str) -> etree._Element:
        """HttpTransaction: a captured HTTP body (MTOM ITI-41) sent as is."""
        folder = self.tests / test / section
        headers = dict(line.strip().split(":", 1) for line in
                       (tx.findtext("Headers") or "").strip().splitlines() if ":" in line)
        ct = headers.get("Content-Type", "").strip()
        data = (folder / tx.findtext("BodyFile", "").strip()).read_bytes()
        found = re.search(rb"<(\w+:)?Envelope.*</\1Envelope>", data, re.S)
        if found is None:
            raise Failed("no SOAP envelope in the body file")
        envelope = etree.fromstring(found.group(0), _PARSER)
        for ei in envelope.iter(f"{{{RIM}}}ExternalIdentifier"):
            if ei.get("identificationScheme") in UID_SCHEMES:
                # fresh uniqueIds, as the toolkit assigns them: the captures reuse some
                fresh = f"{UID_ROOT}.{uuid.uuid4().int >> 64}"
                data = data.replace(f'"{ei.get("value")}"'.encode(), f'"{fresh}"'.encode())
                rec.uids[ei.get("registryObject") or ""] = fresh
            elif ei.get("identificationScheme") in PATIENT_SCHEMES:
                rec.patient = ei.get("value")
        if rec.patient:
            self.add_patient(rec.patient)  # the section's patientFeed, for the captured id
        resp = self.client.post(ACTIONS["ProvideAndRegisterTransaction"][0], data=data,
                                content_type=ct)
        answer = etree.fromstring(resp.get_data(), _PARSER).find(f"{{{S12}}}Body")[0]
        resp.close()
        rec.output = answer
        check_status(answer, (step.findtext("ExpectedStatus") or "Success").strip(), step)
        return answer

    def reports(self, tx: etree._Element, section: str, el: etree._Element, rec: Record) -> None:
        for report in tx.iter("Report"):
            if report.get("section") != section:
                continue
            found = el.xpath((report.text or "").strip())
            if isinstance(found, list):
                found = found[0] if found else None
                if isinstance(found, etree._Element):
                    found = found.text
            if found is not None:
                rec.reports[report.get("name", "")] = str(found).strip()

    def check_documents(self, tx: etree._Element, answer: etree._Element,
                        attachments: dict[str, bytes], subs: dict, expected: str) -> None:
        from tests.nist.checks import retrieved_documents

        docs = retrieved_documents(answer, attachments)
        for ref in tx.iter("ReferenceDocument"):
            # Compared with what the submit step sent: 12029 names a file it never sent.
            uid = subs.get(ref.get("uid", ""), ref.get("uid", ""))
            if uid not in self.sent or docs.get(uid, (None, None))[0] != self.sent[uid]:
                raise Failed(f"retrieved document {uid} differs from the one provided")
        if expected != "Failure" and not docs:
            raise Failed("no document retrieved")
        if expected == "Failure" and docs:
            raise Failed(f"documents retrieved by a failed request: {sorted(docs)}")
        for mime in tx.iter("ExpectedMimeType"):
            got = {m for _, m in docs.values()}
            if (mime.text or "").strip() not in got:
                raise Failed(f"mimeType {mime.text} not in {sorted(got)}")

    def post(self, path: str, action: str, body: etree._Element,
             parts: dict[str, bytes]) -> tuple[etree._Element, dict[str, bytes]]:
        xml = (f"<e:Envelope xmlns:e='{S12}' xmlns:wsa='{WSA}'><e:Header>"
               f"<wsa:Action e:mustUnderstand='true'>{action}</wsa:Action>"
               f"<wsa:MessageID>urn:uuid:{uuid.uuid4()}</wsa:MessageID>"
               "</e:Header><e:Body>").encode() + etree.tostring(body) + b"</e:Body></e:Envelope>"
        if parts:
            atts = [OutgoingAttachment(cid, "application/octet-stream",
                                       lambda d=data: iter([d]), len(data))
                    for cid, data in parts.items()]
            ct, stream = mtom.write_multipart(xml, atts, soap_media_type="application/soap+xml",
                                              action=action)
            resp = self.client.post(path, data=b"".join(stream), content_type=ct)
        else:
            resp = self.client.post(path, data=xml, content_type="application/soap+xml")
        data, ct = resp.get_data(), resp.headers["Content-Type"]
        resp.close()
        attachments: dict[str, bytes] = {}
        root = data
        if ct.startswith("multipart/related"):
            with mtom.read_multipart(io.BytesIO(data), ct, max_root_bytes=1 << 24,
                                     max_attachment_bytes=1 << 30, spool_dir=None) as msg:
                root = msg.root
                for cid, att in msg.attachments.items():
                    with att.open() as f:
                        attachments[cid] = f.read()
        env = etree.fromstring(root, _PARSER)
        return env.find(f"{{{S12}}}Body")[0], attachments
