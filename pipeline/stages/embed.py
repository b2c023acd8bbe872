"""Embed: chunks → one unit vector per chunk, through any `Embedder`."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from pipeline.models import Chunk
from pipeline.ports import Embedder


def embed_chunks(
    chunks: Sequence[Chunk],
    embedder: Embedder,
    batch_size: int = 16,
    on_batch: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Vectors in chunk order. Batches are formed from texts of similar length, so a batch's
    slowest text sets its pace for others of about the same size."""
    texts = [c.search_text for c in chunks]
    vectors = np.zeros((len(texts), embedder.dim), dtype=np.float32)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        result = np.asarray(embedder.embed_passages([texts[i] for i in batch]), dtype=np.float32)
        if result.shape != (len(batch), embedder.dim):
            raise ValueError(f"embedder returned shape {result.shape} for {len(batch)} texts")
        vectors[batch] = result
        if on_batch:
            on_batch(len(batch))
    return vectors
