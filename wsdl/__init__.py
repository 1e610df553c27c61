"""The WSDLs the gateway publishes and the official schemas behind them.

One WSDL per route in ``gateway/dispatch.py`` (the file name is ``Route.wsdl``);
the schemas they import live in ``xsd/``, copied unmodified from
``shared/conformance/schemas`` (``xsd/MANIFEST.md``). Nothing here ever reaches
the network: a few upstream OASIS files import their dependencies by absolute
URL, and ``LOCAL_COPIES`` maps those URLs to the copies kept here, for lxml
(a resolver) and for zeep (``wsdl.offline.OfflineTransport``) alike, the way an
XML catalog would, so the files themselves stay byte-identical to upstream.

Served documents are rewritten on the way out: ``render`` points every
``soap12:address`` at the address the WSDL was fetched from and every schema
import at ``<address>?xsd=<path under xsd/>``; ``render_xsd`` does the same for
the imports inside a schema, so a client that fetched ``<address>?wsdl`` can
fetch the whole closure from the same endpoint.
"""

from __future__ import annotations

import functools
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from lxml import etree

if TYPE_CHECKING:  # zeep is imported only by zeep_client, off the request path
    import requests
    import zeep

HERE = Path(__file__).resolve().parent
XSD_DIR = HERE / "xsd"

WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
SOAP12_WSDL_NS = "http://schemas.xmlsoap.org/wsdl/soap12/"
SOAP11_WSDL_NS = "http://schemas.xmlsoap.org/wsdl/soap/"
XSD_NS = "http://www.w3.org/2001/XMLSchema"

# Absolute schema locations used by upstream files (and zeep's default for xml.xsd),
# mapped to the copies under xsd/.
LOCAL_COPIES: dict[str, str] = {
    "http://www.w3.org/TR/2002/REC-xmldsig-core-20020212/xmldsig-core-schema.xsd": (
        "saml/xmldsig-core-schema.xsd"
    ),
    "http://www.w3.org/TR/xmldsig-core/xmldsig-core-schema.xsd": "saml/xmldsig-core-schema.xsd",
    "http://www.w3.org/TR/xmlenc-core/xenc-schema.xsd": "saml/xenc-schema.xsd",
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd": (
        "wss/oasis-200401-wss-wssecurity-utility-1.0.xsd"
    ),
    "http://www.w3.org/2001/xml.xsd": "wss/xml.xsd",
    "https://www.w3.org/2001/xml.xsd": "wss/xml.xsd",
}

# schema(name) -> the top-level file under xsd/ that pulls in the whole set.
SCHEMAS: dict[str, str] = {
    "soap12-envelope": "soap/soap-1.2-envelope.xsd",
    "wsa": "wsa/ws-addr.xsd",
    "wss": "wss/oasis-200401-wss-wssecurity-secext-1.0.xsd",
    "wsu": "wss/oasis-200401-wss-wssecurity-utility-1.0.xsd",
    "xmldsig": "saml/xmldsig-core-schema.xsd",
    "saml": "saml/saml-schema-assertion-2.0.xsd",
    # XDS.b_DocumentRepository.xsd imports rim, rs, query and lcm (and lcm imports rmd):
    # the whole ebRS 3.0 / XDS.b message set in one compilation.
    "ebrs": "xds/XDS.b_DocumentRepository.xsd",
    "hl7v3": "hl7v3/IHE-HL7v3-messages.xsd",
    "atna": "atna/dicom2017c.xsd",
    "diagnostics": "diagnostics.xsd",
    # CDA R2 with the sdtc extensions (C-CDA documents, profiles.ccda.validate).
    "cda": "cda/sdtc/infrastructure/cda/CDA_SDTC.xsd",
    # Driver importing all of the above except diagnostics: validates a whole envelope.
    "all": "ihe-gateway-all.xsd",
}

_SCHEMA_REFS = (f"{{{XSD_NS}}}import", f"{{{XSD_NS}}}include", f"{{{XSD_NS}}}redefine")


class OfflineError(LookupError):
    """A schema or WSDL referred to a document that is not packaged here."""


class _LocalCopies(etree.Resolver):
    """Serves LOCAL_COPIES and refuses every other absolute URL."""

    def resolve(self, system_url, public_id, context):
        target = LOCAL_COPIES.get(system_url or "")
        if target is not None:
            return self.resolve_filename(str(XSD_DIR / target), context)
        if urlsplit(system_url or "").scheme in ("http", "https", "ftp"):
            raise OfflineError(f"not packaged, and the network is off: {system_url}")
        return None


def local_parser() -> etree.XMLParser:
    """A parser for our own packaged files: no network, no entities, LOCAL_COPIES mapped."""
    parser = etree.XMLParser(
        no_network=True, resolve_entities=False, load_dtd=False, remove_comments=False
    )
    parser.resolvers.add(_LocalCopies())
    return parser


def names() -> list[str]:
    """Every WSDL file shipped in this package."""
    return sorted(p.name for p in HERE.glob("*.wsdl"))


def path(name: str) -> Path:
    """The file of WSDL ``name`` (a bare file name such as ``"xca-query.wsdl"``)."""
    if "/" in name or "\\" in name or not name.endswith(".wsdl") or name.startswith("."):
        raise ValueError(f"not a WSDL file name: {name!r}")
    p = HERE / name
    if not p.is_file():
        raise FileNotFoundError(f"no WSDL named {name!r} in {HERE}")
    return p


def xsd_path(relpath: str) -> Path:
    """The file of schema ``relpath`` under xsd/; ValueError if the path leaves xsd/."""
    pure = PurePosixPath(relpath)
    if (
        not relpath
        or "\\" in relpath
        or "\x00" in relpath
        or pure.is_absolute()
        or any(part in ("..", "") for part in relpath.split("/"))
        or pure.suffix != ".xsd"
    ):
        raise ValueError(f"not a schema path under xsd/: {relpath!r}")
    p = (XSD_DIR / pure).resolve()
    if not p.is_relative_to(XSD_DIR):
        raise ValueError(f"not a schema path under xsd/: {relpath!r}")
    if not p.is_file():
        raise FileNotFoundError(f"no schema {relpath!r} under {XSD_DIR}")
    return p


def xsd_url(address: str, relpath: str) -> str:
    """Where a client of ``address`` fetches schema ``relpath``."""
    return f"{address}?xsd={quote(relpath, safe='/')}"


def render(name: str, address: str) -> bytes:
    """WSDL ``name`` as served from ``address``: its ports and schema imports point there."""
    source = path(name)
    tree = etree.parse(str(source), local_parser())
    for ns in (SOAP12_WSDL_NS, SOAP11_WSDL_NS):
        for el in tree.iter(f"{{{ns}}}address"):
            el.set("location", address)
    for types in tree.iter(f"{{{WSDL_NS}}}types"):
        _rewrite_refs(types, source.parent, address)
    return etree.tostring(tree, xml_declaration=True, encoding="UTF-8")


def render_xsd(relpath: str, address: str) -> bytes:
    """Schema ``relpath`` (under xsd/) as served from ``address``, imports rewritten.

    Raises ValueError when ``relpath`` leaves xsd/ and FileNotFoundError when it
    names no schema; answer both with 404.
    """
    source = xsd_path(relpath)
    tree = etree.parse(str(source), local_parser())
    _rewrite_refs(tree.getroot(), source.parent, address)
    return etree.tostring(tree, xml_declaration=True, encoding="UTF-8")


def _rewrite_refs(root: etree._Element, base: Path, address: str) -> None:
    for el in root.iter(*_SCHEMA_REFS):
        location = el.get("schemaLocation")
        if not location:
            continue
        if location in LOCAL_COPIES:
            el.set("schemaLocation", xsd_url(address, LOCAL_COPIES[location]))
        elif not urlsplit(location).scheme:
            target = (base / location).resolve()
            if not target.is_relative_to(XSD_DIR):
                raise OfflineError(f"{location!r} in {base} points outside xsd/")
            el.set("schemaLocation", xsd_url(address, target.relative_to(XSD_DIR).as_posix()))


@functools.cache
def schema(name: str) -> etree.XMLSchema:
    """The compiled schema set ``name`` (a key of SCHEMAS), built once per process.

    The returned object is shared: ``validate()``/``error_log`` are not safe to use
    from several threads at once, so threaded callers use ``assertValid`` under
    their own lock or compile their own copy with ``compile_schema``.
    """
    return compile_schema(name)


def compile_schema(name: str) -> etree.XMLSchema:
    """A fresh compilation of schema set ``name`` (uncached)."""
    try:
        relpath = SCHEMAS[name]
    except KeyError:
        raise KeyError(f"unknown schema {name!r}; known: {', '.join(SCHEMAS)}") from None
    return etree.XMLSchema(etree.parse(str(XSD_DIR / relpath), local_parser()))


def zeep_client(
    name: str,
    address: str,
    *,
    session: requests.Session | None = None,
    settings: zeep.Settings | None = None,
    plugins: list | None = None,
) -> zeep.Client:
    """A zeep client for WSDL ``name`` whose service posts to ``address``.

    The WSDL and every schema are read from this package exactly as the gateway
    serves them at ``address?wsdl`` / ``address?xsd=...`` (``render``), through
    ``OfflineTransport``; only SOAP calls use ``session`` (a requests session,
    e.g. one set up for mutual TLS).
    """
    import zeep

    from wsdl.offline import OfflineTransport

    transport = OfflineTransport(name, address, session=session)
    return zeep.Client(
        f"{address}?wsdl",
        transport=transport,
        settings=settings or zeep.Settings(strict=True, forbid_dtd=True),
        plugins=plugins,
    )
