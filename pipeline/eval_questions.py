"""`hanrag eval QUESTIONS.jsonl`: retrieval quality on your own documents, and optionally answer quality.

Each line of the file is one JSON object:

    {"question": "…", "source": "file.pdf", "page": 3, "answer": "1km", "category": "터널"}

Only `question` is required, with at least one of `source` or `answer`. What counts as a hit:

- document level: a chunk of `source` (the file name as ingested, as `hanrag search` shows it);
- page level: a chunk of `source` whose pages include `page` (1-based);
- answer level: a chunk whose text contains `answer` (whitespace ignored), of `source` when given.

Every question is searched once through `Retriever.search` — the hybrid search `hanrag search` and
`hanrag ask` use — and each level is scored over the questions that define it, with the metrics of
`pipeline.evaluate`. Latency is the whole search as a user waits for it (query embedding included).
"""

from __future__ import annotations

import json
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import PipelineError
from pipeline.evaluate import LatencySummary, score_rankings
from pipeline.models import SearchHit
from pipeline.ports import LLM

KS = (1, 5, 10)
DEPTH = 10
LEVELS = ("document", "page", "answer")
PREFIX = {"document": "", "page": "page_", "answer": "answer_"}


class BadQuestions(PipelineError):
    """A questions file that cannot be read; the message names the line."""


@dataclass(frozen=True)
class EvalQuestion:
    question: str
    line: int
    source: str | None = None
    page: int | None = None
    answer: str | None = None
    category: str | None = None


def load_questions(path: Path) -> list[EvalQuestion]:
    """The questions of a JSON Lines file; blank lines and lines starting with # are skipped."""
    if not path.is_file():
        raise FileNotFoundError(f"questions file not found: {path}")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise BadQuestions(f"{path}, line {line}: not UTF-8 text (save the file as UTF-8; CP949/EUC-KR is not read)") \
            from None
    questions = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        questions.append(parse_question(line, number, path))
    if not questions:
        raise BadQuestions(f"{path}: no questions in the file")
    return questions


def parse_question(line: str, number: int, path: Path | str = "questions") -> EvalQuestion:
    where = f"{path}, line {number}"
    try:
        item = json.loads(line)
    except ValueError as error:
        raise BadQuestions(f"{where}: not valid JSON ({error.args[0] if error.args else error})") from None
    if not isinstance(item, dict):
        raise BadQuestions(f"{where}: expected a JSON object like "
                           '{"question": "…", "source": "file.pdf", "page": 3}')
    unknown = set(item) - {"question", "source", "page", "answer", "category"}
    if unknown:
        raise BadQuestions(f"{where}: unknown field(s) {', '.join(sorted(unknown))} "
                           "(use question, source, page, answer, category)")
    question = item.get("question")
    if not isinstance(question, str) or not question.strip():
        raise BadQuestions(f"{where}: \"question\" must be a non-empty string")
    for name in ("source", "answer", "category"):
        value = item.get(name)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise BadQuestions(f"{where}: \"{name}\" must be a non-empty string")
    page = item.get("page")
    if page is not None and (isinstance(page, bool) or not isinstance(page, int) or page < 1):
        raise BadQuestions(f"{where}: \"page\" must be a page number (1, 2, …), not {page!r}")
    if page is not None and item.get("source") is None:
        raise BadQuestions(f"{where}: \"page\" needs \"source\" (the file the page is in)")
    if item.get("source") is None and item.get("answer") is None:
        raise BadQuestions(f"{where}: give \"source\" (the file that answers it) and/or \"answer\" "
                           "(a string a retrieved chunk must contain)")
    return EvalQuestion(question.strip(), number, item.get("source"), page, item.get("answer"), item.get("category"))


# ---------------------------------------------------------------------- relevance


def _squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


def relevance(question: EvalQuestion, hits: Sequence[SearchHit]) -> dict[str, tuple[list, set]]:
    """(ranking, relevant ids) per level the question defines, for the functions of `pipeline.evaluate`."""
    levels: dict[str, tuple[list, set]] = {}
    if question.source is not None:
        levels["document"] = ([hit.source for hit in hits], {question.source})
    if question.page is not None:
        wanted = (question.source, question.page)
        ranking = [wanted if hit.source == question.source and hit.page_start <= question.page <= hit.page_end
                   else (hit.source, hit.page_start) for hit in hits]
        levels["page"] = (ranking, {wanted})
    if question.answer is not None:
        needle = _squeeze(question.answer)
        ranking = ["answer" if needle in _squeeze(hit.text) and question.source in (None, hit.source)
                   else f"miss-{rank}" for rank, hit in enumerate(hits)]
        levels["answer"] = (ranking, {"answer"})
    return levels


# ---------------------------------------------------------------------- answers


JUDGE_SYSTEM_PROMPT = (
    "당신은 한국어 질의응답 시스템의 답변을 채점하는 엄격한 평가자입니다. "
    "질문, 모범 답안, 시스템 답변을 읽고 다음 기준으로 채점하세요.\n"
    "정확성(accuracy): 2점 = 모범 답안과 사실이 일치하고 틀린 내용이 없음, 1점 = 일부만 맞거나 "
    "사소한 오류가 있음, 0점 = 틀렸거나 답하지 못함.\n"
    "상세성(detail): 2점 = 질문에 필요한 근거와 맥락을 충분히 설명함, 1점 = 답은 있으나 설명이 부족함, "
    "0점 = 설명이 없거나 질문과 무관함.\n"
    '다른 말 없이 JSON 한 줄로만 답하세요: {"accuracy": 0|1|2, "detail": 0|1|2, "reason": "한 문장 근거"}'
)


def judge_prompt(question: str, expected: str, answer: str) -> str:
    return f"[질문]\n{question}\n\n[모범 답안]\n{expected}\n\n[시스템 답변]\n{answer}\n\n채점 결과(JSON):"


def parse_judgement(text: str) -> tuple[int, int] | None:
    """(accuracy, detail) from the judge's reply, each 0–2; None when the reply holds no such scores."""
    for match in re.finditer(r"\{[^{}]*\}", text or ""):
        try:
            item = json.loads(match.group(0))
        except ValueError:
            continue
        scores = item.get("accuracy"), item.get("detail")
        if all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= 2 for s in scores):
            return scores[0], scores[1]
    return None


@dataclass
class AnswerScores:
    asked: int = 0
    contains: list[bool] = field(default_factory=list)
    accuracy: list[int] = field(default_factory=list)
    detail: list[int] = field(default_factory=list)
    judge_failures: int = 0

    def to_dict(self) -> dict:
        result: dict = {"answers_asked": self.asked, "answers_with_expected": len(self.contains)}
        if self.contains:
            result["answer_contains"] = round(sum(self.contains) / len(self.contains), 4)
        if self.accuracy:
            result["judge_accuracy"] = round(sum(self.accuracy) / len(self.accuracy), 4)
            result["judge_detail"] = round(sum(self.detail) / len(self.detail), 4)
        if self.accuracy or self.judge_failures:
            result["judge_failures"] = self.judge_failures
        return result


# ---------------------------------------------------------------------- the run


class ForgetfulHistory:
    """A `HistoryStore` that keeps nothing: every evaluated question is a first turn, and the user's
    real chat history is left alone."""

    def append(self, user_id: str, session_id: str, role: str, text: str,
               citations: list[dict] | None = None, now: float | None = None) -> None:
        return None

    def turns(self, user_id: str, session_id: str, limit: int = 50) -> list[dict]:
        return []

    def sessions(self, user_id: str, limit: int = 200) -> list[str]:
        return []

    def delete_session(self, user_id: str, session_id: str) -> int:
        return 0


Search = Callable[[str], list[SearchHit]]
Ask = Callable[[str], str]


@dataclass
class QuestionResult:
    question: EvalQuestion
    hits: list[SearchHit]
    seconds: float
    answer: str | None = None
    judged: tuple[int, int] | None = None

    def first_rank(self, level: str) -> int | None:
        """1-based rank of the first hit relevant at `level`; None when none is, or the level is undefined."""
        ranking, relevant = relevance(self.question, self.hits).get(level, ([], set()))
        return next((rank for rank, item in enumerate(ranking, start=1) if item in relevant), None)


def run_questions(questions: Sequence[EvalQuestion], search: Search, ask: Ask | None = None,
                  judge: LLM | None = None, progress: Callable[[int, int], None] | None = None
                  ) -> list[QuestionResult]:
    """Search every question (and ask it, and judge the answer, when asked to)."""
    results = []
    for position, question in enumerate(questions, start=1):
        started = time.perf_counter()
        hits = search(question.question)
        result = QuestionResult(question, hits, time.perf_counter() - started)
        if ask is not None:
            result.answer = ask(question.question)
            if judge is not None and question.answer is not None:
                reply = judge.complete(JUDGE_SYSTEM_PROMPT,
                                       judge_prompt(question.question, question.answer, result.answer))
                result.judged = parse_judgement(reply)
        results.append(result)
        if progress:
            progress(position, len(questions))
    return results


def _metrics(results: Iterable[QuestionResult], judged: bool) -> dict:
    results = list(results)
    metrics: dict = {"questions": len(results)}
    for level in LEVELS:
        pairs = [levels[level] for r in results if level in (levels := relevance(r.question, r.hits))]
        metrics[f"{level}_questions"] = len(pairs)
        if pairs:
            metrics.update({PREFIX[level] + name: round(value, 4)
                            for name, value in score_rankings(pairs, KS, DEPTH).items()})
    metrics["latency"] = LatencySummary.of([r.seconds for r in results]).to_dict()
    asked = [r for r in results if r.answer is not None]
    if asked:
        scores = AnswerScores(asked=len(asked))
        for r in asked:
            if r.question.answer is None:
                continue
            scores.contains.append(_squeeze(r.question.answer) in _squeeze(r.answer or ""))
            if r.judged is not None:
                scores.accuracy.append(r.judged[0])
                scores.detail.append(r.judged[1])
            elif judged:
                scores.judge_failures += 1
        metrics.update(scores.to_dict())
    return metrics


def summarize(results: Sequence[QuestionResult], judged: bool = False) -> dict:
    """Overall metrics (document level unprefixed, then page_…, answer_…), per category, and per question."""
    summary = _metrics(results, judged)
    by_category: dict[str, list[QuestionResult]] = defaultdict(list)
    for result in results:
        if result.question.category is not None:
            by_category[result.question.category].append(result)
    summary["categories"] = {name: _metrics(group, judged) for name, group in sorted(by_category.items())}
    summary["details"] = [{
        "line": r.question.line, "question": r.question.question, "category": r.question.category,
        "source": r.question.source, "page": r.question.page, "answer_expected": r.question.answer is not None,
        **{f"{level}_rank": r.first_rank(level) for level in LEVELS},
        "top": [{"source": h.source, "page": h.page_start, "page_end": h.page_end} for h in r.hits[:3]],
        "seconds": round(r.seconds, 4),
        **({"answer": r.answer} if r.answer is not None else {}),
        **({"judged": {"accuracy": r.judged[0], "detail": r.judged[1]}} if r.judged else {}),
    } for r in results]
    return summary


# ---------------------------------------------------------------------- report


def format_report(summary: dict, k: int) -> str:
    """The table a person reads: one row per level overall, then one block per category."""
    lines = [f"{summary['questions']} questions, top {k} of the hybrid search"
             + (f"; answers by {summary['answers_by']}" if "answers_by" in summary else "")]
    lines += _table(summary)
    for name, metrics in summary["categories"].items():
        lines += ["", f"[{name}] {metrics['questions']} questions", *_table(metrics)]
    return "\n".join(lines)


def _table(metrics: dict) -> list[str]:
    rows = [f"  {'level':<9} {'n':>4} {'R@1':>6} {'R@5':>6} {'R@10':>6} {'MRR@10':>7} {'nDCG@10':>8}"]
    for level in LEVELS:
        p = PREFIX[level]
        if not metrics.get(f"{level}_questions"):
            continue
        rows.append(f"  {level:<9} {metrics[f'{level}_questions']:>4} {metrics[f'{p}recall@1']:>6.3f} "
                    f"{metrics[f'{p}recall@5']:>6.3f} {metrics[f'{p}recall@10']:>6.3f} "
                    f"{metrics[f'{p}mrr@{DEPTH}']:>7.3f} {metrics[f'{p}ndcg@{DEPTH}']:>8.3f}")
    latency = metrics["latency"]
    rows.append(f"  search latency p50 {latency['p50_ms']:.0f} ms, p95 {latency['p95_ms']:.0f} ms "
                "(query embedding included)")
    if "answers_asked" in metrics:
        line = f"  answers: {metrics['answers_asked']} asked"
        if "answer_contains" in metrics:
            line += f", expected string in the answer {metrics['answer_contains']:.3f}" \
                    f" ({metrics['answers_with_expected']} with an expected answer)"
        if "judge_accuracy" in metrics:
            line += f"; judge (0–2) accuracy {metrics['judge_accuracy']:.2f}, detail {metrics['judge_detail']:.2f}"
        if metrics.get("judge_failures"):
            line += f", {metrics['judge_failures']} unreadable verdicts"
        rows.append(line)
    return rows


def misses(summary: dict, level: str = "page", k: int = 5) -> list[str]:
    """One line per question scored at `level` but not found within its top k, with what came first instead."""
    needs = {"document": "source", "page": "page", "answer": None}[level]
    lines = []
    for detail in summary["details"]:
        rank = detail[f"{level}_rank"]
        scored = detail[needs] is not None if needs else detail.get("answer_expected", False)
        if scored and (rank is None or rank > k):
            top = ", ".join(f"{t['source']} p.{t['page']}" for t in detail["top"]) or "nothing"
            lines.append(f"  line {detail['line']}: {detail['question']}  → {top}")
    return lines


# ---------------------------------------------------------------------- chart


def check_chart_path(path: Path) -> Path:
    """Fail before any search when the chart could not be written: an unknown suffix, or a PNG without matplotlib."""
    suffix = path.suffix.lower()
    if suffix not in (".svg", ".png"):
        raise PipelineError(f"chart {path}: use a .svg or .png file name")
    if suffix == ".png":
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise PipelineError(f"chart {path}: a PNG needs matplotlib, which is not installed; "
                                "write an .svg instead (any browser shows it)") from None
    if not path.parent.is_dir():
        raise PipelineError(f"chart {path}: no such folder {path.parent}")
    return path


def write_chart(summary: dict, path: Path) -> None:
    """Recall@1/5/10 at document and page level, overall and per category: SVG (no dependency), or PNG
    when matplotlib is installed."""
    check_chart_path(path)
    groups = [("전체", summary)] + list(summary["categories"].items())
    series = [(level, k) for level in ("document", "page") for k in KS
              if any(m.get(f"{level}_questions") for _, m in groups)]
    if path.suffix.lower() == ".svg":
        path.write_text(_svg(groups, series), encoding="utf-8")
    else:
        _png(groups, series, path)


_COLOURS = {("document", 1): "#9ecae1", ("document", 5): "#4292c6", ("document", 10): "#08519c",
            ("page", 1): "#fdae6b", ("page", 5): "#f16913", ("page", 10): "#a63603"}
_LABEL = {"document": "문서", "page": "쪽"}


def _value(metrics: dict, level: str, k: int) -> float | None:
    if not metrics.get(f"{level}_questions"):
        return None
    return metrics[f"{PREFIX[level]}recall@{k}"]


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _svg(groups: list[tuple[str, dict]], series: list[tuple[str, int]]) -> str:
    bar, gap, left, top, height = 14, 18, 56, 74, 240
    group_width = max(1, len(series)) * bar + gap
    width = max(left + len(groups) * group_width + 20, left + 3 * 92 + 20)
    total_height = top + height + 46
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{total_height}" '
           f'viewBox="0 0 {width} {total_height}" font-family="sans-serif" font-size="12">',
           '<rect width="100%" height="100%" fill="white"/>',
           f'<text x="{left}" y="20" font-size="15" font-weight="bold">검색 재현율 Recall@k (hanrag eval)</text>']
    for level, k in series:  # legend: one row per level
        x = left + KS.index(k) * 92
        y = 30 + (16 if level == "page" else 0)
        out.append(f'<rect x="{x}" y="{y}" width="10" height="10" fill="{_COLOURS[level, k]}"/>'
                   f'<text x="{x + 14}" y="{y + 9}">{_LABEL[level]} R@{k}</text>')
    for tick in range(0, 11, 2):  # axis and grid
        y = top + height - tick / 10 * height
        out.append(f'<line x1="{left - 4}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
                   f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{tick / 10:.1f}</text>')
    for g, (name, metrics) in enumerate(groups):
        x0 = left + g * group_width + gap / 2
        for n, (level, k) in enumerate(series):
            value = _value(metrics, level, k)
            if value is None:
                continue
            h = value * height
            x = x0 + n * bar
            out.append(f'<rect x="{x:.1f}" y="{top + height - h:.1f}" width="{bar - 2}" height="{h:.1f}" '
                       f'fill="{_COLOURS[level, k]}"><title>{_escape(name)} {_LABEL[level]} R@{k} = '
                       f'{value:.3f}</title></rect>')
        label = name if len(name) <= 12 else name[:11] + "…"
        cx = x0 + len(series) * bar / 2
        out.append(f'<text x="{cx:.1f}" y="{top + height + 16}" text-anchor="middle">{_escape(label)}</text>'
                   f'<text x="{cx:.1f}" y="{top + height + 30}" text-anchor="middle" fill="#666">'
                   f'n={metrics["questions"]}</text>')
    out.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + height}" stroke="#333"/>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _png(groups: list[tuple[str, dict]], series: list[tuple[str, int]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(max(5.0, 1.2 * len(groups) + 2), 3.5))
    width = 0.8 / max(1, len(series))
    for n, (level, k) in enumerate(series):
        values = [_value(m, level, k) for _, m in groups]
        xs = [g + n * width for g, v in enumerate(values) if v is not None]
        axes.bar(xs, [v for v in values if v is not None], width, color=_COLOURS[level, k],
                 label=f"{level} R@{k}")
    axes.set_xticks([g + 0.4 - width / 2 for g in range(len(groups))],
                    [name for name, _ in groups])
    axes.set_ylim(0, 1)
    axes.set_ylabel("recall")
    axes.legend(fontsize="small", ncols=3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)

