"""ITI-55 to many partners at once: ``profiles.xcpd.ports.DiscoveryGateway``.

The XCA initiating gateway's fan-out (``gateway.xca.initiating.FanOut``) already
runs calls on a bounded shared pool under one deadline, with each call's timeout
the time left, failures turned into values and late answers dropped and logged.
``DiscoveryFanOut`` is that fan-out with one more kind of call: it shares the XCA
fan-out's client (mutual TLS, a signed XUA assertion per request shaped by the
partner's quirks), partner directory and pool, and has a deadline of its own
(``[xcpd] deadline_seconds``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from gateway.partners.model import Partner, hcid
from gateway.xca.initiating import FanOut
from profiles.xca.ports import Failure
from profiles.xcpd.iti55 import ITI_55
from profiles.xcpd.ports import DiscoveryAnswer, DiscoveryCall, DiscoveryFailure
from profiles.xcpd.query import patient_discovery_query_to_xml
from profiles.xcpd.response import parse_patient_discovery_response

ITI55 = "ITI-55"
DEFAULT_DEADLINE_S = 30.0


class DiscoveryFanOut(FanOut):
    """Patient discovery over the XCA fan-out's machinery (see the module docstring)."""

    @classmethod
    def beside(cls, fanout: FanOut, *, deadline_seconds: float = DEFAULT_DEADLINE_S
               ) -> DiscoveryFanOut:
        """A discovery fan-out sharing ``fanout``'s client, directory and pool."""
        return cls(fanout.client, fanout.directory, deadline_seconds=deadline_seconds,
                   pool=fanout.pool)

    def responders(self, wanted: Sequence[str] | None = None
                   ) -> tuple[list[Partner], list[str]]:
        if wanted is None:
            return [p for p in self.directory.all() if p.endpoint(ITI55)], []
        found, unknown = [], []
        for community in dict.fromkeys(hcid(w) for w in wanted):
            partner = self.directory.get(community)
            # A named partner without an ITI-55 endpoint is still asked: its call fails
            # and the requester learns why, instead of the community silently missing.
            (unknown.append(community) if partner is None else found.append(partner))
        return found, unknown

    def discover(self, calls: Sequence[DiscoveryCall]
                 ) -> list[DiscoveryAnswer | DiscoveryFailure]:
        started = time.monotonic()
        ended: dict[int, float] = {}
        lock = threading.Lock()

        def one(call: DiscoveryCall, deadline: float) -> DiscoveryAnswer:
            try:
                return self._discover_one(call, deadline)
            finally:
                with lock:
                    ended[id(call)] = time.monotonic() - started

        results = self._run(calls, one)
        out: list[DiscoveryAnswer | DiscoveryFailure] = []
        for call, result in zip(calls, results, strict=True):
            if isinstance(result, Failure):
                with lock:
                    elapsed = ended.get(id(call), time.monotonic() - started)
                out.append(DiscoveryFailure(result.home_community_id, result.reason,
                                            round(elapsed, 3)))
            else:
                out.append(result)
        return out

    def _discover_one(self, call: DiscoveryCall, deadline: float) -> DiscoveryAnswer:
        partner = self._partner(call.home_community_id)
        body = patient_discovery_query_to_xml(call.query)
        left = max(0.001, deadline - time.monotonic())
        answer = self.client.call(partner, ITI55, ITI_55.action, body, timeout=left,
                                  expect_action=ITI_55.reply_action, principal=call.principal)
        try:
            response = parse_patient_discovery_response(answer.body)
        finally:
            answer.close()
        return DiscoveryAnswer(partner.home_community_id, response, round(answer.elapsed, 3))
