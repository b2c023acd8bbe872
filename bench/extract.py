"""Extraction over every real file we have: what comes out of each, per file and per format.

Reads ../shared/data/corpus/{ko,formats,hwpx,hwp,en,hard}. For each file: outcome (ok / the reason
it failed), pages, text blocks, tables, characters, Hangul share, warnings and seconds; then a
summary per format. Look at the output too: `--show FILE` prints what was extracted.

    python bench/extract.py [--corpus DIR] [--json] [--show NAME]
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_CORPUS = ROOT.parent / "shared" / "data" / "corpus"
FOLDERS = ("ko", "formats", "hwpx", "hwp", "en", "hard")


def measure(path: Path) -> dict:
    from pipeline.errors import PipelineError
    from pipeline.stages.extract import extract

    started = time.perf_counter()
    row: dict = {"file": f"{path.parent.name}/{path.name}", "format": path.suffix.lower().lstrip(".") or "none"}
    try:
        doc = extract(path.read_bytes(), path.name)
    except PipelineError as error:
        row.update(outcome="failed", reason=str(error))
    except Exception as error:  # a crash is a bug worth seeing in the table, not a stopped benchmark
        row.update(outcome="CRASH", reason=f"{type(error).__name__}: {error}")
    else:
        text = doc.text
        letters = [c for c in text if c.isalpha()]
        row.update(
            outcome="ok", pages=doc.pages, blocks=sum(e.kind == "text" for e in doc.elements),
            tables=sum(e.kind == "table" for e in doc.elements), chars=len(text),
            hangul=round(sum("가" <= c <= "힣" for c in letters) / max(1, len(letters)), 2),
            glued_runs=len(re.findall("[가-힣]{15,}", text)), warnings=doc.warnings, language=doc.language,
        )
    row["seconds"] = round(time.perf_counter() - started, 3)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--show", help="print the extracted text of the file with this name")
    args = parser.parse_args()
    logging.disable(logging.WARNING)

    if args.show:
        from pipeline.stages.extract import extract

        path = next(args.corpus.rglob(args.show))
        doc = extract(path.read_bytes(), path.name)
        for element in doc.elements:
            print(f"--- p.{element.page} {element.kind}{' heading' if element.heading else ''}\n{element.text}")
        print("warnings:", doc.warnings)
        return

    files = [p for folder in FOLDERS for p in sorted((args.corpus / folder).glob("*")) if p.is_file()]
    rows = [measure(path) for path in files]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=1))
        return
    print("| file | outcome | pages | tables | chars | Hangul | 15+ glued | s | reason / warnings |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        note = r.get("reason") or "; ".join(r.get("warnings", []))
        print(f"| {r['file']} | {r['outcome']} | {r.get('pages', '')} | {r.get('tables', '')} | {r.get('chars', '')} "
              f"| {r.get('hangul', '')} | {r.get('glued_runs', '')} | {r['seconds']} | {note[:110]} |")
    by_format: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_format[r["format"]].append(r)
    print("\n| format | files | ok | failed | crashed | pages | tables | pages/s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for fmt, group in sorted(by_format.items()):
        pages = sum(r.get("pages", 0) for r in group)
        seconds = sum(r["seconds"] for r in group)
        speed = f"{pages / seconds:.1f}" if seconds >= 0.05 else "–"  # too quick to time meaningfully
        print(f"| {fmt} | {len(group)} | {sum(r['outcome'] == 'ok' for r in group)} "
              f"| {sum(r['outcome'] == 'failed' for r in group)} | {sum(r['outcome'] == 'CRASH' for r in group)} "
              f"| {pages} | {sum(r.get('tables', 0) for r in group)} | {speed} |")


if __name__ == "__main__":
    main()
