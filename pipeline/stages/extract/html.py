"""HTML: block elements in document order, headings marked, tables as rows."""

from __future__ import annotations

from pathlib import PurePath

from pipeline.korean import normalize
from pipeline.models import Element, ExtractedDocument, Table
from pipeline.stages.extract.text import blocks

BLOCK_TAGS = ("h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "pre", "blockquote", "table", "dt", "dd")


def extract_html(html: str, source: str) -> ExtractedDocument:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "head"]):
        if tag.name != "head":
            tag.decompose()
    title_tag = soup.find("title")
    title = title_tag.get_text(" ", strip=True) if title_tag else PurePath(source).stem
    if title_tag:
        title_tag.decompose()

    elements: list[Element] = []
    for node in soup.find_all(BLOCK_TAGS):
        if node.find_parent("table") is not None:
            continue  # cells belong to their table
        if node.name != "table" and node.find_parent(["p", "li", "blockquote"]) is not None:
            continue
        if node.name == "table":
            rows = [
                [cell.get_text(" ", strip=True) for cell in tr.find_all(["th", "td"])]
                for tr in node.find_all("tr")
            ]
            rows = [r for r in rows if any(r)]
            if rows:
                table = Table(rows=rows, header_rows=1)
                elements.append(Element("table", 1, table.to_markdown(), table=table))
            continue
        text = normalize(node.get_text(" ", strip=True))
        if text:
            elements.append(Element("text", 1, text, heading=node.name.startswith("h")))
    if not elements:  # markup without block tags: fall back to the visible text
        elements = blocks(soup.get_text("\n"), 1)
    return ExtractedDocument(source=source, title=normalize(title), pages=1, elements=elements)
