"""PDF extraction speed on one core, and the tables it finds, on the Korean public PDFs.

Reads the PDFs of ../shared/data/corpus/ko that have a text layer (16 files, 300 pages; the leaflet
whose pages are images is left out: it measures Tesseract, not the PDF reader). Each setting reads
every file through `extract` `--repeat` times and keeps the fastest pass. Pages/s is per core: pages
over the CPU seconds the process used (this machine is shared, so wall time mostly measures the
others); the wall figure is printed beside it. Pin it to one core (`taskset -c 0`).

    python bench/pdf_speed.py [--settings tables,no-tables,...] [--repeat 3]
    python bench/pdf_speed.py --dump tables.json      # every table found, per file and page
    python bench/pdf_speed.py --compare before.json   # ... and how they differ from an earlier dump
    python bench/pdf_speed.py --check-skips           # no skipped path could have held an edge
    python bench/pdf_speed.py --aligned               # every table without rules found, to read by eye
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_CORPUS = ROOT.parent / "shared" / "data" / "corpus" / "ko"
IMAGE_ONLY = "240319 알기쉬운 청년농신보 책자(최종본)★_배포용.pdf"


def settings() -> dict:
    from pipeline.options import ExtractOptions

    base = ExtractOptions(ocr=False)
    found = {"no-tables": replace(base, pdf_tables=False), "tables": base}
    fields = ExtractOptions.__dataclass_fields__
    if "ocr_images" in fields:  # a tree from before image OCR has no such setting
        found["tables"] = replace(base, ocr_images=False)
        found["no-tables"] = replace(base, pdf_tables=False, ocr_images=False)
        found["ruled-tables"] = replace(base, ocr_images=False, pdf_aligned_tables=False)
        found["tables+image-ocr"] = replace(base, ocr=True, ocr_images=True)
    return found


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (Tesseract runs as a child)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def tables_of(doc) -> dict[str, list]:
    by_page: dict[str, list] = {}
    for element in doc.elements:
        if element.kind == "table":
            by_page.setdefault(str(element.page), []).append(element.table.rows)
    return by_page


def check_skips(folders: list[Path]) -> None:
    """Walk every path object the table finder skips on its bounding box, over every PDF we have,
    and count those that would have given an edge pdfplumber keeps (there must be none)."""
    import pypdfium2 as pdfium

    from pipeline.stages.extract import pdf_objects
    from pipeline.stages.extract.pdf_tables import EDGE_MIN_LENGTH_PREFILTER, _subpath_edges

    class Everything(pdf_objects._PathReader):
        skipped: list = []

        def _too_small(self, path, outer, outer_scale):
            if super()._too_small(path, outer, outer_scale):
                self.skipped.append((path, outer))
            return False

    objects = skipped = wrong = 0
    for path in sorted(p for folder in folders for p in folder.glob("*.pdf")):
        try:
            pdf = pdfium.PdfDocument(path)
        except pdfium.PdfiumError:
            continue  # encrypted or broken: no pages to look at
        for index in range(len(pdf)):
            page = pdf[index]
            reader = Everything(EDGE_MIN_LENGTH_PREFILTER)
            reader.skipped = []
            found = list(reader.paths(pdf_objects._handle(page)))
            objects += len(found)
            skipped += len(reader.skipped)
            matrix = reader.matrix
            for obj, outer in reader.skipped:
                pdf_objects._object_matrix(obj, matrix)
                m = pdf_objects._concat(tuple(matrix), outer)
                edges = [e for points, closed in reader.subpaths(obj, m) for e in _subpath_edges(points, closed, 0)]
                if any(e["width" if e["orientation"] == "h" else "height"] >= EDGE_MIN_LENGTH_PREFILTER for e in edges):
                    wrong += 1
                    print(f"  {path.name} p.{index + 1}: a skipped path holds an edge")
    print(f"{objects} path objects, {skipped} skipped on their box, {wrong} of those held an edge")


def show_aligned(folders: list[Path]) -> None:
    """Every table the text-alignment finder keeps on corpus/ko and corpus/en, per document, with its
    rows: each one is read by eye to count the false ones (prose or lists taken for a table)."""
    from pipeline.options import ExtractOptions
    from pipeline.stages.extract import extract

    with_aligned, without = ExtractOptions(ocr=False, ocr_images=False), ExtractOptions(
        ocr=False, ocr_images=False, pdf_aligned_tables=False)
    print("| document | pages | tables without rules |\n|---|---:|---:|")
    shown = []
    for path in sorted(p for folder in folders for p in folder.glob("*.pdf")):
        data = path.read_bytes()
        ruled = {e.text for e in extract(data, path.name, without).elements if e.kind == "table"}
        doc = extract(data, path.name, with_aligned)
        new = [e for e in doc.elements if e.kind == "table" and e.text not in ruled]
        print(f"| {path.parent.name}/{path.name} | {doc.pages} | {len(new)} |")
        shown += [(path.name, e) for e in new]
    for name, element in shown:
        print(f"\n--- {name} p.{element.page}\n{element.text}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--settings", default="no-tables,tables")
    parser.add_argument("--repeat", type=int, default=3, help="passes per setting (image OCR: one)")
    parser.add_argument("--dump", type=Path, help="write the ruled tables found to this JSON file")
    parser.add_argument("--compare", type=Path, help="compare the ruled tables found to this dump")
    parser.add_argument("--aligned", action="store_true", help="print every table found without rules")
    parser.add_argument("--check-skips", action="store_true", help="check the box test on every PDF we have")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    if args.aligned:
        show_aligned([args.corpus.parent / name for name in ("ko", "en", "formats")])
        return
    if args.check_skips:
        check_skips([args.corpus.parent / name for name in ("ko", "en", "formats", "hard")])
        return
    from pipeline.stages.extract import extract

    files = [p for p in sorted(args.corpus.glob("*.pdf")) if p.name != IMAGE_ONLY]
    blobs = {p.name: p.read_bytes() for p in files}
    known = settings()
    print(f"{len(files)} PDFs from {args.corpus}, best of {args.repeat}\n")
    print("| setting | pages | tables | CPU s | pages/s per core | wall s |")
    print("|---|---:|---:|---:|---:|---:|")
    found: dict[str, dict] = {}
    for name in args.settings.split(","):
        options = known[name]
        best, wall = float("inf"), float("inf")
        for _ in range(1 if "image-ocr" in name else args.repeat):
            started, cpu = time.perf_counter(), cpu_seconds()
            docs = {source: extract(data, source, options) for source, data in blobs.items()}
            best = min(best, cpu_seconds() - cpu)
            wall = min(wall, time.perf_counter() - started)
        pages = sum(doc.pages for doc in docs.values())
        tables = sum(e.kind == "table" for doc in docs.values() for e in doc.elements)
        print(f"| {name} | {pages} | {tables} | {best:.2f} | {pages / best:.1f} | {wall:.2f} |")
        if name == "ruled-tables" or (name == "tables" and not found):  # the ruled ones compare with before
            found = {source: tables_of(doc) for source, doc in docs.items()}
    if args.dump:
        args.dump.write_text(json.dumps(found, ensure_ascii=False, indent=1))
    if args.compare:
        before = json.loads(args.compare.read_text())
        pages = {(s, p) for doc in (before, found) for s in doc for p in doc[s]}
        # the same tables with the same cells; their order on the page may follow the text now
        def same(source: str, page: str) -> bool:
            one, two = (sorted(json.dumps(t, ensure_ascii=False) for t in d.get(source, {}).get(page, []))
                        for d in (before, found))
            return one == two

        differ = [(s, p) for s, p in sorted(pages) if not same(s, p)]
        print(f"\ncompared with {args.compare}: {len(pages)} pages hold tables, {len(differ)} differ")
        for source, page in differ:
            print(f"  {source} p.{page}: {len(before.get(source, {}).get(page, []))} tables before, "
                  f"{len(found.get(source, {}).get(page, []))} now")


if __name__ == "__main__":
    main()
