"""What the Office, e-mail, Markdown and CSV readers cost: import once, then per file.

`unstructured` is imported only when such a file arrives, so the first one pays the import. For each
file of ../shared/data/corpus/formats in these formats this prints, from a fresh interpreter, the
import of `pipeline.stages.extract` (what every CLI start pays), the first extraction (which pays the
partitioner's import), and the median of five warm extractions.

    python bench/office.py [--corpus DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = ROOT.parent / "shared" / "data" / "corpus"
SUFFIXES = (".docx", ".pptx", ".xlsx", ".odt", ".rtf", ".md", ".csv", ".eml")

_PROBE = """
import json, statistics, sys, time
sys.path.insert(0, {root!r})
started = time.perf_counter()
from pipeline.stages.extract import extract
imported = time.perf_counter() - started
data = open({path!r}, "rb").read()
started = time.perf_counter()
doc = extract(data, {name!r})
first = time.perf_counter() - started
warm = []
for _ in range(5):
    started = time.perf_counter()
    extract(data, {name!r})
    warm.append(time.perf_counter() - started)
print(json.dumps({{"import": imported, "first": first, "warm": statistics.median(warm), "pages": doc.pages,
                  "tables": sum(e.kind == "table" for e in doc.elements)}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    args = parser.parse_args()
    files = sorted(p for p in (args.corpus / "formats").iterdir() if p.suffix.lower() in SUFFIXES)
    print("| file | pages | tables | import extract (s) | first file (s) | warm, median of 5 (s) |")
    print("|---|---:|---:|---:|---:|---:|")
    for path in files:
        code = _PROBE.format(root=str(ROOT), path=str(path), name=path.name)
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                                env={**os.environ, "DO_NOT_TRACK": "1"})
        if result.returncode:
            print(f"| {path.name} | failed: {result.stderr.strip().splitlines()[-1][:100]} | | | | |")
            continue
        r = json.loads(result.stdout.strip().splitlines()[-1])
        print(f"| {path.name} | {r['pages']} | {r['tables']} | {r['import']:.2f} | {r['first']:.2f} "
              f"| {r['warm']:.3f} |")


if __name__ == "__main__":
    main()
