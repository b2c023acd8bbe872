"""Soak: ingest real corpora several times over while killing the ingest process and searching.

Round 1 ingests `corpus/ko`, `corpus/formats` and `corpus/hard` for one user with `hanrag ingest`
in a child process; rounds 2… change a third of the PDFs and text files (a comment appended after
`%%EOF` or a line appended: new versions, same words) and ingest again. In every round the child is
SIGKILLed at random moments and restarted until a run completes, while a thread of this process
searches the same index continuously. At the end:

    documents lost     readable files that are not in the index as exactly their last version
    duplicate chunks   chunks of a document's older version, or stored twice
    orphan rows        keyword or vector rows without their chunk, chunks without either
    failed searches    searches that raised, or returned another user's or no document's text

    python bench/soak.py [--rounds 3] [--kills 3] [--seed 7] [--max-mb 1] [--corpus DIR ...]

Reads ../shared/data/corpus. Every kill restarts the file being worked on, so the time depends on
where the kills land: 20–40 minutes on 2 cores with the defaults, most of it embedding.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "corpus"
DEFAULT_CORPORA = [DATA / "ko", DATA / "formats", DATA / "hard"]
USER = "soak"
QUERIES = ["국가재정운용계획 주요 내용", "중소벤처기업부 업무계획", "도로터널 결로 대책", "청년농 신용보증",
           "지방은행 시중은행 전환 인가", "통화신용정책 방향", "revenue by segment", "학교도서관 진흥"]


def hanrag(home: Path, *args: str) -> subprocess.Popen:
    script = Path(sys.executable).parent / "hanrag"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "pipeline.cli"]
    env = {**os.environ, "HANRAG_HOME": str(home), "HANRAG_PROGRESS": "0"}
    return subprocess.Popen([*command, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


class Searcher(threading.Thread):
    """Searches the index while it is being written and killed; counts what a user would notice."""

    def __init__(self, home: Path) -> None:
        super().__init__(daemon=True)
        self.home, self.stop, self.searches, self.failures = home, threading.Event(), 0, []

    def run(self) -> None:
        from chat.retrieve import Retriever
        from pipeline.config import Settings
        from pipeline.runner import LocalRunner

        while not (self.home / "hanrag.db").exists() and not self.stop.is_set():
            time.sleep(0.2)
        runner = LocalRunner.from_settings(Settings(home=self.home))
        retriever = Retriever(runner.embedder, runner.index)
        while not self.stop.is_set():
            query = random.choice(QUERIES)
            try:
                hits = retriever.search(USER, query, 10)
                stray = [h for h in hits if not h.text]
                if stray:
                    self.failures.append(f"{query}: {len(stray)} empty hits")
            except Exception as error:  # a failed search is the figure we count
                self.failures.append(f"{query}: {type(error).__name__}: {error}")
            self.searches += 1
            time.sleep(0.1)


def change_some(inbox: Path, rng: random.Random, round_number: int) -> int:
    """New versions of a third of the PDFs and text files, their words unchanged."""
    candidates = sorted(p for p in inbox.rglob("*") if p.suffix.lower() in (".pdf", ".txt", ".md", ".html")
                        and p.stat().st_size > 100)
    chosen = rng.sample(candidates, k=len(candidates) // 3)
    for path in chosen:
        tail = f"\n% soak round {round_number}\n" if path.suffix.lower() == ".pdf" else f"\n\nround {round_number}\n"
        with path.open("ab") as file:
            file.write(tail.encode())
    return len(chosen)


def ingest_with_kills(home: Path, inbox: Path, rng: random.Random, kills: int) -> tuple[int, list[dict]]:
    """Run `hanrag ingest` until one run completes, killing it up to `kills` times first."""
    survived = 0
    while True:
        child = hanrag(home, "ingest", str(inbox), "--user", USER, "--json")
        if survived < kills:
            try:
                child.wait(timeout=rng.uniform(4.0, 40.0))
            except subprocess.TimeoutExpired:
                child.send_signal(signal.SIGKILL)
                child.wait()
                survived += 1
                continue
        out, _ = child.communicate()
        return survived, [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--kills", type=int, default=3, help="kills per round")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--corpus", type=Path, nargs="+", default=DEFAULT_CORPORA)
    parser.add_argument("--max-mb", type=float, default=1.0,
                        help="leave out bigger files (the 3 MB novel alone takes ~10 minutes to embed)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    random.seed(args.seed)

    from pipeline.adapters.local.database import Database
    from pipeline.adapters.local.integrity import check_integrity

    with tempfile.TemporaryDirectory(prefix="hanrag-soak-") as tmp:
        home, inbox = Path(tmp) / "home", Path(tmp) / "inbox"
        skipped = []
        for folder in args.corpus:
            shutil.copytree(folder, inbox / folder.name)
            for path in (inbox / folder.name).rglob("*"):
                if path.is_file() and path.stat().st_size > args.max_mb * 2**20:
                    skipped.append(path.name)
                    path.unlink()
        searcher = Searcher(home)
        searcher.start()
        started, total_kills, records = time.perf_counter(), 0, []
        for round_number in range(1, args.rounds + 1):
            changed = change_some(inbox, rng, round_number) if round_number > 1 else 0
            kills, records = ingest_with_kills(home, inbox, rng, args.kills)
            total_kills += kills
            done = {s: sum(r["status"] == s for r in records) for s in ("succeeded", "skipped", "failed")}
            print(f"round {round_number}: {changed} files changed, {kills} kills survived, final run: {done}",
                  flush=True)
        searcher.stop.set()
        searcher.join()
        wall = time.perf_counter() - started

        db = Database(home / "hanrag.db")
        report = check_integrity(db)
        readable = {r["source"] for r in records if r["status"] in ("succeeded", "skipped")}
        indexed = dict(db.execute("SELECT source, count(*) FROM chunks WHERE user_id = ? GROUP BY source", (USER,)))
        lost = sorted(s for s in readable if not indexed.get(s))
        stale = db.execute("SELECT count(*) FROM chunks c JOIN documents d ON d.user_id = c.user_id AND"
                           " d.document_id = c.document_id WHERE c.version != d.version")[0][0]
        orphans = sum(int(p.rsplit(": ", 1)[1]) for p in report.problems if "without" in p)

    print(f"\nsoak: {args.rounds} rounds over {', '.join(c.name for c in args.corpus)}; {wall / 60:.1f} min")
    print(f"  files                {len(records)}" + (f" (left out as larger than {args.max_mb} MB: "
                                                        f"{', '.join(skipped)})" if skipped else ""))
    print(f"  kills survived       {total_kills}")
    print(f"  documents indexed    {len(indexed)} ({sum(indexed.values())} chunks)")
    print(f"  documents lost       {len(lost)}" + (f"  {lost}" if lost else ""))
    print(f"  duplicate chunks     {stale}")
    print(f"  orphan rows          {orphans}")
    print(f"  searches run         {searcher.searches}")
    failures = searcher.failures
    print(f"  failed searches      {len(failures)}" + (f"  {failures[:3]}" if failures else ""))
    print(f"  integrity            {'ok' if report.ok else '; '.join(report.problems)}")
    print("\nfiles that did not ingest, and why:")
    for record in sorted(records, key=lambda r: r["source"]):
        if record["status"] == "failed":
            print(f"  {record['source']}: {record['reason']}")


if __name__ == "__main__":
    main()
