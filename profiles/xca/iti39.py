"""ITI-39 Cross Gateway Retrieve (ITI TF-2b 3.39): the responding gateway's side.

An ITI-43 Retrieve Document Set against our repository (``ctx.ports.repository``,
``profiles.xds.iti43``: the local repository, or any adapter with its ``find`` and
``chunks``, such as one speaking ITI-43 to a remote repository), answered as MTOM
parts streamed from the blob store. What
XCA adds: every DocumentRequest must carry a HomeCommunityId (ITI TF-2b 3.39.1;
``XDSMissingHomeCommunityId`` otherwise), and it must be ours
(``XDSUnknownCommunity``); ``urn:oid:`` is optional, as peers write both. Each
refused document is reported on its own while the others are answered
(PartialSuccess), and every RegistryError carries our homeCommunityId as
``location`` (ITI TF-2b 3.39.4.1.3), the document's uniqueId in its text.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from lxml import etree

from profiles.errors import (
    ErrorDetail,
    GatewayError,
    XDSMissingHomeCommunityId,
    XDSUnknownCommunity,
)
from profiles.oid import as_hcid, bare_oid
from profiles.transaction import Context, ErrorForm, Reply, Transaction
from profiles.xca.iti38 import located
from profiles.xds import iti43
from profiles.xds.iti43 import RetrieveRequest, RetrieveResponse


def parse(body: etree._Element, ctx: Context | None = None) -> RetrieveRequest:
    try:
        return iti43.parse(body, ctx)
    except GatewayError as error:
        if ctx is None:
            raise
        raise located(error, as_hcid(ctx.home_community_id) or "") from None


def _refusal(request: iti43.DocumentRequest, home: str) -> GatewayError | None:
    named = as_hcid(request.home_community_id)
    uid = request.document_unique_id
    if named is None:
        return XDSMissingHomeCommunityId(
            f"DocumentRequest for {uid} has no HomeCommunityId", location=home)
    if named != home:
        return XDSUnknownCommunity(
            f"document {uid}: HomeCommunityId {request.home_community_id} is not this "
            "community", location=home)
    return None


def cross_gateway_retrieve(
    request: RetrieveRequest, repository: Any, *, home_community_id: str
) -> RetrieveResponse:
    """The documents of ``request`` that are ours; one located error per other one."""
    home = as_hcid(home_community_id) or home_community_id
    errors: list[ErrorDetail] = []
    wanted = []
    for r in request.documents:
        refusal = _refusal(r, home)
        if refusal is not None:
            errors += refusal.details
        else:
            # Some gateways write urn:oid: on RepositoryUniqueId too (a partner quirk).
            wanted.append(replace(r, home_community_id=home,
                                  repository_unique_id=bare_oid(r.repository_unique_id)))
    if not wanted:
        return RetrieveResponse((), tuple(errors))
    found = iti43.retrieve(RetrieveRequest(tuple(wanted)), repository, home_community_id=home)
    for d in found.errors:
        context = d.context if d.location in ("", home) or d.location in d.context else (
            f"{d.context} ({d.location})")
        errors.append(replace(d, context=context, location=home))
    return RetrieveResponse(found.documents, tuple(errors))


def handle(request: RetrieveRequest, ctx: Context) -> RetrieveResponse:
    response = cross_gateway_retrieve(
        request, ctx.ports.repository, home_community_id=ctx.home_community_id
    )
    return iti43.noted(ctx, request, response)  # documents for the audit record


def serialize(response: RetrieveResponse) -> Reply:
    return iti43.serialize(response)


ITI_39 = Transaction(
    id="ITI-39",
    name="Cross Gateway Retrieve",
    action="urn:ihe:iti:2007:CrossGatewayRetrieve",
    reply_action="urn:ihe:iti:2007:CrossGatewayRetrieveResponse",
    error_form=ErrorForm.RETRIEVE_RESPONSE,
    parse=parse,
    handle=handle,
    serialize=serialize,
    mtom_response=True,
)
