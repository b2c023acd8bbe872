"""`hanrag eval`: retrieval metrics on a questions file through the real CLI, answer scoring with a
scripted LLM, the chart, bad input named by line, and the KorQuAD benchmark on a tiny file."""

from __future__ import annotations

import json
import math
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import FIXTURES, SAMPLES, TUNNEL, make_runner, run_cli

from pipeline import eval_questions as ev
from pipeline.evaluate import ndcg_at_k, reciprocal_rank, score_rankings
from pipeline.models import SearchHit

QUESTIONS = FIXTURES / "sample-questions.jsonl"


hanrag = run_cli


def sample_questions(source: str | None = None) -> list[dict]:
    rows = [json.loads(line) for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [row for row in rows if source is None or row["source"] == source]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tunnel_home(tmp_path_factory, embedder) -> Path:
    """The road-tunnel guideline (9 pages) ingested for user `kim`."""
    home = tmp_path_factory.mktemp("eval-home")
    [record] = make_runner(home, embedder).ingest("kim", [(SAMPLES / TUNNEL, TUNNEL)])
    assert record.status == "succeeded", record.reason
    return home


@pytest.fixture(scope="module")
def tunnel_questions(tmp_path_factory) -> Path:
    """The fixture's tunnel questions, split into two categories, plus one asked by its answer only."""
    rows = sample_questions(TUNNEL)
    for row in rows:
        row["category"] = "앞쪽" if row["page"] <= 5 else "뒤쪽"
    rows.append({"question": "보령해저터널에서 외기 절대습도 12.7 g/kg 이상이면 결로 상태는?", "answer": "습윤"})
    return write_jsonl(tmp_path_factory.mktemp("questions") / "tunnel.jsonl", rows)


@pytest.fixture(scope="module")
def tunnel_report(tunnel_home, tunnel_questions, tmp_path_factory) -> tuple[dict, Path]:
    chart = tmp_path_factory.mktemp("chart") / "recall.svg"
    code, out, err = hanrag(tunnel_home, "eval", str(tunnel_questions), "--user", "kim", "--json",
                            "--chart", str(chart))
    assert code == 0, err
    return json.loads(out), chart


# ---------------------------------------------------------------------- through the CLI


def test_the_fixture_questions_are_well_formed_and_name_the_sample_files():
    questions = ev.load_questions(QUESTIONS)
    assert len(questions) >= 20
    assert {q.source for q in questions} == {p.name for p in SAMPLES.glob("*.pdf")}
    assert all(q.page and q.answer and q.category for q in questions)


def test_json_has_the_document_and_page_metrics_all_fractions(tunnel_report):
    report, _ = tunnel_report
    for key in ("recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10", "page_recall@1", "page_recall@5",
                "page_recall@10", "page_mrr@10", "page_ndcg@10", "answer_recall@5"):
        assert 0.0 <= report[key] <= 1.0, key
    assert report["questions"] == len(sample_questions(TUNNEL)) + 1
    assert report["questions"] - report["page_questions"] == 1  # the answer-only question has no page
    assert report["document_questions"] == report["page_questions"]
    assert report["answer_questions"] == report["questions"]
    assert report["recall@1"] <= report["recall@5"] <= report["recall@10"]
    assert report["page_recall@5"] <= report["recall@5"]  # the right page implies the right file
    assert report["latency"]["p50_ms"] <= report["latency"]["p95_ms"]
    assert report["latency"]["count"] == report["questions"]


def test_a_question_is_found_on_the_page_that_holds_its_answer(tunnel_report):
    report, _ = tunnel_report
    by_question = {d["question"]: d for d in report["details"]}
    detail = by_question["누적빈도 60% 조건에서는 하계 기간 중 며칠 동안 결로가 발생하나요?"]
    assert detail["page"] == 8
    assert detail["page_rank"] is not None and detail["page_rank"] <= 3, detail["top"]
    assert detail["answer_rank"] is not None
    found = [d for d in report["details"] if d["page"] is not None]
    assert sum(d["page_rank"] is not None and d["page_rank"] <= 5 for d in found) == \
        round(report["page_recall@5"] * len(found))


def test_categories_are_scored_separately(tunnel_report):
    report, _ = tunnel_report
    categories = report["categories"]
    assert set(categories) == {"앞쪽", "뒤쪽"}
    rows = sample_questions(TUNNEL)
    assert categories["앞쪽"]["questions"] == sum(r["page"] <= 5 for r in rows)
    assert categories["뒤쪽"]["questions"] == sum(r["page"] > 5 for r in rows)
    for metrics in categories.values():
        assert 0.0 <= metrics["page_recall@5"] <= 1.0 and "latency" in metrics


def test_the_chart_is_an_svg_with_one_bar_per_group_and_recall(tunnel_report):
    report, chart = tunnel_report
    root = ET.parse(chart).getroot()
    assert root.tag.endswith("svg")
    titled = [el for el in root.iter() if el.tag.endswith("rect") and el.find("{*}title") is not None]
    assert len(titled) == 3 * 6  # overall + 2 categories, document and page level at k = 1, 5, 10
    labels = "".join(el.text or "" for el in root.iter() if el.tag.endswith("text"))
    assert "앞쪽" in labels and "뒤쪽" in labels and "전체" in labels
    overall_page_r5 = next(el for el in titled if el.find("{*}title").text.startswith("전체 쪽 R@5"))
    assert float(overall_page_r5.find("{*}title").text.split("= ")[1]) == pytest.approx(report["page_recall@5"],
                                                                                       abs=1e-3)


def test_the_text_report_shows_levels_latency_and_categories(tunnel_home, tunnel_questions):
    code, out, _ = hanrag(tunnel_home, "eval", str(tunnel_questions), "--user", "kim", "--k", "5", "--limit", "4")
    assert code == 0
    assert "4 questions, top 5" in out
    assert "document" in out and "page" in out and "p95" in out
    assert "[앞쪽]" in out


def test_the_text_report_lists_the_questions_it_missed(tunnel_home, tmp_path):
    path = write_jsonl(tmp_path / "q.jsonl", [
        {"question": "도로터널 결로 대책 가이드라인은 어떤 터널에 적용하나요?", "source": TUNNEL},
        {"question": "터널 결로 대책의 적용 대상은?", "source": "다른 문서.pdf"},
    ])
    code, out, _ = hanrag(tunnel_home, "eval", str(path), "--user", "kim")
    assert code == 0
    missed = out.split("not in the top 5 (document level):")[1]
    assert "line 2: 터널 결로 대책의 적용 대상은?" in missed and "line 1" not in missed
    assert f"→ {TUNNEL} p." in missed  # what came first instead


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"question": "결로란?", "source": "a.pdf"', "not valid JSON"),
        ('["결로란?"]', "expected a JSON object"),
        ('{"source": "a.pdf"}', '"question" must be a non-empty string'),
        ('{"question": "결로란?", "page": 3}', '"page" needs "source"'),
        ('{"question": "결로란?", "source": "a.pdf", "page": "3"}', '"page" must be a page number'),
        ('{"question": "결로란?"}', 'give "source"'),
        ('{"question": "결로란?", "source": "a.pdf", "pgae": 3}', "unknown field(s) pgae"),
    ],
)
def test_a_bad_line_is_named_by_its_number(tmp_path, line, message):
    path = tmp_path / "questions.jsonl"
    path.write_text('{"question": "첫 질문", "source": "a.pdf"}\n\n' + line + "\n", encoding="utf-8")
    code, out, err = hanrag(tmp_path / "home", "eval", str(path), "--user", "kim")
    assert code == 2 and out == ""
    assert "line 3" in err and message in err


def test_a_cp949_file_is_named_with_its_first_bad_line(tmp_path):
    path = tmp_path / "questions.jsonl"
    path.write_bytes('{"question": "첫 질문", "source": "a.pdf"}\n'.encode()
                     + '{"question": "결로란?", "source": "터널.pdf"}\n'.encode("cp949"))
    code, _, err = hanrag(tmp_path / "home", "eval", str(path), "--user", "kim")
    assert code == 2
    assert "line 2" in err and "UTF-8" in err


def test_usage_errors_are_clear(tmp_path, tunnel_home, tunnel_questions):
    code, _, err = hanrag(tmp_path, "eval", str(tmp_path / "missing.jsonl"), "--user", "kim")
    assert code == 2 and "missing.jsonl" in err
    code, _, err = hanrag(tmp_path, "eval", str(tunnel_questions))
    assert code == 2 and "--user" in err
    code, _, err = hanrag(tmp_path / "empty-home", "eval", str(tunnel_questions), "--user", "kim")
    assert code == 2 and "ingest" in err
    code, _, err = hanrag(tunnel_home, "eval", str(tunnel_questions), "--user", "lee")
    assert code == 2 and "user lee has no documents" in err
    code, _, err = hanrag(tmp_path, "eval", str(tunnel_questions), "--user", "kim", "--chart", "recall.pdf")
    assert code == 2 and "use a .svg or .png" in err


def test_a_png_chart_without_matplotlib_fails_before_searching(tmp_path, tunnel_questions, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as on a machine without it
    code, out, err = hanrag(tmp_path, "eval", str(tunnel_questions), "--user", "kim", "--chart",
                            str(tmp_path / "recall.png"))
    assert code == 2 and out == ""
    assert "matplotlib" in err and ".svg" in err


# ---------------------------------------------------------------------- answers


class ScriptedLLM:
    """Answers every question with the same sentence; as a judge, returns a fixed verdict."""

    def __init__(self, answer: str, verdict: str) -> None:
        self.answer, self.verdict = answer, verdict
        self.judged: list[str] = []

    def complete(self, system: str, prompt: str) -> str:
        if system == ev.JUDGE_SYSTEM_PROMPT:
            self.judged.append(prompt)
            return self.verdict
        raise AssertionError(f"only the judge should complete; got system prompt {system[:40]!r}")

    def stream(self, system: str, prompt: str):
        yield from self.answer.split(" ")[:1]
        for word in self.answer.split(" ")[1:]:
            yield " " + word


def test_answers_are_checked_and_judged_through_the_llm_port(tunnel_home, tmp_path, monkeypatch):
    import pipeline.adapters.llm

    fake = ScriptedLLM("가이드라인은 연장 1km 이상의 하해저 장대 도로터널에 적용됩니다 [1].",
                       '채점: {"accuracy": 2, "detail": 1, "reason": "정확함"}')
    monkeypatch.setattr(pipeline.adapters.llm, "build_llm", lambda settings: fake)
    rows = [row for row in sample_questions(TUNNEL) if row["page"] in (3, 8)]
    assert [row["answer"] for row in rows] == ["1km", "36일"]
    path = write_jsonl(tmp_path / "q.jsonl", rows)
    code, out, err = hanrag(tunnel_home, "eval", str(path), "--user", "kim", "--json", "--answers", "--judge")
    assert code == 0, err
    report = json.loads(out)
    assert report["answers_asked"] == 2
    assert report["answer_contains"] == 0.5  # "1km" is in the scripted answer, "36일" is not
    assert report["judge_accuracy"] == 2.0 and report["judge_detail"] == 1.0
    assert report["judge_failures"] == 0
    assert len(fake.judged) == 2
    assert "[모범 답안]\n1km" in fake.judged[0] and "1km 이상의 하해저" in fake.judged[0]
    assert "정확성" in ev.JUDGE_SYSTEM_PROMPT and "상세성" in ev.JUDGE_SYSTEM_PROMPT


def test_answers_without_an_llm_are_extractive_and_judge_needs_one(tunnel_home, tmp_path):
    path = write_jsonl(tmp_path / "q.jsonl", [r for r in sample_questions(TUNNEL) if r["page"] == 3])
    code, out, err = hanrag(tunnel_home, "eval", str(path), "--user", "kim", "--json", "--answers")
    assert code == 0, err
    report = json.loads(out)
    assert report["answers_by"] == "extractive" and report["answers_asked"] == 1
    assert report["answer_contains"] == 1.0  # the extractive answer quotes the sentence with "1km"
    assert "1km" in report["details"][0]["answer"]
    code, _, err = hanrag(tunnel_home, "eval", str(path), "--user", "kim", "--answers", "--judge")
    assert code == 2 and "--judge needs an LLM" in err


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ('{"accuracy": 1, "detail": 2, "reason": "일부 맞음"}', (1, 2)),
        ('평가 결과입니다.\n```json\n{"accuracy": 0, "detail": 0}\n```', (0, 0)),
        ('{"accuracy": 3, "detail": 1}', None),
        ('{"accuracy": "2", "detail": 1}', None),
        ("정확성 2점, 상세성 1점", None),
    ],
)
def test_judge_replies_are_read_on_the_0_to_2_scale(reply, expected):
    assert ev.parse_judgement(reply) == expected


# ---------------------------------------------------------------------- metrics by hand


def hit(source: str, page_start: int, page_end: int, text: str = "") -> SearchHit:
    return SearchHit("c", "d", source, "", page_start, page_end, "", "text", text, 0.0)


def test_ndcg_mrr_and_recall_by_hand():
    ranking, relevant = ["a", "x", "b", "a"], {"a", "b"}
    # DCG = 1/log2(2) + 1/log2(4) = 1.5; ideal = 1/log2(2) + 1/log2(3)
    assert ndcg_at_k(ranking, relevant, 10) == pytest.approx(1.5 / (1 + 1 / math.log2(3)))
    assert ndcg_at_k(["x", "a"], {"a"}, 10) == pytest.approx(1 / math.log2(3))
    assert ndcg_at_k(["x", "a"], {"a"}, 1) == 0.0
    scores = score_rankings([(["x", "a"], {"a"}), (["a"], {"a"}), (["x", "y"], {"a"})], ks=(1, 5), depth=10)
    assert scores["recall@1"] == pytest.approx(1 / 3)
    assert scores["recall@5"] == pytest.approx(2 / 3)
    assert scores["mrr@10"] == pytest.approx((0.5 + 1 + 0) / 3)
    assert reciprocal_rank(["x", "y", "a"], {"a"}, 2) == 0.0


def test_page_relevance_counts_a_chunk_spanning_the_page_and_answers_ignore_spacing():
    question = ev.EvalQuestion("질문", 1, source="a.pdf", page=3, answer="5,000 억원")
    hits = [hit("b.pdf", 3, 3, "5,000억원"), hit("a.pdf", 1, 1), hit("a.pdf", 2, 3, "총 5,000\n억원 규모")]
    levels = ev.relevance(question, hits)
    assert reciprocal_rank(*levels["document"], 10) == 0.5
    assert reciprocal_rank(*levels["page"], 10) == pytest.approx(1 / 3)
    assert reciprocal_rank(*levels["answer"], 10) == pytest.approx(1 / 3)  # b.pdf has it, but the wrong file
    only_answer = ev.EvalQuestion("질문", 1, answer="5,000억원")
    assert set(ev.relevance(only_answer, hits)) == {"answer"}
    assert reciprocal_rank(*ev.relevance(only_answer, hits)["answer"], 10) == 1.0


# ---------------------------------------------------------------------- KorQuAD


def test_korquad_missing_dataset_is_a_clear_error(tmp_path):
    code, _, err = hanrag(tmp_path, "eval", "--dataset", "korquad", "--dataset-path", str(tmp_path / "nope.json"))
    assert code == 2
    assert "KorQuAD dataset not found" in err and "nope.json" in err


def test_korquad_benchmark_runs_on_a_small_file(tmp_path):
    data = {"data": [
        {"title": "세종대왕", "paragraphs": [{"context": "세종대왕은 1443년에 집현전 학자들과 훈민정음을 창제하였다.",
                                           "qas": [{"id": "1", "question": "훈민정음은 몇 년에 창제되었나?",
                                                    "answers": [{"text": "1443년", "answer_start": 6}]}]}]},
        {"title": "이순신", "paragraphs": [{"context": "이순신은 한산도 대첩에서 학익진을 펼쳐 왜군을 크게 무찔렀다.",
                                         "qas": [{"id": "2", "question": "한산도 대첩에서 이순신이 펼친 진법은?",
                                                  "answers": [{"text": "학익진", "answer_start": 14}]}]}]},
    ]}
    dataset = tmp_path / "dev.json"
    dataset.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    code, out, err = hanrag(tmp_path / "home", "eval", "--dataset", "korquad", "--dataset-path", str(dataset),
                            "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["paragraphs"] == 2 and result["questions"] == 2
    default = result["variants"][-1]
    assert default["variant"].startswith("hybrid_search")
    assert default["recall@1"] == 1.0  # two unrelated paragraphs: each question finds its own
    assert all(0.0 <= row["mrr@10"] <= 1.0 for row in result["variants"])
    assert (tmp_path / "home" / "korquad" / "korquad.db").exists()
    assert result["embedding"]["embedded"] == result["chunks"]

    # a second run embeds nothing: every passage vector comes from the cache of the first
    code, out, err = hanrag(tmp_path / "home", "eval", "--dataset", "korquad", "--dataset-path", str(dataset),
                            "--json")
    assert code == 0, err
    again = json.loads(out)
    assert again["embedding"]["embedded"] == 0 and again["embedding"]["reused"] == again["chunks"]
    assert again["variants"][-1]["recall@1"] == 1.0
