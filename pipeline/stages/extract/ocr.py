"""OCR with Tesseract (Debian's `tesseract-ocr` + `tesseract-ocr-kor`), for scans and images.

Optional at run time: when the `tesseract` program or its Korean data is missing, `available()` says
so and the extractors name the pages they could not read instead of failing. `make setup` installs
both packages where it can (`scripts/system-packages.sh`, root on Debian).

Tesseract runs as a child process (no Python binding to compile), one page image on its stdin, its text
and per-word confidences written to a scratch folder. PDF pages are rendered by pypdfium2 at 300 dpi,
the resolution Tesseract is trained for.

Recognition is the slowest part of extraction (a picture takes 1–2 s, a scanned page more), so what
Tesseract read can be remembered (`OcrMemory`, over the index's `OcrCache`): a document ingested again
after an edit reads again only the pictures and scanned pages whose pixels changed.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.errors import BrokenDocument, EmptyDocument, TransientError
from pipeline.models import Element, ExtractedDocument

if TYPE_CHECKING:
    from pipeline.ports import OcrCache

log = logging.getLogger(__name__)

LANGUAGES = "kor+eng"
RENDER_DPI = 300


@cache
def missing() -> str | None:
    """Why OCR cannot run here (for a warning), or None when it can."""
    program = shutil.which("tesseract")
    if program is None:
        return "OCR is not installed (Debian packages tesseract-ocr and tesseract-ocr-kor)"
    _, languages = _language_data(program)
    absent = [lang for lang in LANGUAGES.split("+") if lang not in languages]
    if absent:
        return f"Tesseract has no data for {', '.join(absent)} (install tesseract-ocr-{absent[0]})"
    return None


def _language_data(program: str) -> tuple[Path | None, set[str]]:
    """Where Tesseract's language data is, and which languages it has (`tesseract --list-langs`)."""
    listed = subprocess.run([program, "--list-langs"], capture_output=True, text=True, timeout=30)
    head, _, rest = listed.stdout.partition("\n")
    folder = head.split('"')[1] if head.count('"') >= 2 else None
    return (Path(folder) if folder else None), set(rest.split())


def available() -> bool:
    return missing() is None


# Tesseract's automatic layout (--psm 3) sometimes takes a page with a strip of vertical text in its
# margin for vertical text throughout and returns noise (a leaflet page: mean word confidence 51, "051
# HO RD …"). Read as one column of text (--psm 4), the same page comes out right (confidence 86). So a
# page whose confidence is below RETRY_BELOW is read again that way, and the better reading is kept.
RETRY_BELOW = 70.0
LAYOUTS = ("3", "4")


@cache
def engine() -> str:
    """What decides what OCR reads from a given image: Tesseract's version, the size of each language's
    data file, and our layouts and retry threshold. A reading remembered under another engine is never used."""
    program = shutil.which("tesseract") or "tesseract"
    version = subprocess.run([program, "--version"], capture_output=True, text=True, timeout=30).stdout
    folder, _ = _language_data(program)
    data = [f"{lang}:{(folder / f'{lang}.traineddata').stat().st_size if folder else '?'}"
            for lang in LANGUAGES.split("+")]
    return " ".join([version.split("\n")[0].strip(), *data, f"psm{'/'.join(LAYOUTS)}<{RETRY_BELOW:g}"])


@dataclass(frozen=True)
class OcrMemory:
    """What OCR read, remembered in `cache` under a key made of what Tesseract was given (the image file's
    bytes; a picture's pixels and the size it is read at) for `owner`, the user whose document it is (as
    with vectors, a shared memory would tell one user what another's pictures say).

    Memory saves work; it is never a reason for an extraction to fail: a store that cannot be read or
    written means the image is read again.
    """

    cache: OcrCache
    owner: str

    @staticmethod
    def key(*parts: bytes) -> str:
        digest = hashlib.sha256()
        for part in parts:
            digest.update(len(part).to_bytes(8, "big") + part)
        return digest.hexdigest()[:32]

    def recall(self, key: str) -> list[tuple[str, float]] | None:
        try:
            pages = self.cache.get(engine(), self.owner, key)
        except Exception:
            log.warning("OCR cache unreadable; reading the image again", exc_info=True)
            return None
        return [(str(text), float(confidence)) for text, confidence in pages] if pages is not None else None

    def keep(self, key: str, pages: list[tuple[str, float]]) -> None:
        try:
            self.cache.put(engine(), self.owner, key, pages)
        except Exception:
            log.warning("OCR cache not written; this image will be read again next time", exc_info=True)


def read_image(image: bytes, timeout: float = 120.0, memory: OcrMemory | None = None) -> list[str]:
    """Text of an image file (PNG, JPEG, TIFF, GIF), one string per page (a TIFF may hold several)."""
    return [text for text, _ in read_image_scored(image, timeout, memory)]


def read_image_scored(image: bytes, timeout: float = 120.0, memory: OcrMemory | None = None) -> list[tuple[str, float]]:
    """Each page's text with Tesseract's mean word confidence (0–100, weighted by word length); from
    `memory` when these bytes were read before."""
    key = OcrMemory.key(b"image", image) if memory is not None else ""
    if memory is not None and (known := memory.recall(key)) is not None:
        return known
    pages = _tesseract(image, LAYOUTS[0], timeout)
    if any(confidence < RETRY_BELOW for _, confidence in pages):
        again = _tesseract(image, LAYOUTS[1], timeout)
        if len(again) == len(pages):
            pages = [max(first, second, key=lambda page: page[1]) for first, second in zip(pages, again, strict=True)]
    if memory is not None:
        memory.keep(key, pages)
    return pages


def _tesseract(image: bytes, layout: str, timeout: float) -> list[tuple[str, float]]:
    """One Tesseract pass writing text and per-word TSV together (one recognition, two renderings)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="hanrag-ocr-") as folder:
        base = Path(folder) / "page"
        try:
            done = subprocess.run(
                # One thread: Tesseract's OpenMP threads spin while they wait, and on 2 cores a page took
                # 11.8 s with them and 1.9 s without (wall; `env` passes the rest of the environment on).
                ["env", "OMP_THREAD_LIMIT=1", "tesseract", "stdin", str(base), "-l", LANGUAGES, "--psm", layout,
                 "txt", "tsv"],
                input=image, capture_output=True, timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise TransientError(f"OCR took longer than {timeout:.0f} s on one image") from None
        if done.returncode != 0:
            detail = done.stderr.decode("utf-8", "replace").strip().splitlines()
            raise BrokenDocument(f"image cannot be read by OCR: {detail[-1] if detail else 'tesseract failed'}")
        texts = base.with_suffix(".txt").read_text(encoding="utf-8", errors="replace").split("\f")
        confidences = _page_confidences(base.with_suffix(".tsv").read_text(encoding="utf-8", errors="replace"))
    if len(texts) > 1 and not texts[-1].strip():
        texts.pop()  # Tesseract ends every page with a form feed
    return [(text, confidences.get(number, 0.0)) for number, text in enumerate(texts, start=1)]


def _page_confidences(tsv: str) -> dict[int, float]:
    """Mean word confidence per page from Tesseract's TSV (level 5 rows are words)."""
    weighted: dict[int, float] = {}
    lengths: dict[int, int] = {}
    for line in tsv.splitlines()[1:]:
        fields = line.split("\t")
        if len(fields) < 12 or fields[0] != "5" or not fields[11].strip():
            continue
        page, confidence, size = int(fields[1]), float(fields[10]), len(fields[11].strip())
        weighted[page] = weighted.get(page, 0.0) + max(confidence, 0.0) * size
        lengths[page] = lengths.get(page, 0) + size
    return {page: weighted[page] / lengths[page] for page in weighted}


def read_picture(picture, timeout: float = 120.0, memory: OcrMemory | None = None,
                 size: tuple[int, int] | None = None, digest: bytes | None = None) -> tuple[str, float]:
    """Text of a PIL image inside a page, one paragraph per block, with its mean word confidence.

    `size`: the size it is read at, when it is to be enlarged first; `digest`: the SHA-256 of its pixels,
    when the caller has it. A picture remembered under its pixels and size is neither enlarged nor
    encoded again (with the page loaded once, that took the warm extraction of bench/update.py's long
    set, 160 pages, from 9.0 to 5.8 s under a profiler).
    """
    import io
    import re

    size = size or picture.size
    key = ""
    if memory is not None:
        digest = digest or hashlib.sha256(picture.tobytes()).digest()
        key = OcrMemory.key(b"picture", digest, f"{picture.mode} {picture.size} {size}".encode())
    if memory is None or (pages := memory.recall(key)) is None:
        if size != picture.size:
            picture = picture.resize(size)
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        pages = read_image_scored(buffer.getvalue(), timeout)
        if memory is not None:
            memory.keep(key, pages)
    text, confidence = pages[0] if pages else ("", 0.0)
    lines = [line.strip() for line in text.splitlines()]
    # A picture's labels are short lines; lines with no letter or digit are strokes read as text.
    kept = [line for line in lines if re.search(r"[0-9A-Za-z가-힣]", line)]
    return "\n".join(kept), confidence


def render_pdf_page(page, dpi: int = RENDER_DPI) -> bytes:
    """A pypdfium2 page as PNG bytes at `dpi`."""
    import io

    bitmap = page.render(scale=dpi / 72, grayscale=True)
    try:
        image = bitmap.to_pil()
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()
    finally:
        bitmap.close()


def extract_image(data: bytes, source: str, kind: str, memory: OcrMemory | None = None) -> ExtractedDocument:
    """An image file read by OCR; each frame of a multi-page TIFF is a page."""
    from pathlib import PurePath

    from pipeline.korean import normalize
    from pipeline.stages.extract.text import blocks

    if reason := missing():
        raise EmptyDocument(f"{kind.upper()} image: its text can only be read by OCR, and {reason}")
    pages = read_image(data, memory=memory)
    elements: list[Element] = []
    for number, text in enumerate(pages, start=1):
        elements += blocks(text, number)
    warnings = [f"read by OCR from {'an image' if len(pages) == 1 else f'{len(pages)} image pages'} "
                "(recognition errors are possible)"]
    return ExtractedDocument(source, normalize(PurePath(source).stem), len(pages), elements, warnings=warnings)
