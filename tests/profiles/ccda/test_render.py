"""Rendering: every corpus document shows all its section titles and its header, and
the page never carries a script, an event handler or a reference to elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree, html

from profiles.ccda.cda import V3, parse_document, text
from profiles.ccda.render import render_html
from tests.conftest import CONFORMANCE

CCDA = CONFORMANCE / "ccda"
DOCS = sorted(CCDA.glob("*.xml")) + sorted((CCDA / "non-ccda").glob("*.xml"))
ACTIVE = {"script", "iframe", "object", "embed", "img", "link", "base", "form", "frame",
          "frameset", "applet", "svg", "math", "audio", "video", "source", "input", "button"}


def assert_safe(page: bytes) -> html.HtmlElement:
    doc = html.document_fromstring(page)
    for el in doc.iter():
        if not isinstance(el.tag, str):
            continue
        assert el.tag.lower() not in ACTIVE, el.tag
        for name, value in el.attrib.items():
            assert not name.lower().startswith("on"), (el.tag, name)
            assert name.lower() not in ("src", "srcset", "style", "action", "formaction",
                                        "background", "xlink:href", "poster"), (el.tag, name)
            if name.lower() == "href":
                assert value.startswith("#"), value  # only anchors inside the page
        if el.tag == "meta":
            assert set(el.attrib) <= {"charset", "http-equiv", "content"}
            assert el.get("http-equiv") in (None, "Content-Security-Policy")
        if el.tag == "style":
            assert "url(" not in (el.text or "") and "@import" not in (el.text or "")
    assert b"javascript:" not in page.lower().replace(b"[link: javascript:", b"")
    return doc


def section_titles(root: etree._Element) -> list[str]:
    return [t for s in root.iter(f"{{{V3}}}section") if (t := text(s.find(f"{{{V3}}}title")))]


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_every_section_title_is_shown_and_the_page_is_safe(path: Path) -> None:
    root = parse_document(path.read_bytes())
    page = render_html(root)
    doc = assert_safe(page)
    headings = {" ".join(h.text_content().split())
                for h in doc.iter("h2", "h3", "h4", "h5", "h6")}
    titles = section_titles(root)
    missing = [t for t in titles if t not in headings]
    assert missing == []
    sections = list(root.iter(f"{{{V3}}}section"))
    assert len(list(doc.iter("section"))) == len(sections)  # untitled ones too
    head = doc.find(".//table")
    assert head is not None and "Patient" in head.text_content()


def test_nested_sections_are_rendered() -> None:
    root = parse_document((CCDA / "hl7ex_Discharge_Summary.xml").read_bytes())
    nested = [s for s in root.iter(f"{{{V3}}}section")
              if s.getparent().getparent().tag == f"{{{V3}}}section"]
    doc = html.document_fromstring(render_html(root))
    if nested:
        assert doc.find(".//section/section") is not None


def test_header_shows_patient_author_dates_custodian() -> None:
    page = render_html(parse_document((CCDA / "hl7ccda21_C-CDA_R2-1_CCD.xml").read_bytes()))
    rows = {tr[0].text_content(): tr[1].text_content()
            for tr in html.document_fromstring(page).find(".//table").iter("tr")}
    assert rows["Patient"] == "Eve Betterhalf"
    assert rows["Born"] == "1975-05-01"
    assert rows["Created"] == "2013-08-15 10:30 -0800"
    assert rows["Author"].startswith("Patricia Patty Primary M.D.")
    assert rows["Custodian"] == "Good Health HIE"
    assert rows["Care period"] == "1975-05-01 – 2013-08-15"


HOSTILE = b"""<?xml version="1.0"?>
<ClinicalDocument xmlns="urn:hl7-org:v3" xmlns:x="http://www.w3.org/1999/xhtml">
 <title>Attack &lt;script&gt;alert(1)&lt;/script&gt;</title>
 <recordTarget><patientRole><id root="1.2.3" extension="9"/><patient><name>
   <given>Eve</given><family onclick="x()">O'Hara &lt;img src=x onerror=alert(1)&gt;</family>
 </name></patient></patientRole></recordTarget>
 <component><structuredBody><component><section>
  <title>Notes</title>
  <text styleCode="Bold" style="background:url(http://evil/x.png)" onmouseover="steal()">
   <paragraph ID="p1" onclick="steal()">Hello
     <content styleCode="Italics xss">there</content></paragraph>
   <linkHtml href="javascript:alert(1)">click me</linkHtml>
   <linkHtml href="http://tracker.example/pixel">outside</linkHtml>
   <linkHtml href="#p1">inside</linkHtml>
   <renderMultiMedia referencedObject="MM1"><caption>X-ray</caption></renderMultiMedia>
   <x:script>alert(2)</x:script>
   <x:img src="http://evil/x.png"/>
   <table border="1" onload="x()"><tbody><tr><td colspan="2" rowspan="x">cell</td></tr>
   </tbody></table>
   <list listType="ordered"><item>one</item></list>
  </text>
  <component><section><title>Inner</title><text>deep</text></section></component>
 </section></component></structuredBody></component>
</ClinicalDocument>"""


def test_hostile_narrative_is_neutralised() -> None:
    page = render_html(parse_document(HOSTILE))
    doc = assert_safe(page)
    body = doc.find("body")
    assert "<script>alert(1)</script>" in body.find("h1").text_content()  # shown as text
    assert doc.find(".//script") is None and doc.find(".//img") is None
    links = [a.get("href") for a in doc.iter("a")]
    assert links == ["#cda-p1"]
    assert doc.get_element_by_id("cda-p1").tag == "p"
    assert "[link: javascript:alert(1)]" in body.text_content()  # visible, never a link
    assert "[multimedia MM1 not shown]" in body.text_content()
    td = doc.find(".//td[@colspan]")
    assert td.get("colspan") == "2" and td.get("rowspan") is None
    assert doc.find(".//ol/li").text == "one"
    assert [h.text for h in doc.iter("h2", "h3")] == ["Notes", "Inner"]
    assert doc.find(".//span[@class='cda-italics']") is not None
    csp = doc.find(".//meta[@http-equiv='Content-Security-Policy']").get("content")
    assert "default-src 'none'" in csp


def test_unstructured_body_is_a_placeholder() -> None:
    page = render_html(parse_document(
        (CCDA / "hl7ex_Unstructured_Document_embed.xml").read_bytes()))
    doc = assert_safe(page)
    assert "application/pdf" in doc.find(".//p[@class='placeholder']").text
    assert len(page) < 20_000  # the embedded PDF is not copied into the page
