"""The initiating gateway's fan-out: ITI-38/39 to many partners at once, one deadline.

Concurrency: a bounded ``ThreadPoolExecutor`` shared by every fan-out in the
process. requests is blocking, so one in-flight call holds one thread; the pool's
size caps threads, sockets and the memory of answers in flight together, whatever
the number of partners (calls beyond the cap queue). We chose threads over an
async loop because the client (requests, mutual TLS, streaming MTOM) is blocking
and a second, async HTTP stack would double the TLS code to audit; threads are
created lazily, and a call never outlives the fan-out's deadline by more than one
socket timeout, since each call's timeout is the time left.

A call goes in three steps, each where it costs least (``bench/fanout.py``):
the request is prepared (envelope, XUA signature) in the calling thread and handed
to the pool at once, so every request is on the wire before any answer needs CPU;
a pool thread waits for the answer and reads its bytes; one of a few reader threads
(one per core, ``answer_readers``) parses it, checks it and serialises its registry
objects to fragments, overlapped with the other partners' waiting. The merged answer
is then a splice of those fragments (``profiles.transaction.Reply.fragments``).

Late answers (after the deadline) are dropped: the consumer already has its
answer with ``XDSUnavailableCommunity`` for that partner; the late result is
logged and its spooled documents deleted.
"""

from __future__ import annotations

import io
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import replace
from typing import Any, BinaryIO, NamedTuple

from gateway.client import OutboundClient, Prepared, Received
from gateway.partners.directory import PartnerDirectory
from gateway.partners.model import Partner
from gateway.transport import OutboundError
from profiles.errors import GatewayError
from profiles.transaction import Attachment
from profiles.xca.ports import Failure, QueryAnswer, QueryCall, RetrieveAnswer, RetrieveCall
from profiles.xca.query import ITI38_ACTION, ITI38_REPLY, read_query_response, stored_query_to_xml
from profiles.xca.relay import NotRelayable, SplitAnswer, split_answer
from profiles.xca.retrieve import (
    DocumentRequest,
    RetrieveResult,
    parse_retrieve_response,
    retrieve_request_to_xml,
)
from profiles.xds.metadata import ListMember
from profiles.xds.storedquery import StoredQuery

log = logging.getLogger("gateway.xca")
ITI39_ACTION = "urn:ihe:iti:2007:CrossGatewayRetrieve"
ITI39_REPLY = "urn:ihe:iti:2007:CrossGatewayRetrieveResponse"
DEFAULT_DEADLINE_S = 60.0
DEFAULT_MAX_CONCURRENT = 512
SUBMIT_EVERY_S = 0.01  # prepared requests go to the pool at most this long after the first

_pools: dict[int, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()
_readers: list[ThreadPoolExecutor] = []


def shared_pool(size: int) -> ThreadPoolExecutor:
    """One pool per size per process (a gunicorn worker), threads created on demand."""
    with _pools_lock:
        pool = _pools.get(size)
        if pool is None:
            pool = _pools[size] = ThreadPoolExecutor(size, thread_name_prefix="xca-fanout")
        return pool


def answer_readers() -> ThreadPoolExecutor:
    """One thread per core, per process, where partners' answers are parsed, checked and
    their objects serialised (lxml does both with the GIL released, so the cores work in
    parallel). Doing it in the few threads, not in whichever of hundreds of waiting
    threads received the answer, measured 15-20 % less CPU for 500 partners
    (``bench/fanout.py``): no GIL traded among hundreds of threads, each reader's parser
    and dictionary stay warm."""
    with _pools_lock:
        if not _readers:
            affinity = getattr(os, "sched_getaffinity", None)  # Linux: the CPUs we may use
            cores = max(1, len(affinity(0)) if affinity else os.cpu_count() or 1)
            _readers.append(ThreadPoolExecutor(cores, thread_name_prefix="xca-answers"))
        return _readers[0]


class FanOut:
    """``profiles.xca.ports.InitiatingGateway`` over the partner directory and the client."""

    # XCPD before XCA: discover_first(our II) -> correlations, for a patient without any (or None).
    discover_first: Callable[[Any], list] | None = None

    def __init__(
        self,
        client: OutboundClient,
        directory: PartnerDirectory,
        *,
        deadline_seconds: float = DEFAULT_DEADLINE_S,
        pool: ThreadPoolExecutor | None = None,
        correlations: Any = None,  # profiles.pix.ports.Correlations (ports.patients)
        registry: Any = None,  # profiles.xds.ports.Registry, when the registry role is on
        repository: Any = None,  # has retrieve(documents) -> RetrieveResult, when on
    ) -> None:
        self.client = client
        self.directory = directory
        self.deadline_seconds = deadline_seconds
        self.pool = pool or shared_pool(DEFAULT_MAX_CONCURRENT)
        self.correlations = correlations
        self.registry = registry
        self.repository = repository

    # -- what the transactions ask ------------------------------------------------------

    def partner(self, home_community_id: str) -> Partner | None:
        return self.directory.get(home_community_id)

    def correlated(self, patient_id: str) -> list[tuple[str, str]]:
        """(homeCommunityId, their CX) per partner that knows ``patient_id``; with
        discovery wired (``gateway.xcpd.wiring``), XCPD first for a patient nobody knows."""
        if self.correlations is None or not patient_id:
            return []
        from profiles.pix.ports import parse_cx

        try:
            ours = parse_cx(patient_id)
        except ValueError:
            return []  # not an id we could have correlated
        found = self.correlations.correlations(ours)
        if not found and self.discover_first is not None:
            found = self.discover_first(ours)
        return [(c.home_community_id, str(c.theirs)) for c in found]

    def local_query(self, query: StoredQuery) -> Sequence[ListMember] | None:
        return None if self.registry is None else self.registry.run_query(query)

    def local_retrieve(self, documents: Sequence[DocumentRequest]) -> RetrieveResult | None:
        return None if self.repository is None else self.repository.retrieve(documents)

    def query(
        self, calls: Sequence[QueryCall], meanwhile: Callable[[], object] | None = None
    ) -> list[QueryAnswer | Failure]:
        return self._run(calls, self._query_one, prepare=self._prepare_query,
                         meanwhile=meanwhile)

    def retrieve(self, calls: Sequence[RetrieveCall]) -> list[RetrieveAnswer | Failure]:
        return self._run(calls, self._retrieve_one, prepare=self._prepare_retrieve)

    # -- one call: prepared in the calling thread, sent and read in the pool -------------

    def _prepare_query(self, call: QueryCall) -> Prepared:
        return self.client.prepare(
            self._partner(call.home_community_id), "ITI-38", ITI38_ACTION,
            stored_query_to_xml(call.query), expect_action=ITI38_REPLY,
            principal=call.principal)

    def _query_one(self, prepared: Prepared, deadline: float) -> _Then:
        received = self.client.receive(prepared, timeout=_left(deadline))
        return _Then(self._read_query, received)  # read by a reader thread

    def _read_query(self, received: Received) -> QueryAnswer:
        """Checked and its objects made into fragments for the merge, as each answer
        arrives: relayed byte for byte when the answer is in the plain shape (libexpat
        checks it off the GIL, only the envelope is parsed: ``profiles.xca.relay``),
        else parsed whole and the objects serialised again."""
        home = received.prepared.partner.home_community_id
        split = None if received.attachments else split_answer(received.root)
        if split is not None:
            try:
                return self._read_query_as(replace(received, root=split.head), home, split)
            except NotRelayable:
                pass
        return self._read_query_as(received, home, None)

    def _read_query_as(self, received: Received, home: str,
                       split: SplitAnswer | None) -> QueryAnswer:
        answer = self.client.answer(received)
        try:
            result = read_query_response(answer.body, home_community_id=home, split=split)
        finally:
            answer.close()
        return QueryAnswer(home, result)

    def _prepare_retrieve(self, call: RetrieveCall) -> Prepared:
        partner = self._partner(call.home_community_id)
        docs = [DocumentRequest(d.repository_unique_id, d.document_unique_id,
                                partner.home_community_id) for d in call.documents]
        body = retrieve_request_to_xml(
            docs, urn_oid=partner.quirks.urn_oid_prefix,
            repository_urn_oid=partner.quirks.repository_urn_oid,
        )
        return self.client.prepare(partner, "ITI-39", ITI39_ACTION, body, mtom_request=True,
                                   expect_action=ITI39_REPLY, principal=call.principal)

    def _retrieve_one(self, prepared: Prepared, deadline: float) -> _Then:
        received = self.client.receive(prepared, timeout=_left(deadline))
        return _Then(self._read_retrieve, received)  # read by a reader thread

    def _read_retrieve(self, received: Received) -> RetrieveAnswer:
        partner = received.prepared.partner
        answer = self.client.answer(received)
        try:
            result = parse_retrieve_response(answer.body, answer.attachments,
                                             home_community_id=partner.home_community_id)
            result = replace(result, documents=tuple(
                replace(d, content=_held(d.content)) for d in result.documents))
        finally:
            answer.close()  # spooled files unlinked; the open handles keep their bytes
        return RetrieveAnswer(partner.home_community_id, result)

    def _partner(self, home_community_id: str) -> Partner:
        partner = self.directory.get(home_community_id)
        if partner is None:
            raise OutboundError(f"{home_community_id} is not in the partner directory")
        return partner

    # -- the fan-out ----------------------------------------------------------------------

    def _run(self, calls: Sequence, one: Callable, *, prepare: Callable | None = None,
             meanwhile: Callable[[], object] | None = None) -> list:
        """``one(call, deadline)`` for every call in the pool; with ``prepare``,
        ``one(prepare(call), deadline)``, each request prepared here (envelope, XUA
        signature) and handed to the pool in bursts (``SUBMIT_EVERY_S``): every request
        is on the wire before the pool's threads, busy with the first answers, would
        compete with the rest, and the threads woken for one burst take the GIL from
        this one together, not once per request (500 requests handed over one at a time
        measured up to 400 ms of preparation instead of 30 ms). The first request goes
        at once: the first answer, which the reading waits for, comes that much sooner.
        Then ``meanwhile()``, while the partners think."""
        started = time.monotonic()
        deadline = started + self.deadline_seconds
        futures: list[Future | None] = [None] * len(calls)
        burst: list[tuple[int, Any, Any]] = []
        flushed = started - SUBMIT_EVERY_S
        for index, call in enumerate(calls):
            item = call if prepare is None else _guarded(lambda c, _d: prepare(c), call, deadline)
            if isinstance(item, Failure):
                futures[index] = _completed(item)
                continue
            burst.append((index, call, item))
            if time.monotonic() - flushed >= SUBMIT_EVERY_S:
                self._submit(burst, futures, one, deadline)
                burst, flushed = [], time.monotonic()
        self._submit(burst, futures, one, deadline)
        if meanwhile is not None:
            try:
                meanwhile()
            except Exception:  # its work is done again after the answers, where needed
                log.exception("work while the partners answer failed")
        # One wait for all (not one per completion: that re-arms every pending future),
        # then one for the answers still being read.
        wait(futures, timeout=max(0.0, deadline - time.monotonic()))
        futures = [f.result() if f.done() and isinstance(f.result(), Future) else f
                   for f in futures]
        _done, pending = wait(futures, timeout=max(0.0, deadline - time.monotonic()))
        results = []
        for call, future in zip(calls, futures, strict=True):
            if future in pending:
                future.add_done_callback(_late(call.home_community_id, started))
                reason = f"no answer within the {self.deadline_seconds:g} s deadline"
                results.append(Failure(call.home_community_id, reason))
            else:
                results.append(future.result())
        return results

    def _submit(self, burst: list, futures: list, one: Callable, deadline: float) -> None:
        for index, call, item in burst:
            futures[index] = self.pool.submit(_two_stage, one, call, deadline, item)


def _held(content: Attachment) -> Attachment:
    """The attachment with its spool file opened now, so the file can be unlinked at once.

    The bytes stay readable through the handle until it is closed (after the reply
    streamed it, or when the reply is dropped), and nothing is left on disk.
    """
    if not content.content_id:
        return content  # inline bytes, already in memory
    handle = content.open()
    return replace(content, open=lambda: _View(handle))


class _View(io.RawIOBase):
    """An independent reader of a held file (pread: its own offset); closing it leaves
    the file open for the next reader. The file closes when the last view is dropped."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle, self.offset = handle, 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        data = os.pread(self.handle.fileno(), len(b), self.offset)
        b[: len(data)] = data
        self.offset += len(data)
        return len(data)


def _left(deadline: float) -> float:
    return max(0.001, deadline - time.monotonic())


def _completed(value: Any) -> Future:
    future: Future = Future()
    future.set_result(value)
    return future


def _guarded(one: Callable, call: Any, deadline: float | None, item: Any = None):
    """Run one call (on ``item``, its prepared request, if given); every failure becomes
    a Failure value naming the community. ``deadline`` None: no check before (a second
    stage, whose request went out in time)."""
    hcid = call.home_community_id
    try:
        if deadline is not None and time.monotonic() >= deadline:
            return Failure(hcid, "not sent: the deadline passed while the call was queued")
        return one(call if item is None else item, deadline)
    except OutboundError as exc:
        log.info("partner call failed", extra={"partner": hcid, "kind": exc.kind,
                                               "reason": exc.reason})
        return Failure(hcid, exc.reason)
    except GatewayError as exc:
        log.info("partner answer not understood", extra={"partner": hcid, "code": exc.code})
        return Failure(hcid, f"the answer could not be read: {exc.context}"[:300])
    except Exception:
        log.exception("partner call raised", extra={"partner": hcid})
        return Failure(hcid, "internal error while calling the community")


class _Then(NamedTuple):
    """A call's second stage: ``step(item)`` in a reader thread (``answer_readers``)."""

    step: Callable[[Any], Any]
    item: Any


def _two_stage(one: Callable, call: Any, deadline: float, item: Any) -> Any:
    """A pool thread's part of a call: the I/O; the CPU part (``_Then``) is handed to a
    reader thread and the pool thread is free at once (no second wake-up to pass the
    result on). Returns the outcome, or the reader's Future of it."""
    outcome = _guarded(one, call, deadline, item)
    if isinstance(outcome, _Then):
        return answer_readers().submit(
            _guarded, lambda then, _deadline: then.step(then.item), call, None, outcome)
    return outcome


def _late(hcid: str, started: float) -> Callable[[Future], None]:
    def dropped(future: Future) -> None:
        outcome = future.result()
        if isinstance(outcome, Future):  # its answer was still to be read
            outcome.add_done_callback(dropped)
            return
        for close in getattr(outcome, "closers", ()):
            close()
        log.warning("late answer dropped", extra={
            "partner": hcid, "after_seconds": round(time.monotonic() - started, 3),
            "outcome": type(outcome).__name__})

    return dropped
