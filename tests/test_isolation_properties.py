"""Property-based checks (hypothesis) that no name or query, however hostile, escapes its user.

Names: whatever string arrives as a user id or a source path, validation either refuses it with
`InvalidName` or returns a name that stays inside its folder. Queries: whatever a user types —
FTS5 operators, quotes, SQL, control characters — search neither fails nor returns another user's text.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import BANK, SAMPLES, TUNNEL, make_runner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.errors import InvalidName
from pipeline.names import validate_source, validate_user_id

HOSTILE_PIECES = ["..", "/", "\\", "\x00", "\n", "'", '"', "*", "OR", "NEAR(", ")", "--", ";", "%", "a", "한글"]
hostile_text = st.one_of(
    st.text(max_size=80),
    st.lists(st.sampled_from(HOSTILE_PIECES), max_size=12).map("".join),
    st.lists(st.sampled_from(HOSTILE_PIECES + [" "]), max_size=12).map(" ".join),
)


@given(hostile_text)
def test_a_user_id_is_refused_or_safe_everywhere_it_is_used(user_id):
    try:
        valid = validate_user_id(user_id)
    except InvalidName as error:
        assert str(error).startswith("invalid user id")
        return
    assert valid == user_id and 1 <= len(valid) <= 63
    assert valid == valid.lower() and all(c.isalnum() or c in "-_" for c in valid) and valid.isascii()


@given(hostile_text)
def test_a_source_is_refused_or_stays_inside_its_folder(source):
    root = Path("/srv/hanrag/uploads/u")
    try:
        valid = validate_source(source)
    except InvalidName as error:
        assert str(error).startswith("invalid source name")
        return
    assert not valid.startswith("/") and ".." not in valid.split("/")
    assert (root / valid).resolve().is_relative_to(root)
    assert all(c.isprintable() for c in valid)


@pytest.fixture(scope="module")
def two_users(tmp_path_factory, embedder):
    runner = make_runner(tmp_path_factory.mktemp("iso") / "home", embedder)
    assert runner.ingest_file("alice", SAMPLES / TUNNEL, TUNNEL).status == "succeeded"
    assert runner.ingest_file("bob", SAMPLES / BANK, BANK).status == "succeeded"
    return runner


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=hostile_text, k=st.integers(min_value=1, max_value=50))
def test_no_query_fails_or_reaches_another_users_chunks(two_users, query, k):
    from chat.retrieve import Retriever

    hits = Retriever(two_users.embedder, two_users.index).search("bob", query, k)
    assert len(hits) <= k
    assert {hit.source for hit in hits} <= {BANK}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(user=hostile_text)
def test_a_search_as_any_other_user_finds_nothing_of_alices(two_users, user):
    from chat.retrieve import Retriever

    if user in ("alice", "bob"):
        return
    try:
        hits = Retriever(two_users.embedder, two_users.index).search(user, "도로터널 결로 대책", 10)
    except InvalidName:
        return  # refused before it reaches the index
    assert hits == []
