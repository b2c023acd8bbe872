"""OCR with Tesseract (Debian's `tesseract-ocr` + `tesseract-ocr-kor`), for scans and images.

Optional at run time: when the `tesseract` program or its Korean data is missing, `available()` says
so and the extractors name the pages they could not read instead of failing. `make setup` installs
both packages where it can (root on Debian); `scripts/install-ocr.sh` does it by hand.

Tesseract runs as a child process (no Python binding to compile), one page image on its stdin, text on
its stdout. PDF pages are rendered by pypdfium2 at 300 dpi, the resolution Tesseract is trained for.
"""

from __future__ import annotations

import shutil
import subprocess
from functools import cache

from pipeline.errors import BrokenDocument, EmptyDocument, TransientError
from pipeline.models import Element, ExtractedDocument

LANGUAGES = "kor+eng"
RENDER_DPI = 300


@cache
def missing() -> str | None:
    """Why OCR cannot run here (for a warning), or None when it can."""
    program = shutil.which("tesseract")
    if program is None:
        return "OCR is not installed (Debian packages tesseract-ocr and tesseract-ocr-kor)"
    listed = subprocess.run([program, "--list-langs"], capture_output=True, text=True, timeout=30)
    languages = set(listed.stdout.split())
    absent = [lang for lang in LANGUAGES.split("+") if lang not in languages]
    if absent:
        return f"Tesseract has no data for {', '.join(absent)} (install tesseract-ocr-{absent[0]})"
    return None


def available() -> bool:
    return missing() is None


def read_image(image: bytes, timeout: float = 120.0) -> list[str]:
    """Text of an image file (PNG, JPEG, TIFF, GIF), one string per page (a TIFF may hold several)."""
    try:
        done = subprocess.run(
            ["tesseract", "stdin", "stdout", "-l", LANGUAGES, "--psm", "3"],
            input=image, capture_output=True, timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise TransientError(f"OCR took longer than {timeout:.0f} s on one image") from None
    if done.returncode != 0:
        detail = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise BrokenDocument(f"image cannot be read by OCR: {detail[-1] if detail else 'tesseract failed'}")
    pages = done.stdout.decode("utf-8", "replace").split("\f")  # Tesseract ends every page with a form feed
    if len(pages) > 1 and not pages[-1].strip():
        pages.pop()
    return pages


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


def extract_image(data: bytes, source: str, kind: str) -> ExtractedDocument:
    """An image file read by OCR; each frame of a multi-page TIFF is a page."""
    from pathlib import PurePath

    from pipeline.korean import normalize
    from pipeline.stages.extract.text import blocks

    if reason := missing():
        raise EmptyDocument(f"{kind.upper()} image: its text can only be read by OCR, and {reason}")
    pages = read_image(data)
    elements: list[Element] = []
    for number, text in enumerate(pages, start=1):
        elements += blocks(text, number)
    warnings = [f"read by OCR from {'an image' if len(pages) == 1 else f'{len(pages)} image pages'} "
                "(recognition errors are possible)"]
    return ExtractedDocument(source, normalize(PurePath(source).stem), len(pages), elements, warnings=warnings)
