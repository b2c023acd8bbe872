"""Never embed the same text twice: an `Embedder` that wraps any other with a `VectorCache`.

Re-ingesting an edited document then sends only its changed chunks to the model, and a paragraph two
of a user's documents share is embedded once. Only passages go through the cache: a query is one short
text embedded while someone waits, and keeping it would keep what people asked.

A vector is found again by (model, key). The model is the embedder's name and dimension, so vectors of
another model are never handed out. The key hashes the text as the model reads it — NFC, whitespace
runs collapsed to one space (the e5 tokenizer collapses them too: the vectors of a text and of its
collapsed form have cosine 1.0) — together with a namespace, the user whose document it is: a shared
cache would let a user learn from the `reused` count that someone else's documents hold a paragraph.

The count of reused vectors is kept per scope (`reuse_within`), in a context variable, so two threads
embedding for two users at once each count their own.
"""

from __future__ import annotations

import hashlib
import logging
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import numpy as np

from pipeline.ports import Embedder, VectorCache, WrappedEmbedder

log = logging.getLogger(__name__)


@dataclass
class Reuse:
    """One scope of embedding: whose texts may be reused, and how many vectors were. Every other text
    of the scope went to the model."""

    namespace: str
    reused: int = 0


_scope: ContextVar[Reuse | None] = ContextVar("hanrag_vector_reuse", default=None)


@contextmanager
def reuse_within(namespace: str) -> Iterator[Reuse]:
    """Passages embedded inside the block reuse vectors of `namespace` only, and are counted."""
    reuse = Reuse(namespace)
    token = _scope.set(reuse)
    try:
        yield reuse
    finally:
        _scope.reset(token)


def normalised(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).split())


def text_key(namespace: str, text: str) -> str:
    return hashlib.sha256(f"{namespace}\x00{normalised(text)}".encode()).hexdigest()[:32]


def model_id(embedder: Embedder) -> str:
    return f"{embedder.name}/{embedder.dim}"


class CachingEmbedder(WrappedEmbedder):
    """`embedder`'s vectors, each computed once and then taken from `cache`."""

    def __init__(self, embedder: Embedder, cache: VectorCache) -> None:
        super().__init__(embedder)
        self._cache = cache
        self.model = model_id(embedder)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        scope = _scope.get()
        keys = [text_key(scope.namespace if scope else "", text) for text in texts]
        found = self._lookup(list(dict.fromkeys(keys)))
        missing: dict[str, int] = {}  # key → the first text that has it: a text repeated in a batch goes once
        for i, key in enumerate(keys):
            if key not in found:
                missing.setdefault(key, i)
        if missing:
            fresh = np.asarray(self._embedder.embed_passages([texts[i] for i in missing.values()]), dtype=np.float32)
            if fresh.shape != (len(missing), self.dim):
                raise ValueError(f"embedder returned shape {fresh.shape} for {len(missing)} texts")
            computed = dict(zip(missing, fresh, strict=True))
            self._keep(computed)
            found.update(computed)
        if scope:
            scope.reused += len(texts) - len(missing)
        return np.stack([found[key] for key in keys]).astype(np.float32, copy=False)

    # The cache saves work; it is never a reason for an ingest to fail. A store that cannot be read or
    # written (a throttled table, a locked file past its timeout) means the texts are embedded again.

    def _lookup(self, keys: list[str]) -> dict[str, np.ndarray]:
        try:
            return {k: v for k, v in self._cache.get_many(self.model, keys).items() if v.shape == (self.dim,)}
        except Exception:
            log.warning("vector cache unreadable; embedding every text", exc_info=True)
            return {}

    def _keep(self, vectors: dict[str, np.ndarray]) -> None:
        try:
            self._cache.put_many(self.model, vectors)
        except Exception:
            log.warning("vector cache not written; these texts will be embedded again next time", exc_info=True)


def with_vector_cache(embedder: Embedder, cache: VectorCache | None) -> Embedder:
    """`embedder` behind `cache`, or as it is without one (the cache turned off)."""
    return CachingEmbedder(embedder, cache) if cache is not None else embedder
