"""Index: make a document's new chunks searchable.

The write itself belongs to the `SearchIndex` adapter (SQLite, or OpenSearch); how the two rankings
— keyword (BM25) and vector (cosine) — become one is a contract both share, in `pipeline.options`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipeline.models import Chunk, DocumentRef
from pipeline.ports import SearchIndex


def index_document(index: SearchIndex, ref: DocumentRef, chunks: Sequence[Chunk], vectors: np.ndarray) -> int:
    """Replace whatever version of the document was searchable with this one; returns chunk count."""
    index.replace_document(ref, chunks, vectors)
    return len(chunks)
