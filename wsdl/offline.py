"""A zeep transport that reads WSDLs and schemas from this package, never the network.

zeep fetches every document a WSDL refers to through ``Transport.load``. Here that
method answers ``<address>?wsdl`` and ``<address>?xsd=<path>`` with what the
gateway would serve (``wsdl.render`` / ``wsdl.render_xsd``), the upstream URL
imports with their local copies, and files inside this package by path; anything
else raises ``OfflineError``. POSTs are untouched: SOAP calls go out through the
requests session like with zeep's own ``Transport``.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import zeep

import wsdl


class OfflineTransport(zeep.Transport):
    """Loads ``name`` as served at ``address``, and its schemas, from the package."""

    def __init__(self, name: str, address: str, **kwargs) -> None:
        kwargs.setdefault("cache", None)
        super().__init__(**kwargs)
        self.name = name
        self.address = address

    def load(self, url: str) -> bytes:
        if not url:
            raise ValueError("No url given to load")
        if url in wsdl.LOCAL_COPIES:
            return (wsdl.XSD_DIR / wsdl.LOCAL_COPIES[url]).read_bytes()
        base, sep, query = url.partition("?")
        if sep and base == self.address:
            params = parse_qs(query, keep_blank_values=True)
            if "xsd" in params:
                return wsdl.render_xsd(params["xsd"][0], self.address)
            if "wsdl" in {k.lower() for k in params}:
                return wsdl.render(self.name, self.address)
        local = self._packaged_file(url)
        if local is not None:
            return local.read_bytes()
        raise wsdl.OfflineError(f"refusing to fetch {url!r}: not a document of this package")

    @staticmethod
    def _packaged_file(url: str) -> Path | None:
        parts = urlsplit(url)
        if parts.scheme == "file":
            candidate = Path(unquote(parts.path))
        elif parts.scheme or parts.netloc:
            return None
        else:
            candidate = Path(url)
        candidate = candidate.resolve()
        if candidate.is_relative_to(wsdl.HERE) and candidate.is_file():
            return candidate
        return None
