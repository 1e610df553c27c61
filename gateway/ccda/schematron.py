"""The C-CDA R2.1 Schematron, run by Saxon (saxonche, the ``ccda`` extra).

The Schematron (``wsdl/xsd/cda/schematron/``, HL7/CDA-ccda-2.1) is compiled to
XSLT once with the ISO skeleton lxml ships, written to a cache folder beside an
empty ``voc.xml`` (the value-set file its rules read with ``document()``, which
we do not redistribute), and executed by Saxon for each document. Assertions that
need ``voc.xml`` cannot pass and are summarised as one "unchecked" finding by
``profiles.ccda.validate.schematron_findings``.

Costs measured here: compiling about 2 s (lxml) + 3 s (Saxon) once per process,
then about 1-2 s per document: an offline conformance check, not for every request.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Callable
from functools import cache
from pathlib import Path

import wsdl

SCHEMATRON = wsdl.XSD_DIR / "cda" / "schematron" / (
    "Consolidated_CDA_Templates_for_Clinical_Notes_US_Realm_DSTU_R2.1.sch")
VOC_STUB = wsdl.XSD_DIR / "cda" / "schematron" / "voc.xml"


class SchematronUnavailable(RuntimeError):
    """saxonche is not installed."""


def _compiled_xslt(cache_dir: Path) -> Path:
    """The Schematron compiled to XSLT in ``cache_dir`` (reused while the .sch is unchanged)."""
    from lxml import etree, isoschematron

    digest = hashlib.sha256(SCHEMATRON.read_bytes()).hexdigest()[:16]
    target = cache_dir / f"ccda-r21-{digest}.xsl"
    if not target.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
        sch = isoschematron.Schematron(etree.parse(str(SCHEMATRON), parser),
                                       validate_schema=False, store_xslt=True)
        tmp = target.with_suffix(".tmp")
        sch.validator_xslt.write(str(tmp))
        tmp.replace(target)
    voc = cache_dir / "voc.xml"
    if not voc.exists():
        shutil.copyfile(VOC_STUB, voc)
    return target


@cache
def compiled_schematron(cache_dir: Path | None = None) -> Callable[[bytes], bytes]:
    """A function document bytes -> SVRL bytes; SchematronUnavailable without saxonche."""
    try:
        from saxonche import PySaxonProcessor
    except ImportError:
        raise SchematronUnavailable(
            "the C-CDA Schematron check needs saxonche: pip install 'ihe-gateway[ccda]'"
        ) from None
    folder = cache_dir or Path(tempfile.gettempdir()) / "ihe-gateway-schematron"
    xslt = _compiled_xslt(folder)
    processor = PySaxonProcessor(license=False)
    executable = processor.new_xslt30_processor().compile_stylesheet(
        stylesheet_file=str(xslt))
    if executable is None:
        raise SchematronUnavailable(f"Saxon could not compile {xslt}")

    def transform(document: bytes) -> bytes:
        node = processor.parse_xml(xml_text=document.decode("utf-8"))
        out = executable.transform_to_string(xdm_node=node)
        if not out:
            why = executable.error_message if executable.exception_occurred else "no report"
            executable.exception_clear()
            raise RuntimeError(why or "no report")
        return out.encode("utf-8")

    return transform
