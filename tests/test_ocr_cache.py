"""What OCR read is remembered (issue 15): a re-ingested document reads only the images whose pixels changed.

Real Tesseract, real SQLite. The FinTech press release in `samples/` has one picture worth reading, the
fund diagram on page 5 (its investors' names are in the picture only); `240409-page3-edited.pdf` is the
same file with one number changed on page 3 (tests/fixtures/SOURCES.md), so its page 5 is the same.
"""

from __future__ import annotations

import pytest
from conftest import FINTECH, FIXTURES, SAMPLES, make_runner

from pipeline.adapters.local.database import Database
from pipeline.adapters.local.ocr_cache import SqliteOcrCache
from pipeline.stages.extract import OcrMemory, extract, ocr

EDITED = FIXTURES / "240409-page3-edited.pdf"

pytestmark = pytest.mark.skipif(not ocr.available(), reason=ocr.missing() or "")


@pytest.fixture
def tesseract_runs(monkeypatch) -> list[str]:
    """Every run of the real Tesseract (the layout it was asked for), counted."""
    runs: list[str] = []
    real = ocr._tesseract

    def counted(image: bytes, layout: str, timeout: float):
        runs.append(layout)
        return real(image, layout, timeout)

    monkeypatch.setattr(ocr, "_tesseract", counted)
    return runs


def _pictures(doc) -> list[tuple[int, str, float | None]]:
    return [(e.page, e.text, e.confidence) for e in doc.elements if e.kind == "image"]


def test_a_picture_already_read_is_not_read_again_and_reads_the_same(tmp_path, tesseract_runs):
    cache = SqliteOcrCache(Database(tmp_path / "hanrag.db"))
    data = (SAMPLES / FINTECH).read_bytes()
    first = extract(data, FINTECH, None, OcrMemory(cache, "kim"))
    assert tesseract_runs and cache.rows() >= 1
    (page, text, _), = _pictures(first)
    assert page == 5 and "코스콤" in text

    tesseract_runs.clear()
    again = extract(data, FINTECH, None, OcrMemory(cache, "kim"))
    assert tesseract_runs == []
    assert [(e.kind, e.page, e.text, e.confidence) for e in again.elements] == \
           [(e.kind, e.page, e.text, e.confidence) for e in first.elements]

    # another user's copy of the same file is read for that user: readings are not shared between users
    extract(data, FINTECH, None, OcrMemory(cache, "lee"))
    assert tesseract_runs


def test_a_reading_of_another_ocr_engine_is_never_used(tmp_path, tesseract_runs, monkeypatch):
    cache = SqliteOcrCache(Database(tmp_path / "hanrag.db"))
    data = (SAMPLES / FINTECH).read_bytes()
    extract(data, FINTECH, None, OcrMemory(cache, "kim"))
    kept = cache.rows()
    assert kept >= 1 and ocr.engine().startswith("tesseract ")

    # a new Tesseract (or new language data) is another engine: the picture is read again, and the old
    # engine's readings, which could never be used again, make room
    monkeypatch.setattr(ocr, "engine", lambda: "tesseract 9.9.9 kor:1 eng:1 psm3/4<70")
    tesseract_runs.clear()
    extract(data, FINTECH, None, OcrMemory(cache, "kim"))
    assert tesseract_runs
    assert cache.db.execute("SELECT DISTINCT engine FROM ocr_cache") == [("tesseract 9.9.9 kor:1 eng:1 psm3/4<70",)]
    assert cache.rows() == kept


def test_the_store_keeps_its_bound_by_forgetting_the_least_recently_used(tmp_path):
    cache = SqliteOcrCache(Database(tmp_path / "hanrag.db"), max_rows=2)
    engine = ocr.engine()
    cache.put(engine, "kim", "a", [("첫째 그림", 91.0)])
    cache.put(engine, "kim", "b", [("둘째 그림", 88.5)])
    assert cache.get(engine, "kim", "a") == [("첫째 그림", 91.0)]  # a is used again: b is now the oldest
    cache.put(engine, "kim", "c", [("셋째 그림", 70.0), ("둘째 쪽", 65.0)])
    assert cache.rows() == 2
    assert cache.get(engine, "kim", "b") is None
    assert cache.get(engine, "kim", "c") == [("셋째 그림", 70.0), ("둘째 쪽", 65.0)]


def test_an_edited_document_reads_no_picture_again_when_its_pictures_did_not_change(tmp_path, embedder,
                                                                                    tesseract_runs):
    runner = make_runner(tmp_path / "home", embedder)
    first = runner.ingest_file("kim", SAMPLES / FINTECH, FINTECH)
    assert first.status == "succeeded" and tesseract_runs

    tesseract_runs.clear()
    second = runner.ingest_file("kim", EDITED, FINTECH)  # one number changed on page 3; page 5's diagram is the same
    assert second.status == "succeeded" and second.version != first.version
    assert tesseract_runs == []
    # the diagram's words are still found, from the edited version
    query = "코스콤 대구은행"
    hits = runner.index.hybrid_search("kim", query, embedder.embed_query(query), 5)
    assert hits and hits[0].page_start == 5 and "코스콤" in hits[0].text

    # the cache turned off (HANRAG_OCR_CACHE_ROWS=0): every ingest reads its pictures
    from pipeline.config import Settings
    from pipeline.runner import LocalRunner

    plain = LocalRunner.from_settings(Settings(home=tmp_path / "plain", ocr_cache_rows=0), embedder=embedder)
    assert plain.ocr_cache is None
    plain.ingest_file("kim", SAMPLES / FINTECH, FINTECH)
    tesseract_runs.clear()
    plain.ingest_file("kim", EDITED, FINTECH)
    assert tesseract_runs
