"""KorQuAD 1.0 dev, keyword-only candidates (no query vectors needed): the rerank pass, each signal alone
and all but one, over the FTS5 top 30 (min-max normalised, as `fuse` gives a keyword-only search) of the
first N questions. The fused-candidate version is bench/korquad_rerank.py (it needs the question vectors).

    python bench/korquad_rerank_keyword.py N
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from korquad_rerank import keyword_rankings  # noqa: E402

from pipeline.adapters.local.reranker import SIGNALS, LexicalReranker, RerankWeights  # noqa: E402
from pipeline.evaluate import score_rankings  # noqa: E402
from pipeline.korean import analyze, analyze_many  # noqa: E402
from pipeline.korquad import DEFAULT_DATASET, load  # noqa: E402
from pipeline.models import SearchHit  # noqa: E402
from pipeline.options import SearchOptions, fuse  # noqa: E402
from pipeline.stages.chunk import chunk_document  # noqa: E402


def main() -> None:
    docs, questions = load(DEFAULT_DATASET)
    questions = questions[: int(sys.argv[1])] if len(sys.argv) > 1 else questions
    chunks = [c for ref, d in docs for c in chunk_document(d, ref)]
    doc_of = [c.document_id for c in chunks]
    texts = [q.text for q in questions]
    rankings = keyword_rankings(analyze_many([c.search_text for c in chunks]), [analyze(t) for t in texts], 30)
    rankings = [fuse(r, [], SearchOptions()) for r in rankings]

    def score(ranked_ids):
        ranked = [([doc_of[i] for i, _ in r[:10]], {q.document_id}) for r, q in zip(ranked_ids, questions, strict=True)]
        return {k: round(v, 4) for k, v in score_rankings(ranked, depth=10).items()
                if k in ("recall@1", "recall@5", "mrr@10")}

    print("keyword only, no rerank", score(rankings), flush=True)
    hits = [[SearchHit(chunks[i].chunk_id, doc_of[i], "", chunks[i].title, 1, 1, chunks[i].heading, "text",
                       chunks[i].text, s) for i, s in r] for r in rankings]
    index_of = {c.chunk_id: i for i, c in enumerate(chunks)}

    def reranked(weights: RerankWeights):
        reranker = LexicalReranker(weights)
        return [[(index_of[h.chunk_id], h.score) for h in reranker.rerank(t, hs, 10)]
                for t, hs in zip(texts, hits, strict=True)]

    full = RerankWeights()
    started = time.perf_counter()
    print("rerank, all signals", full, score(reranked(full)),
          f"{(time.perf_counter() - started) / len(texts) * 1000:.1f} ms a question (wall)", flush=True)
    for name in SIGNALS:
        print("alone", name, score(reranked(full.only(name))), flush=True)
    for name in SIGNALS:
        print("all but", name, score(reranked(replace(full, **{name: 0.0}))), flush=True)


if __name__ == "__main__":
    main()
