"""Chat latency: time to the first streamed token and to the whole answer, on the corpus/ko index.

Two ways a user meets it: in process (`ChatService.respond`, what the chat Lambda runs) and through
`hanrag serve` (a real uvicorn on a loopback port, POST /api/chat read as Server-Sent Events by an
HTTP client, the way the page reads it). Each round asks every question of QUESTIONS in one session,
so the follow-ups go through the rewrite. The index is built once under --home (unchanged files are
skipped on later runs). Answers are extractive unless HANRAG_LLM names a model the machine can reach.

    python bench/chat.py [--home bench/out/chat-home] [--rounds 3] [--json]

Targets (issue 5): with the extractive fallback, first token p95 ≤ 300 ms, whole answer p95 ≤ 1 s.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chat.retrieve import Retriever  # noqa: E402
from chat.service import ChatService, ChatTurn  # noqa: E402
from pipeline.adapters.llm import build_llm  # noqa: E402
from pipeline.adapters.local.history import SqliteHistory  # noqa: E402
from pipeline.config import Settings  # noqa: E402
from pipeline.evaluate import LatencySummary  # noqa: E402
from pipeline.runner import LocalRunner, collect_files  # noqa: E402

DEFAULT_CORPUS = ROOT.parent / "shared" / "data" / "corpus" / "ko"
USER = "bench"
QUESTIONS = [
    "지방은행이 시중은행으로 전환하려면 어떤 인가 절차를 거쳐야 하나요?",
    "그럼 심사 기간은 얼마나 걸려?",
    "핀테크 혁신펀드 2호 펀드는 얼마 규모로 조성되나요?",
    "그럼 투자 대상은?",
    "도로터널 결로대책 가이드라인은 연장 몇 km 이상의 터널에 적용하나요?",
    "청년농 신용보증의 보증 한도는 얼마인가요?",
    "금융권 상생금융의 주요 추진 실적은 무엇인가요?",
    "국가안전시스템 개편 종합대책의 핵심 과제는 무엇인가요?",
    "학교도서관 진흥 기본계획의 추진 기간은?",
    "국립대학 육성사업의 지원 규모는 얼마인가요?",
    "2023~2027 국가재정운용계획의 재정수지 전망은?",
    "향후 통화신용정책은 어떤 방향으로 운용되나요?",
    "항공훈련기관 지정 현황은 어떻게 되나요?",
    "중소벤처기업부 2021년 업무계획의 주요 과제는?",
]


def build_index(runner: LocalRunner, corpus: Path) -> None:
    records = runner.ingest(USER, collect_files([corpus]))
    counts = {s: sum(r.status == s for r in records) for s in ("succeeded", "skipped", "failed")}
    chunks = runner.index.db.execute("SELECT count(*) FROM chunks WHERE user_id = ?", (USER,))[0][0]
    print(f"index: {len(records)} files ({counts['succeeded']} ingested now, {counts['skipped']} already there, "
          f"{counts['failed']} failed), {chunks} chunks", file=sys.stderr)


def in_process(chat: ChatService, rounds: int) -> tuple[list[float], list[float]]:
    first, whole = [], []
    for _ in range(rounds):
        session = uuid.uuid4().hex[:12]
        for question in QUESTIONS:
            started = time.perf_counter()
            first_at = None
            for event in chat.respond(USER, session, question):
                if first_at is None:
                    first_at = time.perf_counter()
                if isinstance(event, ChatTurn):
                    whole.append(time.perf_counter() - started)
            first.append((first_at or time.perf_counter()) - started)
    return first, whole


def over_http(settings: Settings, runner: LocalRunner, rounds: int, llm) -> tuple[list[float], list[float]]:
    import httpx
    import uvicorn

    from pipeline.serve import local_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = local_app(settings, embedder=runner.embedder, llm=llm)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    first, whole = [], []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            client.post("/api/login", json={"user": USER}).raise_for_status()
            for _ in range(rounds):
                session = uuid.uuid4().hex[:12]
                for question in QUESTIONS:
                    started = time.perf_counter()
                    first_at = None
                    with client.stream("POST", "/api/chat", json={"session": session, "message": question}) as r:
                        for line in r.iter_lines():
                            if line.startswith("event: token") and first_at is None:
                                first_at = time.perf_counter()
                            elif line.startswith("event: final"):
                                whole.append(time.perf_counter() - started)
                    first.append((first_at or time.perf_counter()) - started)
    finally:
        server.should_exit = True
        thread.join(10)
    return first, whole


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, default=ROOT / "bench" / "out" / "chat-home")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    env_settings = Settings.from_env()
    settings = Settings(home=args.home, llm=env_settings.llm)
    llm = build_llm(settings.llm)
    runner = LocalRunner.from_settings(settings)
    build_index(runner, args.corpus)
    chat = ChatService(Retriever(runner.embedder, runner.index), SqliteHistory(runner.index.db), runner.registry, llm)
    chat.respond(USER, "warm-up", QUESTIONS[0]).__next__()  # load the model and Kiwi before timing

    results = {"answers": settings.llm.kind if llm else "extractive", "questions": len(QUESTIONS),
               "rounds": args.rounds}
    for name, (first, whole) in (("in_process", in_process(chat, args.rounds)),
                                 ("http_sse", over_http(settings, runner, args.rounds, llm))):
        results[name] = {"first_token": LatencySummary.of(first).to_dict(),
                         "whole_answer": LatencySummary.of(whole).to_dict()}
    if args.json:
        print(json.dumps(results, ensure_ascii=False, indent=1))
        return 0
    print(f"answers: {results['answers']} · {len(QUESTIONS)} questions × {args.rounds} rounds")
    print(f"{'path':<12} {'first token p50':>16} {'p95':>8} {'whole answer p50':>17} {'p95':>8}")
    for name in ("in_process", "http_sse"):
        f, w = results[name]["first_token"], results[name]["whole_answer"]
        print(f"{name:<12} {f['p50_ms']:>13.0f} ms {f['p95_ms']:>5.0f} ms "
              f"{w['p50_ms']:>14.0f} ms {w['p95_ms']:>5.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
