"""What a model gets to see of a chat's history. The store itself is a port
(`pipeline.ports.HistoryStore`: SQLite locally, DynamoDB on AWS)."""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.tokens import count_tokens


def within_budget(turns: Sequence[dict], max_tokens: int) -> list[dict]:
    """The most recent turns whose text fits in `max_tokens` (cl100k), oldest first.

    What a model sees of the conversation is bounded so a long chat never crowds out the
    retrieved context or overflows the model's window; the newest turns matter most.
    """
    kept: list[dict] = []
    used = 0
    for turn in reversed(turns):
        cost = count_tokens(turn["text"]) + 4  # role marker and separators
        if used + cost > max_tokens:
            break
        kept.append(turn)
        used += cost
    return kept[::-1]
