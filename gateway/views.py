"""HTTP views: SOAP POST and ``?wsdl`` on every route, and ``/healthz``."""

from __future__ import annotations

import logging
import time
import uuid
from functools import partial

from flask import Blueprint, Response, current_app, request

import wsdl
from gateway.audit.hook import RequestFacts, finish_audit
from gateway.dispatch import route_for
from gateway.health import health_report
from gateway.runtime import Runtime
from gateway.soap.service import SoapRequest, handle_soap, iter_and_cleanup

log = logging.getLogger("gateway.http")
blueprint = Blueprint("gateway", __name__)


def runtime() -> Runtime:
    return current_app.extensions["gateway"]


def _peer_socket():
    return request.environ.get("gunicorn.socket")


def peer_subject() -> str | None:
    """The verified client certificate's subject, as gunicorn's TLS socket saw it."""
    getpeercert = getattr(_peer_socket(), "getpeercert", None)
    cert = getpeercert() if getpeercert is not None else None
    if not cert:
        return None
    return ",".join(f"{k}={v}" for rdn in cert.get("subject", ()) for k, v in rdn)


def peer_certificate() -> bytes | None:
    """DER bytes of the verified client certificate (XUA binds holder-of-key to it)."""
    getpeercert = getattr(_peer_socket(), "getpeercert", None)
    return getpeercert(binary_form=True) if getpeercert is not None else None


@blueprint.get("/healthz")
def healthz() -> Response:
    report = health_report(runtime())
    status = 200 if report["status"] == "ok" else 503
    return current_app.json.response(report), status


@blueprint.route("/<path:path>", methods=["GET", "POST"])
def soap_endpoint(path: str) -> Response:
    rt = runtime()
    route = route_for("/" + path, _roles(rt))
    if route is None:
        return Response("Not found\n", status=404, mimetype="text/plain")
    if request.method == "GET":
        address = request.base_url
        if "xsd" in request.args:
            try:
                body = wsdl.render_xsd(request.args["xsd"], address)
            except (ValueError, FileNotFoundError):  # path leaves xsd/, or no such schema
                return Response("No such schema\n", status=404, mimetype="text/plain")
            return Response(body, mimetype="text/xml")
        if "wsdl" not in {k.lower() for k in request.args}:
            return Response("POST SOAP here, or GET ?wsdl\n", status=405, mimetype="text/plain")
        return Response(wsdl.render(route.wsdl, address), mimetype="text/xml")
    return _post(rt, route)


def _roles(rt: Runtime) -> frozenset[str]:
    roles = set(rt.config.roles)
    if rt.config.diagnostics:
        roles.add("diagnostics")
    return frozenset(roles)


def _post(rt: Runtime, route) -> Response:
    started = time.perf_counter()
    request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex
    peer = peer_subject()
    soap_action = (request.headers.get("SOAPAction") or "").strip().strip('"') or None
    audit = rt.audit.request(RequestFacts(request_id, request.base_url, request.remote_addr, peer))
    answer = handle_soap(
        route,
        SoapRequest(
            path=route.path,
            content_type=request.headers.get("Content-Type", ""),
            stream=request.stream,
            content_length=request.content_length,
            soap_action=soap_action,
            request_id=request_id,
            peer_subject=peer,
            peer_certificate=peer_certificate(),
        ),
        home_community_id=rt.config.community.home_community_id,
        limits=rt.limits,
        ports=rt.ports,
        security=rt.security,
        audit=audit,
    )
    log.info(
        "soap request",
        extra={
            "request_id": request_id,
            "path": route.path,
            "action": answer.action,
            "transaction": answer.transaction,
            "peer": peer,
            "status": answer.status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            "outcome": answer.outcome,
        },
    )
    response = Response(
        iter_and_cleanup(answer), status=answer.status, content_type=answer.content_type
    )
    response.call_on_close(partial(finish_audit, audit, answer))
    response.headers["X-Request-Id"] = request_id
    length = getattr(answer.body, "length", None)
    if length is not None:  # some Java stacks refuse chunked MTOM answers
        response.headers["Content-Length"] = str(length)
    return response
