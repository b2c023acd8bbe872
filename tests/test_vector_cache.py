"""The vector cache (issue 15): the same text is never embedded twice, with the real model and SQLite.

The edited PDF is a real edit of a sample (tests/fixtures/SOURCES.md): on page 3 "1호 펀드" became
"7호 펀드" in the page's content stream; every other page is byte-for-byte the same text.
"""

from __future__ import annotations

import json
import unicodedata

import numpy as np
import pytest
from conftest import FINTECH, FIXTURES, SAMPLES, make_runner, run_cli

from chat.retrieve import Retriever
from pipeline.adapters.cached_embedder import CachingEmbedder, reuse_within
from pipeline.adapters.local.database import Database
from pipeline.adapters.local.vector_cache import SqliteVectorCache

EDITED = FIXTURES / "240409-page3-edited.pdf"
QUERIES = ("7호 펀드 투자실적", "핀테크 혁신펀드 1호 펀드 투자실적", "김소영 부위원장 현장간담회", "2호 펀드 조성 규모")


class Counting:
    """The real embedder, counting the passages that reach it."""

    def __init__(self, real, name: str | None = None) -> None:
        self.real, self.passages = real, []
        self.dim, self.name = real.dim, name or real.name

    def embed_passages(self, texts):
        self.passages += list(texts)
        return self.real.embed_passages(texts)

    def embed_query(self, text):
        return self.real.embed_query(text)


def ranking(runner, user: str) -> list[list[tuple[int, str]]]:
    retriever = Retriever(runner.embedder, runner.index)
    return [[(hit.page_start, hit.text) for hit in retriever.search(user, q, 10)] for q in QUERIES]


def test_an_edited_document_embeds_only_its_changed_chunk_and_searches_like_a_cold_ingest(tmp_path, embedder):
    model = Counting(embedder)
    runner = make_runner(tmp_path / "home", model)
    first = runner.ingest_file("kim", SAMPLES / FINTECH, FINTECH)
    assert (first.status, first.embedded, first.reused) == ("succeeded", first.chunks, 0)

    model.passages.clear()
    second = runner.ingest_file("kim", EDITED, FINTECH)  # the same file, one number changed on page 3
    assert second.status == "succeeded" and second.version != first.version
    assert (second.embedded, second.reused) == (1, second.chunks - 1)
    [changed] = model.passages
    assert "7호 펀드 투자실적" in changed and "1호 펀드" not in changed

    cold = make_runner(tmp_path / "cold", embedder)
    assert cold.ingest_file("kim", EDITED, FINTECH).embedded == second.chunks
    assert ranking(runner, "kim") == ranking(cold, "kim")
    assert ranking(runner, "kim")[0][0] == (3, changed.split("\n", 1)[1])  # the edit is what is found


def test_ingest_json_and_the_status_line_say_embedded_and_reused(tmp_path, embedder):
    home = tmp_path / "home"
    make_runner(home, embedder).ingest_file("kim", SAMPLES / FINTECH, FINTECH)
    edited = tmp_path / FINTECH
    edited.write_bytes(EDITED.read_bytes())
    code, out, _ = run_cli(home, "ingest", str(edited), "--user", "kim", "--json")
    assert code == 0
    record = json.loads(out)
    assert (record["chunks"], record["embedded"], record["reused"]) == (17, 1, 16)
    code, out, _ = run_cli(home, "status", "--user", "kim", "--limit", "1")
    assert "17 chunks (16 reused)" in out


def test_two_documents_sharing_text_embed_it_once(tmp_path, embedder):
    """Two yearly notices of the same name share their first part word for word (the same title, the
    file name, so the same text reaches the model): its chunks are embedded for the first file only."""
    shared = "".join(f"제{n}조(목적) 이 규정은 연구소 직원의 복리후생 제도를 정하여 생활 안정과 근무 의욕을 높이는 데 "
                     f"목적이 있다. 지원 대상은 {n}년 이상 재직한 정규직 직원으로 한다.\n\n" for n in range(1, 40))
    for year, tail in ((2024, "2024년에는 건강검진비를 연 30만 원까지 지원한다."),
                       (2025, "2025년부터 건강검진비는 연 50만 원, 자녀 학자금은 학기당 200만 원이다.")):
        (tmp_path / str(year)).mkdir()
        (tmp_path / str(year) / "복리후생 안내.txt").write_text(shared + tail, encoding="utf-8")
    model = Counting(embedder)
    runner = make_runner(tmp_path / "home", model)
    first = runner.ingest_file("kim", tmp_path / "2024" / "복리후생 안내.txt", "2024/복리후생 안내.txt")
    model.passages.clear()
    second = runner.ingest_file("kim", tmp_path / "2025" / "복리후생 안내.txt", "2025/복리후생 안내.txt")
    assert first.status == second.status == "succeeded"
    assert second.reused >= 3 and 1 <= second.embedded <= 2 and second.reused + second.embedded == second.chunks
    assert len(model.passages) == second.embedded and "자녀 학자금" in model.passages[-1]
    hits = Retriever(runner.embedder, runner.index).search("kim", "자녀 학자금 지원 금액", 3)
    assert hits[0].source == "2025/복리후생 안내.txt"

    other_user = runner.ingest_file("lee", tmp_path / "2025" / "복리후생 안내.txt", "2025/복리후생 안내.txt")
    assert other_user.reused == 0, "one user's vectors are never another's: reuse would tell lee what kim has"


def test_a_model_change_reuses_nothing_and_drops_the_old_models_vectors(tmp_path, embedder):
    db = Database(tmp_path / "hanrag.db")
    texts = ["금융위원회는 핀테크 혁신펀드를 조성한다.", "도로터널 결로대책 가이드라인"]
    old = CachingEmbedder(Counting(embedder), SqliteVectorCache(db))
    first = old.embed_passages(texts)
    new_model = Counting(embedder, name="multilingual-e5-small v2")
    new = CachingEmbedder(new_model, SqliteVectorCache(db))
    with reuse_within("kim") as reuse:
        new.embed_passages(texts)
    assert new_model.passages == texts and reuse.reused == 0
    assert db.execute("SELECT DISTINCT model FROM vector_cache") == [("multilingual-e5-small v2/384",)]
    again = CachingEmbedder(Counting(embedder), SqliteVectorCache(db))  # back to the first model
    assert np.allclose(again.embed_passages(texts), first, atol=1e-6)
    assert again._embedder.passages == texts, "its old vectors were dropped, not kept beside the new model's"


def test_the_bound_evicts_the_least_recently_used(tmp_path, embedder):
    model = Counting(embedder)
    cache = SqliteVectorCache(Database(tmp_path / "hanrag.db"), max_rows=3)
    caching = CachingEmbedder(model, cache)
    for text in ("가", "나", "다"):
        caching.embed_passages([text])
    caching.embed_passages(["가"])  # used again: "나" is now the least recently used
    caching.embed_passages(["라"])
    assert cache.rows() == 3
    model.passages.clear()
    with reuse_within("") as reuse:
        caching.embed_passages(["가", "다", "라"])
    assert model.passages == [] and reuse.reused == 3
    caching.embed_passages(["나"])
    assert model.passages == ["나"]


def test_whitespace_and_unicode_form_do_not_make_a_new_text(tmp_path, embedder):
    model = Counting(embedder)
    caching = CachingEmbedder(model, SqliteVectorCache(Database(tmp_path / "hanrag.db")))
    composed = "핀테크 혁신펀드\n\n1호 펀드"
    caching.embed_passages([composed])
    with reuse_within("") as reuse:
        again = caching.embed_passages([unicodedata.normalize("NFD", composed).replace("\n\n", "  \n")])
    assert reuse.reused == 1 and len(model.passages) == 1
    assert float(again[0] @ embedder.embed_passages([composed])[0]) == pytest.approx(1.0, abs=1e-5)


def test_a_cache_that_cannot_be_read_costs_time_not_the_ingest(tmp_path, embedder):
    class Broken:
        def get_many(self, model, keys):
            raise OSError("disk I/O error")

        def put_many(self, model, vectors):
            raise OSError("disk I/O error")

    caching = CachingEmbedder(embedder, Broken())
    vectors = caching.embed_passages(["핀테크 혁신펀드", "결로대책"])
    assert vectors.shape == (2, embedder.dim) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-3)
