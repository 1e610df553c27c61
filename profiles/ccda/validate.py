"""CDA R2 schema (with the sdtc extensions) and C-CDA Schematron results as findings.

The compiled schema and the Schematron transform come from the caller
(``wsdl.schema("cda")``; ``gateway.ccda.schematron``), so this module stays
sans-IO. Real EHR output often fails the base schema, which is why these are
findings to record rather than exceptions; policy (``strict``) decides.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from lxml import etree

from profiles.ccda.cda import Finding

SVRL = "http://purl.oclc.org/dsdl/svrl"
MAX_FINDINGS = 200


def schema_findings(root: etree._Element, schema: etree.XMLSchema) -> list[Finding]:
    """Every CDA.xsd violation of ``root`` (up to MAX_FINDINGS, then one summary line).

    ``schema`` is used by one thread at a time (lxml's error_log is per object).
    """
    if schema.validate(root.getroottree()):
        return []
    errors = list(schema.error_log)
    found = [Finding("error", f"schema line {e.line}", e.message) for e in errors[:MAX_FINDINGS]]
    if len(errors) > MAX_FINDINGS:
        found.append(Finding("error", "schema", f"{len(errors) - MAX_FINDINGS} more violations"))
    return found


_STEP = re.compile(r"\*\[local-name\(\)='([^']+)' and namespace-uri\(\)='[^']*'\]")


def svrl_findings(report: etree._Element) -> list[Finding]:
    """Failed asserts and successful reports of an SVRL result, as findings.

    The C-CDA Schematron puts ``SHALL`` rules in patterns whose id ends in
    ``-errors`` and ``SHOULD`` rules in ``-warnings`` ones; an assertion's
    ``role`` (when present) wins. Locations are shortened to local names.
    """
    found, pattern = [], ""
    for el in report.iter():
        tag = etree.QName(el).localname if isinstance(el.tag, str) else ""
        if tag == "active-pattern":
            pattern = el.get("id") or el.get("name") or ""
        elif tag in ("failed-assert", "successful-report"):
            role = (el.get("role") or el.get("flag") or "").lower()
            warn = role.startswith(("warn", "info")) or (not role and pattern.endswith("warnings"))
            message = " ".join("".join(el.itertext()).split())
            where = _STEP.sub(r"\1", el.get("location") or "")
            found.append(Finding("warning" if warn else "error",
                                 f"schematron {where}".strip(), message))
    return found


def schematron_findings(
    root: etree._Element, transform: Callable[[bytes], bytes], *,
    unchecked: str = "document('voc.xml')",
) -> list[Finding]:
    """Run a compiled Schematron (document bytes -> SVRL bytes) and read its findings.

    Assertions whose test contains ``unchecked`` (the value-set file we do not have)
    cannot pass: they are counted in one info finding instead of reported as errors.
    """
    try:
        out = transform(etree.tostring(root.getroottree(), encoding="UTF-8"))
    except RuntimeError as exc:
        return [Finding("warning", "schematron", f"the Schematron could not run: {exc}")]
    svrl = etree.fromstring(out, etree.XMLParser(resolve_entities=False, no_network=True,
                                                 huge_tree=True))
    skipped = 0
    for el in list(svrl.iter(f"{{{SVRL}}}failed-assert")):
        if unchecked in (el.get("test") or ""):
            el.getparent().remove(el)
            skipped += 1
    found = svrl_findings(svrl)
    if skipped:
        found.append(Finding("info", "schematron", f"{skipped} value-set assertion(s) not "
                             "checked (no value-set expansions available)"))
    return found


def has_errors(findings: list[Finding]) -> bool:
    return any(f.severity == "error" for f in findings)
