"""The federation demo's exchanges as VA's clinician (``make demo``, steps 7 to 10).

XCPD to VA's initiating gateway, then ITI-18 and ITI-43 through it, and the summary
table. Each step prints what it sent and what came back, and raises ``DemoFailed``
when an answer is not what the set-up (``gateway.federation``) makes it be: every
responder found and verified, each imported document found and retrieved byte for
byte, and each responder's log showing VA's signed assertion accepted.
"""

from __future__ import annotations

import hashlib
import json

import requests

from gateway.consumer import ITI18_ACTION, QueryOutcome, RetrieveOutcome, discover, query, retrieve
from gateway.demo import DemoFailed
from gateway.federation import PERSON, Community, Federation


def discover_patient(fed: Federation, session: requests.Session) -> None:
    """XCPD through VA's initiating gateway; VA verifies each match against its own
    record and stores the correlations that the XCA query then uses."""
    found = discover(session, fed.va.served, given=PERSON.given, family=PERSON.family,
                     birth=PERSON.birth, gender=PERSON.gender, patient_id=fed.va.patient_id)
    names = {f"urn:oid:{c.oid}": c.name for c in fed.all} | {c.oid: c.name for c in fed.all}
    for hcid, their_id, score in found.matches:
        print(f"  {names.get(hcid, hcid):<16} knows the patient as {their_id} (score {score})")
    wanted = {c.oid for c in fed.responders}
    got = {hcid.removeprefix("urn:oid:") for hcid, _, _ in found.matches}
    if found.code != "OK" or got != wanted:
        raise DemoFailed(f"XCPD found {sorted(got)} ({found.code}), expected {sorted(wanted)}")
    print(f"  {len(found.matches)} communities in {found.seconds * 1000:.0f} ms; "
          "VA stored the verified correlations")


def query_all_communities(fed: Federation, session: requests.Session) -> QueryOutcome:
    """As VA: ITI-18 to VA's /ig/query; VA's gateway asks DoD and the partner (ITI-38)."""
    va = fed.va
    print(f"  -> POST {va.served.base_url}/ig/query  FindDocuments {va.patient_id}")
    print(f"     wsa:Action {ITI18_ACTION}")
    outcome = query(session, va.served, va.patient_id)
    print(f"  <- {outcome.status} in {outcome.seconds * 1000:.0f} ms, "
          f"{len(outcome.entries)} documents")
    if outcome.status != "Success" or outcome.errors:
        raise DemoFailed(f"expected Success without errors, got {outcome.status}: "
                         f"{[(e.code, e.location, e.context) for e in outcome.errors]}")
    found = outcome.by_community()
    for c in fed.responders:
        entries = found.get(c.hcid, [])
        print(f"  {c.name} ({c.hcid}): {len(entries)} documents")
        for e in entries:
            title = e.title.value if e.title else "-"
            print(f"    {e.unique_id}  {e.size:>7} bytes  sha1 {e.hash[:12]}  {title}")
        if {e.hash for e in entries} != set(c.imported):
            raise DemoFailed(f"{c.name}: expected the {len(c.imported)} imported files")
        print(f"    {responder_saw(c, '/xca/query')}")
    return outcome


def _answered(c: Community, path: str) -> dict:
    """The responder's JSON log entry for VA's request to ``path``, answered 200."""
    log = c.served.server_log()
    if "XUA refused" in log:
        raise DemoFailed(f"{c.name} refused an assertion:\n{log}")
    for line in log.splitlines():
        entry = json.loads(line) if line.startswith("{") else {}
        if entry.get("path") == path and entry.get("status") == 200:
            return entry
    raise DemoFailed(f"{c.name} logged no answered {path} request:\n{log}")


def responder_saw(c: Community, path: str) -> str:
    """The responder's log line for VA's request: answered 200, no XUA refusal."""
    entry = _answered(c, path)
    return (f"{c.name} verified VA's signed SAML assertion (XUA) and answered "
            f"{entry.get('transaction')}")


def retrieve_all(fed: Federation, session: requests.Session,
                 found: QueryOutcome) -> RetrieveOutcome:
    """As VA: one ITI-43 to /ig/retrieve for every document found (ITI-39 out, grouped by
    community); each document's bytes must equal the file imported there."""
    by = found.by_community()
    wanted = [(c, e) for c in fed.responders for e in by[c.hcid]]
    print(f"  -> POST {fed.va.served.base_url}/ig/retrieve  {len(wanted)} documents")
    outcome = retrieve(session, fed.va.served, [e for _, e in wanted])
    print(f"  <- {outcome.status} in {outcome.seconds * 1000:.0f} ms, "
          f"{len(outcome.documents)} documents (MTOM)")
    if outcome.status != "Success" or len(outcome.documents) != len(wanted):
        raise DemoFailed(f"expected {len(wanted)} documents, got {outcome.status}: "
                         f"{[(e.code, e.location) for e in outcome.errors]}")
    for c, entry in wanted:
        [doc] = [d for d in outcome.documents if d.document_unique_id == entry.unique_id]
        file = c.imported[entry.hash]
        sha1 = hashlib.sha1(doc.content, usedforsecurity=False).hexdigest()
        if doc.content != file.read_bytes() or sha1 != entry.hash or (
                doc.home_community_id != c.hcid):
            raise DemoFailed(f"{c.name}: document {entry.unique_id} differs from {file.name}")
        print(f"  {c.name}: {entry.unique_id} {len(doc.content)} bytes, sha1 {sha1[:12]}, "
              f"identical to {file.name}")
    for c in fed.responders:
        print(f"    {responder_saw(c, '/xca/retrieve')}")
    return outcome


def summary(fed: Federation, found: QueryOutcome, got: RetrieveOutcome) -> None:
    """Per community: documents found and retrieved, bytes, hashes checked, and the time
    its responding gateway took for ITI-38 and ITI-39 (from its own log)."""
    by = found.by_community()
    print(f"  {'community':<18}{'homeCommunityId':<18}{'documents':>10}{'retrieved':>10}"
          f"{'bytes':>9}  hash{'ITI-38':>9}{'ITI-39':>9}")
    for c in fed.responders:
        docs = [d for d in got.documents if d.home_community_id == c.hcid]
        size = sum(len(d.content) for d in docs)
        query_ms = _answered(c, "/xca/query").get("duration_ms", 0)
        retrieve_ms = _answered(c, "/xca/retrieve").get("duration_ms", 0)
        print(f"  {c.name:<18}{c.hcid:<18}{len(by.get(c.hcid, [])):>10}{len(docs):>10}"
              f"{size:>9}  ok  {query_ms:>5.0f} ms{retrieve_ms:>6.0f} ms")
    n = len(fed.responders)
    print(f"  at VA: query (ITI-18 -> {n} x ITI-38) {found.seconds * 1000:.0f} ms; "
          f"retrieve (ITI-43 -> {n} x ITI-39) {got.seconds * 1000:.0f} ms")
