"""The SQLite index behind the `SearchIndex` port, the summary, and the pipeline definition."""

from __future__ import annotations

import ast
import hashlib
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import AVIATION, BANK, FINTECH, FIXTURES, SAMPLES, TUNNEL

from pipeline.adapters.local.database import Database
from pipeline.adapters.local.sqlite_index import SqliteIndex
from pipeline.definition import STAGE_NAMES, STAGES
from pipeline.korean import clean_sentence, sentences
from pipeline.models import DocumentRef
from pipeline.options import SearchOptions, fuse
from pipeline.stages.chunk import chunk_document
from pipeline.stages.embed import embed_chunks
from pipeline.stages.extract import extract
from pipeline.stages.summarize import summarize


def prepared(name: str, user: str, embedder):
    data = (SAMPLES / name).read_bytes()
    ref = DocumentRef(user, name, hashlib.sha256(data).hexdigest())
    doc = extract(data, name)
    chunks = chunk_document(doc, ref)
    return ref, doc, chunks, embed_chunks(chunks, embedder)


@pytest.fixture(scope="module")
def fintech(embedder):
    return prepared(FINTECH, "u", embedder)


def row_counts(db: Database) -> tuple[int, int, int]:
    return tuple(db.execute(f"SELECT count(*) FROM {t}")[0][0] for t in ("chunks", "chunks_fts", "chunk_vectors"))


def test_every_chunk_has_its_keyword_and_vector_rows_and_delete_removes_all(tmp_path, embedder, fintech):
    ref, _, chunks, vectors = fintech
    db = Database(tmp_path / "i.db")
    index = SqliteIndex(db, embedder.dim)
    index.replace_document(ref, chunks, vectors)
    index.replace_document(ref, chunks, vectors)  # the same version again: no duplicates
    assert row_counts(db) == (len(chunks),) * 3
    assert index.delete_document("u", ref.document_id) == len(chunks)
    assert row_counts(db) == (0, 0, 0)


def test_search_is_filtered_by_user(tmp_path, embedder, fintech):
    ref, _, chunks, vectors = fintech
    index = SqliteIndex(Database(tmp_path / "i.db"), embedder.dim)
    index.replace_document(ref, chunks, vectors)
    query = "핀테크 혁신펀드"
    vector = embedder.embed_query(query)
    assert index.hybrid_search("u", query, vector, 5)
    assert index.hybrid_search("someone-else", query, vector, 5) == []
    assert index.keyword_search("someone-else", query, 5) == []
    assert index.vector_search("someone-else", vector, 5) == []


def test_a_search_during_a_version_switch_sees_exactly_one_version(tmp_path, embedder):
    """A reader thread searches while the writer swaps two versions back and forth."""
    ref_a, _, chunks_a, vectors_a = prepared(TUNNEL, "u", embedder)
    ref_b = DocumentRef("u", TUNNEL, "b" * 64)
    chunks_b = [type(c)(**{**c.to_dict(), "version": ref_b.version,
                           "chunk_id": c.chunk_id.replace(ref_a.version[:8], "bbbbbbbb")}) for c in chunks_a]
    db_path = tmp_path / "i.db"
    writer = SqliteIndex(Database(db_path), embedder.dim)
    writer.replace_document(ref_a, chunks_a, vectors_a)
    query = "터널 결로 대응시설"
    vector = embedder.embed_query(query)
    seen: list[set[str]] = []
    stop = threading.Event()

    def read() -> None:
        reader = SqliteIndex(Database(db_path), embedder.dim)
        while not stop.is_set():
            hits = reader.hybrid_search("u", query, vector, 50)
            seen.append({h.chunk_id.split("-")[1] for h in hits})

    thread = threading.Thread(target=read)
    thread.start()
    for i in range(10):
        ref, chunks = (ref_b, chunks_b) if i % 2 == 0 else (ref_a, chunks_a)
        writer.replace_document(ref, chunks, vectors_a)
    stop.set()
    thread.join()
    assert len(seen) > 5
    assert all(len(versions) == 1 for versions in seen), "never both versions, never none"


def test_long_chunks_are_embedded_a_few_at_a_time_and_each_keeps_its_vector(embedder, fintech):
    """The embedder's working memory follows the tokens of one call: long chunks go a few per call,
    short ones sixteen; every vector is still its own chunk's, in chunk order."""
    _, _, chunks, vectors = fintech
    calls: list[list[str]] = []

    class Recording:
        dim, name = embedder.dim, embedder.name

        def embed_passages(self, texts):
            calls.append(list(texts))
            return embedder.embed_passages(texts)

    by_text = {c.search_text: c.tokens for c in chunks}
    again = embed_chunks(chunks, Recording(), batch_size=16, max_tokens=1024)
    assert sorted(t for call in calls for t in call) == sorted(c.search_text for c in chunks)
    assert all(len(call) == 1 or sum(by_text[t] for t in call) <= 1024 for call in calls)
    assert len(calls) > -(-len(chunks) // 16)  # more calls than by count alone: the long ones went apart
    alone = np.stack([embedder.embed_passages([c.search_text])[0] for c in chunks])
    assert np.min(np.sum(again * alone, axis=1)) > 0.999  # each row is its own chunk's vector
    assert np.min(np.sum(vectors * alone, axis=1)) > 0.999


def test_fusions_rank_a_document_found_by_both_first():
    keyword = [(1, 9.0), (2, 5.0), (3, 1.0)]
    vector = [(2, 0.9), (4, 0.8), (1, 0.2)]
    for options in (SearchOptions(fusion="rrf"), SearchOptions(fusion="minmax", dense_weight=0.5)):
        ranked = [rowid for rowid, _ in fuse(keyword, vector, options)]
        assert ranked[0] in (1, 2) and set(ranked) == {1, 2, 3, 4}


def test_summary_is_at_most_five_korean_sentences_from_the_document(fintech):
    _, doc, _, _ = fintech
    summary = summarize(doc)
    document_sentences = {clean_sentence(s) for s in sentences(doc.text)}  # bullets dropped
    picked = [s for s in document_sentences if s in summary]
    assert 1 <= len(picked) <= 5
    assert len(summary) <= sum(len(s) + 2 for s in picked)  # a space between; a period closes a 개조식 item
    assert "핀테크" in summary
    hangul = sum("가" <= ch <= "힣" for ch in summary)
    assert hangul / max(1, sum(ch.isalpha() for ch in summary)) > 0.8


def test_summary_of_another_document_is_about_that_document():
    doc = extract((SAMPLES / BANK).read_bytes(), BANK)
    assert "은행" in summarize(doc)


def test_the_definition_orders_the_stages_the_runner_runs():
    assert STAGE_NAMES == ("extract", "chunk", "embed", "index", "summarize", "notify")
    assert all(s.retry.max_attempts >= 1 for s in STAGES)
    remote = {s.name for s in STAGES if s.retry.max_attempts > 1}
    assert {"embed", "index", "summarize", "notify"} <= remote


def test_no_stage_imports_boto3_or_reads_the_environment():
    stages = Path(__file__).resolve().parent.parent / "pipeline" / "stages"
    for path in stages.rglob("*.py"):
        tree = ast.parse(path.read_text())
        imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                    if isinstance(node, ast.Import) for alias in node.names}
        imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and node.module}
        assert not imported & {"boto3", "botocore"}, path.name
        reads = [node.lineno for node in ast.walk(tree) if _reads_environment(node)]
        assert not reads, f"{path.name} reads the environment on lines {reads}"


def _reads_environment(node: ast.AST) -> bool:
    """`os.getenv(…)`, `os.environ.get(…)`, `os.environ[…]` as a value, `{**os.environ}`: a setting
    read behind the caller's back. Writing a variable for a library (office.py) is not a read."""
    def is_environ(n: ast.AST) -> bool:
        return isinstance(n, ast.Attribute) and n.attr == "environ"

    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and (
        node.func.attr == "getenv" or (node.func.attr in ("get", "copy", "items") and is_environ(node.func.value))
    ):
        return True
    if isinstance(node, ast.Subscript) and is_environ(node.value) and isinstance(node.ctx, ast.Load):
        return True
    return isinstance(node, ast.Dict) and any(
        key is None and is_environ(value) for key, value in zip(node.keys, node.values, strict=True))


BULLET_OR_NUMBER = ("-", "□", "ㅇ", "•", "▪", "*", "※", "○", "◦", "1.", "2.", "3.", "가.", "(1)")


def test_a_summary_opens_with_the_lede_and_spans_the_sections():
    doc = extract((FIXTURES / "복리후생 안내.docx").read_bytes(), "복리후생 안내.docx")
    summary = summarize(doc, max_sentences=3)
    assert summary.startswith("이 안내서는 2024년에 임직원이 받을 수 있는 복리후생 제도를 정리한 것입니다."), summary
    assert "건강검진" in summary and "학자금" in summary, summary  # "1. 건강 지원" and "2. 생활 지원"


@pytest.mark.parametrize("name", ["2020중기부업무계획.pdf", AVIATION])
def test_summary_sentences_carry_no_bullets_item_numbers_or_footnote_stars(name):
    doc = extract((FIXTURES / name).read_bytes(), name)
    summary = summarize(doc)
    picked = [s for s in {clean_sentence(s) for s in sentences(doc.text)} if len(s) >= 20 and s in summary]
    assert 2 <= len(picked) <= 5, summary
    assert not summary.startswith(BULLET_OR_NUMBER) and " ▪" not in summary and "* " not in summary, summary


def test_a_document_of_tables_only_says_what_its_tables_hold():
    doc = extract((FIXTURES / "hwp" / "real-8-tables.hwpx").read_bytes(), "real-8-tables.hwpx")
    # its text is a few short labels, nothing a summary could quote
    assert all(len(s) < 20 for e in doc.elements if e.kind == "text" for s in sentences(e.text))
    summary = summarize(doc)
    assert summary.startswith("표 8개로 된 문서입니다.") and "항목, 내용 열, 6행" in summary, summary


def test_summary_items_that_end_without_a_period_do_not_run_into_the_next(fintech):
    """Press releases are written in 개조식 items ("… 추가 결성"); quoted one after another they must stay apart."""
    _, doc, _, _ = fintech
    summary = summarize(doc)
    items = [s for s in {clean_sentence(s) for s in sentences(doc.text)} if s in summary and not s.endswith(".")]
    assert items, "the fintech release's summary quotes at least one 개조식 item"
    for item in items:
        after = summary[summary.index(item) + len(item):]
        assert after == "" or after.startswith(". ") or after == ".", (item, after[:20])
