"""A CDA document as one self-contained, safe HTML page, the way a clinician's
viewer shows it: the header (patient, authors, dates, custodian), then every
section, nested sections included, with its narrative block.

Safety by construction rather than by cleaning: the page is built element by
element from an allow-list of CDA narrative elements (CDA R2 NarrativeBlock),
each turned into a fixed HTML element; no attribute of the document is copied
except ``colspan``/``rowspan`` (digits) and ``ID`` (as an anchor, sanitised).
So no script, no event handler, no ``style`` and nothing that loads from
elsewhere: ``linkHtml`` keeps an ``href`` only when it points inside the page
(``#id``), other targets are shown as text; ``renderMultiMedia`` and a
``nonXMLBody`` are placeholders. A Content-Security-Policy forbidding every
source backs this up in browsers. Text is escaped by the serialiser.
"""

from __future__ import annotations

import re

from lxml import etree, html

from profiles.ccda.cda import V3, child, children, name_of, text

_CSS = """body{font-family:sans-serif;margin:1.5em;max-width:60em;color:#222}
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #999;padding:.2em .4em;
vertical-align:top;text-align:left}th{background:#eee}.header td,.header th{border:none}
.placeholder{color:#666;font-style:italic}section{margin-left:.5em}
.cda-bold{font-weight:bold}.cda-italics{font-style:italic}.cda-underline{text-decoration:underline}
"""
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; form-action 'none'"
_ID = re.compile(r"[^A-Za-z0-9_.:-]")
_STYLE_CODES = {"bold": "cda-bold", "italics": "cda-italics", "underline": "cda-underline"}
# CDA narrative element -> HTML element (children are rendered the same way)
_SAME = {"table", "thead", "tbody", "tfoot", "tr", "th", "td", "caption", "colgroup", "col",
         "sub", "sup", "br"}
_MAPPED = {"paragraph": "p", "content": "span", "item": "li", "footnote": "small",
           "footnoteRef": "sup", "text": "div"}


def render_html(root: etree._Element) -> bytes:
    """The page for ClinicalDocument ``root`` (from ``cda.parse_document``), UTF-8."""
    page = etree.Element("html", lang="en")
    head = etree.SubElement(page, "head")
    etree.SubElement(head, "meta", charset="utf-8")
    etree.SubElement(head, "meta", {"http-equiv": "Content-Security-Policy", "content": _CSP})
    title = text(child(root, "title")) or "Clinical document"
    etree.SubElement(head, "title").text = title
    etree.SubElement(head, "style").text = _CSS
    body = etree.SubElement(page, "body")
    etree.SubElement(body, "h1").text = title
    _header(body, root)
    component = child(root, "component")
    structured = child(component, "structuredBody")
    if structured is not None:
        for comp in children(structured, "component"):
            _section(body, child(comp, "section"), 2)
    elif (nonxml := child(component, "nonXMLBody")) is not None:
        media = child(nonxml, "text")
        kind = media.get("mediaType") if media is not None else None
        _placeholder(body, f"Unstructured document body ({kind or 'unknown type'}) "
                           "not shown here.", "p")
    return b"<!DOCTYPE html>\n" + html.tostring(page, encoding="utf-8", method="html")


def _placeholder(parent, message: str, tag: str = "span") -> None:
    el = etree.SubElement(parent, tag, {"class": "placeholder"})
    el.text = message


def _when(value: str | None) -> str:
    """A CDA time as ``YYYY-MM-DD hh:mm`` with its zone, for people (never converted)."""
    if not value:
        return ""
    m = re.fullmatch(r"(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\d{2})?(?:\.\d+)?([+-]\d{4})?",
                     value.strip())
    if m is None:
        return value
    y, mo, d, h, mi, zone = m.groups()
    date = "-".join(p for p in (y, mo, d) if p)
    clock = f" {h}:{mi or '00'}" if h else ""
    return f"{date}{clock}{' ' + zone if zone and h else ''}"


def _row(table, label: str, value: str) -> None:
    if not value:
        return
    tr = etree.SubElement(table, "tr")
    etree.SubElement(tr, "th").text = label
    etree.SubElement(tr, "td").text = value


def _person_line(entity) -> str:
    person = child(entity, "assignedPerson")
    name = name_of(person)
    org = text(child(entity, "representedOrganization", "name"))
    device = child(entity, "assignedAuthoringDevice")
    who = name.display() if name else ""
    if not who and device is not None:
        who = " ".join(filter(None, (text(child(device, "manufacturerModelName")),
                                     text(child(device, "softwareName"))))) or "device"
    return ", ".join(p for p in (who, org) if p)


def _header(body, root) -> None:
    table = etree.SubElement(body, "table", {"class": "header"})
    role = child(root, "recordTarget", "patientRole")
    patient = child(role, "patient")
    name = name_of(patient)
    _row(table, "Patient", name.display() if name else "")
    birth = child(patient, "birthTime")
    _row(table, "Born", _when(birth.get("value")) if birth is not None else "")
    gender = child(patient, "administrativeGenderCode")
    if gender is not None:
        _row(table, "Sex", gender.get("displayName") or gender.get("code") or "")
    ids = [f"{e.get('extension') or ''} ({e.get('root') or ''})" for e in children(role, "id")
           if not e.get("nullFlavor")]
    _row(table, "Patient ids", "; ".join(ids))
    created = child(root, "effectiveTime")
    _row(table, "Created", _when(created.get("value")) if created is not None else "")
    for author in children(root, "author"):
        when = child(author, "time")
        line = _person_line(child(author, "assignedAuthor"))
        stamp = _when(when.get("value")) if when is not None else ""
        _row(table, "Author", f"{line} ({stamp})" if stamp and line else line)
    legal = child(root, "legalAuthenticator")
    if legal is not None:
        _row(table, "Signed by", _person_line(child(legal, "assignedEntity")))
    for doc in children(root, "documentationOf"):
        et = child(doc, "serviceEvent", "effectiveTime")
        if et is not None:
            low, high = child(et, "low"), child(et, "high")
            start = _when(low.get("value")) if low is not None else _when(et.get("value"))
            stop = _when(high.get("value")) if high is not None else ""
            _row(table, "Care period", f"{start} – {stop}" if stop else start)
    custodian = child(root, "custodian", "assignedCustodian", "representedCustodianOrganization")
    _row(table, "Custodian", text(child(custodian, "name")))


def _section(parent, section, level: int) -> None:
    if section is None:
        return
    box = etree.SubElement(parent, "section")
    title = text(child(section, "title"))
    code = child(section, "code")
    if not title and code is not None:
        title = code.get("displayName") or ""
    etree.SubElement(box, f"h{min(level, 6)}").text = title or "Untitled section"
    narrative = child(section, "text")
    if narrative is not None:
        _narrative(box, narrative)
    for comp in children(section, "component"):
        _section(box, child(comp, "section"), level + 1)


def _anchor(value: str | None) -> str | None:
    return f"cda-{_ID.sub('_', value)}" if value else None


def _narrative(parent, el) -> None:
    """Append the HTML for narrative element ``el`` (and its subtree) to ``parent``."""
    out = _element_for(parent, el)
    target = out if out is not None else parent
    _append_text(target, el.text, out is None)
    for sub in el:
        if isinstance(sub.tag, str) and etree.QName(sub).namespace == V3:
            _narrative(target, sub)
        elif isinstance(sub.tag, str):  # foreign markup: keep its words only
            _append_text(target, " ".join("".join(sub.itertext()).split()), True)
        _append_text(target, sub.tail, True)


def _append_text(target, value: str | None, after_last: bool) -> None:
    if not value:
        return
    if after_last and len(target):
        last = target[-1]
        last.tail = (last.tail or "") + value
    else:
        target.text = (target.text or "") + value


def _element_for(parent, el):
    """The HTML element standing for ``el``, already appended to ``parent``; None when
    ``el`` contributes only its content."""
    name = etree.QName(el).localname
    if name == "caption" and parent.tag != "table":
        out = etree.SubElement(parent, "strong")
    elif name in _SAME:
        out = etree.SubElement(parent, name)
        for attr in ("colspan", "rowspan", "span"):
            if (v := el.get(attr)) and v.isdigit():
                out.set(attr, v)
    elif name in _MAPPED:
        out = etree.SubElement(parent, _MAPPED[name])
        classes = [_STYLE_CODES[c.lower()] for c in (el.get("styleCode") or "").split()
                   if c.lower() in _STYLE_CODES]
        if classes:
            out.set("class", " ".join(classes))
    elif name == "list":
        out = etree.SubElement(parent, "ol" if el.get("listType") == "ordered" else "ul")
    elif name == "linkHtml":
        href = (el.get("href") or "").strip()
        if href.startswith("#") and len(href) > 1:
            out = etree.SubElement(parent, "a", href=f"#{_anchor(href[1:])}")
        else:
            out = etree.SubElement(parent, "span", {"class": "link"})
            if href:
                out.tail = f" [link: {href}]"
    elif name == "renderMultiMedia":
        _placeholder(parent, f"[multimedia {el.get('referencedObject') or ''} not shown]")
        return parent[-1]
    else:
        return None
    if anchor := _anchor(el.get("ID")):
        out.set("id", anchor)
    return out
