"""The one table: which path serves which role, and which actions each path takes.

A new transaction replaces its ``planned(...)`` row with the descriptor at the
bottom of its module (``profiles/<profile>/itiNN.py``). Every path publishes the
WSDL named in its row; ``tests/test_contracts.py`` keeps table and WSDLs equal.

A row also names (``read_only``) the transactions whose handler writes no data
and calls no partner: queries and retrieves. The XUA gate leaves their replay
tokens to the commit of their audit record
(``gateway/security/gate.py``); every other transaction, by default, consumes
its tokens at the gate, so a replayed write (or fan-out) never runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.diagnostics import MTOM_ECHO
from profiles.pix.iti44 import ITI_44_ADD, ITI_44_MERGE, ITI_44_REVISE
from profiles.pix.iti45 import ITI_45
from profiles.transaction import ErrorForm, Transaction
from profiles.xca.ig_query import IG_ITI_18
from profiles.xca.ig_retrieve import IG_ITI_43
from profiles.xca.iti38 import ITI_38
from profiles.xca.iti39 import ITI_39
from profiles.xcpd.ig_iti55 import IG_ITI_55
from profiles.xcpd.iti55 import ITI_55
from profiles.xds.iti18 import ITI_18
from profiles.xds.iti41 import ITI_41, ITI_41_XDR
from profiles.xds.iti42 import ITI_42
from profiles.xds.iti43 import ITI_43


def planned(
    id: str, name: str, action: str, reply: str, form: ErrorForm, *, mtom: bool = False
) -> Transaction:
    """A transaction that is routed and published but not implemented yet."""
    return Transaction(
        id=id, name=name, action=action, reply_action=reply, error_form=form, mtom_response=mtom
    )



@dataclass(frozen=True)
class Route:
    """One inbound SOAP path: the role that switches it on, its WSDL, its transactions."""

    path: str
    role: str
    wsdl: str  # file name under wsdl/
    transactions: tuple[Transaction, ...]
    read_only: frozenset[str] = frozenset()  # ids of those that write nothing, call no one

    def writes(self, txn: Transaction) -> bool:
        """May ``txn`` write data or call a partner? (True unless listed read-only.)"""
        return txn.id not in self.read_only or txn not in self.transactions

    def for_action(self, action: str) -> Transaction | None:
        return next((t for t in self.transactions if t.action == action), None)


ROUTES: tuple[Route, ...] = (
    Route("/xca/query", "responding_gateway", "xca-query.wsdl", (ITI_38,), frozenset({"ITI-38"})),
    Route("/xca/retrieve", "responding_gateway", "xca-retrieve.wsdl", (ITI_39,),
          frozenset({"ITI-39"})),
    Route("/ig/query", "initiating_gateway", "ig-query.wsdl", (IG_ITI_18,)),
    Route("/ig/retrieve", "initiating_gateway", "ig-retrieve.wsdl", (IG_ITI_43,)),
    Route("/xcpd", "xcpd", "xcpd.wsdl", (ITI_55,)),
    Route("/ig/xcpd", "initiating_gateway", "ig-xcpd.wsdl", (IG_ITI_55,)),
    Route("/xds/registry", "registry", "xds-registry.wsdl", (ITI_42, ITI_18),
          frozenset({"ITI-18"})),
    Route("/xds/repository", "repository", "xds-repository.wsdl", (ITI_41, ITI_43),
          frozenset({"ITI-43"})),
    Route("/xdr", "xdr", "xdr.wsdl", (ITI_41_XDR,)),
    Route("/pix", "pix", "pix.wsdl", (ITI_44_ADD, ITI_44_REVISE, ITI_44_MERGE, ITI_45),
          frozenset({"ITI-45"})),
    # Operator tool for measuring the MTOM transport; only with [diagnostics] enabled = true.
    Route("/diagnostics/mtom-echo", "diagnostics", "diagnostics.wsdl", (MTOM_ECHO,)),
)


def route_for(path: str, roles: frozenset[str]) -> Route | None:
    """The route serving ``path`` when its role is switched on."""
    path = path.rstrip("/") or "/"
    return next((r for r in ROUTES if r.path == path and r.role in roles), None)
