"""Less to embed per page (issue 15): what the "title · heading" line and the sentence overlap earn.

Every chunk is embedded with a context line ("title · heading") before its text, and a page's text
longer than one chunk is cut with 64 tokens of whole sentences carried over. Both cost embedding
time. This script ingests the same folder once per variant and scores page-level retrieval on our
own question sets with `hanrag eval`:

- `default`: what hanrag does (context line embedded, overlap 64);
- `no-overlap`: `HANRAG_CHUNK_OVERLAP=0`;
- `no-context`: the embedder sees the chunk's text alone (the keyword index still gets the line);
- `neither`: both.

All variants share one HANRAG_HOME, each as its own user, so a chunk whose embedded text is the same
in two variants is embedded once (the product's vector cache). The tokens each variant gives the
embedder are counted (cl100k, over every chunk, cached or not). KorQuAD measures the title line on
its own paragraphs: `python bench/korquad_sweep.py --dense-text search_text,title_once,no_title`.

    python bench/embed_less.py [--corpus DIR] [--questions a.jsonl,b.jsonl] [--variants default,...]
                               [--home DIR] [--json]

Reads ../shared/data/corpus/ko (see ../shared/data/SOURCES.md); writes only under --home.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline import cli  # noqa: E402
from pipeline.stages import embed  # noqa: E402
from pipeline.tokens import count_tokens  # noqa: E402

CORPUS = ROOT.parent / "shared" / "data" / "corpus" / "ko"
QUESTIONS = "bench/questions-ko.jsonl,bench/questions-pages.jsonl"
VARIANTS = {  # name: (overlap tokens, context line embedded)
    "default": (64, True),
    "no-overlap": (0, True),
    "no-context": (64, False),
    "neither": (0, False),
}


def _quiet_main(argv: list[str]) -> list[dict]:
    """hanrag's JSON lines (ingest: one per file; eval: one summary)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(argv)
    if code != 0:
        raise SystemExit(f"hanrag {' '.join(argv)} exited {code}")
    return [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]


def run_variant(name: str, corpus: Path, questions: list[Path]) -> dict:
    overlap, context = VARIANTS[name]
    os.environ["HANRAG_CHUNK_OVERLAP"] = str(overlap)
    tokens = [0]
    original = embed.embedding_text

    def text(chunk):
        seen = original(chunk) if context else chunk.text
        tokens[0] += count_tokens(seen)
        return seen

    embed.embedding_text = text
    try:
        started = time.perf_counter()
        files = _quiet_main(["ingest", str(corpus), "--user", name, "--json"])
        seconds = time.perf_counter() - started
    finally:
        embed.embedding_text = original
    row = {"variant": name, "overlap": overlap, "context_embedded": context,
           "chunks": sum(f.get("chunks", 0) for f in files), "tokens_embedded_cl100k": tokens[0],
           "embedded": sum(f.get("embedded", 0) for f in files), "ingest_s": round(seconds, 1),
           "failed": [f["source"] for f in files if f.get("status") == "failed"]}
    for path in questions:
        summary = _quiet_main(["eval", str(path), "--user", name, "--json"])[-1]
        row[path.stem] = {key: summary.get(key) for key in (
            "questions", "page_recall@1", "page_recall@5", "page_mrr@10", "recall@1", "recall@5")}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--questions", default=QUESTIONS)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--home", type=Path, default=ROOT / "bench" / "out" / "embed-less")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ["HANRAG_HOME"] = str(args.home)
    questions = [ROOT / q if not Path(q).is_absolute() else Path(q) for q in args.questions.split(",")]
    rows = []
    for name in args.variants.split(","):
        rows.append(run_variant(name, args.corpus, questions))
        print(json.dumps(rows[-1], ensure_ascii=False), file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
        return
    sets = [q.stem for q in questions]
    print("| variant | chunks | cl100k tokens embedded | " + " | ".join(f"{s} page R@1 / R@5" for s in sets) + " |")
    print("|---|---:|---:|" + "---:|" * len(sets))
    for row in rows:
        cells = [f"{row[s]['page_recall@1']} / {row[s]['page_recall@5']}" for s in sets]
        print(f"| {row['variant']} | {row['chunks']} | {row['tokens_embedded_cl100k']:,} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
