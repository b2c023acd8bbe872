"""One contract for every `SearchIndex`: the same behavioural tests run against the SQLite file and a
real OpenSearch node (started once per session by the `opensearch_node` fixture).

What a user relies on, whichever index holds their documents: a new version replaces the old one
atomically (a concurrent reader sees one of them, never neither and never both), delete removes a
document and nothing else, users never see each other's chunks (and hostile user ids are refused),
Korean compounds and particles match, the right real document ranks first, `k` is bounded, an empty
index answers with nothing, and text comes back exactly as it went in.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import uuid

import numpy as np
import pytest
from conftest import AVIATION, BANK, FINTECH, FIXTURES, SAMPLES, TUNNEL

from pipeline.errors import InvalidName
from pipeline.models import Chunk, DocumentRef
from pipeline.options import MAX_K
from pipeline.stages.chunk import chunk_document
from pipeline.stages.embed import embed_chunks
from pipeline.stages.extract import extract

BACKENDS = ["sqlite", "opensearch"]


@pytest.fixture(params=BACKENDS)
def backend(request, tmp_path, embedder):
    """(index, user id): a fresh SQLite file, or a fresh user on the shared node."""
    if request.param == "sqlite":
        from pipeline.adapters.local.database import Database
        from pipeline.adapters.local.sqlite_index import SqliteIndex

        return SqliteIndex(Database(tmp_path / "index.db"), embedder.dim), "kim"
    from pipeline.adapters.opensearch import OpenSearchIndex

    node = request.getfixturevalue("opensearch_node")
    return OpenSearchIndex(node.client(), embedder.dim, embedder.name, replicas=0), f"kim-{uuid.uuid4().hex[:8]}"


def real_document(path, user: str, embedder):
    data = path.read_bytes()
    ref = DocumentRef(user, path.name, hashlib.sha256(data).hexdigest())
    chunks = chunk_document(extract(data, path.name), ref)
    return ref, chunks, embed_chunks(chunks, embedder)


@pytest.fixture(scope="module")
def korean_documents(embedder):
    """Four real government documents (samples/ and tests/fixtures/, sources in their SOURCES.md)."""
    paths = [SAMPLES / BANK, SAMPLES / FINTECH, SAMPLES / TUNNEL, FIXTURES / AVIATION]
    return [real_document(p, "placeholder", embedder) for p in paths]


def for_user(prepared, user: str):
    """The same document under another user id (ids and chunk ids follow the user)."""
    ref, chunks, vectors = prepared
    mine = DocumentRef(user, ref.source, ref.version)
    moved = [Chunk(**{**c.to_dict(), "document_id": mine.document_id,
                      "chunk_id": c.chunk_id.replace(ref.document_id, mine.document_id)}) for c in chunks]
    return mine, moved, vectors


def text_document(user: str, source: str, texts: list[str], embedder, version: str | None = None):
    version = version or hashlib.sha256("\n".join(texts).encode()).hexdigest()
    ref = DocumentRef(user, source, version)
    chunks = [Chunk(chunk_id=f"{ref.document_id}-{version[:8]}-{i}", document_id=ref.document_id, version=version,
                    source=source, title=source, page_start=i + 1, page_end=i + 1, heading="", kind="text",
                    text=t, tokens=len(t)) for i, t in enumerate(texts)]
    return ref, chunks, embedder.embed_passages([c.search_text for c in chunks])


def search(index, user: str, query: str, embedder, k: int = 10):
    return index.hybrid_search(user, query, embedder.embed_query(query), k)


# ---------------------------------------------------------------------------------------- ranking

QUESTIONS = [  # (question, the document that answers it)
    ("핀테크 혁신펀드 2호 펀드 조성 규모", FINTECH),
    ("지방은행이 시중은행으로 전환할 때 인가 절차", BANK),
    ("터널 내부 결로 방지 대책", TUNNEL),
    ("항공훈련기관 지정 현황", AVIATION),
]


def test_the_document_that_answers_ranks_first_on_real_korean_documents(backend, embedder, korean_documents):
    index, user = backend
    for prepared in korean_documents:
        index.replace_document(*for_user(prepared, user))
    for question, expected in QUESTIONS:
        hits = search(index, user, question, embedder, k=5)
        assert hits[0].source == expected, (question, [h.source for h in hits])
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert all(h.page_start >= 1 and h.text for h in hits)


def test_a_page_level_question_finds_its_page(backend, embedder, korean_documents):
    index, user = backend
    index.replace_document(*for_user(korean_documents[2], user))  # the tunnel guideline
    hits = search(index, user, "도로터널 결로 대책 가이드라인은 연장 몇 km 이상의 터널에 적용하나요?", embedder, k=3)
    assert hits[0].source == TUNNEL and hits[0].page_start == 3
    assert "1km" in hits[0].text


def test_korean_compounds_and_particles_match_their_parts(backend, embedder):
    index, user = backend
    # every chunk has the same vector, so only the keyword side can tell them apart
    texts = ["금융위는 핀테크투자 활성화 방안을 발표했다", "은행은 내일부터 영업시간을 늘린다",
             "오늘은 날씨가 맑고 바람이 분다"]
    ref, chunks, _ = text_document(user, "compound.txt", texts, embedder)
    same = np.tile(embedder.embed_passages(["공통 문장"]), (3, 1))
    index.replace_document(ref, chunks, same)
    assert search(index, user, "투자", embedder)[0].text == texts[0]  # a part of the compound 핀테크투자
    assert search(index, user, "핀테크", embedder)[0].text == texts[0]
    assert search(index, user, "은행", embedder)[0].text == texts[1]  # 은행은: noun + particle


# ---------------------------------------------------------------------------------------- versions

def test_a_new_version_replaces_the_old_one_and_writing_it_twice_doubles_nothing(backend, embedder):
    index, user = backend
    v1 = text_document(user, "plan.txt", ["1차 계획: 예산은 100억 원이다", "1차 계획의 일정"], embedder, "1" * 64)
    v2 = text_document(user, "plan.txt", ["2차 계획: 예산은 300억 원이다"], embedder, "2" * 64)
    index.replace_document(*v1)
    index.replace_document(*v2)
    index.replace_document(*v2)
    hits = search(index, user, "계획 예산", embedder)
    assert [h.text for h in hits] == ["2차 계획: 예산은 300억 원이다"]
    assert index.count(user) == 1


def test_a_concurrent_reader_sees_exactly_one_version_during_replaces(backend, embedder):
    index, user = backend
    versions = [text_document(user, "notice.txt", [f"공지 {n}판: 접수 마감은 {n}일이다", f"공지 {n}판 부록"],
                              embedder, str(n) * 64) for n in (1, 2)]
    index.replace_document(*versions[0])
    query_vector = embedder.embed_query("공지 접수 마감")
    seen: list[set[str]] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            hits = index.hybrid_search(user, "공지 접수 마감", query_vector, 10)
            seen.append({h.text.split("판")[0] for h in hits})

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for version in itertools.islice(itertools.cycle(versions[1:] + versions[:1]), 6):
            index.replace_document(*version)
    finally:
        stop.set()
        reader.join()
    assert len(seen) >= 3
    assert all(len(versions_seen) == 1 for versions_seen in seen), [s for s in seen if len(s) != 1][:3]


def test_delete_removes_the_document_and_nothing_else(backend, embedder):
    index, user = backend
    keep = text_document(user, "keep.txt", ["남길 문서: 청년 주거 지원 사업"], embedder)
    gone = text_document(user, "gone.txt", ["지울 문서: 청년 창업 지원 사업", "지울 문서 두 번째 쪽"], embedder)
    index.replace_document(*keep)
    index.replace_document(*gone)
    assert index.delete_document(user, gone[0].document_id) == 2
    assert [h.source for h in search(index, user, "청년 지원 사업", embedder)] == ["keep.txt"]
    assert index.delete_document(user, gone[0].document_id) == 0
    assert index.delete_document(f"{user}-nobody", gone[0].document_id) == 0


def test_deleting_a_user_removes_all_their_chunks_and_nothing_of_anyone_else(backend, embedder):
    index, user = backend
    other = f"{user}-lee"  # an id that starts with the first one must not be caught by it
    index.replace_document(*text_document(user, "a.txt", ["김 씨의 청년 주거 지원 신청서"], embedder))
    index.replace_document(*text_document(user, "b.txt", ["김 씨의 청년 창업 지원 계획", "두 번째 쪽"], embedder))
    index.replace_document(*text_document(other, "c.txt", ["이 씨의 청년 주거 지원 신청서"], embedder))
    assert index.delete_user(user) == 3
    assert search(index, user, "청년 지원", embedder) == []
    assert [h.source for h in search(index, other, "청년 지원", embedder)] == ["c.txt"]
    assert index.delete_user(user) == 0  # again: nothing left, no error
    index.replace_document(*text_document(user, "new.txt", ["다시 가입한 김 씨의 청년 지원 문서"], embedder))
    assert [h.source for h in search(index, user, "청년 지원", embedder)] == ["new.txt"]

def test_versions_written_out_of_order_never_put_the_older_one_back(backend, embedder):
    """Two uploads of a file whose executions end in the other order: the later upload (S3's
    sequencer) stays the searchable version, and the older write leaves nothing behind."""
    index, user = backend
    v1 = text_document(user, "plan.txt", ["1차 계획: 예산은 100억 원이다", "1차 계획의 일정"], embedder, "1" * 64)
    v2 = text_document(user, "plan.txt", ["2차 계획: 예산은 300억 원이다"], embedder, "2" * 64)
    assert index.replace_document(*v2, sequencer="0B") is True
    assert index.replace_document(*v1, sequencer="0A") is False
    assert [h.text for h in search(index, user, "계획 예산", embedder)] == ["2차 계획: 예산은 300억 원이다"]
    assert index.count(user) == 1
    assert index.replace_document(*v2, sequencer="0B") is True  # the same write retried


def test_the_same_content_uploaded_again_keeps_its_place_against_an_earlier_upload(backend, embedder):
    """A, then B, then A again: the third upload finds A searchable and is skipped, but confirms A with
    its sequencer, so B's write, arriving afterwards, is refused."""
    index, user = backend
    a = text_document(user, "memo.txt", ["회의록 초안: 다음 회의는 화요일"], embedder, "1" * 64)
    b = text_document(user, "memo.txt", ["회의록 수정본: 다음 회의는 수요일"], embedder, "2" * 64)
    index.replace_document(*a, sequencer="01")
    assert index.confirm_version(a[0], "03") is True
    assert index.replace_document(*b, sequencer="02") is False
    assert [h.text for h in search(index, user, "회의록 회의", embedder)] == ["회의록 초안: 다음 회의는 화요일"]
    assert index.confirm_version(b[0], "04") is False  # not the searchable version: it must be ingested


def test_two_writers_racing_leave_the_later_version_whoever_finishes_last(backend, embedder):
    """The two executions' index writes at the same moment, three times over: whichever commits last,
    the later upload is the one searchable (OpenSearch: the pointer's compare-and-set decides)."""
    index, user = backend
    for turn in range(3):
        source = f"race-{turn}.txt"
        v1 = text_document(user, source, [f"{turn}회차 초안: 예산은 100억 원이다", f"{turn}회차 초안 부록"], embedder,
                           "1" * 64)
        v2 = text_document(user, source, [f"{turn}회차 확정: 예산은 300억 원이다"], embedder, "2" * 64)
        start, applied = threading.Barrier(2), {}

        def write(name, version, sequencer, start=start, applied=applied):
            start.wait()
            applied[name] = index.replace_document(*version, sequencer=sequencer)

        writers = [threading.Thread(target=write, args=("v1", v1, "0A")),
                   threading.Thread(target=write, args=("v2", v2, "0B"))]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join()
        assert applied["v2"] is True
        hits = [h.text for h in search(index, user, f"{turn}회차 예산", embedder) if h.source == source]
        assert hits == [f"{turn}회차 확정: 예산은 300억 원이다"]
    assert index.count(user) == 3


def test_a_delete_later_than_an_upload_wins_and_an_earlier_one_changes_nothing(backend, embedder):
    index, user = backend
    v1 = text_document(user, "memo.txt", ["회의록 초안: 다음 회의는 화요일"], embedder, "1" * 64)
    v2 = text_document(user, "memo.txt", ["회의록 확정본: 다음 회의는 목요일"], embedder, "2" * 64)
    index.replace_document(*v1, sequencer="01")
    assert index.delete_document(user, v1[0].document_id, sequencer="02") == 1
    assert index.replace_document(*v1, sequencer="01") is False  # the ingest that was running when it went
    assert search(index, user, "회의록 회의", embedder) == []
    assert index.replace_document(*v2, sequencer="03") is True  # uploaded again after the delete
    assert index.delete_document(user, v2[0].document_id, sequencer="02") == 0  # the delete, delivered late
    assert [h.text for h in search(index, user, "회의록 회의", embedder)] == ["회의록 확정본: 다음 회의는 목요일"]


# ---------------------------------------------------------------------------------------- users

def test_users_never_see_each_others_chunks(backend, embedder):
    index, user = backend
    other = f"{user}-lee"
    index.replace_document(*text_document(user, "mine.txt", ["김 씨의 건강검진 결과표"], embedder))
    index.replace_document(*text_document(other, "theirs.txt", ["이 씨의 건강검진 결과표"], embedder))
    assert [h.source for h in search(index, user, "건강검진 결과", embedder)] == ["mine.txt"]
    assert [h.source for h in search(index, other, "건강검진 결과", embedder)] == ["theirs.txt"]


@pytest.mark.parametrize("hostile", ["../kim", "Kim", "_all", "*", "kim\n", "kim,lee", "kim lee", "", "kim.other",
                                     "hanrag-*", "a" * 64])
def test_hostile_user_ids_are_refused_for_reads_and_writes(backend, embedder, hostile):
    index, _ = backend
    with pytest.raises(InvalidName):
        search(index, hostile, "건강검진", embedder)
    with pytest.raises(InvalidName):
        index.replace_document(*text_document(hostile, "x.txt", ["내용"], embedder))


# ---------------------------------------------------------------------------------------- bounds

def test_k_is_bounded_and_an_empty_index_answers_with_nothing(backend, embedder):
    index, user = backend
    assert search(index, user, "아무 질문", embedder) == []  # nothing ingested yet
    texts = [f"{n}번째 안내문: 민원 처리 기한" for n in range(1, 6)]
    index.replace_document(*text_document(user, "guide.txt", texts, embedder))
    assert len(search(index, user, "민원 처리 기한", embedder, k=1)) == 1
    assert len(search(index, user, "민원 처리 기한", embedder, k=MAX_K)) == 5
    for bad in (0, -5, MAX_K + 1, 1_000_000):
        with pytest.raises(ValueError, match="k must be"):
            search(index, user, "민원", embedder, k=bad)


def test_unicode_comes_back_exactly_as_it_went_in(backend, embedder):
    index, user = backend
    texts = ["｢도로법｣ 제10조에 따른 도로 ᆞ 터널 📄", "emoji 🚇 and English words, 한글 섞임"]
    ref, chunks, vectors = text_document(user, "유니코드 문서 ①.txt", texts, embedder)
    index.replace_document(ref, chunks, vectors)
    hits = search(index, user, "도로법 제10조", embedder)
    assert hits[0].text == texts[0] and hits[0].source == "유니코드 문서 ①.txt"
    assert {h.text for h in hits} == set(texts)
