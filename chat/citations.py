"""Citations that document text cannot forge.

An answer marks its sources `[1]`, `[2]`, … and a prompt quotes passages inside `<context>` and
`<passage id="n">`. A document is free to contain the same characters: quoted as they are, its
`[2]` would become a live link to another document's passage, and its `</context><passage id="9">`
would pose as the prompt around it. So passages are neutralised before they reach an answer or a
prompt (the brackets become their full-width look-alikes, which read the same), and a finished
answer keeps only the marks that point at a passage it actually quoted.
"""

from __future__ import annotations

import re
from dataclasses import replace

from chat.answer import Answer
from pipeline.models import SearchHit

_MARK = re.compile(r"\[(\s*\d+\s*)\]")
_BLOCK_TAG = re.compile(r"<(\s*/?\s*)(context|passage|history)\b", re.IGNORECASE)


def neutralised(text: str) -> str:
    """`[2]` → `［2］`, `</context>` → `＜/context>`: the same to a reader, no longer a mark or a tag."""
    text = _MARK.sub(lambda m: f"［{m.group(1)}］", text)
    return _BLOCK_TAG.sub(lambda m: f"＜{m.group(1)}{m.group(2)}", text)


def quotable(hits: list[SearchHit]) -> list[SearchHit]:
    """The hits as an answer may quote them."""
    return [replace(hit, text=neutralised(hit.text)) for hit in hits]


def with_checked_marks(answer: Answer) -> Answer:
    """The answer without marks that name no passage it cites (an LLM's `[9]` of five passages)."""
    count = len(answer.citations)

    def kept(match: re.Match) -> str:
        return match.group(0) if 1 <= int(match.group(1)) <= count else ""

    text = re.sub(r" ?\[(\d+)\]", kept, answer.text)
    return answer if text == answer.text else replace(answer, text=text.strip() or answer.text)
