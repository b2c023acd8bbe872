"""Office documents, e-mail, Markdown and CSV through `unstructured`, offline.

DOCX, PPTX, XLSX, ODT, RTF, Markdown, CSV/TSV, EML and Outlook MSG become the same
`ExtractedDocument` as every other format: titles become headings, tables keep their cells (merged
cells spread), and the page is the slide (PPTX), the sheet (XLSX) or the page Word last rendered
(DOCX), else 1. E-mail attachments go back through the caller's `extract`, so an attached PDF is
read exactly like a dropped one.

`unstructured` pulls in spaCy, pandas and lxml (2-4 s to import), so nothing of it is imported
until such a file arrives. ODT and RTF are converted by the pandoc binary that the
`pypandoc-binary` wheel ships.
"""

from __future__ import annotations

import email
import io
import os
import re
import sys
import types
from collections.abc import Callable, Iterable
from dataclasses import replace
from email import policy
from functools import lru_cache
from importlib import import_module
from pathlib import PurePath
from typing import Any

from pipeline.errors import BrokenDocument, EncryptedDocument, PipelineError, UnsupportedFormat
from pipeline.korean import normalize
from pipeline.models import Element, ExtractedDocument
from pipeline.stages.extract.html_table import table_from_html
from pipeline.stages.extract.text import decode_text

# What a reason calls each kind, and the unstructured partitioner that reads it.
LABELS = {
    "docx": "DOCX", "pptx": "PPTX", "xlsx": "XLSX", "odt": "ODT", "rtf": "RTF", "md": "Markdown",
    "csv": "CSV", "tsv": "TSV", "eml": "e-mail", "msg": "Outlook message",
}
OFFICE_KINDS = frozenset(LABELS)
_PARTITIONERS = {
    "docx": ("docx", "partition_docx", {}),
    "pptx": ("pptx", "partition_pptx", {}),
    # find_subtable splits a sheet at blank rows into the tables a person sees; see _glue_headers.
    "xlsx": ("xlsx", "partition_xlsx", {"find_subtable": True, "include_header": False}),
    "odt": ("odt", "partition_odt", {}),
    "rtf": ("rtf", "partition_rtf", {}),
    "md": ("md", "partition_md", {}),
    "csv": ("csv", "partition_csv", {"include_header": False}),
    "tsv": ("tsv", "partition_tsv", {"include_header": False}),
    "eml": ("email", "partition_email", {"process_attachments": False}),
    "msg": ("msg", "partition_msg", {"process_attachments": False}),
}
# Formats that only an Office install (or LibreOffice) reads well; we say how to get a readable file.
LEGACY = {"doc": ("a Word 97-2003 document (DOC)", "Word", ".docx"),
          "xls": ("an Excel 97-2003 workbook (XLS)", "Excel", ".xlsx"),
          "ppt": ("a PowerPoint 97-2003 file (PPT)", "PowerPoint", ".pptx")}
# Page furniture and placeholders: repeated on every page, or without text worth indexing.
_SKIPPED = frozenset({"Header", "Footer", "PageBreak", "PageNumber", "Image"})
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+")
_WORD = re.compile(r"\w+|[^\w\s]")
_NUMBER = re.compile(r"^[-+−(]?[\d.,\s]+%?\)?$")
_ENCRYPTED_MAIL = "encrypted e-mail: only the recipient's private key can open it (PGP or S/MIME)"

ReadAttachment = Callable[[bytes, str], ExtractedDocument]


@lru_cache(maxsize=1)
def _offline() -> None:
    """Make `unstructured` run without the network, before anything of it is imported.

    It sends usage telemetry unless DO_NOT_TRACK is set. Its text-type heuristics (is this line
    narrative or a title?) ask `unstructured.nlp.tokenize` for sentences and verbs, and that module
    downloads spaCy's English model `en_core_web_sm` from GitHub on first use. The model is not on
    PyPI, and English verbs say nothing of Korean anyway, so rule-based stand-ins replace the
    module: sentences end at . ! ? (and their full-width forms), and no word is tagged a verb, so
    a single unstyled sentence comes out as plain text rather than narrative text (both are text
    to us). spaCy is then never imported, which also saves 1.5 s of the first file's import.
    """
    os.environ["DO_NOT_TRACK"] = "1"  # written, never read: this stage takes no settings from the environment
    os.environ["UNSTRUCTURED_DISABLE_NOTICE"] = "1"  # its advert on stdout would mix into `--json` output
    stand_in = types.ModuleType("unstructured.nlp.tokenize", "Rule-based stand-ins (pipeline.stages.extract.office)")
    stand_in.sent_tokenize = _sentences  # type: ignore[attr-defined]
    stand_in.word_tokenize = _words  # type: ignore[attr-defined]
    stand_in.pos_tag = _untagged  # type: ignore[attr-defined]
    sys.modules["unstructured.nlp.tokenize"] = stand_in
    text_type = sys.modules.get("unstructured.partition.text_type")
    if text_type is not None:  # imported before us: rebind the names it took from the real module
        text_type.sent_tokenize, text_type.word_tokenize, text_type.pos_tag = _sentences, _words, _untagged


def _sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(text.strip()) if s]


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def _untagged(text: str) -> list[tuple[str, str]]:
    return [(word, "") for word in _WORD.findall(text)]


def _partition(kind: str, data: bytes, source: str) -> list[Any]:
    """unstructured's elements for the file; a parser's failure becomes `BrokenDocument`."""
    _offline()
    module, function, options = _PARTITIONERS[kind]
    partition = getattr(import_module(f"unstructured.partition.{module}"), function)
    if kind in ("md", "csv", "tsv"):  # our decoder knows CP949 and UTF-16; theirs guesses
        data = decode_text(data).encode("utf-8")
    try:
        return partition(file=io.BytesIO(data), metadata_filename=source, languages=[""], **options)
    except Exception as error:  # the parsers raise anything from KeyError to lxml errors on bad input
        detail = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise BrokenDocument(f"broken {LABELS[kind]}: {detail}") from None


def _is_header_block(html: str) -> bool:
    """A small table without a single number: column titles standing apart from their rows."""
    table = table_from_html(html)
    return table is not None and len(table.rows) <= 4 and not any(
        _NUMBER.match(cell) for row in table.rows for cell in row if cell)


def _glue_headers(found: list[Any]) -> list[tuple[Any, str, int]]:
    """Pair each element with its table HTML and header row count, gluing split XLSX headers.

    A sheet often has its column titles, a blank row, then the numbers; unstructured cuts the
    table at the blank row. The header belongs with its rows, so a header block directly followed
    by a table on the same sheet is put on top of it.
    """
    paired: list[tuple[Any, str, int]] = []
    skip_next = False
    for i, item in enumerate(found):
        if skip_next:
            skip_next = False
            continue
        html = _html(item)
        following = found[i + 1] if i + 1 < len(found) else None
        if (html and following is not None and following.category == "Table"
                and following.metadata.page_number == item.metadata.page_number and _is_header_block(html)):
            header_rows = len(re.findall(r"<tr[\s>]", html))
            html = _table_rows(html) + _table_rows(_html(following))
            paired.append((item, f"<table>{html}</table>", header_rows))
            skip_next = True
        else:
            paired.append((item, html, 0))
    return paired


def _table_rows(html: str) -> str:
    """The `<tr>` rows of a table's HTML, without the `<table>` wrapper."""
    start, end = html.find("<tr"), html.rfind("</tr>")
    return html[start : end + len("</tr>")] if start >= 0 and end >= 0 else ""


def _to_elements(found: list[Any], kind: str) -> list[Element]:
    """unstructured elements → ours: Title → heading, Table → table with cells, the rest → text."""
    elements: list[Element] = []
    sheet = None
    paired = _glue_headers(found) if kind == "xlsx" else [(item, _html(item), 0) for item in found]
    for item, html, header_rows in paired:
        if item.category in _SKIPPED:
            continue
        page = item.metadata.page_number or 1
        if kind == "xlsx" and item.metadata.page_name and item.metadata.page_name != sheet:
            sheet = item.metadata.page_name
            elements.append(Element("text", page, normalize(sheet).strip(), heading=True))
        table = table_from_html(html, header_rows=header_rows or None) if html else None
        if table is not None:
            elements.append(Element("table", page, table.to_markdown(), table=table))
            continue
        text = normalize(item.text or "").strip()
        if text:
            elements.append(Element("text", page, text, heading=item.category == "Title"))
    return elements


def _html(item: Any) -> str:
    """A table element's HTML. The XLSX reader writes a line break inside a cell as the two
    characters `\\n`; they become a space."""
    html = (item.metadata.text_as_html or "") if item.category == "Table" else ""
    return html.replace("\\n", " ")


def _email_attachments(data: bytes) -> tuple[str, list[str], list[tuple[str, bytes]]]:
    """Subject, header lines and (file name, bytes) of each attachment of an EML message."""
    message = email.message_from_bytes(data, policy=policy.default)
    content_type = message.get_content_type()
    smime = message.get_param("smime-type", "") or ""
    if content_type == "multipart/encrypted" or (content_type.endswith("pkcs7-mime") and smime != "signed-data"):
        raise EncryptedDocument(_ENCRYPTED_MAIL)
    header = [f"{name}: {message[name]}" for name in ("Subject", "From", "To", "Cc", "Date") if message[name]]
    attachments = []
    for part in message.walk():
        name = part.get_filename()
        if name and not part.is_multipart():
            attachments.append((name, part.get_payload(decode=True) or b""))
    return str(message["Subject"] or ""), header, attachments


def _msg_attachments(data: bytes) -> tuple[str, list[str], list[tuple[str, bytes]]]:
    """Subject, header lines and attachments of an Outlook MSG message."""
    from oxmsg import Message

    try:
        message = Message.load(io.BytesIO(data))
    except Exception as error:  # oxmsg raises plain ValueError/KeyError on damaged property streams
        raise BrokenDocument(f"broken Outlook message: {error}") from None
    headers = {name.title(): value for name, value in message.message_headers.items()}
    if "encrypted" in headers.get("Content-Type", "") or message.message_class.startswith("IPM.Note.SMIME"):
        raise EncryptedDocument(_ENCRYPTED_MAIL)
    subject = message.subject or ""
    header = [f"Subject: {subject}"] if subject else []
    header += [f"{name}: {headers[name]}" for name in ("From", "To", "Cc", "Date") if headers.get(name)]
    if message.sender and not headers.get("From"):
        header.append(f"From: {message.sender}")
    attachments = [(a.file_name or "attachment", a.file_bytes or b"") for a in message.attachments]
    return subject, header, attachments


def _add_attachments(doc: ExtractedDocument, attachments: Iterable[tuple[str, bytes]],
                     read_attachment: ReadAttachment) -> None:
    """Each attachment's elements after the message, from the next page on, under its name."""
    for name, payload in attachments:
        if not payload.strip():
            continue
        try:
            attached = read_attachment(payload, name)
        except PipelineError as error:
            doc.warnings.append(f"attachment {name} was not indexed: {error}")
            continue
        offset = doc.pages
        doc.elements.append(Element("text", offset + 1, f"첨부 파일: {name}", heading=True))
        doc.elements += [replace(e, page=e.page + offset) for e in attached.elements]
        doc.warnings += [f"attachment {name}: {warning}" for warning in attached.warnings]
        doc.pages = offset + attached.pages


def _extract_mail(data: bytes, source: str, kind: str, read_attachment: ReadAttachment) -> ExtractedDocument:
    subject, header, attachments = (_email_attachments if kind == "eml" else _msg_attachments)(data)
    elements = [Element("text", 1, normalize("\n".join(header)))] if header else []
    elements += _to_elements(_partition(kind, data, source), kind)
    title = normalize(subject).strip() or PurePath(source).stem
    doc = ExtractedDocument(source, title, max((e.page for e in elements), default=1), elements)
    _add_attachments(doc, attachments, read_attachment)
    return doc


def extract_office(data: bytes, source: str, kind: str, read_attachment: ReadAttachment) -> ExtractedDocument:
    """Read a file whose `sniff_format` kind is in `OFFICE_KINDS`, or refuse a legacy or
    password-protected Office file with a reason that says what to do."""
    if kind == "encrypted-office":
        raise EncryptedDocument("encrypted Office document: a password is required")
    if kind in LEGACY:
        what, program, extension = LEGACY[kind]
        raise UnsupportedFormat(f"unsupported file type: {what}: open it in {program} (or LibreOffice) "
                                f"and save it as {extension}")
    if kind in ("eml", "msg"):
        return _extract_mail(data, source, kind, read_attachment)
    elements = _to_elements(_partition(kind, data, source), kind)
    pages = max((e.page for e in elements), default=1)
    return ExtractedDocument(source=source, title=PurePath(source).stem, pages=pages, elements=elements)
