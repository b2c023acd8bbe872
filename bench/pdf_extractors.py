"""pypdf versus pypdfium2 on the Korean public PDFs: speed and Korean word spacing.

Reads ../shared/data/corpus/ko (17 PDFs, 332 pages). Prints pages/s and three spacing signals:
runs of 15+ Hangul syllables with no space (what dropped spaces look like: Korean words are short),
Hangul–space–Hangul pairs (spaces kept), tabs, and pages with no text at all.

    python bench/pdf_extractors.py [--corpus DIR]
"""

from __future__ import annotations

import argparse
import logging
import re
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = ROOT.parent / "shared" / "data" / "corpus" / "ko"


def read_pypdf(path: Path) -> list[str]:
    import pypdf

    return [page.extract_text() or "" for page in pypdf.PdfReader(path).pages]


def read_pypdfium2(path: Path) -> list[str]:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(path)
    try:
        return [pdf[i].get_textpage().get_text_range() for i in range(len(pdf))]
    finally:
        pdf.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    args = parser.parse_args()
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    files = sorted(args.corpus.glob("*.pdf"))
    print(f"{len(files)} PDFs from {args.corpus}\n")
    print("| extractor | pages | pages/s | 15+ Hangul without a space | Hangul␣Hangul | tabs | empty pages |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, read in (("pypdf", read_pypdf), ("pypdfium2", read_pypdfium2)):
        started = time.perf_counter()
        pages = [text for path in files for text in read(path)]
        seconds = time.perf_counter() - started
        text = "\n".join(pages)
        print(f"| {name} | {len(pages)} | {len(pages) / seconds:.1f} | {len(re.findall('[가-힣]{15,}', text))} "
              f"| {len(re.findall('[가-힣] [가-힣]', text))} | {text.count(chr(9))} "
              f"| {sum(1 for p in pages if not p.strip())} |")


if __name__ == "__main__":
    main()
