"""Index: make a document's new chunks searchable.

The write itself belongs to the `SearchIndex` adapter (SQLite, or OpenSearch); how the two rankings
— keyword (BM25) and vector (cosine) — become one is a contract both share, in `pipeline.options`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipeline.models import Chunk, DocumentRef
from pipeline.ports import SearchIndex


def index_document(index: SearchIndex, ref: DocumentRef, chunks: Sequence[Chunk], vectors: np.ndarray,
                   sequencer: str = "") -> bool:
    """Replace whatever version of the document was searchable with this one; False when the index
    had already applied a later version or delete of it (`sequencer` orders them) and kept that."""
    return index.replace_document(ref, chunks, vectors, sequencer)
