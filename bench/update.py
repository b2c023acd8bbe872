"""The update workload of issue 15: one page of each of five corpus/ko PDFs edited, then re-ingested.

The edit is a real one, made in the PDF: one number on the page is changed in the page's content stream
(a digit's glyph code swapped for another digit's code of the same font, read from the font's
ToUnicode map), and the file saved as a new PDF. The script checks with pypdfium2 that the extracted
text differs on that page and on no other.

Measured, each in its own child process (wall seconds, CPU seconds user+sys, peak RSS):
- hanrag: `hanrag ingest FOLDER --json` of the five originals into a fresh HANRAG_HOME, then the same
  command after the five files were replaced by their edited versions (the figure compared). Its
  `embedded` / `reused` counts come from the command's own output.
- langchain: the tutorial chain of bench/peers.py (pypdf pages, RecursiveCharacterTextSplitter(1000,
  200), InMemoryVectorStore): an update deletes the document's chunks and adds the new file's, so
  every chunk of the five documents is embedded again. Its store is not filled with the originals
  first: deleting ids from an in-memory dict costs nothing next to the embedding, which is timed.
- langchain-indexing: the same chain through LangChain's own incremental API (`langchain_core.indexing
  .index` with an in-memory record manager, cleanup="incremental"), filled with the originals first
  (not timed), then the edited files indexed (timed): the peer that does not re-embed unchanged chunks.

Chunk stability is checked on the way: hanrag's chunk texts of each original and its edit (through
`extract` and `chunk_document`) are compared, and the number of chunks that differ is printed.

    nice -n 10 python bench/update.py [--set long|short] [--files N] [--only hanrag,langchain,langchain-indexing]
                                      [--json] [--report]   (--report: the table of bench/out/update.json)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import peers  # noqa: E402  (the peers' chains, the child runner and the network refusal)

CORPUS = peers.CORPUS
# five corpus/ko PDFs; the page edited in each is about a third in. `long`: the five longest text PDFs
# (25–42 pages); `short`: five press releases and notices (6–9 pages), where the fixed costs of a
# re-ingest (extraction, chunking, keyword analysis, summary, process start) weigh the most.
FILE_SETS = {
    "long": ("2021년도_중소벤처기업부_업무계획.pdf", "2023_2027 국가재정운용계획 주요내용.pdf",
             "제4차(24_28)+학교도서관+진흥+기본계획.pdf", "2024년+국립대학+육성사업+기본계획.pdf",
             "2025년 주요업무 추진계획.pdf"),
    "short": ("240130(보도자료) 지방은행의 시중은행 전환시 인가방식 및 절차.pdf",
              "240320(보도자료) 금융권의 상생금융 추진현황.pdf",
              "240409(보도자료) 금융위 핀테크 투자 생태계 활성화 나선다.pdf",
              "240418 도로터널 결로대책 가이드라인(최종).pdf",
              "전문교육기관ㆍ항공훈련기관 지정ㆍ인가 및 안전관리 현황__.pdf"),
}
PIPELINES = ("hanrag", "langchain", "langchain-indexing")


# ---------------------------------------------------------------- the edit

def _to_unicode(font) -> tuple[int, dict[bytes, str]]:
    """(bytes per code, code → text) of a font's ToUnicode CMap (bfchar and bfrange entries)."""
    data = font["/ToUnicode"].get_object().get_data().decode("latin-1")
    width = 2 if font.get("/Subtype") == "/Type0" else 1
    codes: dict[bytes, str] = {}
    for block in re.findall(r"beginbfchar(.*?)endbfchar", data, re.S):
        for code, text in re.findall(r"<([0-9a-fA-F]+)>\s*<([0-9a-fA-F]+)>", block):
            codes[bytes.fromhex(code)] = bytes.fromhex(text).decode("utf-16-be", "replace")
    for block in re.findall(r"beginbfrange(.*?)endbfrange", data, re.S):
        for low, high, text in re.findall(r"<([0-9a-fA-F]+)>\s*<([0-9a-fA-F]+)>\s*<([0-9a-fA-F]+)>", block):
            first, start = int(text, 16), int(low, 16)
            for code in range(start, int(high, 16) + 1):
                codes[code.to_bytes(width, "big")] = chr(first + code - start)
    return width, codes


def edit_one_number(source: Path, target: Path, page_number: int, nth: int = 0) -> tuple[str, str]:
    """Change the `nth` number of the page (counting the text strings that hold a digit the font can swap
    for another): the new PDF has the same pages with that one digit different. Returns the (old, new)
    text of the string edited."""
    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import ByteStringObject, ContentStream

    writer = PdfWriter(clone_from=PdfReader(source))
    page = writer.pages[page_number - 1]
    fonts = page["/Resources"]["/Font"]
    content = ContentStream(page.get_contents(), writer)
    font = None
    for operands, operator in content.operations:
        if operator == b"Tf":
            font = fonts[operands[0]].get_object() if operands[0] in fonts else None
            continue
        if operator not in (b"Tj", b"TJ") or font is None or "/ToUnicode" not in font:
            continue
        width, codes = _to_unicode(font)
        digit_codes = {text: code for code, text in codes.items() if text in set("0123456789")}
        strings = operands[0] if operator == b"TJ" else operands
        for i, string in enumerate(strings):
            if not isinstance(string, (bytes, str)):
                continue
            raw = string.original_bytes if hasattr(string, "original_bytes") else bytes(string)
            parts = [raw[j:j + width] for j in range(0, len(raw), width)]
            text = "".join(codes.get(p, "?") for p in parts)
            swappable = [j for j, char in enumerate(text) if char in "0123456789"
                         and any(d != char and d in digit_codes for d in "0123456789")]
            if not swappable:
                continue
            if nth:
                nth -= 1
                continue
            j = swappable[0]
            other = next(d for d in "7364958201" if d != text[j] and d in digit_codes)
            parts[j] = digit_codes[other]
            strings[i] = ByteStringObject(b"".join(parts))
            page.replace_contents(content)
            with target.open("wb") as out:
                writer.write(out)
            return text, text[:j] + other + text[j + 1:]
    raise ValueError(f"{source.name} page {page_number}: no number whose digit could be swapped")


def pages_that_differ(a: Path, b: Path) -> list[int]:
    import pypdfium2 as pdfium

    first, second = pdfium.PdfDocument(a), pdfium.PdfDocument(b)
    assert len(first) == len(second)
    return [n + 1 for n in range(len(first))
            if first[n].get_textpage().get_text_range() != second[n].get_textpage().get_text_range()]


def chunk_texts(path: Path, source: str | None = None) -> list[str]:
    """What hanrag embeds for the file, named `source` (its name by default: the title comes from it)."""
    from pipeline.config import Settings
    from pipeline.models import DocumentRef
    from pipeline.stages.chunk import chunk_document
    from pipeline.stages.extract import extract

    settings = Settings.from_env()
    source = source or path.name
    doc = extract(path.read_bytes(), source, settings.extract)
    return [c.search_text for c in chunk_document(doc, DocumentRef("bench", source, "v"), settings.chunk)]


def prepare(files: list[str], work: Path) -> list[dict]:
    """Originals in work/original, edits in work/edited (same names); what changed, checked."""
    (work / "original").mkdir()
    (work / "edited").mkdir()
    edits = []
    for name in files:
        original, edited = work / "original" / name, work / "edited" / name
        shutil.copy(CORPUS / name, original)
        import pypdfium2 as pdfium

        pages = len(pdfium.PdfDocument(original))
        first = max(1, pages // 3)
        before = chunk_texts(original)
        # the first number of the page whose change reaches the text hanrag indexes (not a page number)
        changed = 0
        for page, nth in ((p, n) for p in range(first, pages + 1) for n in range(30)):
            try:
                old, new = edit_one_number(original, edited, page, nth)
            except ValueError:  # no more numbers on this page: the next one
                continue
            differ = pages_that_differ(original, edited)
            if differ != [page]:
                sys.exit(f"{name}: the edit of page {page} changed the text of pages {differ}")
            after = chunk_texts(edited)
            changed = len(set(after) - set(before))
            if changed:
                break
        if not changed:
            sys.exit(f"{name}: no number to edit from page {first} on")
        edits.append({"file": name, "pages": pages, "page": page, "old": old, "new": new,
                      "chunks": len(after), "chunks_changed": changed})
        print(f"{name}: page {page}/{pages} {old!r} → {new!r}; chunks changed {changed} of {len(after)}",
              file=sys.stderr, flush=True)
    return edits


# ---------------------------------------------------------------- the pipelines

def hanrag_update(work: Path) -> dict:
    folder = work / "hanrag"
    shutil.copytree(work / "original", folder)
    with tempfile.TemporaryDirectory(prefix="hanrag-update-") as home:
        env = {**os.environ, "HANRAG_HOME": home, "HANRAG_PROGRESS": "0", "PYTHONPATH": str(ROOT)}
        cold = peers.run_child(peers.hanrag_ingest(folder), env)
        for edited in (work / "edited").iterdir():
            shutil.copy(edited, folder / edited.name)
        stdout, wall, cpu, peak = peers.run_child(peers.hanrag_ingest(folder), env)
    records = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "peak_rss_mib": round(peak),
            "cold_wall_s": round(cold[1], 1), "cold_cpu_s": round(cold[2], 1),
            "chunks": sum(r["chunks"] for r in records), "embedded": sum(r["embedded"] for r in records),
            "reused": sum(r["reused"] for r in records),
            "statuses": sorted({r["status"] for r in records}),
            "stages_s": {k: round(sum(r["durations"].get(k, 0) for r in records), 2)
                         for k in records[0]["durations"]} if records else {}}


def langchain_update(work: Path, incremental: bool) -> dict:
    """In the child: the chain's update of the five edited files (see the module's docstring)."""
    from langchain_core.documents import Document
    from langchain_core.vectorstores import InMemoryVectorStore

    embeddings = peers.langchain_embeddings()
    counted = _Counting(embeddings)
    store = InMemoryVectorStore(embedding=counted)
    splitter = peers.langchain_splitter()

    def chunks_of(folder: Path) -> list:
        return splitter.split_documents([Document(page_content=text, metadata={"source": name, "page": n - 1})
                                         for name, n, text in peers.pdf_pages(folder)])

    if not incremental:
        started, cpu = time.perf_counter(), time.process_time()
        chunks = chunks_of(work / "edited")
        store.add_documents(chunks)
        return {"update_s": time.perf_counter() - started, "update_cpu_s": time.process_time() - cpu,
                "chunks": len(chunks), "embedded": counted.texts}
    from langchain_core.indexing import InMemoryRecordManager, index

    records = InMemoryRecordManager(namespace="bench")
    records.create_schema()
    index(chunks_of(work / "original"), records, store, cleanup="incremental", source_id_key="source")
    counted.texts = 0
    started, cpu = time.perf_counter(), time.process_time()
    chunks = chunks_of(work / "edited")
    result = index(chunks, records, store, cleanup="incremental", source_id_key="source")
    return {"update_s": time.perf_counter() - started, "update_cpu_s": time.process_time() - cpu,
            "chunks": len(chunks), "embedded": counted.texts, "index_result": result}


class _Counting:
    """An `Embeddings` that counts the passages it is asked to embed."""

    def __init__(self, inner) -> None:
        self.inner, self.texts = inner, 0

    def embed_documents(self, texts):
        self.texts += len(texts)
        return self.inner.embed_documents(texts)

    def embed_query(self, text):
        return self.inner.embed_query(text)


def measure_peer(pipeline: str, work: Path) -> dict:
    result = work / f"{pipeline}.json"
    command = [sys.executable, __file__, "--worker", pipeline, "--work", str(work), "--result", str(result)]
    _, wall, cpu, peak = peers.run_child(command)
    data = json.loads(result.read_text(encoding="utf-8"))
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "peak_rss_mib": round(peak),
            "update_s": round(data["update_s"], 1), "update_cpu_s": round(data["update_cpu_s"], 1),
            "chunks": data["chunks"], "embedded": data["embedded"],
            **({"index_result": data["index_result"]} if "index_result" in data else {})}


def print_report(result: dict) -> None:
    print(f"load average before / after: {result['load_before']} / {result['load_after']}; {os.cpu_count()} cores; "
          f"command: {result['command']}\n")
    print("| file | pages | page edited | edit | hanrag chunks | chunks whose text changed |")
    print("|---|---:|---:|---|---:|---:|")
    for e in result["edits"]:
        print(f"| {e['file']} | {e['pages']} | {e['page']} | {e['old']} → {e['new']} | {e['chunks']} | "
              f"{e['chunks_changed']} |")
    runs = result["pipelines"]
    print("\n| update of the five files | wall s (child) | CPU s (child) | update alone wall / CPU s | chunks | "
          "embedded | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, run in runs.items():
        alone = f"{run['update_s']} / {run['update_cpu_s']}" if "update_s" in run else "-"
        print(f"| {name} | {run['wall_s']} | {run['cpu_s']} | {alone} | {run['chunks']} | {run['embedded']} | "
              f"{run['peak_rss_mib']} |")
    if "hanrag" in runs:
        ours = runs["hanrag"]
        print(f"\nhanrag reused {ours['reused']} vectors; its cold ingest of the originals took "
              f"{ours['cold_wall_s']} s wall, {ours['cold_cpu_s']} s CPU; update stages (s): {ours['stages_s']}")
        for name, run in runs.items():
            if name == "langchain":  # its child does the update only: process start and model load included
                print(f"hanrag vs {name} (whole child each): {run['wall_s'] / ours['wall_s']:.1f}× faster (wall), "
                      f"{run['cpu_s'] / ours['cpu_s']:.1f}× less CPU")
            elif name != "hanrag":  # its child fills the store first: the update alone, after the model loaded
                print(f"hanrag vs {name} (its update alone, model loaded; hanrag's whole child): "
                      f"{run['update_s'] / ours['wall_s']:.1f}× faster (wall, {run['update_s']} s), "
                      f"{run['update_cpu_s'] / ours['cpu_s']:.1f}× less CPU ({run['update_cpu_s']} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", choices=sorted(FILE_SETS), default="long", help="which five PDFs")
    parser.add_argument("--files", type=int, default=5, help="edit the first N of the five files")
    parser.add_argument("--only", default=",".join(PIPELINES))
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--report", action="store_true", help="print the table of bench/out/update.json")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.report:
        print_report(json.loads((ROOT / "bench" / "out" / "update.json").read_text(encoding="utf-8")))
        return
    if args.worker:
        peers.refuse_network()
        data = langchain_update(args.work, incremental=args.worker == "langchain-indexing")
        args.result.write_text(json.dumps(data, ensure_ascii=False, default=str), encoding="utf-8")
        return
    result = {"command": "python bench/update.py " + " ".join(sys.argv[1:]),
              "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()), "pipelines": {}}
    with tempfile.TemporaryDirectory(prefix="hanrag-update-bench-") as work:
        result["edits"] = prepare(list(FILE_SETS[args.set][: args.files]), Path(work))
        for pipeline in [p for p in PIPELINES if p in args.only.split(",")]:
            print(f"{pipeline} …", file=sys.stderr, flush=True)
            result["pipelines"][pipeline] = (hanrag_update(Path(work)) if pipeline == "hanrag"
                                             else measure_peer(pipeline, Path(work)))
            result["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
            save(result)  # each pipeline's figures kept as soon as they are measured
    if not args.json:
        print_report(result)
    else:
        print(json.dumps(result, ensure_ascii=False))


def save(result: dict) -> None:
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "update.json").write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
