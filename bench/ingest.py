"""Ingestion throughput and memory: `hanrag ingest` over every PDF of corpus/ko, as a user runs it.

The command runs in a child process (a fresh HANRAG_HOME, the console script, `--json`), so its peak
resident memory is the process's own (`ru_maxrss` of the child) and its wall time includes loading
the embedding model and Kiwi. Its CPU seconds (user + system, all threads) over its wall seconds say
how many of the cores it kept busy. Per stage, the seconds come from the run records the runner
stores; with the next file extracted while the current one embeds, stage seconds of different files
overlap, so their sum can exceed the wall time. Tokens are cl100k tokens of the chunks as stored.

    python bench/ingest.py [--corpus DIR_OR_FILE] [--json]

Reads ../shared/data/corpus/ko (17 Korean government PDFs) unless told otherwise; the load average
of the machine before and after is printed, since the cores may be shared.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = ROOT.parent / "shared" / "data" / "corpus" / "ko"
STAGES = ("extract", "chunk", "embed", "index", "summarize", "notify")


def hanrag_command() -> list[str]:
    script = Path(sys.executable).parent / "hanrag"
    return [str(script)] if script.exists() else [sys.executable, "-m", "pipeline.cli"]


def run_ingest(corpus: Path, home: Path) -> tuple[list[dict], float, float, float]:
    """Ingest `corpus` in a child process; returns its per-file records, wall seconds, CPU seconds
    and peak RSS (MiB)."""
    env = {**os.environ, "HANRAG_HOME": str(home), "HANRAG_PROGRESS": "0"}
    started = time.perf_counter()
    # Output to files, not pipes: `communicate` would reap the child before `wait4` reads its usage.
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen([*hanrag_command(), "ingest", str(corpus), "--user", "bench", "--json"],
                                 env=env, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own usage, all its threads
        child.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    cpu = usage.ru_utime + usage.ru_stime
    peak_mib = usage.ru_maxrss / 1024  # Linux: KiB
    records = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    if child.returncode not in (0, 1) or not records:
        sys.exit(f"hanrag ingest failed ({child.returncode}):\n{stderr[-2000:]}")
    return records, wall, cpu, peak_mib


def stored_tokens(home: Path) -> int:
    sys.path.insert(0, str(ROOT))
    from pipeline.adapters.local.database import Database
    from pipeline.stages.chunk import count_tokens

    db = Database(home / "hanrag.db")
    return sum(count_tokens(text) for (text,) in db.execute("SELECT text FROM chunks WHERE user_id = 'bench'"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not args.corpus.exists():
        sys.exit(f"corpus not found: {args.corpus} (benchmarks read ../shared/data beside the repository)")

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="hanrag-bench-") as tmp:
        home = Path(tmp)
        records, wall, cpu, peak_mib = run_ingest(args.corpus, home)
        tokens = stored_tokens(home)
    load_after = os.getloadavg()

    ok = [r for r in records if r["status"] == "succeeded"]
    pages = sum(r["pages"] for r in ok)
    chunks = sum(r["chunks"] for r in ok)
    seconds: dict[str, float] = defaultdict(float)
    for record in ok:
        for stage, value in record["durations"].items():
            seconds[stage] += value
    staged = sum(seconds.values())
    result = {
        "files": len(records), "succeeded": len(ok),
        "failed": [{"source": r["source"], "reason": r["reason"]} for r in records if r["status"] == "failed"],
        "pages": pages, "chunks": chunks, "tokens": tokens,
        "wall_seconds": round(wall, 1), "staged_seconds": round(staged, 1),
        "cpu_seconds": round(cpu, 1), "cores_busy": round(cpu / wall, 2), "peak_rss_mib": round(peak_mib),
        "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in load_after],
        "stages": {stage: round(seconds[stage], 2) for stage in STAGES},
    }
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
        return

    print(f"hanrag ingest {args.corpus.name}: {len(ok)}/{len(records)} files, {pages} pages, "
          f"{chunks} chunks, {tokens:,} tokens")
    print(f"wall {wall:.1f} s, CPU {cpu:.1f} s ({cpu / wall:.2f} cores busy); peak RSS {peak_mib:,.0f} MiB")
    print("load average before {:.2f} {:.2f} {:.2f}, after {:.2f} {:.2f} {:.2f}\n".format(*load_before, *load_after))
    print(f"{'stage':<10} {'seconds':>8} {'share':>6} {'pages/s':>8} {'chunks/s':>9} {'tokens/s':>9}")
    for stage in STAGES:
        s = seconds[stage]
        pps, cps, tps = (f"{n / s:,.0f}" if s > 0 else "-" for n in (pages, chunks, tokens))
        print(f"{stage:<10} {s:>8.2f} {s / staged:>6.1%} {pps:>8} {cps:>9} {tps:>9}")
    print(f"{'all':<10} {staged:>8.2f} {1:>6.0%} {pages / staged:>8.1f} {chunks / staged:>9.1f} "
          f"{tokens / staged:>9,.0f}")
    print(f"\nend to end (wall): {pages / wall:.1f} pages/s, {chunks / wall:.1f} chunks/s")
    for failure in result["failed"]:
        print(f"failed: {failure['source']}: {failure['reason']}")


if __name__ == "__main__":
    main()
